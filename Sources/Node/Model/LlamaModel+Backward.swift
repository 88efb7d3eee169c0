// The training-style pass of the LLaMA model: a forward that keeps every held block's activations, the
// mean next-token cross-entropy, and the backward pass (the forward's call list reversed) into a
// gradient arena with the parameters' layout. fp32 like the forward. Not an optimizer: nothing here
// updates the weights; the gradients feed the sensitivity estimators.
import HessianDist

/// Activations of the held blocks for one (B,T), kept for the backward pass, in one arena of named
/// views shaped (L,B,T,…) (llm.c's ActivationTensors), and one block's worth of activation gradients,
/// reused block after block, in a second arena.
/// Block li (li = l − layers.lowerBound) reads residual[li] and writes residual[li+1]; residual[L] feeds the head.
public final class TrainingActivations: @unchecked Sendable {
    public let B: Int
    public let T: Int
    /// Blocks held (L).
    public let L: Int
    let arena: FloatBuffer
    let gradArena: FloatBuffer
    /// Next-token targets (B,T); −1 at the last position of each sequence (nothing to predict).
    var targets: [Int32]
    var tokens: [Int32]

    // (L+1,B,T,C): the residual stream entering each block, then leaving the last one.
    let residual: LayerViews
    // Per block: (L,B,T,C) norm outputs, (L,B,T) their rstd, q (L,B,T,NH·hs) and k (L,B,T,NKV·hs)
    // after RoPE, v, the attention output, the stream after the attention residual, SwiGLU's inputs and output.
    let attnNorm, attnRstd, q, k, v, atty, residualMid, ffnNorm, ffnRstd, gate, up, hid: LayerViews
    // Head: final norm (B,T,C), its rstd (B,T), probabilities (B,T,V) (the logits, overwritten), losses (B,T).
    let outNorm, outRstd, probs, losses: UnsafeMutablePointer<Float>
    // Scratch: a projection before its residual add (B,T,C); attention weights and their gradient (2,T,T).
    let proj, attScratch: UnsafeMutablePointer<Float>

    // Gradients w.r.t. activations, one block at a time: the residual stream (B,T,C), a norm output
    // (B,T,C), q/k/v and the attention output, SwiGLU's inputs and output, the logits (B,T,V), losses (B,T).
    let dresidual, dxn, dq, dk, dv, datty, dgate, dup, dhid, dlogits, dlosses: UnsafeMutablePointer<Float>

    /// One block's slice of a (L,…) view.
    struct LayerViews {
        let base: UnsafeMutablePointer<Float>
        let stride: Int
        subscript(_ li: Int) -> UnsafeMutablePointer<Float> { base + li * stride }
    }

    /// The two arenas' layouts; without the head (a pipeline stage other than the first) its buffers
    /// (the final norm, the (B,T,V) probabilities and logit gradients) are empty.
    static func layouts(config c: ModelConfig, layers L: Int, B: Int, T: Int, head: Bool)
        -> (acts: BufferLayout, perLayer: [(String, Int)], grads: BufferLayout) {
        let N = B * T, C = c.dim, QD = c.qDim, KVD = c.kvDim, H = c.hiddenDim, V = head ? c.vocabSize : 0, NH = head ? N : 0
        var layout = BufferLayout()
        let perLayer: [(String, Int)] = [
            ("attnNorm", N * C), ("attnRstd", N), ("q", N * QD), ("k", N * KVD), ("v", N * KVD), ("atty", N * QD),
            ("residualMid", N * C), ("ffnNorm", N * C), ("ffnRstd", N), ("gate", N * H), ("up", N * H), ("hid", N * H),
        ]
        layout.add("residual", (L + 1) * N * C)
        for (name, size) in perLayer { layout.add(name, L * size) }
        for (name, size) in [("outNorm", NH * C), ("outRstd", NH), ("probs", NH * V), ("losses", NH),
                             ("proj", N * C), ("attScratch", 2 * T * T)] {
            layout.add(name, size)
        }
        var glayout = BufferLayout()
        let gradSizes: [(String, Int)] = [
            ("dresidual", N * C), ("dxn", N * C), ("dq", N * QD), ("dk", N * KVD), ("dv", N * KVD), ("datty", N * QD),
            ("dgate", N * H), ("dup", N * H), ("dhid", N * H), ("dlogits", NH * V), ("dlosses", NH),
        ]
        for (name, size) in gradSizes { glayout.add(name, size) }
        return (layout, perLayer, glayout)
    }

