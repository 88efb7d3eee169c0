// Per-tensor sensitivity of the loss on one node holding the whole model: the empirical Fisher trace
// from per-sequence gradients, Hutchinson's estimate of the loss Hessian's trace from central-difference
// Hessian-vector products, and the top Hessian eigenvalue per tensor by power iteration.
// The loss is the mean next-token cross-entropy over a set of equal-length sequences. Not MPI: ranks and
// pipeline stages come later (probes are already drawn per tensor so any split draws the same ones).
import HessianDist

public enum SensitivityError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let s): return s }
    }
}

public final class SensitivityProfiler: @unchecked Sendable {
    public let model: LlamaModel
    /// Tokens per sequence (T).
    public let seqlen: Int
    /// Sequences per gradient pass for the data-set gradients of the Hessian-vector products.
    public let microBatch: Int
    /// The tensors profiled: every tensor the model holds, in canonical order.
    public let tensorNames: [String]
    /// Each tensor's index in the whole model's canonical list (seeds its probes).
    let ordinals: [Int]
    private var passes: [Int: GradientPass] = [:]
    private let grads: FloatBuffer

    /// Default step of the central-difference Hessian-vector product for Rademacher probes (every
    /// parameter moves by ±ε). The truncation error of (g(w+εv) − g(w−εv))/(2ε) is (ε²/6)·∇³g[v,v,v]
    /// (third derivatives of the gradient, O(ε²)); the fp32 rounding of the two gradients (relative
    /// 1e-7–1e-6 of |g|) is amplified by 1/(2ε). Measured per-tensor vᵀHv for one probe at ε = 1e-2 … 1e-5
    /// (2 sequences of 32 tokens): on stories260K the values move by up to 15% between 1e-3 and 3e-4
    /// (truncation: the change shrinks ~11× per factor 3.3 in ε, as ε² predicts) and agree within ~0.1% of
    /// the largest trace from 1e-4 to 3e-5; on SmolLM2-135M likewise, with rounding showing at 1e-5
    /// (e.g. −3.04 against −2.85 at 1e-4). 1e-4 is inside both plateaus, its truncation ≈ 1/9 of 3e-4's.
    public static let defaultEpsilon: Float = 1e-4

    /// Gradient passes are made on first use: they need the whole model on this node (a pipeline
    /// stage can still draw its probes).
    public init(model: LlamaModel, seqlen: Int, microBatch: Int = 1) throws {
        guard seqlen >= 2, seqlen <= model.rope.T else {
            throw SensitivityError.invalid("--seqlen \(seqlen): expected 2...\(model.rope.T) (the context the model was loaded for)")
        }
        guard microBatch >= 1 else { throw SensitivityError.invalid("micro-batch \(microBatch): expected >= 1") }
        self.model = model
        self.seqlen = seqlen
        self.microBatch = microBatch
        tensorNames = model.heldTensorNames
        let canonical = model.config.expectedShapes().map(\.name)
        ordinals = tensorNames.map { canonical.firstIndex(of: $0)! }
        grads = model.makeGradients()
    }

    private func pass(B: Int) throws -> GradientPass {
        if let p = passes[B] { return p }
        let p = try GradientPass(model: model, B: B, T: seqlen, grads: grads)
        passes[B] = p
        return p
    }

    private func check(_ sequences: [[Int32]]) throws {
        guard !sequences.isEmpty else { throw SensitivityError.invalid("no sequences to profile (hint: --nsamples >= 1)") }
        for (i, s) in sequences.enumerated() where s.count != seqlen {
            throw SensitivityError.invalid("sequence \(i) has \(s.count) tokens, expected \(seqlen) (hint: cut the data into --seqlen windows)")
        }
    }

