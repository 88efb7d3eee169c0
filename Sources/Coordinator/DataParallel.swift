// Data parallelism for the sequential quantizer: which calibration micro-shards a rank owns, how a
// layer Hessian travels between ranks (`HessianWire`: the running sum along the rank chain, or the merged
// H to an owner rank), the older per-micro-shard partials gathered to rank 0 (`HessianPartials`), and the
// merge in micro-shard order that makes the total the same bits for any number of ranks.
// Not here: the forward passes (SequentialQuantizer) or MPI itself (Node/Cluster/Comm).
import Foundation
import HessianDist
import Node
import Wire

/// Calibration samples cut into micro-shards of `microBatch` consecutive samples (the last may be
/// shorter). The cut depends only on the sample count and micro-batch, never on the number of ranks:
/// a micro-shard is also one forward micro-batch, so its activations and its partial Hessian have the
/// same bits on whichever rank computes it.
///
/// Ownership is contiguous and reversed: the micro-shards are cut into N consecutive blocks of
/// ⌊K/N⌋ or ⌈K/N⌉, and block j belongs to rank N−1−j, so rank 0 owns the *last* block. The Hessian
/// sum runs in micro-shard order, which then becomes a chain N−1 → … → 1 → 0 of one running sum per
/// hop (`HessianWire`) that ends on rank 0, instead of one message per micro-shard.
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

    /// Block `j` of `size` consecutive blocks: micro-shards ⌊jK/N⌋ ..< ⌊(j+1)K/N⌋ (empty when K < N).
    public func block(_ j: Int, of size: Int) -> Range<Int> { (j * count / size)..<((j + 1) * count / size) }

    /// The micro-shards rank `rank` of `size` owns, ascending: block size−1−rank.
    public func owned(rank: Int, size: Int) -> [Int] { Array(block(size - 1 - rank, of: size)) }

    /// The rank of `size` that owns micro-shard `k`.
    public func owner(of k: Int, size: Int) -> Int {
        (0..<size).first { block(size - 1 - $0, of: size).contains(k) } ?? -1
    }

    /// The ranks that own micro-shards, in micro-shard order (descending rank; always ends with rank 0
    /// when there is at least one micro-shard, since rank 0's block ends at K).
    public func chain(size: Int) -> [Int] { (0..<size).reversed().filter { !owned(rank: $0, size: size).isEmpty } }

    /// Calibration rows (tokens) of micro-shards before `k`, at `seqlen` tokens per sample.
    public func rowsBefore(_ k: Int, seqlen: Int) -> Int { min(k * microBatch, samples) * seqlen }

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

/// One layer Hessian (Σ xᵀx and its row count) as two length-prefixed WireMessages with the same ids:
/// a `hessian` (n×n, triangle+shuffle+zstd) and a `scalars` (i64 [count]).
///
/// Lossless and as small as it can be made cheaply: the sum is sent as f32 when every value is exactly a
/// float (one micro-shard's partial is `ssyrk`'s float output widened, so a chain of one hop per
/// micro-shard would go at half the bytes), otherwise as f64. Triangle packing halves the matrix;
/// byte shuffle lets zstd squeeze the exponent bytes and the low mantissa bytes that a sum of floats
/// leaves zero.
public enum HessianWire {
    /// The encoded frames and the messages in them (with their framed sizes), for wire statistics.
    public static func encode(_ h: LayerHessian, ids: MessageIDs) throws -> (bytes: [UInt8], messages: [(WireMessage, Int)]) {
        let n = h.columns
        let hm: WireMessage
        if let u = h.exactFloatUpper() {
            // The full symmetric matrix from the triangle (the codec packs it again).
            var f = [Float](repeating: 0, count: n * n)
            var k = 0
            for i in 0..<n {
                for j in i..<n {
                    f[i * n + j] = u[k]
                    f[j * n + i] = u[k]
                    k += 1
                }
            }
            hm = try WireMessage(kind: .hessian, shape: [n, n], floats: f, codec: .triangleShuffleZstd(), ids: ids)
        } else {
            hm = try WireMessage(kind: .hessian, shape: [n, n], doubles: h.sum(), codec: .triangleShuffleZstd(), ids: ids)
        }
        var w = ByteWriter(capacity: 8)
        w.write(Int64(h.count))
        let cm = try WireMessage(kind: .scalars, dtype: .i64, shape: [1], payload: w.bytes, codec: .raw, ids: ids)
        var bytes: [UInt8] = []
        var messages: [(WireMessage, Int)] = []
        for m in [hm, cm] {
            let e = m.encode()
            Framing.append(e, to: &bytes)
            messages.append((m, e.count + 8))
        }
        return (bytes, messages)
    }