    /// Floats both arenas hold for this shape.
    public static func floatCount(config c: ModelConfig, layers L: Int, B: Int, T: Int, head: Bool) -> Int {
        let l = layouts(config: c, layers: L, B: B, T: T, head: head)
        return l.acts.total + l.grads.total
    }

    public init(config c: ModelConfig, layers L: Int, B: Int, T: Int, head: Bool = true) {
        self.B = B
        self.T = T
        self.L = L
        let N = B * T, C = c.dim
        targets = [Int32](repeating: -1, count: N)
        tokens = [Int32](repeating: 0, count: N)
        let (layout, perLayer, glayout) = Self.layouts(config: c, layers: L, B: B, T: T, head: head)
        let a = FloatBuffer(count: layout.total)
        arena = a
        func p(_ n: String) -> UnsafeMutablePointer<Float> { a.view(layout.offset(n), layout.sizes[n]!) }
        func lv(_ n: String, _ size: Int) -> LayerViews { LayerViews(base: p(n), stride: size) }
        residual = lv("residual", N * C)
        let views = Dictionary(uniqueKeysWithValues: perLayer.map { ($0.0, lv($0.0, $0.1)) })
        attnNorm = views["attnNorm"]!; attnRstd = views["attnRstd"]!; q = views["q"]!; k = views["k"]!
        v = views["v"]!; atty = views["atty"]!; residualMid = views["residualMid"]!; ffnNorm = views["ffnNorm"]!
        ffnRstd = views["ffnRstd"]!; gate = views["gate"]!; up = views["up"]!; hid = views["hid"]!
        outNorm = p("outNorm"); outRstd = p("outRstd"); probs = p("probs"); losses = p("losses")
        proj = p("proj"); attScratch = p("attScratch")

        let g = FloatBuffer(count: glayout.total)
        gradArena = g
        func gp(_ n: String) -> UnsafeMutablePointer<Float> { g.view(glayout.offset(n), glayout.sizes[n]!) }
        dresidual = gp("dresidual"); dxn = gp("dxn"); dq = gp("dq"); dk = gp("dk"); dv = gp("dv"); datty = gp("datty")
        dgate = gp("dgate"); dup = gp("dup"); dhid = gp("dhid"); dlogits = gp("dlogits"); dlosses = gp("dlosses")
    }

    /// Bytes held by both arenas.
    public var bytes: Int { (arena.count + gradArena.count) * 4 }
}

extension LlamaModel {
    /// The tensors this node holds, in the canonical order of `ModelConfig.expectedShapes()`.
    public var heldTensorNames: [String] {
        config.expectedShapes().map(\.name).filter { holds($0) }
    }

    /// Element count of a held tensor.
    public func elementCount(_ name: String) -> Int {
        guard let n = layout.sizes[name] else { preconditionFailure("\(name) is not held by this node") }
        return n
    }

    /// A zeroed gradient arena laid out like this node's parameters (same `BufferLayout`).
    public func makeGradients() -> FloatBuffer { FloatBuffer(count: layout.total) }

    /// A tensor's view in an arena laid out like the parameters (the gradients or a probe vector).
    func view(_ name: String, in buffer: FloatBuffer) -> UnsafeMutablePointer<Float> {
        buffer.view(layout.offset(name), layout.sizes[name]!)
    }

    // MARK: training forward

    /// tokens (B,T) -> residual[0] (B,T,C); targets (B,T) = the next token, −1 at each sequence's end.
    public func embedForward(_ a: TrainingActivations, tokens: [Int32]) throws {
        precondition(hasEmbedding, "this stage does not hold the embedding")
        let C = config.dim, V = config.vocabSize, T = a.T
        guard tokens.count == a.B * T else {
            throw ModelRuntimeError.shape("embedForward: \(tokens.count) tokens for B·T = \(a.B * T)")
        }
        for t in tokens where t < 0 || Int(t) >= V { throw ModelRuntimeError.token(Int(t), V) }
        a.tokens = tokens
        for i in 0..<tokens.count { a.targets[i] = i % T == T - 1 ? -1 : tokens[i + 1] }
        embeddingForward(out: a.residual[0], tokens: tokens, weight: w(TensorName.tokenEmbedding), N: tokens.count, C: C)
    }

