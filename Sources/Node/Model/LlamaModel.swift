// The LLaMA-family transformer forward pass over a range of blocks (a pipeline stage), fp32 throughout.
// Parameters live in one arena dequantized once at load; activations in another, sized per (B,T).
// Not generation with a KV cache: `generate` re-runs the prefix, which is fine for sanity checks.
import Dispatch
import HessianDist

public final class LlamaModel: @unchecked Sendable {
    public let config: ModelConfig
    /// The blocks this node holds.
    public let layers: Range<Int>
    /// Whether this node holds the token embedding (first stage) and the final norm + classifier (last stage).
    public let hasEmbedding: Bool
    public let hasHead: Bool
    let params: FloatBuffer
    let layout: BufferLayout
    public let rope: RopeTable

    /// Loads (dequantizes) the tensors of `layers` and, if asked, the embedding and head.
    /// `contextLength` bounds the positions the RoPE table covers.
    public init(source: WeightSource, layers: Range<Int>? = nil, embedding: Bool = true, head: Bool = true,
                contextLength: Int? = nil) throws {
        let c = source.config
        try c.validate(file: source.path)
        try source.validateShapes()
        let layers = layers ?? 0..<c.nLayers
        guard layers.lowerBound >= 0, layers.upperBound <= c.nLayers else {
            throw ModelFormatError(file: source.path, field: "layer range", expected: "inside 0..<\(c.nLayers)",
                                   found: "\(layers)")
        }
        config = c
        self.layers = layers
        hasEmbedding = embedding
        hasHead = head
        var names: [String] = []
        if embedding || (head && c.tiedEmbeddings) { names.append(TensorName.tokenEmbedding) }
        for l in layers {
            names += [TensorName.attnNorm(l), TensorName.attnQ(l), TensorName.attnK(l), TensorName.attnV(l),
                      TensorName.attnOutput(l), TensorName.ffnNorm(l), TensorName.ffnGate(l), TensorName.ffnUp(l),
                      TensorName.ffnDown(l)]
        }
        if head {
            names.append(TensorName.outputNorm)
            if !c.tiedEmbeddings { names.append(TensorName.output) }
        }
        var layout = BufferLayout()
        for n in names { layout.add(n, try source.info(n).elementCount) }
        let params = FloatBuffer(count: layout.total)
        for n in names {
            let size = layout.sizes[n]!
            try source.dequantize(n, into: UnsafeMutableBufferPointer(start: params.view(layout.offset(n), size), count: size))
        }
        self.layout = layout
        self.params = params
        rope = RopeTable(T: contextLength ?? min(c.contextLength, 8192), headDim: c.headDim, theta: c.ropeTheta)
    }

    func w(_ name: String) -> UnsafeMutablePointer<Float> { params.base + layout.offset(name) }

    /// Bytes of fp32 parameters held.
    public var parameterBytes: Int { params.count * 4 }

    // MARK: forward

    /// tokens (B,T) -> acts.x (B,T,C)
    public func embed(_ acts: Activations, tokens: [Int32]) throws {
        precondition(hasEmbedding, "this stage does not hold the embedding")
        let C = config.dim, V = config.vocabSize
        guard tokens.count == acts.B * acts.T else {
            throw ModelRuntimeError.shape("embed: \(tokens.count) tokens for B·T = \(acts.B * acts.T)")
        }
        let emb = w(TensorName.tokenEmbedding), x = acts.x
        for (i, t) in tokens.enumerated() {
            guard t >= 0, Int(t) < V else { throw ModelRuntimeError.token(Int(t), V) }
            (x + i * C).update(from: emb + Int(t) * C, count: C)
        }
    }

    /// acts.x (B,T,C) -> acts.x (B,T,C) through blocks `layers`.
    public func blocks(_ acts: Activations) {
        for l in layers { block(l, acts) }
    }

    /// One block, in place on the residual stream: the six stages in order.
    /// x (B,T,C); q (B,T,NH,hs); k,v (B,T,NKV,hs); ffn (B,T,H).
    public func block(_ l: Int, _ a: Activations) {
        attentionNorm(l, a)
        attention(l, a)
        attentionOutput(l, a)
        ffnNorm(l, a)
        ffnGateUp(l, a)
        ffnDown(l, a)
    }

    // The stages. Calibration captures the inputs of each group of linear layers between them:
    // xn after `attentionNorm` feeds q,k,v; atty after `attention` feeds o; xn after `ffnNorm` feeds
    // gate,up; hid after `ffnGateUp` feeds down.

