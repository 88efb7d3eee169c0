// The cluster side of the sequential quantizer: the Hessian running sum along the rank chain, the owner
// schedule, and one group solved on its owner ranks (H out from rank 0, quantized linears back to it,
// dequantized weights to everyone). Every rank calls these in the same order with the same arguments
// (bulk-synchronous); point-to-point messages use one tag per purpose. Not the numerics (`quantize`).
import Foundation
import HessianDist
import Node
import Wire

extension SequentialQuantizer {
    /// MPI tags: one per message purpose, so a message can never be taken for another.
    enum Tag {
        static let hessianChain = 11
        static let hessianToOwner = 12
        static let quantized = 13
    }

    /// Rank 0's owner schedule for every block linear, on every rank (one `manifest` broadcast).
    func broadcastSchedule() throws -> OwnerSchedule {
        var bytes: [UInt8] = []
        if comm.isRoot {
            let groups = (0..<source.config.nLayers).flatMap { sequentialGroups($0) }
            let schedule = try OwnerSchedule(groups: groups, ranks: comm.size, method: options.method,
                                             shape: { let s = try source.info($0).shape; return (s[0], s[1]) }, target: target)
            let m = try schedule.message()
            bytes = m.encode()
            for _ in 1..<comm.size { wireStats.record(m, wireBytes: bytes.count) }
        }
        let got = try comm.broadcast(bytes: bytes, root: 0)
        do {
            return try OwnerSchedule(message: WireMessage.decode(got), ranks: comm.size)
        } catch {
            throw ClusterError(rank: comm.rank, operation: "owner schedule from rank 0", message: "\(error)")
        }
    }

    /// The group's Hessian on rank 0 (nil elsewhere; one rank: `part` finished locally): each rank of
    /// the chain receives the running sum of all earlier micro-shards from the rank before it, folds its
    /// own micro-shards on, and sends the result to the next; the last is rank 0.
    func passHessianChain(_ part: inout HessianChainPart, layer: Int, group: Int, shards: MicroShards,
                          seqlen: Int) throws -> LayerHessian? {
        guard comm.size > 1 else { return part.finish(incoming: nil) }
        let chain = shards.chain(size: comm.size)
        let mine = shards.owned(rank: comm.rank, size: comm.size)
        guard let pos = chain.firstIndex(of: comm.rank), let firstShard = mine.first, let lastShard = mine.last else {
            return nil  // owns no micro-shard (fewer micro-shards than ranks): not on the chain
        }
        let stage = "Hessian chain (block \(layer) group \(groupLabel(layer, group)))"
        var incoming: LayerHessian? = nil
        if pos > 0 {
            let prev = chain[pos - 1]
            let bytes = try comm.recv(from: prev, tag: Tag.hessianChain)
            let ids = MessageIDs(layer: UInt32(layer), module: UInt32(group), shard: UInt32(firstShard), sender: UInt32(prev))
            let (h, messages) = try HessianWire.decode(bytes, columns: part.columns, count: shards.rowsBefore(firstShard, seqlen: seqlen),
                                                       ids: ids, rank: comm.rank, operation: stage)
            if comm.isRoot { for (m, n) in messages { wireStats.record(m, wireBytes: n) } }
            incoming = h
        }
        let total = part.finish(incoming: incoming)
        guard pos + 1 < chain.count else { return total }  // the chain ends on rank 0
        let next = chain[pos + 1]
        let ids = MessageIDs(layer: UInt32(layer), module: UInt32(group), shard: UInt32(lastShard + 1), sender: UInt32(comm.rank))
        let (bytes, messages) = try HessianWire.encode(total, ids: ids)
        try comm.send(bytes: bytes, to: next, tag: Tag.hessianChain)
        // Rank 0 counts what it receives; a hop between two other ranks is counted by its sender.
        if next != 0 { for (m, n) in messages { wireStats.record(m, wireBytes: n) } }
        return nil
    }

    /// "q/k/v", "o", "gate/up", "down": how errors and logs name a group.
    func groupLabel(_ layer: Int, _ group: Int) -> String {
        ["q/k/v", "o", "gate/up", "down"][min(group, 3)]
    }

