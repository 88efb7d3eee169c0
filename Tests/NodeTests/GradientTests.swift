import Foundation
import Testing
import TestSupport
import HessianDist
@testable import Node

/// The training pass: its loss against the inference forward, its gradients against central
/// differences of the loss (tiny random LLaMA), and against a hand-written NumPy backward (stories260K).
@Suite struct GradientTests {
    /// Parameter `i` of `name`, by pointer (the model's arena).
    static func parameter(_ model: LlamaModel, _ name: String, _ i: Int) -> UnsafeMutablePointer<Float> {
        model.w(name) + i
    }

    /// The mean next-token loss from the inference forward's logits, in Double.
    func referenceLoss(_ model: LlamaModel, tokens: [Int32], B: Int, T: Int) throws -> Double {
        let V = model.config.vocabSize
        let logits = try model.forward(tokens: tokens, B: B, T: T)
        var sum = 0.0
        for b in 0..<B {
            for t in 0..<(T - 1) {
                let row = logits[((b * T + t) * V)..<((b * T + t + 1) * V)].map(Double.init)
                let m = row.max()!
                sum += m + log(row.map { exp($0 - m) }.reduce(0, +)) - row[Int(tokens[b * T + t + 1])]
            }
        }
        return sum / Double(B * (T - 1))
    }

    @Test(arguments: [(true, RopeLayout.interleaved), (false, RopeLayout.halfSplit)])
    func tinyModelGradientsMatchCentralDifferences(_ variant: (Bool, RopeLayout)) throws {
        let cfg = RandomWeights.tinyConfig(tied: variant.0, rope: variant.1)
        let model = try LlamaModel(source: RandomWeights(config: cfg, seed: 7))
        let B = 2, T = 8
        let tokens = RandomWeights.tokens(B: B, T: T, vocab: cfg.vocabSize, seed: 3)
        let pass = try GradientPass(model: model, B: B, T: T)
        let loss = try pass.lossAndGradients(tokens: tokens)
        // The training forward computes what the inference forward computes.
        #expect(abs(Double(loss) - (try referenceLoss(model, tokens: tokens, B: B, T: T))) < 1e-5)
        let n = Double(LlamaModel.labelledPositions(B: B, T: T))
        var rng = SeededRandom(seed: 11)
        for name in model.heldTensorNames {
            let g = pass.gradient(name)
            // 8 random entries, plus the largest gradient (a sample of small ones alone proves little).
            var idx = (0..<8).map { _ in Int(rng.next() % UInt64(g.count)) }
            idx.append(g.indices.max { abs(g[$0]) < abs(g[$1]) }!)
            var worst = 0.0
            for i in idx {
                let p = Self.parameter(model, name, i), old = p.pointee
                // ε = 1e-2: truncation O(ε²)·ℓ''' ≈ 1e-5 relative; the fp32 loss's rounding (~1e-7·ℓ)
                // divided by 2ε adds ≈ 2e-5 absolute. The difference is taken over the Float steps taken.
                let up = old + 1e-2, down = old - 1e-2
                p.pointee = up
                let lp = try pass.lossSum(tokens: tokens) / n
                p.pointee = down
                let lm = try pass.lossSum(tokens: tokens) / n
                p.pointee = old
                let fd = (lp - lm) / Double(up - down)
                let err = abs(Double(g[i]) - fd)
                worst = max(worst, err / max(abs(fd), 1e-3))
                #expect(err <= 1e-3 * abs(fd) + 5e-5, "\(name)[\(i)]: backward \(g[i]) vs central difference \(fd)")
            }
            #expect(g.contains { $0 != 0 }, "\(name): gradient identically zero")
            _ = worst
        }
    }

    /// A batch's gradient is the mean of its sequences' gradients, and accumulation with weights adds up.
    @Test func batchGradientIsTheMeanOfSequenceGradients() throws {
        let cfg = RandomWeights.tinyConfig()
        let model = try LlamaModel(source: RandomWeights(config: cfg, seed: 1))
        let T = 6
        let a = RandomWeights.tokens(B: 1, T: T, vocab: cfg.vocabSize, seed: 1)
        let b = RandomWeights.tokens(B: 1, T: T, vocab: cfg.vocabSize, seed: 2)
        let both = try GradientPass(model: model, B: 2, T: T), one = try GradientPass(model: model, B: 1, T: T)
        let lossBoth = try both.lossAndGradients(tokens: a + b)
        let la = try one.lossAndGradients(tokens: a)
        let ga = model.heldTensorNames.map { one.gradient($0) }
        let lb = try one.lossAndGradients(tokens: b)
        #expect(abs(lossBoth - (la + lb) / 2) < 1e-6)
        for (j, name) in model.heldTensorNames.enumerated() {
            let gb = one.gradient(name), g = both.gradient(name)
            let mean = zip(ga[j], gb).map { ($0 + $1) / 2 }
            // float32: B = 2 and B = 1 sum in different orders, so entries far below the tensor's largest
            // differ by its rounding; measure against the tensor's scale (a sum instead of a mean is off by 100 %).
            let scale = mean.reduce(Float(0)) { max($0, abs($1)) }
            #expect(maxRelativeError(g, mean, floor: max(1e-3, 0.01 * scale)).err < 1e-4, "\(name)")
        }
    }

    @Test func stories260KGradientsMatchNumpyBackward() throws {
        let path = LlamaForwardTests.stories
        // The start of the model's own greedy story, and a later stretch of it after BOS.
        let seqs: [[Int32]] = [[1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426],
                               [1, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358]]
        let dir = try TestData.tempDir("grad")
        let ref = dir.appendingPathComponent("grad.f32").path
        try runPython("reference_backward.py", [path, ref, seqs.map { $0.map(String.init).joined(separator: ",") }.joined(separator: ";")])
        let expected = try readF32(ref)
        let model = try LlamaModel(source: openModel(path: path))
        let pass = try GradientPass(model: model, B: 2, T: 16)
        let loss = try pass.lossAndGradients(tokens: seqs[0] + seqs[1])
        #expect(abs(loss - expected[0]) < 1e-5 * expected[0], "loss \(loss) vs numpy \(expected[0])")
        var at = 1
        for name in model.heldTensorNames {
            let n = model.elementCount(name)
            let want = Array(expected[at..<(at + n)])
            at += n
            let got = pass.gradient(name)
            // Relative to the tensor's largest gradient: entries near zero carry only rounding.
            var d: Float = 0, m: Float = 0
            for i in 0..<n { d = max(d, abs(got[i] - want[i])); m = max(m, abs(want[i])) }
            #expect(m > 0 && d / m < 2e-5, "\(name): max |Δ| / max |g| = \(d / m)")
        }
        #expect(at == expected.count, "numpy wrote \(expected.count) floats, the model holds \(at)")
    }

    @Test func rejectsPartialModelsAndBadShapes() throws {
        let src = RandomWeights(config: RandomWeights.tinyConfig(), seed: 1)
        let stage = try LlamaModel(source: src, layers: 0..<1, embedding: true, head: false)
        #expect(throws: ModelRuntimeError.self) { try GradientPass(model: stage, B: 1, T: 4) }
        let model = try LlamaModel(source: src)
        #expect(throws: ModelRuntimeError.self) { try GradientPass(model: model, B: 1, T: 1) }
        let pass = try GradientPass(model: model, B: 1, T: 4)
        #expect(throws: ModelRuntimeError.self) { try pass.lossAndGradients(tokens: [1, 2, 3]) }
        #expect(throws: ModelRuntimeError.self) { try pass.lossAndGradients(tokens: [1, 2, 3, 32]) }
    }
}