    /// x (B,T,C) -> xn (B,T,C)
    public func attentionNorm(_ l: Int, _ a: Activations) {
        let N = a.B * a.T, C = config.dim
        a.profile.time(.norm) {
            rmsnormForward(out: a.xn, rstd: nil, inp: a.x, weight: w(TensorName.attnNorm(l)), N: N, C: C, eps: config.normEps)
        }
    }

    /// xn (B,T,C) -> q,k,v -> atty (B,T,NH·hs)
    public func attention(_ l: Int, _ a: Activations) {
        let c = config
        let B = a.B, T = a.T, N = B * T, C = c.dim, hs = c.headDim
        let NH = c.nHeads, NKV = c.nKVHeads, QD = c.qDim, KVD = c.kvDim
        let interleaved = c.ropeLayout == .interleaved
        a.profile.time(.gemm, flops: 2 * N * C * (QD + 2 * KVD)) {
            matmulForward(out: a.q, inp: a.xn, weight: w(TensorName.attnQ(l)), N: N, C: C, OC: QD)
            matmulForward(out: a.k, inp: a.xn, weight: w(TensorName.attnK(l)), N: N, C: C, OC: KVD)
            matmulForward(out: a.v, inp: a.xn, weight: w(TensorName.attnV(l)), N: N, C: C, OC: KVD)
        }
        a.profile.time(.attention, flops: 4 * B * NH * T * T * hs) {
            ropeForward(x: a.q, table: rope, B: B, T: T, nh: NH, hs: hs, interleaved: interleaved)
            ropeForward(x: a.k, table: rope, B: B, T: T, nh: NKV, hs: hs, interleaved: interleaved)
            attentionForward(out: a.atty, att: a.att, q: a.q, k: a.k, v: a.v, B: B, T: T, NH: NH, NKV: NKV, hs: hs)
        }
    }

    /// x += atty · Woᵀ
    public func attentionOutput(_ l: Int, _ a: Activations) {
        let N = a.B * a.T, C = config.dim, QD = config.qDim
        a.profile.time(.gemm, flops: 2 * N * QD * C) {
            matmulForward(out: a.proj, inp: a.atty, weight: w(TensorName.attnOutput(l)), N: N, C: QD, OC: C)
        }
        a.profile.time(.norm) { residualAdd(x: a.x, y: a.proj, count: N * C) }
    }

    /// x (B,T,C) -> xn (B,T,C)
    public func ffnNorm(_ l: Int, _ a: Activations) {
        let N = a.B * a.T, C = config.dim
        a.profile.time(.norm) {
            rmsnormForward(out: a.xn, rstd: nil, inp: a.x, weight: w(TensorName.ffnNorm(l)), N: N, C: C, eps: config.normEps)
        }
    }

    /// xn (B,T,C) -> hid (B,T,H) = silu(xn·Wgateᵀ) * (xn·Wupᵀ)
    public func ffnGateUp(_ l: Int, _ a: Activations) {
        let N = a.B * a.T, C = config.dim, H = config.hiddenDim
        a.profile.time(.gemm, flops: 4 * N * C * H) {
            matmulForward(out: a.gate, inp: a.xn, weight: w(TensorName.ffnGate(l)), N: N, C: C, OC: H)
            matmulForward(out: a.up, inp: a.xn, weight: w(TensorName.ffnUp(l)), N: N, C: C, OC: H)
        }
        a.profile.time(.norm) { swigluForward(out: a.hid, gate: a.gate, up: a.up, count: N * H) }
    }

    /// x += hid · Wdownᵀ
    public func ffnDown(_ l: Int, _ a: Activations) {
        let N = a.B * a.T, C = config.dim, H = config.hiddenDim
        a.profile.time(.gemm, flops: 2 * N * H * C) {
            matmulForward(out: a.proj, inp: a.hid, weight: w(TensorName.ffnDown(l)), N: N, C: H, OC: C)
        }
        a.profile.time(.norm) { residualAdd(x: a.x, y: a.proj, count: N * C) }
    }

    /// The fp32 values of a tensor this node holds (row-major, as loaded).
    public func weight(_ name: String) -> [Float] {
        let n = layout.sizes[name]!
        return Array(UnsafeBufferPointer(start: w(name), count: n))
    }

    /// Replaces a held tensor's values (e.g. with its quantized-dequantized version during GPTQ).
    public func setWeight(_ name: String, _ values: [Float]) {
        guard let n = layout.sizes[name] else { preconditionFailure("\(name) is not held by this node") }
        precondition(values.count == n, "\(name): \(values.count) values for \(n)")
        values.withUnsafeBufferPointer { w(name).update(from: $0.baseAddress!, count: n) }
    }