    /// ∇ of the mean next-token loss over `sequences` into `out` (laid out like the parameters),
    /// `microBatch` sequences per pass; returns the mean loss.
    public func datasetGradient(_ sequences: [[Int32]], into out: FloatBuffer) throws -> Double {
        try check(sequences)
        grads.buffer.update(repeating: 0)
        let n = Float(sequences.count * LlamaModel.labelledPositions(B: 1, T: seqlen))
        var sum = 0.0, i = 0
        while i < sequences.count {
            let B = min(microBatch, sequences.count - i)
            sum += try pass(B: B).accumulate(tokens: Array(sequences[i..<(i + B)].joined()), weight: 1 / n)
            i += B
        }
        if out !== grads { out.buffer.baseAddress!.update(from: grads.base, count: grads.count) }
        return sum / Double(n)
    }

    // MARK: empirical Fisher

    /// tr of the empirical Fisher per tensor: the mean over sequences s of ‖∇_b ℓ_s‖², ℓ_s the mean
    /// next-token loss of sequence s, from one B = 1 pass per sequence. Mini-batch gradients would be
    /// biased: they average before squaring. With μ the mean of the per-sequence gradients g_s and Σ
    /// their covariance, mean_s ‖g_s‖² = ‖μ‖² + tr Σ, but a batch of B gives E‖ḡ_B‖² = ‖μ‖² + tr Σ / B
    /// (‖mean g‖² ≠ mean ‖g‖²), and tr Σ is most of the Fisher (μ is small for a trained model).
    /// `standardError` is over sequences; `samples` is the sequence count.
    public func empiricalFisher(_ sequences: [[Int32]], progress: ((Int, Int) -> Void)? = nil) throws -> [TraceEstimate] {
        try check(sequences)
        let p = try pass(B: 1)
        var stats = Array(repeating: RunningMean(), count: tensorNames.count)
        for (s, seq) in sequences.enumerated() {
            _ = try p.lossAndGradients(tokens: seq)
            for (b, name) in tensorNames.enumerated() {
                let g = model.view(name, in: grads)
                stats[b].add(dotDouble(g, g, model.elementCount(name)))
            }
            progress?(s + 1, sequences.count)
        }
        return tensorNames.indices.map {
            TraceEstimate(name: tensorNames[$0], mean: stats[$0].mean, standardError: stats[$0].standardError,
                          samples: stats[$0].count, converged: true)
        }
    }

    // MARK: Hessian-vector products

    /// A probe laid out like the parameters: independent ±1 on every held tensor, zero in the padding.
    /// Tensor b's signs come from SplitMix64 seeded by (seed, probe, b's canonical index), so a node
    /// holding any subset of the tensors draws the same signs for them as the whole model would.
    public func rademacherProbe(seed: UInt64, probe: Int, into v: FloatBuffer) {
        v.buffer.update(repeating: 0)
        for (b, name) in tensorNames.enumerated() {
            var rng = SeededRandom(seed: Self.probeSeed(seed: seed, probe: probe, tensor: ordinals[b]))
            fillRademacher(model.view(name, in: v), count: model.elementCount(name), using: &rng)
        }
    }

    static func probeSeed(seed: UInt64, probe: Int, tensor: Int) -> UInt64 {
        var a = SeededRandom(seed: seed)
        var b = SeededRandom(seed: a.next() ^ UInt64(bitPattern: Int64(probe)))
        var c = SeededRandom(seed: b.next() ^ UInt64(tensor))
        return c.next()
    }

    /// H v of the data set's mean loss by central differences of gradients:
    /// hv = (g(w + εv) − g(w − εv)) / (2ε) (see `defaultEpsilon` for the error). The weights are restored
    /// bit for bit from a copy afterwards. `scratch` is laid out like the parameters.
    public func hessianVectorProduct(_ sequences: [[Int32]], v: FloatBuffer, epsilon: Float = defaultEpsilon,
                                     into hv: FloatBuffer, scratch: FloatBuffer) throws {
        let w = model.params, n = w.count
        let saved = [Float](UnsafeBufferPointer(start: w.base, count: n))
        defer { saved.withUnsafeBufferPointer { w.base.update(from: $0.baseAddress!, count: n) } }
        for i in 0..<n { w.base[i] = saved[i] + epsilon * v.base[i] }
        _ = try datasetGradient(sequences, into: hv)
        for i in 0..<n { w.base[i] = saved[i] - epsilon * v.base[i] }
        _ = try datasetGradient(sequences, into: scratch)
        let inv = 1 / (2 * epsilon)
        for i in 0..<n { hv.base[i] = (hv.base[i] - scratch.base[i]) * inv }
    }

