import Foundation
import Testing
import TestSupport
import HessianDist
@testable import Node

/// The sensitivity estimators on tiny random LLaMAs: the empirical Fisher against per-sequence gradients
/// computed independently, Hutchinson traces and top eigenvalues against the full loss Hessian built by
/// central differences of gradients.
@Suite struct SensitivityTests {
    static func sequences(count: Int, T: Int, vocab: Int, seed: UInt64) -> [[Int32]] {
        (0..<count).map { RandomWeights.tokens(B: 1, T: T, vocab: vocab, seed: seed &+ UInt64($0)) }
    }

    @Test func empiricalFisherIsTheMeanSquaredPerSequenceGradient() throws {
        let cfg = RandomWeights.tinyConfig()
        let model = try LlamaModel(source: RandomWeights(config: cfg, seed: 21))
        let T = 8, seqs = Self.sequences(count: 3, T: T, vocab: cfg.vocabSize, seed: 100)
        let fisher = try SensitivityProfiler(model: model, seqlen: T, microBatch: 3).empiricalFisher(seqs)
        // Directly: a fresh pass per sequence, squared norms summed by hand.
        var perSeq: [[Double]] = []
        for s in seqs {
            let p = try GradientPass(model: model, B: 1, T: T)
            _ = try p.lossAndGradients(tokens: s)
            perSeq.append(model.heldTensorNames.map { p.gradient($0).reduce(0.0) { $0 + Double($1) * Double($1) } })
        }
        let batch = try GradientPass(model: model, B: 3, T: T)
        _ = try batch.lossAndGradients(tokens: Array(seqs.joined()))
        #expect(fisher.map(\.name) == model.heldTensorNames)
        for (b, e) in fisher.enumerated() {
            let xs = perSeq.map { $0[b] }, mean = xs.reduce(0, +) / 3
            let sd = (xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 2).squareRoot()
            #expect(abs(e.mean - mean) <= 1e-6 * mean, "\(e.name): \(e.mean) vs \(mean)")
            #expect(abs(e.standardError - sd / 3.0.squareRoot()) <= 1e-5 * mean && e.samples == 3)
            // ‖mean g‖² < mean ‖g‖² (the spread of the g_s): what a mini-batch gradient would get wrong.
            let batchSquared = batch.gradient(e.name).reduce(0.0) { $0 + Double($1) * Double($1) }
            #expect(batchSquared < e.mean * (1 - 1e-3), "\(e.name): batch \(batchSquared) vs Fisher \(e.mean)")
        }
    }

    /// Finer blocks: runs of output rows. The whole-tensor estimates are unchanged, each matrix's row blocks
    /// tile its rows and add up to the tensor's trace, and one block equals the squared gradient rows by hand.
    @Test func fisherRowBlocksTileTheirTensor() throws {
        let cfg = RandomWeights.tinyConfig()
        let model = try LlamaModel(source: RandomWeights(config: cfg, seed: 21))
        let T = 8, seqs = Self.sequences(count: 3, T: T, vocab: cfg.vocabSize, seed: 100)
        let profiler = try SensitivityProfiler(model: model, seqlen: T)
        let whole = try profiler.empiricalFisher(seqs)
        let fine = try profiler.empiricalFisher(seqs, rowBlock: 3)
        #expect(Array(fine.prefix(whole.count)) == whole)
        let shapes = Dictionary(uniqueKeysWithValues: cfg.expectedShapes().map { ($0.name, $0.shape) })
        for t in whole where shapes[t.name]!.count == 2 {
            let blocks = fine.dropFirst(whole.count).filter { $0.name == t.name }
            let rows = shapes[t.name]![0]
            #expect(blocks.map { $0.rows! } == stride(from: 0, to: rows, by: 3).map { $0..<min(rows, $0 + 3) }, "\(t.name)")
            let sum = blocks.reduce(0.0) { $0 + $1.mean }
            #expect(abs(sum - t.mean) <= 1e-6 * t.mean, "\(t.name): blocks \(sum) vs tensor \(t.mean)")
        }
        #expect(fine.count > whole.count)
        // By hand: rows 3..<6 of the first block's q.
        let name = TensorName.attnQ(0), cols = shapes[name]![1]
        var xs: [Double] = []
        for s in seqs {
            let p = try GradientPass(model: model, B: 1, T: T)
            _ = try p.lossAndGradients(tokens: s)
            xs.append(p.gradient(name)[(3 * cols)..<(6 * cols)].reduce(0.0) { $0 + Double($1) * Double($1) })
        }
        let e = fine.first { $0.name == name && $0.rows == 3..<6 }!
        let mean = xs.reduce(0, +) / 3
        #expect(abs(e.mean - mean) <= 1e-6 * mean, "\(e.mean) vs \(mean)")
        #expect { try profiler.empiricalFisher(seqs, rowBlock: -1) } throws: { "\($0)".contains("row block") }
    }

