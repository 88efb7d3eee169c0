// Incremental decoding with a KV cache: B sequences advance one token per step. Used by `generate` and
// by data-free calibration (sampling text from the model itself). Not batched prefill: a prompt is fed
// one token per step, which is fine for the short prompts these uses have.
import HessianDist
#if canImport(Glibc)
import Glibc
#endif

/// Keys and values of every held layer for B sequences up to `capacity` positions.
/// k, v: (L, B, capacity, NKV, hs).
public final class KVCache: @unchecked Sendable {
    public let B: Int
    public let capacity: Int
    public private(set) var length = 0
    let k: FloatBuffer
    let v: FloatBuffer
    let layerStride: Int

    public init(config c: ModelConfig, layers: Int, B: Int, capacity: Int) {
        self.B = B
        self.capacity = capacity
        layerStride = B * capacity * c.kvDim
        k = FloatBuffer(count: layers * layerStride)
        v = FloatBuffer(count: layers * layerStride)
    }
}

extension LlamaModel {
    public func makeCache(B: Int, capacity: Int) -> KVCache {
        KVCache(config: config, layers: layers.count, B: B, capacity: capacity)
    }

    /// One step: tokens (B) at position `cache.length` -> logits (B, V). Needs the whole model on this node.
    public func decodeStep(tokens: [Int32], cache: KVCache, into logits: UnsafeMutablePointer<Float>) throws {
        precondition(hasEmbedding && hasHead, "decoding needs the whole model on one node")
        let c = config, B = cache.B, pos = cache.length
        guard tokens.count == B else { throw ModelRuntimeError.shape("decodeStep: \(tokens.count) tokens for B = \(B)") }
        guard pos < cache.capacity, pos < rope.T else {
            throw ModelRuntimeError.shape("decodeStep: position \(pos) beyond the cache (\(cache.capacity)) or RoPE table (\(rope.T))")
        }
        let a = Activations(config: c, B: B, T: 1)
        try embed(a, tokens: tokens)
        let C = c.dim, hs = c.headDim, NH = c.nHeads, NKV = c.nKVHeads, KVD = c.kvDim
        let group = NH / NKV, scale = 1 / Float(hs).squareRoot()
        var scores = [Float](repeating: 0, count: pos + 1)
        for (li, l) in layers.enumerated() {
            attentionNorm(l, a)
            matmulForward(out: a.q, inp: a.xn, weight: w(TensorName.attnQ(l)), N: B, C: C, OC: c.qDim)
            matmulForward(out: a.k, inp: a.xn, weight: w(TensorName.attnK(l)), N: B, C: C, OC: KVD)
            matmulForward(out: a.v, inp: a.xn, weight: w(TensorName.attnV(l)), N: B, C: C, OC: KVD)
            let interleaved = c.ropeLayout == .interleaved
            ropeForward(x: a.q, table: rope, B: B, T: 1, nh: NH, hs: hs, interleaved: interleaved, positionOffset: pos)
            ropeForward(x: a.k, table: rope, B: B, T: 1, nh: NKV, hs: hs, interleaved: interleaved, positionOffset: pos)
            let kc = cache.k.base + li * cache.layerStride, vc = cache.v.base + li * cache.layerStride
            for b in 0..<B {
                (kc + (b * cache.capacity + pos) * KVD).update(from: a.k + b * KVD, count: KVD)
                (vc + (b * cache.capacity + pos) * KVD).update(from: a.v + b * KVD, count: KVD)
            }
            // One query per sequence against the cached positions 0...pos.
            for b in 0..<B {
                for h in 0..<NH {
                    let q = a.q + (b * NH + h) * hs, kvh = h / group
                    for t in 0...pos {
                        scores[t] = dot(q, kc + (b * cache.capacity + t) * KVD + kvh * hs, hs) * scale
                    }
                    scores.withUnsafeMutableBufferPointer { _ = softmaxInPlace($0.baseAddress!, pos + 1) }
                    let o = a.atty + (b * NH + h) * hs
                    o.update(repeating: 0, count: hs)
                    for t in 0...pos {
                        let vrow = vc + (b * cache.capacity + t) * KVD + kvh * hs, p = scores[t]
                        for i in 0..<hs { o[i] += p * vrow[i] }
                    }
                }
            }
            attentionOutput(l, a)
            ffnNorm(l, a)
            ffnGateUp(l, a)
            ffnDown(l, a)
        }
        head(a, from: 0, into: logits)
        cache.advance()
    }
}

extension KVCache {
    func advance() { length += 1 }
}

/// Seeded sampling of B sequences of `length` tokens from the model itself (data-free calibration):
/// the first token after BOS is drawn uniformly from the vocabulary (so samples differ), then each next
/// token from the model's softmax at `temperature` restricted to the `topK` most likely.
public func sampleSequences(model: LlamaModel, count B: Int, length T: Int, bos: Int32?, seed: UInt64,
                            temperature: Float = 1, topK: Int = 50, progress: ((Int) -> Void)? = nil) throws -> [[Int32]] {
    let V = model.config.vocabSize
    var rng = SeededRandom(seed: seed)
    let cache = model.makeCache(B: B, capacity: T)
    var seqs = [[Int32]](repeating: [], count: B)
    var next = [Int32](repeating: 0, count: B)
    if let bos { next = [Int32](repeating: bos, count: B) } else {
        for b in 0..<B { next[b] = Int32(rng.next() % UInt64(V)) }
    }
    var logits = [Float](repeating: 0, count: B * V)
    var idx = [Int](0..<V)
    while seqs[0].count < T {
        for b in 0..<B { seqs[b].append(next[b]) }
        if seqs[0].count == T { break }
        try logits.withUnsafeMutableBufferPointer { try model.decodeStep(tokens: next, cache: cache, into: $0.baseAddress!) }
        for b in 0..<B {
            if seqs[b].count == 1 && bos != nil {
                next[b] = Int32(rng.next() % UInt64(V))
                continue
            }
            let row = Array(logits[(b * V)..<((b + 1) * V)])
            // Top-k by partial sort of indices; ties broken by index so every platform agrees.
            idx.sort { row[$0] != row[$1] ? row[$0] > row[$1] : $0 < $1 }
            let k = min(topK, V), m = row[idx[0]]
            var p = (0..<k).map { Double(exp((row[idx[$0]] - m) / temperature)) }
            let z = p.reduce(0, +)
            for i in 0..<k { p[i] /= z }
            let u = Double(rng.next() >> 11) / Double(1 << 53)
            var acc = 0.0, pick = idx[k - 1]
            for i in 0..<k {
                acc += p[i]
                if u < acc { pick = idx[i]; break }
            }
            next[b] = Int32(pick)
        }
        progress?(seqs[0].count)
    }
    return seqs
}