    /// Solves one group on its owners. Rank 0 sends H to every other owner, runs the observer for each
    /// module (it has W and H), and solves its own modules while the owners solve theirs; then, in group
    /// order, each owner other than 0 sends rank 0 the `QuantizedLinear`, and broadcasts the dequantized
    /// weights, which every rank continues with. Rank 0 appends the linears to `out` in group order.
    /// `rows`: the calibration tokens, which is the merged Hessian's row count.
    func solveOnOwners(_ group: [String], layer: Int, group g: Int, H: LayerHessian?, rows tokens: Int, block: LlamaModel,
                       schedule: OwnerSchedule, into out: inout [QuantizedLinear],
                       progress: (String) -> Void) throws {
        let stage = "block \(layer) group \(groupLabel(layer, g))"
        let entries = try group.map { name in
            guard let e = schedule.entry(name) else {
                throw ClusterError(rank: comm.rank, operation: stage, message: "\(name) is not in rank 0's owner schedule")
            }
            return e
        }
        let others = Set(entries.map(\.owner)).subtracting([0]).sorted()
        var myH = H
        // The merged Hessian's ids: shard = all micro-shards (UInt32.max), sender rank 0.
        let hIDs = MessageIDs(layer: UInt32(layer), module: UInt32(g), shard: UInt32.max, sender: 0)
        if comm.isRoot {
            if !others.isEmpty, let H {
                // Encoded once, sent to each owner (the owners are few, and a broadcast would also reach
                // ranks that do not need it).
                let (bytes, messages) = try HessianWire.encode(H, ids: hIDs)
                for r in others {
                    try comm.send(bytes: bytes, to: r, tag: Tag.hessianToOwner)
                    for (m, n) in messages { wireStats.record(m, wireBytes: n) }
                }
            }
            for name in group { try observer?(name, block.weight(name), H) }
        } else if others.contains(comm.rank), H == nil {
            let bytes = try comm.recv(from: 0, tag: Tag.hessianToOwner)
            let cols = try source.info(group[0]).shape[1]
            myH = try HessianWire.decode(bytes, columns: cols, count: tokens, ids: hIDs,
                                         rank: comm.rank, operation: "Hessian for \(stage)").0
        }

        // Solve what this rank owns (group order).
        var solved: [String: (QuantizedLinear, [Float])] = [:]
        for e in entries where e.owner == comm.rank {
            let t0 = Date()
            do {
                var q = try quantize(name: e.name, block: block, H: myH, storage: e.target)
                q.0.report.seconds = Date().timeIntervalSince(t0)
                solved[e.name] = q
            } catch let error as ClusterError {
                throw error
            } catch {
                throw ClusterError(rank: comm.rank, operation: "\(stage): quantizing \(e.name)", message: "\(error)")
            }
        }

        // Results in group order: the linear to rank 0, the weights to everyone.
        for (i, e) in entries.enumerated() {
            let info = try source.info(e.name)
            let rows = info.shape[0], cols = info.shape[1]
            let ids = MessageIDs(layer: UInt32(layer), module: UInt32(g * 4 + i), shard: 0, sender: UInt32(e.owner))
            var linear = solved[e.name]?.0
            if e.owner != 0 {
                if comm.rank == e.owner, let q = linear {
                    let (bytes, _) = try q.wireBytes(ids: ids)
                    try comm.send(bytes: bytes, to: 0, tag: Tag.quantized)
                } else if comm.isRoot {
                    let bytes = try comm.recv(from: e.owner, tag: Tag.quantized)
                    let q = try QuantizedLinear(wire: bytes, name: e.name, rows: rows, cols: cols, target: e.target, ids: ids, rank: 0)
                    // Counted from the re-encoding, which has the same bytes as what arrived.
                    let (again, messages) = try q.wireBytes(ids: ids)
                    guard again.count == bytes.count else {
                        throw ClusterError(rank: 0, operation: "receiving quantized \(e.name)",
                                           message: "from rank \(e.owner): \(bytes.count) bytes re-encode to \(again.count)")
                    }
                    for (m, n) in messages { wireStats.record(m, wireBytes: n) }
                    linear = q
                }
            }
            let weights = try broadcastWeights(e.name, solved[e.name]?.1 ?? [], root: e.owner)
            block.setWeight(e.name, weights)
            if comm.isRoot, let linear {
                out.append(linear)
                progress(e.name)
            }
        }
    }

    /// Adds to rank 0's `wireStats` what the other ranks counted (messages between two ranks other than 0):
    /// one `scalars` message per rank, i64 (kind, messages, raw bytes, wire bytes) per kind.
    func collectSideStats() throws {
        var w = ByteWriter()
        for k in MessageKind.allCases {
            guard !comm.isRoot, let c = wireStats.byKind[k] else { continue }
            for v in [Int64(k.rawValue), Int64(c.messages), Int64(c.rawBytes), Int64(c.wireBytes)] { w.write(v) }
        }
        let m = try WireMessage(kind: .scalars, dtype: .i64, shape: [w.bytes.count / 8], payload: w.bytes)
        guard let all = try comm.gather(bytes: m.encode(), root: 0) else { return }
        for (r, bytes) in all.enumerated().dropFirst() {
            let got: WireMessage
            do { got = try WireMessage.decode(bytes) } catch {
                throw ClusterError(rank: 0, operation: "wire statistics", message: "from rank \(r): \(error)")
            }
            guard got.kind == .scalars, got.dtype == .i64, got.shape.count == 1, got.count % 4 == 0 else {
                throw ClusterError(rank: 0, operation: "wire statistics", message: "from rank \(r): \(got.kind) \(got.dtype) \(got.shape)")
            }
            let v = got.payload.withUnsafeBytes { raw in (0..<got.count).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))) } }
            for i in stride(from: 0, to: v.count, by: 4) {
                guard v[i] >= 0, v[i] <= 255, let kind = MessageKind(rawValue: UInt8(v[i])), v[i + 1] >= 0, v[i + 2] >= 0, v[i + 3] >= 0 else {
                    throw ClusterError(rank: 0, operation: "wire statistics", message: "from rank \(r): bad entry \(Array(v[i..<(i + 4)]))")
                }
                wireStats.record(kind: kind, messages: v[i + 1], rawBytes: v[i + 2], wireBytes: v[i + 3])
            }
        }
    }
}