    /// A model of 632 parameters (dim 8, 1 block, 2 heads on 1 kv head, vocab 16) whose loss Hessian
    /// is built exactly enough by central differences of gradients.
    struct TinyProblem {
        let model: LlamaModel
        let profiler: SensitivityProfiler
        let seqs: [[Int32]]
        let H: [Double]
        let n: Int

        init() throws {
            let cfg = RandomWeights.tinyConfig(dim: 8, hidden: 12, layers: 1, heads: 2, kvHeads: 1, vocab: 16)
            model = try LlamaModel(source: RandomWeights(config: cfg, seed: 5))
            let T = 6
            seqs = SensitivityTests.sequences(count: 4, T: T, vocab: 16, seed: 40)
            profiler = try SensitivityProfiler(model: model, seqlen: T, microBatch: 3) // batches of 3 and 1
            let g = model.makeGradients()
            n = model.params.count
            let (model, profiler, seqs) = (model, profiler, seqs)
            // ε = 1e-3 on one coordinate: truncation (ε²/6)·∂³g ≈ 1e-7 relative, rounding ~1e-7/ε ≈ 1e-4 of |g|.
            H = try centralDifferenceHessian(x: model.params.base, n: n, epsilon: 1e-3) { out in
                _ = try profiler.datasetGradient(seqs, into: g)
                for i in 0..<g.count { out[i] = Double(g.base[i]) }
            }
        }

        func range(_ name: String) -> Range<Int> {
            let o = model.layout.offset(name)
            return o..<(o + model.elementCount(name))
        }

        func exactTrace(_ name: String) -> Double { range(name).reduce(0.0) { $0 + H[$1 * n + $1] } }
    }

    @Test func hutchinsonTracesMatchTheExactHessian() throws {
        let p = try TinyProblem()
        let (H, n, model) = (p.H, p.n, p.model)
        #expect(model.heldTensorNames.map { model.elementCount($0) }.reduce(0, +) == 632)
        // The difference quotients of a true gradient give a symmetric matrix.
        var asym = 0.0, scale = 0.0
        for i in 0..<n { for j in 0..<n { asym = max(asym, abs(H[i * n + j] - H[j * n + i])); scale = max(scale, abs(H[i * n + j])) } }
        #expect(asym < 1e-3 * scale, "max |H − Hᵀ| = \(asym), max |H| = \(scale)")

        // One probe's samples from the profiler's Hessian-vector product equal v_bᵀ (H v)_b of the dense H.
        let v = model.makeGradients(), hv = model.makeGradients(), scratch = model.makeGradients()
        p.profiler.rademacherProbe(seed: 9, probe: 0, into: v)
        let before = model.params.toArray()
        try p.profiler.hessianVectorProduct(p.seqs, v: v, into: hv, scratch: scratch)
        #expect(model.params.toArray() == before, "weights restored bit for bit")
        for name in model.heldTensorNames {
            let r = p.range(name)
            var fromDense = 0.0, fromProduct = 0.0, magnitude = 0.0
            for i in r {
                var row = 0.0
                for j in 0..<n { row += H[i * n + j] * Double(v.base[j]) }
                fromDense += Double(v.base[i]) * row
                fromProduct += Double(v.base[i]) * Double(hv.base[i])
                magnitude += abs(row)
            }
            #expect(abs(fromDense - fromProduct) < 1e-3 * magnitude, "\(name): dense \(fromDense) vs product \(fromProduct)")
        }

        // The estimator's running means are the means of the dense v_bᵀ(H v)_b over the same 100 probes.
        let first = try p.profiler.hutchinsonTrace(p.seqs, options: .init(maxProbes: 100, relativeTolerance: 1e-12), seed: 9)
        var dense = [RunningMean](repeating: RunningMean(), count: first.count)
        // All 100 products at once through sgemm: HV (100,n) = V (100,n) · Hᵀ, H in fp32 (1e-7 relative).
        var V = [Float](repeating: 0, count: 100 * n), HV = V
        for probe in 0..<100 {
            p.profiler.rademacherProbe(seed: 9, probe: probe, into: v)
            for i in 0..<n { V[probe * n + i] = v.base[i] }
        }
        matmulForward(out: &HV, inp: V, weight: H.map(Float.init), N: 100, C: n, OC: n)
        for probe in 0..<100 {
            for (b, name) in model.heldTensorNames.enumerated() {
                dense[b].add(p.range(name).reduce(0.0) { $0 + Double(V[probe * n + $1]) * Double(HV[probe * n + $1]) })
            }
        }
        for (b, e) in first.enumerated() {
            #expect(abs(e.mean - dense[b].mean) < 1e-3 * max(1, abs(dense[b].mean)) + 0.01 * dense[b].standardError,
                    "\(e.name): profiler \(e.mean) vs dense \(dense[b].mean) on the same probes")
            #expect(abs(e.standardError / dense[b].standardError - 1) < 1e-2)
        }

