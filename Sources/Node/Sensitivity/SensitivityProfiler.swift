// Per-tensor sensitivity of the loss on one node holding the whole model: the empirical Fisher trace
// from per-sequence gradients, Hutchinson's estimate of the loss Hessian's trace from central-difference
// Hessian-vector products, and the top Hessian eigenvalue per tensor by power iteration.
// The loss is the mean next-token cross-entropy over a set of equal-length sequences. The ranks of `comm`
// are laid out by a `PipelineTopology`: S stages (each holding a range of blocks, the residual stream and
// its gradient passed between them) × R replicas; sequence s belongs to replica s mod R. Only per-sequence,
// per-block scalars cross the wire besides the pipeline's activations; rank 0 adds them in sequence order,
// so the estimates are the same bits for any S and R (at a fixed BLAS thread count). Probes are drawn per
// tensor, so a stage draws the same signs for its tensors as the whole model does.
import Dispatch
import HessianDist
import Wire

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
    /// The tensors this rank computes for: every tensor its model (stage) holds, in canonical order.
    public let tensorNames: [String]
    /// Every tensor of the model, in canonical order: what rank 0's estimates cover.
    public let allTensorNames: [String]
    /// The layout of the ranks and this rank's place in it.
    public let link: StageLink
    /// Each tensor's index in the whole model's canonical list (seeds its probes).
    let ordinals: [Int]
    private var passes: [Int: GradientPass] = [:]
    private let grads: FloatBuffer
    /// The ranks sequences are split over (`.single`: all on this process).
    public let comm: Comm
    /// Bytes this rank saw cross the wire (rank 0: the gathered scalars).
    public private(set) var wireStats = WireStats()
    /// Called with each sequence index before this rank's Fisher pass over it (fault injection for the tests).
    public var beforeFisherSequence: ((Int) throws -> Void)? = nil

    /// Default step of the central-difference Hessian-vector product for Rademacher probes (every
    /// parameter moves by ±ε). The truncation error of (g(w+εv) − g(w−εv))/(2ε) is (ε²/6)·∇³g[v,v,v]
    /// (third derivatives of the gradient, O(ε²)); the fp32 rounding of the two gradients (relative
    /// 1e-7–1e-6 of |g|) is amplified by 1/(2ε). Measured per-tensor vᵀHv for one probe at ε = 1e-2 … 1e-5
    /// (2 sequences of 32 tokens): on stories260K the values move by up to 15% between 1e-3 and 3e-4
    /// (truncation: the change shrinks ~11× per factor 3.3 in ε, as ε² predicts) and agree within ~0.1% of
    /// the largest trace from 1e-4 to 3e-5; on SmolLM2-135M likewise, with rounding showing at 1e-5
    /// (e.g. −3.04 against −2.85 at 1e-4). 1e-4 is inside both plateaus, its truncation ≈ 1/9 of 3e-4's.
    public static let defaultEpsilon: Float = 1e-4

    /// Gradient passes are made on first use: they need the whole model on this node, or with a
    /// `topology` of several stages this rank's stage (a stage without one can still draw its probes).
    /// Without `topology`, every rank of `comm` is one replica holding the whole model.
    public init(model: LlamaModel, seqlen: Int, microBatch: Int = 1, comm: Comm = .single,
                topology: PipelineTopology? = nil) throws {
        guard seqlen >= 2, seqlen <= model.rope.T else {
            throw SensitivityError.invalid("--seqlen \(seqlen): expected 2...\(model.rope.T) (the context the model was loaded for)")
        }
        guard microBatch >= 1 else { throw SensitivityError.invalid("micro-batch \(microBatch): expected >= 1") }
        self.model = model
        self.seqlen = seqlen
        self.microBatch = microBatch
        self.comm = comm
        let topology = topology ?? .dataParallel(ranks: comm.size, config: model.config)
        link = try StageLink(comm: comm, topology: topology)
        tensorNames = model.heldTensorNames
        let canonical = model.config.expectedShapes().map(\.name)
        allTensorNames = canonical
        ordinals = tensorNames.map { canonical.firstIndex(of: $0)! }
        grads = model.makeGradients()
    }

    private func pass(B: Int) throws -> GradientPass {
        if let p = passes[B] { return p }
        let p = try GradientPass(model: model, B: B, T: seqlen, grads: grads, link: link)
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

    /// Seconds of one loss-only forward of `tokens` (B = 1), the second of two (warm): the unit of the
    /// profiling costs. Every stage of replica 0 takes part; rank 0 gets the time, other ranks nil.
    public func forwardSeconds(_ tokens: [Int32]) throws -> Double? {
        guard link.replica == 0 else { return nil }
        let p = try pass(B: 1)
        var seconds = 0.0
        for _ in 0..<2 {
            let t = DispatchTime.now().uptimeNanoseconds
            _ = try p.lossSum(tokens: tokens)
            seconds = Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9
        }
        return comm.isRoot ? seconds : nil
    }

    // MARK: empirical Fisher

    /// A Fisher block: a whole tensor, or a run of its output rows, at `offset` within it.
    struct FisherBlock: Hashable {
        let tensor: String
        let rows: Range<Int>?
        let offset: Int
        let count: Int
    }

    /// Every tensor of `names` whole, then (with `rowBlock`) each matrix's runs of `rowBlock` output rows
    /// (an attention head's rows when `rowBlock` is the head size). Row blocks of one tensor add up to it.
    func fisherBlocks(_ names: [String], rowBlock: Int) -> [FisherBlock] {
        let shapes = Dictionary(uniqueKeysWithValues: model.config.expectedShapes().map { ($0.name, $0.shape) })
        var blocks = names.map { FisherBlock(tensor: $0, rows: nil, offset: 0, count: shapes[$0]!.reduce(1, *)) }
        if rowBlock > 0 {
            for name in names {
                guard let shape = shapes[name], shape.count == 2 else { continue }
                let cols = shape[1]
                for r0 in stride(from: 0, to: shape[0], by: rowBlock) {
                    let r1 = min(shape[0], r0 + rowBlock)
                    blocks.append(FisherBlock(tensor: name, rows: r0..<r1, offset: r0 * cols, count: (r1 - r0) * cols))
                }
            }
        }
        return blocks
    }

    /// tr of the empirical Fisher per tensor: the mean over sequences s of ‖∇_b ℓ_s‖², ℓ_s the mean
    /// next-token loss of sequence s, from one B = 1 pass per sequence. Mini-batch gradients would be
    /// biased: they average before squaring. With μ the mean of the per-sequence gradients g_s and Σ
    /// their covariance, mean_s ‖g_s‖² = ‖μ‖² + tr Σ, but a batch of B gives E‖ḡ_B‖² = ‖μ‖² + tr Σ / B
    /// (‖mean g‖² ≠ mean ‖g‖²), and tr Σ is most of the Fisher (μ is small for a trained model).
    /// `standardError` is over sequences; `samples` is the sequence count.
    /// With `rowBlock` > 0 the profile is finer than the tensor: after the whole tensors come one estimate
    /// per run of `rowBlock` output rows of every matrix (`rows` set; an attention head at the head size).
    /// On rank 0 every tensor of the model; other ranks: [].
    /// With `sampledLabels`, each sequence's next tokens are drawn from the model itself (seeded by the
    /// seed and the sequence index, so the same for any topology): the trace of the Fisher information,
    /// the Hessian of the KL divergence from the unquantized model, instead of the empirical Fisher.
    public func empiricalFisher(_ sequences: [[Int32]], rowBlock: Int = 0, sampledLabels: UInt64? = nil,
                                progress: ((Int, Int) -> Void)? = nil) throws -> [TraceEstimate] {
        try check(sequences)
        guard rowBlock >= 0 else { throw SensitivityError.invalid("row block \(rowBlock): expected >= 0 (0: whole tensors)") }
        let p = try pass(B: 1)
        let all = fisherBlocks(allTensorNames, rowBlock: rowBlock), held = fisherBlocks(tensorNames, rowBlock: rowBlock)
        var mine: [Double] = []
        for s in ownedSequences(sequences.count) {
            try beforeFisherSequence?(s)
            _ = try p.lossAndGradients(tokens: sequences[s],
                                       sampledTargets: sampledLabels.map { Self.probeSeed(seed: $0, probe: s, tensor: allTensorNames.count) })
            for k in held {
                let g = model.view(k.tensor, in: grads) + k.offset
                mine.append(dotDouble(g, g, k.count))
            }
            if comm.isRoot { progress?(s + 1, sequences.count) }
        }
        let column = Dictionary(uniqueKeysWithValues: all.enumerated().map { ($1, $0) })
        let T = link.topology
        guard let rows = try gatherRows(mine, width: all.count, count: sequences.count, operation: "Fisher traces", shard: 0,
                                        columns: { stage in
                                            self.fisherBlocks(T.tensorNames(stage: stage, config: self.model.config), rowBlock: rowBlock).map { column[$0]! }
                                        }) else { return [] }
        var stats = Array(repeating: RunningMean(), count: all.count)
        for row in rows { for k in all.indices { stats[k].add(row[k]) } }
        return all.indices.map {
            var e = TraceEstimate(name: all[$0].tensor, mean: stats[$0].mean, standardError: stats[$0].standardError,
                                  samples: stats[$0].count, converged: true)
            e.rows = all[$0].rows
            return e
        }
    }

    /// The sequences this rank's replica computes: s with s mod R = replica.
    func ownedSequences(_ count: Int) -> StrideTo<Int> { ownedSequences(count, replica: link.replica) }
    func ownedSequences(_ count: Int, replica: Int) -> StrideTo<Int> {
        stride(from: replica, to: count, by: link.topology.replicas)
    }

    /// Rank 0: every sequence's row of `width` per-block scalars, in sequence order, assembled from the
    /// ranks: each computes its replica's sequences over its stage's blocks, at the row positions
    /// `columns(stage)` (`mine` is this rank's rows, concatenated in its sequence order). Other ranks: nil.
    func gatherRows(_ mine: [Double], width: Int, count: Int, operation: String, shard: Int,
                    columns: (Int) -> [Int]) throws -> [[Double]]? {
        let T = link.topology
        let ownWidth = columns(link.stage).count
        if comm.size == 1 { return (0..<count).map { Array(mine[($0 * ownWidth)..<(($0 + 1) * ownWidth)]) } }
        let msg = try WireMessage(kind: .scalars, shape: [mine.count / max(1, ownWidth), ownWidth], doubles: mine, codec: .raw,
                                  ids: MessageIDs(shard: UInt32(shard), sender: UInt32(comm.rank)))
        let bytes = msg.encode()
        guard let gathered = try comm.gather(bytes: bytes, root: 0) else { return nil }
        var rows = [[Double]](repeating: [Double](repeating: .nan, count: width), count: count)
        let stageColumns = (0..<T.stages).map(columns)
        for (r, b) in gathered.enumerated() {
            let m = try WireMessage.decode(b)
            let owned = Array(ownedSequences(count, replica: T.replica(ofRank: r)))
            let cols = stageColumns[T.stage(ofRank: r)]
            guard m.kind == .scalars, m.dtype == .f64, m.shape == [owned.count, cols.count], m.ids.sender == UInt32(r),
                  m.ids.shard == UInt32(shard) else {
                throw ClusterError(rank: comm.rank, operation: operation,
                                   message: "from rank \(r): expected f64 scalars [\(owned.count), \(cols.count)] for step \(shard), got \(m.kind) \(m.dtype) \(m.shape) step \(m.ids.shard) sender \(m.ids.sender)")
            }
            if r != 0 { wireStats.record(m, wireBytes: b.count) }
            let d = try m.doubles()
            for (i, s) in owned.enumerated() {
                for (j, c) in cols.enumerated() { rows[s][c] = d[i * cols.count + j] }
            }
        }
        return rows
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
        var trace = HutchinsonTrace(names: allTensorNames, options: options)
        let v = model.makeGradients(), hv = model.makeGradients(), scratch = model.makeGradients()
        // H v of the mean loss is the mean over sequences of each sequence's H_s v (equal lengths), so a
        // probe's sample v_bᵀ(Hv)_b is the mean of per-sequence scalars: ranks split the sequences and send
        // only those. Rank 0 decides whether another probe is needed and tells the others.
        let column = Dictionary(uniqueKeysWithValues: allTensorNames.enumerated().map { ($1, $0) })
        var probe = 0
        while true {
            let more = try comm.size > 1 ? comm.broadcast(bytes: comm.isRoot ? [trace.needsProbe ? 1 : 0] : [], root: 0) == [1]
                                         : trace.needsProbe
            guard more else { break }
            rademacherProbe(seed: seed, probe: probe, into: v)
            var mine: [Double] = []
            for s in ownedSequences(sequences.count) {
                try hessianVectorProduct([sequences[s]], v: v, epsilon: epsilon, into: hv, scratch: scratch)
                for name in tensorNames {
                    mine.append(dotDouble(model.view(name, in: v), model.view(name, in: hv), model.elementCount(name)))
                }
            }
            if let rows = try gatherRows(mine, width: allTensorNames.count, count: sequences.count,
                                         operation: "Hutchinson probe \(probe)", shard: probe,
                                         columns: { stage in self.link.topology.tensorNames(stage: stage, config: self.model.config).map { column[$0]! } }) {
                // Summed in sequence order in Double: the same bits for any rank count.
                trace.add(allTensorNames.indices.map { b in rows.reduce(0.0) { $0 + $1[b] } / Double(rows.count) })
                progress?(trace.probes, trace.converged.filter { !$0 }.count)
            }
            probe += 1
        }
        return comm.isRoot ? trace.estimates : []
    }

    // MARK: top eigenvalue

    /// The largest-magnitude eigenvalue of H_bb (tensor b's diagonal block) by power iteration on
    /// v ← H_bb v / ‖H_bb v‖ from a seeded Rademacher start, stopping when the Rayleigh quotient moves by
    /// less than `relativeTolerance` (PyHessian's 1e-3 rule) or after `maxIterations` (PyHessian: 100).
    /// Each iteration costs 2 data-set gradients over all `sequences`, for this tensor alone, on replica
    /// 0: its stage holding the tensor does the vector work and tells the others whether to go on (their
    /// probe is zero, so they only carry the pipeline). The result on rank 0; nil elsewhere.
    public func topEigenvalue(_ sequences: [[Int32]], tensor name: String, seed: UInt64, maxIterations: Int = 100,
                              relativeTolerance: Double = 1e-3,
                              epsilon: Float = defaultEpsilon) throws -> (eigenvalue: Double, iterations: Int)? {
        try check(sequences)
        guard let ordinal = allTensorNames.firstIndex(of: name) else {
            throw SensitivityError.invalid("tensor \(name) is not in the model")
        }
        guard link.replica == 0 else { return nil }
        let T = link.topology
        let ownerStage = T.stage(holding: name)
        let owner = T.rank(stage: ownerStage, replica: 0), mine = link.stage == ownerStage
        let others = (0..<T.stages).filter { $0 != ownerStage }.map { T.rank(stage: $0, replica: 0) }
        let v = model.makeGradients(), hv = model.makeGradients(), scratch = model.makeGradients()
        let count = mine ? model.elementCount(name) : 0
        let vb = mine ? model.view(name, in: v) : v.base, hvb = mine ? model.view(name, in: hv) : hv.base
        var norm = 0.0
        if mine {
            var rng = SeededRandom(seed: Self.probeSeed(seed: seed, probe: -1, tensor: ordinal))
            fillRademacher(vb, count: count, using: &rng)
            norm = dotDouble(vb, vb, count).squareRoot()
            for i in 0..<count { vb[i] = Float(Double(vb[i]) / norm) }
        }
        // The unit vector is scaled so every parameter still moves by about ε (the step the error
        // analysis of `defaultEpsilon` assumes), then the product is scaled back.
        let shapes = Dictionary(uniqueKeysWithValues: model.config.expectedShapes().map { ($0.name, $0.shape) })
        let stepScale = Float(Double(shapes[name]!.reduce(1, *)).squareRoot())
        var lambda = 0.0, iterations = 0
        while true {
            iterations += 1
            try hessianVectorProduct(sequences, v: v, epsilon: epsilon * stepScale, into: hv, scratch: scratch)
            var goOn = false
            if mine {
                let next = dotDouble(vb, hvb, count) // Rayleigh quotient (‖v‖ = 1)
                norm = dotDouble(hvb, hvb, count).squareRoot()
                if norm > 0 {
                    v.buffer.update(repeating: 0)
                    for i in 0..<count { vb[i] = Float(Double(hvb[i]) / norm) }
                    let done = iterations > 1 && abs(next - lambda) / (abs(lambda) + 1e-6) < relativeTolerance
                    lambda = next
                    goOn = !done && iterations < maxIterations
                } else {
                    lambda = 0
                }
                for r in others { try comm.send(bytes: [goOn ? 1 : 0], to: r, tag: Self.eigenTag) }
            } else {
                goOn = try comm.recv(from: owner, tag: Self.eigenTag, maxBytes: 1) == [1]
            }
            if !goOn { break }
        }
        if owner != 0 {
            if mine {
                let m = try WireMessage(kind: .scalars, shape: [2], doubles: [lambda, Double(iterations)], ids: MessageIDs(sender: UInt32(comm.rank)))
                try comm.send(bytes: m.encode(), to: 0, tag: Self.eigenTag)
            } else if comm.isRoot {
                let m = try WireMessage.decode(try comm.recv(from: owner, tag: Self.eigenTag))
                guard m.kind == .scalars, m.dtype == .f64, m.shape == [2], m.ids.sender == UInt32(owner) else {
                    throw ClusterError(rank: 0, operation: "eigenvalue of \(name)", message: "from rank \(owner): expected f64 scalars [2], got \(m.kind) \(m.dtype) \(m.shape)")
                }
                let d = try m.doubles()
                lambda = d[0]
                iterations = Int(d[1])
            }
        }
        return comm.isRoot ? (lambda, iterations) : nil
    }

    static let eigenTag = 13
}
