// The resume side of the sequential quantizer: how many leading blocks come from a checkpoint (rank 0
// decides, every rank learns it), and one such block restored: its linears appended on rank 0, its
// quantized weights on every rank, and the next block's inputs rebuilt by its forward. Not the
// checkpoint format (`QuantizeCheckpoint`) nor the fingerprint checks (`runQuantize`).
import Foundation
import HessianDist
import Node
import Wire

extension SequentialQuantizer {
    /// The number of leading blocks `resumed` covers, on every rank (one `control` broadcast from rank 0,
    /// which alone reads the checkpoint). The blocks must be 0, 1, … in order.
    func resumePoint(blocks: Int) throws -> Int {
        var n = 0
        if comm.isRoot {
            for (i, b) in resumed.enumerated() {
                guard b.block == i, i < blocks else {
                    throw CheckpointError.unreadable(path: checkpoint?.directory ?? "checkpoint",
                                                     reason: "resumed block \(b.block) at position \(i) of \(blocks) blocks",
                                                     hint: "delete the checkpoint directory to start over")
                }
            }
            n = resumed.count
        }
        guard comm.size > 1 else { return n }
        var bytes: [UInt8] = []
        if comm.isRoot {
            var w = ByteWriter()
            w.write(Int64(n))
            let m = try WireMessage(kind: .control, dtype: .i64, shape: [1], payload: w.bytes)
            bytes = m.encode()
            for _ in 1..<comm.size { wireStats.record(m, wireBytes: bytes.count) }
        }
        let m = try WireMessage.decode(try comm.broadcast(bytes: bytes, root: 0))
        guard m.kind == .control, m.dtype == .i64, m.shape == [1] else {
            throw ClusterError(rank: comm.rank, operation: "resume point from rank 0", message: "expected one i64 control value, got \(m.kind) \(m.dtype) \(m.shape)")
        }
        let got = m.payload.withUnsafeBytes { Int(Int64(littleEndian: $0.loadUnaligned(as: Int64.self))) }
        guard (0...blocks).contains(got) else {
            throw ClusterError(rank: comm.rank, operation: "resume point from rank 0", message: "\(got) of \(blocks) blocks")
        }
        return got
    }

    /// Block `l` from the checkpoint: rank 0 appends its linears to `out`; with calibration, every rank
    /// sets its weights (broadcast from rank 0, as the owners' results are) and, when `X` is given, runs
    /// the block's forward over its micro-shards to turn X into the next block's inputs. The six stages
    /// run in the order the interrupted run ran them across its group passes, on the same micro-batches,
    /// with the same weights (each stage reads only its own tensors, all final by then), so X is the same bits.
    func restoreBlock(_ l: Int, block: LlamaModel, X: FloatBuffer?, mine: [(shard: Int, range: Range<Int>, localFirst: Int)],
                      seqlen: Int, calibrated: Bool, into out: inout [QuantizedLinear]) throws {
        let names = sequentialGroups(l).flatMap { $0 }
        let saved = comm.isRoot ? resumed[l] : nil
        if let saved {
            guard saved.linears.map(\.name) == names else {
                throw CheckpointError.unreadable(path: checkpoint?.directory ?? "checkpoint",
                                                 reason: "block \(l) holds \(saved.linears.map(\.name)), expected \(names)",
                                                 hint: "delete the checkpoint directory to start over")
            }
            out += saved.linears
        }
        guard calibrated else { return }
        for (i, name) in names.enumerated() {
            var weights = saved?.weights[i] ?? []
            if comm.isRoot && weights.isEmpty {
                throw CheckpointError.unreadable(path: checkpoint?.directory ?? "checkpoint", reason: "block \(l): no weights for \(name)",
                                                 hint: "delete the checkpoint directory to start over")
            }
            if comm.size > 1 { weights = try broadcastWeights(name, weights) }
            block.setWeight(name, weights)
        }
        guard let X else { return }
        let dim = source.config.dim
        try forEachMicroShard(mine, model: block, T: seqlen) { a, range, firstSample in
            let rows = range.count * seqlen
            let x = X.base + firstSample * seqlen * dim
            a.x.update(from: x, count: rows * dim)
            block.block(l, a)
            x.update(from: a.x, count: rows * dim)
        }
    }
}