    /// Whether this node holds `name`.
    public func holds(_ name: String) -> Bool { layout.sizes[name] != nil }

    /// acts.x (B,T,C) -> acts.xn (B,T,C): the final norm, the output head's input (its layer Hessian).
    public func outputNorm(_ a: Activations) {
        precondition(hasHead, "this stage does not hold the head")
        rmsnormForward(out: a.xn, rstd: nil, inp: a.x, weight: w(TensorName.outputNorm), N: a.B * a.T, C: config.dim,
                       eps: config.normEps)
    }

    /// acts.x (B,T,C) -> logits (B, T - from, V) for positions from..<T of each sequence.
    public func head(_ a: Activations, from: Int = 0, into logits: UnsafeMutablePointer<Float>) {
        precondition(hasHead, "this stage does not hold the head")
        precondition(from >= 0 && from < a.T)
        let c = config, C = c.dim, V = c.vocabSize, R = a.T - from
        for b in 0..<a.B {
            rmsnormForward(out: a.xn + b * R * C, rstd: nil, inp: a.x + (b * a.T + from) * C,
                           weight: w(TensorName.outputNorm), N: R, C: C, eps: c.normEps)
        }
        let wout = c.tiedEmbeddings ? w(TensorName.tokenEmbedding) : w(TensorName.output)
        a.profile.time(.head, flops: 2 * a.B * R * C * V) {
            matmulForward(out: logits, inp: a.xn, weight: wout, N: a.B * R, C: C, OC: V)
        }
    }

    /// The whole model on one node: tokens (B,T) -> logits (B, T - from, V).
    public func forward(tokens: [Int32], B: Int, T: Int, logitsFrom from: Int = 0) throws -> [Float] {
        let a = Activations(config: config, B: B, T: T)
        try embed(a, tokens: tokens)
        blocks(a)
        let n = B * (T - from) * config.vocabSize
        return [Float](unsafeUninitializedCapacity: n) { buf, count in
            head(a, from: from, into: buf.baseAddress!)
            count = n
        }
    }
}

public enum ModelRuntimeError: Error, CustomStringConvertible {
    case shape(String)
    case token(Int, Int)
    public var description: String {
        switch self {
        case .shape(let s): return "shape mismatch: \(s)"
        case .token(let t, let v): return "token id \(t) outside the vocabulary 0..<\(v) (hint: tokenizer and model disagree)"
        }
    }
}

/// Activations of one forward pass for (B,T), in one arena. Reused across blocks (inference only).
public final class Activations: @unchecked Sendable {
    public let B: Int
    public let T: Int
    let arena: FloatBuffer
    public let x, xn, q, k, v, atty, att, proj, gate, up, hid: UnsafeMutablePointer<Float>
    /// Time per kernel family; off (free) unless enabled.
    public let profile = ForwardProfile()

    public init(config c: ModelConfig, B: Int, T: Int) {
        self.B = B
        self.T = T
        let N = B * T
        var L = BufferLayout()
        let sizes: [(String, Int)] = [
            ("x", N * c.dim), ("xn", N * c.dim), ("q", N * c.qDim), ("k", N * c.kvDim), ("v", N * c.kvDim),
            ("atty", N * c.qDim), ("att", T * T), ("proj", N * c.dim), ("gate", N * c.hiddenDim),
            ("up", N * c.hiddenDim), ("hid", N * c.hiddenDim),
        ]
        for (n, s) in sizes { L.add(n, s) }
        let a = FloatBuffer(count: L.total)
        arena = a
        func p(_ n: String) -> UnsafeMutablePointer<Float> { a.base + L.offset(n) }
        x = p("x"); xn = p("xn"); q = p("q"); k = p("k"); v = p("v"); atty = p("atty"); att = p("att")
        proj = p("proj"); gate = p("gate"); up = p("up"); hid = p("hid")
    }
}

/// Seconds and FLOPs per kernel family of the forward pass, for benchmarks (`hessdist bench forward`).
public final class ForwardProfile: @unchecked Sendable {
    public enum Part: String, CaseIterable, Sendable { case gemm, attention, norm, head }
    public var enabled = false
    public private(set) var seconds: [Part: Double] = [:]
    public private(set) var flops: [Part: Double] = [:]

    @inline(__always)
    func time(_ part: Part, flops f: Int = 0, _ body: () -> Void) {
        guard enabled else { return body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        seconds[part, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        flops[part, default: 0] += Double(f)
    }

    public func reset() {
        seconds = [:]
        flops = [:]
    }
}