    /// Strict decoding of `encode`'s bytes: exactly two frames, an f32 or f64 `hessian` of `columns`²
    /// and its i64 row count, both with `ids`, the count equal to `count`. Errors are `ClusterError`s
    /// of `rank` naming `operation` and the sender.
    public static func decode(_ bytes: [UInt8], columns: Int, count: Int, ids: MessageIDs,
                              rank: Int, operation: String) throws -> (LayerHessian, [(WireMessage, Int)]) {
        func bad(_ what: String) -> ClusterError {
            ClusterError(rank: rank, operation: operation, message: "from rank \(ids.sender): \(what)")
        }
        let frames: [[UInt8]]
        do { frames = try Framing.split(bytes) } catch { throw bad("\(error)") }
        guard frames.count == 2 else { throw bad("\(frames.count) frames, expected a hessian and its row count") }
        let hm: WireMessage, cm: WireMessage
        do {
            hm = try WireMessage.decode(frames[0])
            cm = try WireMessage.decode(frames[1])
        } catch { throw bad("\(error)") }
        guard hm.kind == .hessian, hm.dtype == .f32 || hm.dtype == .f64, hm.shape == [columns, columns] else {
            throw bad("expected an f32/f64 hessian \([columns, columns]), got \(hm.kind) \(hm.dtype) \(hm.shape)")
        }
        guard hm.ids == ids, cm.ids == ids else { throw bad("ids \(hm.ids) / \(cm.ids), expected \(ids)") }
        guard cm.kind == .scalars, cm.dtype == .i64, cm.shape == [1] else {
            throw bad("expected the i64 row count, got \(cm.kind) \(cm.dtype) \(cm.shape)")
        }
        let got = cm.payload.withUnsafeBytes { Int(Int64(littleEndian: $0.loadUnaligned(as: Int64.self))) }
        guard got == count else { throw bad("\(got) rows, expected \(count)") }
        let sum = hm.dtype == .f32 ? try hm.floats().map { Double($0) } : try hm.doubles()
        return (LayerHessian(columns: columns, count: count, sum: sum), [(hm, frames[0].count + 8), (cm, frames[1].count + 8)])
    }
}

/// One rank's part of the layer Hessian of a group: the running sum in micro-shard order.
///
/// The chain's first rank (the one owning micro-shard 0) folds its micro-shards into an empty sum as
/// they finish; every later rank keeps its partials (exact float triangles, a quarter of the double
/// matrix) until the running sum of all earlier micro-shards arrives, then folds them on. Each addition
/// is the one a single process makes in the same order, so the total has the same bits for any number
/// of ranks.
public struct HessianChainPart {
    public let columns: Int
    /// Whether this rank starts the chain (no earlier micro-shards).
    public let first: Bool
    private var total: LayerHessian
    private var partials: [(count: Int, upper: [Float])] = []

    public init(columns: Int, first: Bool) {
        self.columns = columns
        self.first = first
        self.total = LayerHessian(columns: columns)
    }

    /// Adds the next owned micro-shard's partial (micro-shard order). `h` must hold one `accumulate`
    /// (float values), which is what lets it wait as floats.
    public mutating func append(_ h: LayerHessian) {
        if first {
            total.merge(h)
        } else {
            guard let u = h.exactFloatUpper() else { preconditionFailure("a micro-shard partial that is not exact floats") }
            partials.append((h.count, u))
        }
    }

    /// The running sum after this rank's micro-shards, continuing `incoming` (nil for the first rank).
    public mutating func finish(incoming: LayerHessian?) -> LayerHessian {
        precondition(first == (incoming == nil), "the first rank starts from the empty sum, the others from the incoming one")
        if let incoming {
            total = incoming
            for p in partials { total.merge(floatUpper: p.upper, count: p.count) }
            partials = []
        }
        return total
    }
}