    /// residual[li] (B,T,C) -> residual[li+1] (B,T,C), keeping every intermediate of block `l`.
    public func blockForward(_ l: Int, _ a: TrainingActivations) {
        let c = config, li = l - layers.lowerBound
        precondition(layers.contains(l) && li < a.L)
        let B = a.B, T = a.T, N = B * T, C = c.dim, hs = c.headDim, H = c.hiddenDim
        let NH = c.nHeads, NKV = c.nKVHeads, QD = c.qDim, KVD = c.kvDim, eps = c.normEps
        let interleaved = c.ropeLayout == .interleaved
        let x = a.residual[li], xMid = a.residualMid[li], xOut = a.residual[li + 1]
        rmsnormForward(out: a.attnNorm[li], rstd: a.attnRstd[li], inp: x, weight: w(TensorName.attnNorm(l)), N: N, C: C, eps: eps)
        matmulForward(out: a.q[li], inp: a.attnNorm[li], weight: w(TensorName.attnQ(l)), N: N, C: C, OC: QD)
        matmulForward(out: a.k[li], inp: a.attnNorm[li], weight: w(TensorName.attnK(l)), N: N, C: C, OC: KVD)
        matmulForward(out: a.v[li], inp: a.attnNorm[li], weight: w(TensorName.attnV(l)), N: N, C: C, OC: KVD)
        ropeForward(x: a.q[li], table: rope, B: B, T: T, nh: NH, hs: hs, interleaved: interleaved)
        ropeForward(x: a.k[li], table: rope, B: B, T: T, nh: NKV, hs: hs, interleaved: interleaved)
        attentionForward(out: a.atty[li], att: a.attScratch, q: a.q[li], k: a.k[li], v: a.v[li],
                         B: B, T: T, NH: NH, NKV: NKV, hs: hs)
        matmulForward(out: a.proj, inp: a.atty[li], weight: w(TensorName.attnOutput(l)), N: N, C: QD, OC: C)
        xMid.update(from: x, count: N * C)
        residualAdd(x: xMid, y: a.proj, count: N * C)
        rmsnormForward(out: a.ffnNorm[li], rstd: a.ffnRstd[li], inp: xMid, weight: w(TensorName.ffnNorm(l)), N: N, C: C, eps: eps)
        matmulForward(out: a.gate[li], inp: a.ffnNorm[li], weight: w(TensorName.ffnGate(l)), N: N, C: C, OC: H)
        matmulForward(out: a.up[li], inp: a.ffnNorm[li], weight: w(TensorName.ffnUp(l)), N: N, C: C, OC: H)
        swigluForward(out: a.hid[li], gate: a.gate[li], up: a.up[li], count: N * H)
        matmulForward(out: a.proj, inp: a.hid[li], weight: w(TensorName.ffnDown(l)), N: N, C: H, OC: C)
        xOut.update(from: xMid, count: N * C)
        residualAdd(x: xOut, y: a.proj, count: N * C)
    }

    /// residual[L] (B,T,C) -> probs (B,T,V), losses (B,T); returns Σ of the labelled positions' losses.
    @discardableResult
    public func headForward(_ a: TrainingActivations) -> Double {
        precondition(hasHead, "this stage does not hold the head")
        let c = config, N = a.B * a.T, C = c.dim, V = c.vocabSize
        rmsnormForward(out: a.outNorm, rstd: a.outRstd, inp: a.residual[a.L], weight: w(TensorName.outputNorm),
                       N: N, C: C, eps: c.normEps)
        matmulForward(out: a.probs, inp: a.outNorm, weight: classifier, N: N, C: C, OC: V)
        a.targets.withUnsafeBufferPointer { tg in
            crossEntropyForward(losses: a.losses, probs: a.probs, logits: a.probs, targets: tg.baseAddress!, N: N, V: V)
        }
        var sum = 0.0
        for i in 0..<N { sum += Double(a.losses[i]) }
        return sum
    }

    var classifier: UnsafeMutablePointer<Float> {
        config.tiedEmbeddings ? w(TensorName.tokenEmbedding) : w(TensorName.output)
    }

    /// Labelled positions (next-token predictions) in a (B,T) batch.
    public static func labelledPositions(B: Int, T: Int) -> Int { B * (T - 1) }

