// A tiny LLaMA with seeded random weights, held in memory: the subject of the gradient and
// sensitivity tests (small enough for finite differences over every parameter).
import HessianDist
@testable import Node

final class RandomWeights: WeightSource, @unchecked Sendable {
    let path = "<random tiny llama>"
    let format = "memory"
    let config: ModelConfig
    let tensors: [TensorInfo]
    let values: [String: [Float]]

    /// Matrices ~ U(−1,1)·`gain`/√fan-in (activations stay O(1)), norms 1 ± 0.2, embeddings U(−1,1).
    init(config: ModelConfig, seed: UInt64, gain: Float = 1.5) {
        self.config = config
        var rng = SeededRandom(seed: seed)
        func uniform() -> Float { Float(Double(rng.next() >> 11) / Double(1 << 53) * 2 - 1) }
        var infos: [TensorInfo] = [], vals: [String: [Float]] = [:]
        for (name, shape) in config.expectedShapes() {
            let n = shape.reduce(1, *)
            let scale: Float = name.hasSuffix("norm.weight") ? 0.2 : name == TensorName.tokenEmbedding ? 1 : gain / Float(shape[1]).squareRoot()
            let base: Float = name.hasSuffix("norm.weight") ? 1 : 0
            vals[name] = (0..<n).map { _ in base + scale * uniform() }
            infos.append(TensorInfo(name: name, shape: shape, type: .f32))
        }
        tensors = infos
        values = vals
    }

    func dequantize(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws {
        let v = values[name]!
        precondition(out.count == v.count)
        _ = out.update(from: v)
    }

    /// dim 16, 2 layers, 2 heads sharing 1 kv head (GQA), head size 8, vocab 32.
    static func tinyConfig(tied: Bool = true, rope: RopeLayout = .interleaved, dim: Int = 16, hidden: Int = 24,
                           layers: Int = 2, heads: Int = 2, kvHeads: Int = 1, vocab: Int = 32) -> ModelConfig {
        ModelConfig(dim: dim, hiddenDim: hidden, nLayers: layers, nHeads: heads, nKVHeads: kvHeads, vocabSize: vocab,
                    contextLength: 64, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: tied, ropeLayout: rope)
    }

    /// `B` sequences of `T` seeded token ids, flattened (B,T).
    static func tokens(B: Int, T: Int, vocab: Int, seed: UInt64) -> [Int32] {
        var rng = SeededRandom(seed: seed)
        return (0..<(B * T)).map { _ in Int32(rng.next() % UInt64(vocab)) }
    }
}