        // Hutchinson per tensor against the exact traces: within 3 reported standard errors.
        let est = try p.profiler.hutchinsonTrace(p.seqs, options: .init(maxProbes: 1000, relativeTolerance: 1e-12), seed: 9)
        for e in est {
            let exact = p.exactTrace(e.name)
            #expect(e.samples == 1000 && e.standardError.isFinite)
            #expect(abs(e.mean - exact) <= 3 * e.standardError, "\(e.name): \(e.mean) ± \(e.standardError) vs exact \(exact)")
        }
    }

    /// With labels drawn from the model, the Fisher trace estimates the Fisher information: for one
    /// labelled position (T = 2) that is Σ_y p(y|x) ‖∇ −log p(y|x)‖², exact by enumerating every y.
    @Test func sampledLabelFisherIsTheFisherInformation() throws {
        let cfg = RandomWeights.tinyConfig()
        let model = try LlamaModel(source: RandomWeights(config: cfg, seed: 31))
        let x0: Int32 = 5, names = model.heldTensorNames
        let pass = try GradientPass(model: model, B: 1, T: 2)
        _ = try pass.lossSum(tokens: [x0, 0])
        let p = (0..<cfg.vocabSize).map { Double(pass.acts.probs[$0]) }
        #expect(abs(p.reduce(0, +) - 1) < 1e-5)
        var exact = [Double](repeating: 0, count: names.count)
        for y in 0..<cfg.vocabSize {
            _ = try pass.lossAndGradients(tokens: [x0, Int32(y)])
            for (b, name) in names.enumerated() { exact[b] += p[y] * pass.gradient(name).reduce(0.0) { $0 + Double($1) * Double($1) } }
        }
        let seqs = [[Int32]](repeating: [x0, 0], count: 4000)
        let profiler = try SensitivityProfiler(model: model, seqlen: 2)
        let sampled = try profiler.empiricalFisher(seqs, sampledLabels: 9)
        let empirical = try profiler.empiricalFisher(Array(seqs.prefix(2)))
        var compared = 0
        for (b, e) in sampled.enumerated() where exact[b] > 1e-9 {
            #expect(e.samples == 4000 && abs(e.mean - exact[b]) <= 4 * e.standardError,
                    "\(e.name): sampled \(e.mean) ± \(e.standardError), exact \(exact[b])")
            compared += 1
        }
        // With one position attention sees one key whatever q and k are: their gradients vanish.
        #expect(compared == names.count - 2 * cfg.nLayers)
        // The empirical Fisher of these sequences (the one data label, token 0) is another quantity.
        #expect(zip(empirical, sampled).contains { abs($0.mean - $1.mean) > 10 * $1.standardError })
    }

    @Test func topEigenvalueMatchesTheDenseBlock() throws {
        let p = try TinyProblem()
        for name in [TensorName.ffnDown(0), TensorName.attnNorm(0)] {
            let r = p.range(name), m = r.count
            var block = [Double](repeating: 0, count: m * m)
            for (a, i) in r.enumerated() { for (b, j) in r.enumerated() { block[a * m + b] = (p.H[i * p.n + j] + p.H[j * p.n + i]) / 2 } }
            let w = try #require(symmetricEigenvalues(block, n: m))
            let top = abs(w.first!) > abs(w.last!) ? w.first! : w.last!
            let (lambda, iterations) = try #require(try p.profiler.topEigenvalue(p.seqs, tensor: name, seed: 3, maxIterations: 500,
                                                                                 relativeTolerance: 1e-7))
            #expect(abs(lambda - top) < 1e-3 * abs(top), "\(name): power iteration \(lambda) (\(iterations) its) vs dsyev \(top)")
        }
    }

    /// A pipeline stage draws the same probe signs for the tensors it holds as the whole model does.
    @Test func probesDependOnlyOnSeedProbeAndTensor() throws {
        let src = RandomWeights(config: RandomWeights.tinyConfig(), seed: 2)
        let whole = try LlamaModel(source: src), stage = try LlamaModel(source: src, layers: 1..<2, embedding: false, head: true)
        let pw = try SensitivityProfiler(model: whole, seqlen: 4), ps = try SensitivityProfiler(model: stage, seqlen: 4)
        let vw = whole.makeGradients(), vs = stage.makeGradients(), v2 = whole.makeGradients()
        pw.rademacherProbe(seed: 77, probe: 3, into: vw)
        ps.rademacherProbe(seed: 77, probe: 3, into: vs)
        pw.rademacherProbe(seed: 77, probe: 4, into: v2)
        for name in stage.heldTensorNames {
            let n = stage.elementCount(name)
            let a = Array(UnsafeBufferPointer(start: whole.view(name, in: vw), count: n))
            let b = Array(UnsafeBufferPointer(start: stage.view(name, in: vs), count: n))
            let c = Array(UnsafeBufferPointer(start: whole.view(name, in: v2), count: n))
            #expect(a == b, "\(name)")
            #expect(a != c || n < 8, "\(name): probes 3 and 4 agree")
        }
        #expect(throws: ModelRuntimeError.self) { try ps.empiricalFisher([[1, 2, 3, 4]]) }
        #expect(throws: SensitivityError.self) { try pw.empiricalFisher([[1, 2, 3]]) }
        #expect(throws: SensitivityError.self) { try pw.empiricalFisher([]) }
    }
}