    // MARK: backward (the forward's call list reversed)

    /// dlosses = `weight` at every labelled position -> dresidual (B,T,C) = ∂/∂residual[L];
    /// grads of the final norm and the classifier (the token embedding when tied) +=.
    public func headBackward(_ a: TrainingActivations, grads: FloatBuffer, weight: Float) {
        let c = config, N = a.B * a.T, C = c.dim, V = c.vocabSize
        for i in 0..<N { a.dlosses[i] = a.targets[i] >= 0 ? weight : 0 }
        a.dlogits.update(repeating: 0, count: N * V)
        a.targets.withUnsafeBufferPointer { tg in
            crossEntropyBackward(dlogits: a.dlogits, dlosses: a.dlosses, probs: a.probs, targets: tg.baseAddress!, N: N, V: V)
        }
        a.dxn.update(repeating: 0, count: N * C)
        let dclassifier = view(c.tiedEmbeddings ? TensorName.tokenEmbedding : TensorName.output, in: grads)
        matmulBackward(dinp: a.dxn, dweight: dclassifier, dout: a.dlogits, inp: a.outNorm, weight: classifier, N: N, C: C, OC: V)
        a.dresidual.update(repeating: 0, count: N * C)
        rmsnormBackward(dinp: a.dresidual, dweight: view(TensorName.outputNorm, in: grads), dout: a.dxn,
                        inp: a.residual[a.L], weight: w(TensorName.outputNorm), rstd: a.outRstd, N: N, C: C)
    }

    /// dresidual = ∂/∂residual[li+1] -> dresidual = ∂/∂residual[li]; grads of block `l`'s tensors +=.
    public func blockBackward(_ l: Int, _ a: TrainingActivations, grads: FloatBuffer) {
        let c = config, li = l - layers.lowerBound
        precondition(layers.contains(l) && li < a.L)
        let B = a.B, T = a.T, N = B * T, C = c.dim, hs = c.headDim, H = c.hiddenDim
        let NH = c.nHeads, NKV = c.nKVHeads, QD = c.qDim, KVD = c.kvDim
        let interleaved = c.ropeLayout == .interleaved
        func g(_ name: String) -> UnsafeMutablePointer<Float> { view(name, in: grads) }
        // FFN: xOut = xMid + swiglu(xn Wgateᵀ, xn Wupᵀ) Wdownᵀ, xn = rmsnorm(xMid).
        a.dhid.update(repeating: 0, count: N * H)
        matmulBackward(dinp: a.dhid, dweight: g(TensorName.ffnDown(l)), dout: a.dresidual, inp: a.hid[li],
                       weight: w(TensorName.ffnDown(l)), N: N, C: H, OC: C)
        a.dgate.update(repeating: 0, count: N * H)
        a.dup.update(repeating: 0, count: N * H)
        swigluBackward(dgate: a.dgate, dup: a.dup, dout: a.dhid, gate: a.gate[li], up: a.up[li], count: N * H)
        a.dxn.update(repeating: 0, count: N * C)
        matmulBackward(dinp: a.dxn, dweight: g(TensorName.ffnUp(l)), dout: a.dup, inp: a.ffnNorm[li],
                       weight: w(TensorName.ffnUp(l)), N: N, C: C, OC: H)
        matmulBackward(dinp: a.dxn, dweight: g(TensorName.ffnGate(l)), dout: a.dgate, inp: a.ffnNorm[li],
                       weight: w(TensorName.ffnGate(l)), N: N, C: C, OC: H)
        // The residual path passes dresidual through unchanged; the norm adds its part to it.
        rmsnormBackward(dinp: a.dresidual, dweight: g(TensorName.ffnNorm(l)), dout: a.dxn, inp: a.residualMid[li],
                        weight: w(TensorName.ffnNorm(l)), rstd: a.ffnRstd[li], N: N, C: C)
        // Attention: xMid = x + attention(rope(xn Wqᵀ), rope(xn Wkᵀ), xn Wvᵀ) Woᵀ, xn = rmsnorm(x).
        a.datty.update(repeating: 0, count: N * QD)
        matmulBackward(dinp: a.datty, dweight: g(TensorName.attnOutput(l)), dout: a.dresidual, inp: a.atty[li],
                       weight: w(TensorName.attnOutput(l)), N: N, C: QD, OC: C)
        a.dq.update(repeating: 0, count: N * QD)
        a.dk.update(repeating: 0, count: N * KVD)
        a.dv.update(repeating: 0, count: N * KVD)
        attentionBackward(dq: a.dq, dk: a.dk, dv: a.dv, scratch: a.attScratch, dout: a.datty, q: a.q[li], k: a.k[li],
                          v: a.v[li], B: B, T: T, NH: NH, NKV: NKV, hs: hs)
        ropeBackward(dx: a.dk, table: rope, B: B, T: T, nh: NKV, hs: hs, interleaved: interleaved)
        ropeBackward(dx: a.dq, table: rope, B: B, T: T, nh: NH, hs: hs, interleaved: interleaved)
        a.dxn.update(repeating: 0, count: N * C)
        matmulBackward(dinp: a.dxn, dweight: g(TensorName.attnV(l)), dout: a.dv, inp: a.attnNorm[li],
                       weight: w(TensorName.attnV(l)), N: N, C: C, OC: KVD)
        matmulBackward(dinp: a.dxn, dweight: g(TensorName.attnK(l)), dout: a.dk, inp: a.attnNorm[li],
                       weight: w(TensorName.attnK(l)), N: N, C: C, OC: KVD)
        matmulBackward(dinp: a.dxn, dweight: g(TensorName.attnQ(l)), dout: a.dq, inp: a.attnNorm[li],
                       weight: w(TensorName.attnQ(l)), N: N, C: C, OC: QD)
        rmsnormBackward(dinp: a.dresidual, dweight: g(TensorName.attnNorm(l)), dout: a.dxn, inp: a.residual[li],
                        weight: w(TensorName.attnNorm(l)), rstd: a.attnRstd[li], N: N, C: C)
    }

