// Data parallelism for the sequential quantizer: which calibration micro-shards a rank owns, how a
// rank's per-micro-shard partial Hessians travel to rank 0 (WireMessages, framed), and the merge in
// micro-shard order that makes the total the same bits for any number of ranks.
// Not here: the forward passes (SequentialQuantizer) or MPI itself (Node/Cluster/Comm).
import Foundation
import HessianDist
import Node
import Wire

/// Calibration samples cut into micro-shards of `microBatch` consecutive samples (the last may be
/// shorter). The cut depends only on the sample count and micro-batch, never on the number of ranks:
/// a micro-shard is also one forward micro-batch, so its activations and its partial Hessian have the
/// same bits on whichever rank computes it. Rank r of N owns micro-shards r, r+N, r+2N, …
public struct MicroShards: Sendable, Equatable {
    public let samples: Int
    public let microBatch: Int

    public init(samples: Int, microBatch: Int) {
        self.samples = samples
        self.microBatch = max(1, microBatch)
    }

    public var count: Int { (samples + microBatch - 1) / microBatch }

    /// Global sample range of micro-shard `k`.
    public func range(_ k: Int) -> Range<Int> { (k * microBatch)..<min(samples, (k + 1) * microBatch) }

    /// The micro-shards rank `rank` of `size` owns, ascending.
    public func owned(rank: Int, size: Int) -> [Int] { Array(stride(from: rank, to: count, by: size)) }

    /// Owned micro-shards with the first sample of each in the rank's local (compacted) buffers.
    public func local(rank: Int, size: Int) -> [(shard: Int, range: Range<Int>, localFirst: Int)] {
        var first = 0
        return owned(rank: rank, size: size).map { k in
            let r = range(k)
            defer { first += r.count }
            return (k, r, first)
        }
    }

    /// Samples rank `rank` of `size` keeps activations for.
    public func localSamples(rank: Int, size: Int) -> Int { owned(rank: rank, size: size).reduce(0) { $0 + range($1).count } }
}

/// One rank's partial Hessians of one layer group, encoded as length-prefixed WireMessage pairs:
/// a `hessian` (f64, n×n Σ xᵀx, triangle+shuffle+zstd) and a `scalars` (i64 [count]) per micro-shard,
/// ids = (layer, group, micro-shard, sender).
public struct HessianPartials {
    public private(set) var bytes: [UInt8] = []
    public let layer: Int
    public let group: Int
    public let sender: Int

    public init(layer: Int, group: Int, sender: Int) {
        self.layer = layer
        self.group = group
        self.sender = sender
    }

    public mutating func append(shard: Int, _ h: LayerHessian) throws {
        let ids = MessageIDs(layer: UInt32(layer), module: UInt32(group), shard: UInt32(shard), sender: UInt32(sender))
        let n = h.columns
        let hm = try WireMessage(kind: .hessian, shape: [n, n], doubles: h.sum(), codec: .triangleShuffleZstd(), ids: ids)
        var w = ByteWriter(capacity: 8)
        w.write(Int64(h.count))
        let cm = try WireMessage(kind: .scalars, dtype: .i64, shape: [1], payload: w.bytes, codec: .raw, ids: ids)
        for m in [hm, cm] {
            let e = m.encode()
            var len = ByteWriter(capacity: 8)
            len.write(UInt64(e.count))
            bytes += len.bytes
            bytes += e
        }
    }
}

/// Rank 0's side: decodes every rank's `HessianPartials` bytes (`gathered[r]` from rank r), checks that
/// each micro-shard arrived exactly once from its owner with the expected layer/group, column count
/// and row count (`rows(k)`), then merges them in micro-shard order 0..<shards.count into an empty
/// hessian. Double adds in a fixed order: the same bits whatever the number of ranks.
/// `stats` records the messages that came from other ranks (rank 0's own never cross the wire).
public func mergeHessianPartials(_ gathered: [[UInt8]], columns: Int, layer: Int, group: Int, shards: MicroShards,
                                 rows: (Int) -> Int, stats: inout WireStats) throws -> LayerHessian {
    let size = gathered.count
    // Encoded hessian message per micro-shard: decoded again in merge order, so rank 0 holds the
    // compressed partials plus two full sums, not every partial decoded.
    var byShard = [[UInt8]?](repeating: nil, count: shards.count)
    var counts = [Int?](repeating: nil, count: shards.count)
    func bad(_ r: Int, _ what: String) -> ClusterError {
        ClusterError(rank: 0, operation: "Hessian reduction (layer \(layer), group \(group))", message: "from rank \(r): \(what)")
    }
    for (r, bytes) in gathered.enumerated() {
        var off = 0
        var pending: WireMessage? = nil
        var pendingBytes: [UInt8] = []
        while off < bytes.count {
            guard off + 8 <= bytes.count else { throw bad(r, "truncated frame at byte \(off)") }
            var len: UInt64 = 0
            for i in 0..<8 { len |= UInt64(bytes[off + i]) << (8 * UInt64(i)) }
            off += 8
            guard len <= UInt64(bytes.count - off) else { throw bad(r, "frame of \(len) bytes at \(off), \(bytes.count - off) left") }
            let frame = Array(bytes[off..<(off + Int(len))])
            off += Int(len)
            if pending == nil {
                let m = try WireMessage.decode(frame)
                pending = m
                pendingBytes = frame
                continue
            }
            let hm = pending!, cm = try WireMessage.decode(frame)
            pending = nil
            let k = Int(hm.ids.shard)
            guard hm.kind == .hessian, hm.dtype == .f64, hm.shape == [columns, columns] else {
                throw bad(r, "expected an f64 hessian \([columns, columns]), got \(hm.kind) \(hm.dtype) \(hm.shape)")
            }
            guard cm.kind == .scalars, cm.dtype == .i64, cm.shape == [1], cm.ids == hm.ids else {
                throw bad(r, "expected the row count of micro-shard \(k), got \(cm.kind) \(cm.dtype) \(cm.shape) ids \(cm.ids)")
            }
            guard Int(hm.ids.layer) == layer, Int(hm.ids.module) == group, Int(hm.ids.sender) == r else {
                throw bad(r, "message for layer \(hm.ids.layer) group \(hm.ids.module) sender \(hm.ids.sender)")
            }
            guard k < shards.count, k % size == r else {
                throw bad(r, "micro-shard \(k): not owned by rank \(r) of \(size) (\(shards.count) micro-shards)")
            }
            guard byShard[k] == nil else { throw bad(r, "micro-shard \(k) sent twice") }
            let count = cm.payload.withUnsafeBytes { Int(Int64(littleEndian: $0.loadUnaligned(as: Int64.self))) }
            guard count == rows(k) else { throw bad(r, "micro-shard \(k) has \(count) rows, expected \(rows(k))") }
            if r != 0 {
                stats.record(hm, wireBytes: pendingBytes.count + 8)
                stats.record(cm, wireBytes: frame.count + 8)
            }
            byShard[k] = pendingBytes
            counts[k] = count
        }
        guard pending == nil else { throw bad(r, "a hessian without its row count") }
    }
    let total = LayerHessian(columns: columns)
    for k in 0..<shards.count {
        guard let frame = byShard[k], let count = counts[k] else {
            throw ClusterError(rank: 0, operation: "Hessian reduction (layer \(layer), group \(group))",
                               message: "micro-shard \(k) missing (owner rank \(k % size))")
        }
        let sum = try WireMessage.decode(frame).payload.withUnsafeBytes { raw in
            (0..<(columns * columns)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
        total.merge(LayerHessian(columns: columns, count: count, sum: sum))
        byShard[k] = nil
    }
    return total
}