/// ZeroQ's measured damage: `TensorReplacementKL` against the KL computed directly from two inference
/// forwards (the original model and a copy with the tensor replaced), in Double, position by position.
@Suite struct TensorReplacementKLTests {
    /// Mean over sequences of the mean over predicted positions of KL(p_original ‖ p_replaced), by the
    /// inference forward (`embed`/`blocks`/`head`), independent of the training pass the probe reuses.
    static func directKL(original: LlamaModel, replaced: LlamaModel, sequences: [[Int32]]) throws -> Double {
        let V = original.config.vocabSize, T = sequences[0].count
        var total = 0.0
        for s in sequences {
            func logits(_ m: LlamaModel) throws -> [Float] {
                let a = Activations(config: m.config, B: 1, T: T)
                try m.embed(a, tokens: s)
                m.blocks(a)
                var out = [Float](repeating: 0, count: T * V)
                out.withUnsafeMutableBufferPointer { m.head(a, into: $0.baseAddress!) }
                return out
            }
            let a = try logits(original), b = try logits(replaced)
            var kl = 0.0
            for t in 0..<(T - 1) {
                let x = a[(t * V)..<((t + 1) * V)].map(Double.init), y = b[(t * V)..<((t + 1) * V)].map(Double.init)
                let lx = log(x.map { exp($0 - x.max()!) }.reduce(0, +)) + x.max()!
                let ly = log(y.map { exp($0 - y.max()!) }.reduce(0, +)) + y.max()!
                for v in 0..<V { kl += exp(x[v] - lx) * ((x[v] - lx) - (y[v] - ly)) }
            }
            total += kl / Double(T - 1)
        }
        return total / Double(sequences.count)
    }

    @Test func divergenceIsTheKLOfTheReplacedModel() throws {
        let cfg = RandomWeights.tinyConfig()
        let source = RandomWeights(config: cfg, seed: 21)
        let model = try LlamaModel(source: source)
        let T = 8, seqs = SensitivityTests.sequences(count: 3, T: T, vocab: cfg.vocabSize, seed: 300)
        let probe = try TensorReplacementKL(model: model, sequences: seqs)
        let before = Array(UnsafeBufferPointer(start: model.params.base, count: model.params.count))
        // Out of canonical order on purpose: a later block, an earlier one (the cached streams), the embedding.
        let names = [TensorName.ffnDown(cfg.nLayers - 1), TensorName.attnV(0), TensorName.tokenEmbedding, TensorName.attnQ(1)]
        var rng = SeededRandom(seed: 7)
        for name in names {
            let W = model.weight(name)
            // A rounding-sized perturbation: each value moved by up to 5% of the tensor's largest magnitude.
            let scale = 0.05 * Double(W.map { abs($0) }.max()!)
            let Q = W.map { $0 + Float(scale * (Double(rng.next() % 2001) / 1000 - 1)) }
            let measured = try probe.divergence(replacing: name, with: Q)
            let replaced = try LlamaModel(source: source)
            replaced.setWeight(name, Q)
            let direct = try Self.directKL(original: model, replaced: replaced, sequences: seqs)
            #expect(direct > 1e-6, "\(name): the perturbation must move the predictions")
            // Both KLs come from float32 logits along different paths (cached streams, batched vs per-sequence
            // BLAS calls), and a KL of ~1e-4 is a second-order difference of those logits: its float32 noise is
            // ~1e-4 relative on some BLAS kernels (seen on an AVX-512 Xeon). A wrong cached stream or a missed
            // restore is off by far more than 1e-3.
            #expect(abs(measured - direct) <= 1e-3 * direct + 1e-9, "\(name): measured \(measured) vs direct \(direct)")
        }
        // The weights are back, bit for bit, and the original values cost nothing.
        #expect(Array(UnsafeBufferPointer(start: model.params.base, count: model.params.count)) == before)
        let zero = try probe.divergence(replacing: TensorName.attnK(0), with: model.weight(TensorName.attnK(0)))
        #expect(abs(zero) < 1e-12)
        #expect(probe.measurements == names.count + 1)
    }
}