    /// dresidual = ∂/∂residual[0] -> the token embedding's gradient += (scattered to the tokens' rows).
    public func embedBackward(_ a: TrainingActivations, grads: FloatBuffer) {
        precondition(hasEmbedding, "this stage does not hold the embedding")
        a.tokens.withUnsafeBufferPointer { tk in
            embeddingBackward(dweight: view(TensorName.tokenEmbedding, in: grads), dout: a.dresidual,
                              tokens: tk.baseAddress!, N: a.B * a.T, C: config.dim)
        }
    }
}

/// The loss and gradients of the whole model for batches of a fixed (B,T): on one node, or with `link`
/// on one stage of a pipeline replica (`PipelineTopology`), every stage of the replica calling the same
/// passes in the same order with the same tokens. The stages compute exactly the kernels one node would,
/// on the same floats, so each stage's gradients are the same bits as the whole model's.
/// loss = mean over the B·(T−1) next-token predictions of −log softmax(logits)[next token].
public final class GradientPass: @unchecked Sendable {
    public let model: LlamaModel
    public let B: Int
    public let T: Int
    public let acts: TrainingActivations
    /// ∂loss/∂params, laid out like the model's parameters (view a tensor with `gradient(_:)`).
    public let grads: FloatBuffer
    /// This stage's neighbours; nil or one stage: the whole model is here.
    public let link: StageLink?

    /// `grads`: an arena from `model.makeGradients()` to share with other passes (e.g. micro-batches of
    /// another size accumulating one data set's gradient); a new one by default.
    public init(model: LlamaModel, B: Int, T: Int, grads: FloatBuffer? = nil, link: StageLink? = nil) throws {
        if let link, link.isPipelined {
            let s = link.stage, want = link.topology.blocks[s]
            guard model.layers == want, model.hasEmbedding == (s == 0), model.hasHead == (s == 0) else {
                throw ModelRuntimeError.shape("GradientPass: stage \(s) of \(link.topology) must hold blocks \(want)\(s == 0 ? " with the embedding and head" : ""); this node holds \(model.layers) (embedding \(model.hasEmbedding), head \(model.hasHead))")
            }
        } else {
            guard model.hasEmbedding && model.hasHead && model.layers == 0..<model.config.nLayers else {
                throw ModelRuntimeError.shape("GradientPass needs the whole model on one node (held blocks \(model.layers)) or a pipeline link")
            }
        }
        guard B >= 1, T >= 2, T <= model.rope.T else {
            throw ModelRuntimeError.shape("GradientPass: B = \(B), T = \(T); expected B >= 1 and 2 <= T <= \(model.rope.T) (the RoPE table)")
        }
        self.model = model
        self.B = B
        self.T = T
        self.link = link?.isPipelined == true ? link : nil
        acts = TrainingActivations(config: model.config, layers: model.layers.count, B: B, T: T, head: model.hasHead)
        if let grads { precondition(grads.count == model.layout.total, "a gradient arena of another model") }
        self.grads = grads ?? model.makeGradients()
    }

