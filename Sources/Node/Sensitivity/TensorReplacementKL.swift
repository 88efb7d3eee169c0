// ZeroQ's sensitivity (Cai et al., "ZeroQ", CVPR 2020, eq. 5), measured rather than predicted: the mean KL
// divergence of the model's next-token distribution from the original's when one tensor alone is replaced
// by its quantized values, Ω_b(Q) = mean over positions of KL(p(W) ‖ p(W with W_b ← Q)). Summed over
// tensors it predicts a plan's damage; on SmolLM2 the sum over the block linears' groups came within 1.3%
// of the KL of quantizing them all (BENCHMARKS.md), so the allocation's additive objective holds for it.
// The original forward is kept: every block's input stream (so a tensor of block l costs blocks l… and
// the head, not the whole model) and, per position, the original probabilities and their negative entropy.
import Foundation
import HessianDist

public final class TensorReplacementKL: @unchecked Sendable {
    public let model: LlamaModel
    /// The sequences, as one (B,T) batch.
    public let B: Int
    public let T: Int
    let acts: TrainingActivations
    let tokens: [Int32]
    /// (L+1,B,T,C): the original residual stream entering each block, then leaving the last one.
    let stream: FloatBuffer
    /// (B,T,V): the original probabilities p; (B,T): Σ_v p log p per position.
    let reference: FloatBuffer
    var negativeEntropy: [Double]
    /// (B,T): Σ_v p per position (1 up to rounding; kept so that the original values give 0).
    var mass: [Double]
    /// Replacements measured (each one partial forward).
    public private(set) var measurements = 0

    /// `model` must hold every block, the embedding and the head.
    public init(model: LlamaModel, sequences: [[Int32]]) throws {
        guard model.hasEmbedding, model.hasHead, model.layers == 0..<model.config.nLayers else {
            throw SensitivityError.invalid("TensorReplacementKL needs the whole model on one node (held blocks \(model.layers))")
        }
        guard let T = sequences.first?.count, T >= 2, T <= model.rope.T, sequences.allSatisfy({ $0.count == T }) else {
            throw SensitivityError.invalid("KL sequences: expected at least one, all of one length in 2...\(model.rope.T) tokens")
        }
        self.model = model
        B = sequences.count
        self.T = T
        tokens = Array(sequences.joined())
        let c = model.config, N = B * T
        acts = TrainingActivations(config: c, layers: c.nLayers, B: B, T: T)
        stream = FloatBuffer(count: (c.nLayers + 1) * N * c.dim)
        reference = FloatBuffer(count: N * c.vocabSize)
        negativeEntropy = []
        mass = []
        try model.embedForward(acts, tokens: tokens)
        for l in 0..<c.nLayers { model.blockForward(l, acts) }
        for li in 0...c.nLayers { (stream.base + li * N * c.dim).update(from: acts.residual[li], count: N * c.dim) }
        model.headLogits(acts)
        let V = c.vocabSize
        negativeEntropy = [Double](repeating: 0, count: N)
        mass = [Double](repeating: 0, count: N)
        for i in 0..<N where acts.targets[i] >= 0 {
            let logits = acts.probs + i * V, p = reference.base + i * V
            let lse = logSumExp(logits, V)
            var s = 0.0, m = 0.0
            for v in 0..<V {
                let logp = Double(logits[v]) - lse
                p[v] = Float(Foundation.exp(logp))
                s += Double(p[v]) * logp
                m += Double(p[v])
            }
            negativeEntropy[i] = s
            mass[i] = m
        }
    }

    /// The first stage a replacement of `name` changes: the embedding (-1), block l, or the head (L).
    func firstStage(_ name: String) throws -> Int {
        if name == TensorName.tokenEmbedding { return -1 }
        if name == TensorName.output || name == TensorName.outputNorm { return model.config.nLayers }
        let parts = name.split(separator: ".")
        guard parts.count >= 3, parts[0] == "blk", let l = Int(parts[1]), (0..<model.config.nLayers).contains(l) else {
            throw SensitivityError.invalid("TensorReplacementKL: \(name) is not a tensor of the model")
        }
        return l
    }

    /// Mean over the sequences of each sequence's mean KL(p_original ‖ p_replaced) over its predicted
    /// positions, in nats, with `values` in place of tensor `name`. The weights are restored bit for bit;
    /// the original values give 0 up to Double rounding (the same kernels recompute the same logits).
    public func divergence(replacing name: String, with values: [Float]) throws -> Double {
        let start = try firstStage(name)
        let saved = model.weight(name)
        model.setWeight(name, values)
        defer { model.setWeight(name, saved) }
        let c = model.config, N = B * T, C = c.dim, V = c.vocabSize
        if start < 0 {
            try model.embedForward(acts, tokens: tokens)
        } else {
            acts.residual[start].update(from: stream.base + start * N * C, count: N * C)
        }
        for l in max(0, start)..<c.nLayers { model.blockForward(l, acts) }
        model.headLogits(acts)
        measurements += 1
        var sum = 0.0
        for b in 0..<B {
            var s = 0.0, n = 0
            for i in (b * T)..<((b + 1) * T) where acts.targets[i] >= 0 {
                let logits = acts.probs + i * V, p = reference.base + i * V
                // KL = Σ p log p − Σ p log q, log q = logit − lse(logits).
                var dot = 0.0
                for v in 0..<V { dot += Double(p[v]) * Double(logits[v]) }
                s += negativeEntropy[i] - dot + mass[i] * logSumExp(logits, V)
                n += 1
            }
            sum += s / Double(max(1, n))
        }
        return sum / Double(B)
    }
}

extension LlamaModel {
    /// residual[L] (B,T,C) -> logits (B,T,V) in `probs` (no softmax): the head of `headForward` up to the classifier.
    func headLogits(_ a: TrainingActivations) {
        precondition(hasHead, "this stage does not hold the head")
        let c = config, N = a.B * a.T, C = c.dim, V = c.vocabSize
        rmsnormForward(out: a.outNorm, rstd: a.outRstd, inp: a.residual[a.L], weight: w(TensorName.outputNorm),
                       N: N, C: C, eps: c.normEps)
        matmulForward(out: a.probs, inp: a.outNorm, weight: classifier, N: N, C: C, OC: V)
    }
}