    // MARK: Hutchinson

    /// tr(H_bb) per tensor b of the Hessian of the mean loss over `sequences`, by Hutchinson's estimator:
    /// probe p gives v_bᵀ (H v)_b for every tensor; each tensor runs until PyHessian's stop rule or
    /// `options.maxProbes`. Costs 2 data-set gradients per probe. `progress(probe, open tensors)`.
    public func hutchinsonTrace(_ sequences: [[Int32]], options: HutchinsonTrace.Options = .init(), seed: UInt64,
                                epsilon: Float = defaultEpsilon,
                                progress: ((Int, Int) -> Void)? = nil) throws -> [TraceEstimate] {
        try check(sequences)
        var trace = HutchinsonTrace(names: tensorNames, options: options)
        let v = model.makeGradients(), hv = model.makeGradients(), scratch = model.makeGradients()
        while trace.needsProbe {
            rademacherProbe(seed: seed, probe: trace.probes, into: v)
            try hessianVectorProduct(sequences, v: v, epsilon: epsilon, into: hv, scratch: scratch)
            trace.add(tensorNames.map { dotDouble(model.view($0, in: v), model.view($0, in: hv), model.elementCount($0)) })
            progress?(trace.probes, trace.converged.filter { !$0 }.count)
        }
        return trace.estimates
    }

    // MARK: top eigenvalue

    /// The largest-magnitude eigenvalue of H_bb (tensor b's diagonal block) by power iteration on
    /// v ← H_bb v / ‖H_bb v‖ from a seeded Rademacher start, stopping when the Rayleigh quotient moves by
    /// less than `relativeTolerance` (PyHessian's 1e-3 rule) or after `maxIterations` (PyHessian: 100).
    /// Each iteration costs 2 data-set gradients, for this tensor alone.
    public func topEigenvalue(_ sequences: [[Int32]], tensor name: String, seed: UInt64, maxIterations: Int = 100,
                              relativeTolerance: Double = 1e-3,
                              epsilon: Float = defaultEpsilon) throws -> (eigenvalue: Double, iterations: Int) {
        try check(sequences)
        guard let b = tensorNames.firstIndex(of: name) else {
            throw SensitivityError.invalid("tensor \(name) is not held by this node")
        }
        let count = model.elementCount(name)
        let v = model.makeGradients(), hv = model.makeGradients(), scratch = model.makeGradients()
        let vb = model.view(name, in: v), hvb = model.view(name, in: hv)
        var rng = SeededRandom(seed: Self.probeSeed(seed: seed, probe: -1, tensor: ordinals[b]))
        fillRademacher(vb, count: count, using: &rng)
        var norm = dotDouble(vb, vb, count).squareRoot()
        for i in 0..<count { vb[i] = Float(Double(vb[i]) / norm) }
        // The unit vector is scaled so every parameter still moves by about ε (the step the error
        // analysis of `defaultEpsilon` assumes), then the product is scaled back.
        let stepScale = Float(Double(count).squareRoot())
        var lambda = 0.0, iterations = 0
        while iterations < maxIterations {
            iterations += 1
            try hessianVectorProduct(sequences, v: v, epsilon: epsilon * stepScale, into: hv, scratch: scratch)
            let next = dotDouble(vb, hvb, count) // Rayleigh quotient (‖v‖ = 1)
            norm = dotDouble(hvb, hvb, count).squareRoot()
            guard norm > 0 else { return (0, iterations) }
            v.buffer.update(repeating: 0)
            for i in 0..<count { vb[i] = Float(Double(hvb[i]) / norm) }
            let done = iterations > 1 && abs(next - lambda) / (abs(lambda) + 1e-6) < relativeTolerance
            lambda = next
            if done { break }
        }
        return (lambda, iterations)
    }
}
