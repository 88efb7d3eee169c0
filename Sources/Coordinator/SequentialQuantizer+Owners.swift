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
        let t0 = Date()
        defer { phaseSeconds["hessian", default: 0] += Date().timeIntervalSince(t0) }
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

    /// "q/k/v", "o", "gate/up", "down" ("output head" past the last block): how errors and logs name a group.
    func groupLabel(_ layer: Int, _ group: Int) -> String {
        layer >= source.config.nLayers ? "output head" : ["q/k/v", "o", "gate/up", "down"][min(group, 3)]
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
        var clock = Date()
        func lap(_ phase: String) {
            let now = Date()
            phaseSeconds[phase, default: 0] += now.timeIntervalSince(clock)
            clock = now
        }
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
            lap("hessian")
            for name in group { try observer?(name, block.weight(name), H) }
            lap("observer")
        } else if others.contains(comm.rank), H == nil {
            let bytes = try comm.recv(from: 0, tag: Tag.hessianToOwner)
            let cols = try source.info(group[0]).shape[1]
            myH = try HessianWire.decode(bytes, columns: cols, count: tokens, ids: hIDs,
                                         rank: comm.rank, operation: "Hessian for \(stage)").0
            lap("hessian")
        }

        // Solve what this rank owns (group order; `quantize` counts its own time as solve).
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

        clock = Date()
        // Results in group order: the linear to rank 0, the weights to everyone.
        defer { lap("results") }
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

    /// End of `run`, on every rank: rank 0 adds to its `wireStats` what the other ranks counted (messages
    /// between two ranks other than 0) and logs every rank's phase seconds (stderr). One `manifest` per
    /// rank: u32 kinds, then per kind u8 id and i64 messages, raw and wire bytes; u32 phases, then per
    /// phase its name and f64 seconds.
    func summarizeRun() throws {
        var w = ByteWriter()
        let kinds = comm.isRoot ? [] : MessageKind.allCases.filter { wireStats.byKind[$0] != nil }
        w.write(UInt32(kinds.count))
        for k in kinds {
            let c = wireStats.byKind[k]!
            w.write(k.rawValue)
            for v in [c.messages, c.rawBytes, c.wireBytes] { w.write(Int64(v)) }
        }
        let phases = phaseSeconds.sorted { $0.key < $1.key }
        w.write(UInt32(phases.count))
        for (name, sec) in phases {
            writeString(&w, name)
            w.write(sec)
        }
        let m = try WireMessage(kind: .manifest, dtype: .u8, shape: [w.bytes.count], payload: w.bytes)
        guard let all = try comm.gather(bytes: m.encode(), root: 0) else { return }
        for (r, bytes) in all.enumerated() {
            do {
                let got = try WireMessage.decode(bytes)
                guard got.kind == .manifest, got.dtype == .u8 else {
                    throw WireError(.unknownValue, field: "run summary", expected: "a u8 manifest", found: "\(got.kind) \(got.dtype)")
                }
                let line: String = try got.payload.withUnsafeBytes { raw in
                    var rd = ByteReader(raw)
                    for _ in 0..<Int(try rd.read(UInt32.self, "kinds")) {
                        let id = try rd.read(UInt8.self, "kind")
                        guard let kind = MessageKind(rawValue: id) else {
                            throw WireError(.unknownValue, field: "kind", expected: "a message kind", found: "\(id)")
                        }
                        let v = try (0..<3).map { _ in Int(try rd.read(Int64.self, "\(kind) bytes")) }
                        guard r != 0, v.allSatisfy({ $0 >= 0 }) else {
                            throw WireError(.unknownValue, field: "\(kind) counts", expected: "non-negative, not from rank 0", found: "\(v)")
                        }
                        wireStats.record(kind: kind, messages: v[0], rawBytes: v[1], wireBytes: v[2])
                    }
                    var parts: [String] = []
                    for _ in 0..<Int(try rd.read(UInt32.self, "phases")) {
                        let name = try readString(&rd, "phase")
                        parts.append("\(name) " + String(format: "%.2f s", try rd.readDouble("\(name) seconds")))
                    }
                    guard rd.remaining == 0 else {
                        throw WireError(.trailingBytes, field: "run summary", expected: "end", found: "\(rd.remaining) bytes")
                    }
                    return parts.joined(separator: ", ")
                }
                comm.log0("phases rank \(r) of \(comm.size): \(line)")
            } catch {
                throw ClusterError(rank: 0, operation: "run summary", message: "from rank \(r): \(error)")
            }
        }
    }
}