    var streamShape: [Int] { [B, T, model.config.dim] }

    public func zeroGradients() { grads.buffer.update(repeating: 0) }

    /// Forward only: Σ of the next-token losses of `tokens` (B,T) (no gradient); 0 on a stage other
    /// than the first (the head is on stage 0).
    public func lossSum(tokens: [Int32]) throws -> Double {
        link?.beginPass()
        if model.hasEmbedding {
            try model.embedForward(acts, tokens: tokens)
        } else {
            try link!.receive(into: acts.residual[0], shape: streamShape, forward: true)
        }
        for l in model.layers { model.blockForward(l, acts) }
        if let link {
            // Round the ring: the last stage's output comes back to stage 0 for the head (residual[L] of
            // stage 0 is free once sent: the backward pass does not read a block's output).
            try link.send(acts.residual[acts.L], shape: streamShape, forward: true)
            guard link.isFirstStage else { return 0 }
            try link.receive(into: acts.residual[acts.L], shape: streamShape, forward: true)
        }
        return model.headForward(acts)
    }

    /// grads += `weight` · ∂(Σ next-token losses of `tokens` (B,T))/∂params; returns that Σ (in Double;
    /// 0 on a stage other than the first).
    /// Accumulating batches with weight 1/(total predictions) gives the gradient of a data set's mean loss.
    /// With `sampledTargets`, the gradient is of the loss on next tokens drawn from the model's own
    /// distribution at each labelled position (seeded, in position order) instead of the data's: the
    /// per-sequence gradients of the Fisher information rather than the empirical Fisher.
    @discardableResult
    public func accumulate(tokens: [Int32], weight: Float, sampledTargets seed: UInt64? = nil) throws -> Double {
        let sum = try lossSum(tokens: tokens)
        if let seed, model.hasHead { sampleTargets(seed: seed) }
        if model.hasHead { model.headBackward(acts, grads: grads, weight: weight) }
        if let link {
            // Stage 0 sends the head's gradient to the last stage, then waits for its own blocks' output gradient.
            if link.isFirstStage { try link.send(acts.dresidual, shape: streamShape, forward: false) }
            try link.receive(into: acts.dresidual, shape: streamShape, forward: false)
        }
        for l in model.layers.reversed() { model.blockBackward(l, acts, grads: grads) }
        if let link, !link.isFirstStage { try link.send(acts.dresidual, shape: streamShape, forward: false) }
        if model.hasEmbedding { model.embedBackward(acts, grads: grads) }
        return sum
    }

    /// The mean next-token loss of `tokens` (B,T), with `grads` set to its gradient (of the loss on
    /// sampled targets with `sampledTargets`, see `accumulate`).
    public func lossAndGradients(tokens: [Int32], sampledTargets seed: UInt64? = nil) throws -> Float {
        zeroGradients()
        let n = LlamaModel.labelledPositions(B: B, T: T)
        return Float(try accumulate(tokens: tokens, weight: 1 / Float(n), sampledTargets: seed) / Double(n))
    }

    /// Replaces each labelled position's target by a draw from the head's probabilities (inverse CDF on
    /// one uniform per position, from `seed`).
    func sampleTargets(seed: UInt64) {
        let V = model.config.vocabSize
        var rng = SeededRandom(seed: seed)
        for i in 0..<(B * T) where acts.targets[i] >= 0 {
            let p = acts.probs + i * V
            let u = Double(rng.next() >> 11) * 0x1p-53
            var acc = 0.0, y = V - 1
            for j in 0..<V {
                acc += Double(p[j])
                if u < acc { y = j; break }
            }
            acts.targets[i] = Int32(y)
        }
    }

    /// A held tensor's gradient (row-major, as the parameter).
    public func gradient(_ name: String) -> [Float] {
        Array(UnsafeBufferPointer(start: model.view(name, in: grads), count: model.elementCount(name)))
    }
}