/// A failure inside `SequentialQuantizer.run`: which rank, at which stage ("block 3 group gate/up",
/// "calibration (embedding)", …), and the error underneath. The CLI turns it into an MPI abort, so the
/// other ranks stop instead of waiting for this one in a collective.
public struct QuantizeStageError: Error, CustomStringConvertible {
    public let rank: Int
    public let size: Int
    public let stage: String
    public let cause: any Error
    public var description: String { "at \(stage) (rank \(rank) of \(size)): \(cause)" }
}

/// Fault injection for the failure-handling tests (as `cluster-selftest --fail-rank`): with
/// `HESSDIST_FAULT=RANK:BLOCK:GROUP` in the environment, that rank throws this when it reaches that
/// group (GROUP 0 q/k/v, 1 o, 2 gate/up, 3 down) in the quantizing pass (`injectsFaults`). `RANK:BLOCK:GROUP:kill` makes it SIGKILL itself there
/// instead: no error path, no cleanup, as when a job is killed; blocks before BLOCK are checkpointed by
/// then, so `RANK:k+1:0:kill` is "killed after block k" for the `--resume` tests. `RANK:fisher:S[:kill]`
/// fires instead when that rank starts Fisher sequence S of a profile (a stage of a pipeline, say).
public struct InjectedFault: Error, CustomStringConvertible {
    public static let variable = "HESSDIST_FAULT"
    public let rank: Int
    public let block: Int
    public let group: Int
    public var kill = false
    /// Set for `RANK:fisher:S`: the Fisher sequence (block and group are then −1).
    public var fisherSequence: Int? = nil
    public var description: String {
        let at = fisherSequence.map { "fisher:\($0)" } ?? "\(block):\(group)"
        return "injected fault (\(Self.variable)=\(rank):\(at)\(kill ? ":kill" : "")); unset \(Self.variable) to run normally"
    }

    /// nil when the variable is unset; a malformed value is an error (a typo must not silently test nothing).
    public static func fromEnvironment() throws -> InjectedFault? {
        guard let v = ProcessInfo.processInfo.environment[variable], !v.isEmpty else { return nil }
        var fields = v.split(separator: ":", omittingEmptySubsequences: false)
        let kill = fields.count == 4 && fields[3] == "kill"
        if kill { fields.removeLast() }
        if fields.count == 3, fields[1] == "fisher", let r = Int(fields[0]), let seq = Int(fields[2]), r >= 0, seq >= 0 {
            return InjectedFault(rank: r, block: -1, group: -1, kill: kill, fisherSequence: seq)
        }
        let p = fields.map { Int($0) }
        guard p.count == 3, let r = p[0], let b = p[1], let g = p[2], r >= 0, b >= 0, (0...3).contains(g) else {
            throw CalibrationError.invalid("\(variable)=\(v): expected RANK:BLOCK:GROUP[:kill] with GROUP 0...3, or RANK:fisher:SEQUENCE[:kill]")
        }
        return InjectedFault(rank: r, block: b, group: g, kill: kill)
    }

    /// Throws this fault, or with `kill` ends the process by SIGKILL (stderr says so first).
    func fire() throws -> Never {
        if kill {
            FileHandle.standardError.write(Data("hessdist: \(self): killing rank \(rank)\n".utf8))
            raise(SIGKILL)
            fatalError("SIGKILL did not end the process")
        }
        throw self
    }
}
