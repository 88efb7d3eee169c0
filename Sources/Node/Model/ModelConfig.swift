// One description of a LLaMA-family model, whatever file it came from (GGUF, safetensors + config.json,
// llama2.c .bin). Not the weights: those come from a `WeightSource`.

/// How RoPE pairs the dimensions of a head.
public enum RopeLayout: String, Sendable, Codable {
    /// GGUF (llama arch) and llama2.c: dimensions (2i, 2i+1) rotate together with frequency i.
    case interleaved
    /// Hugging Face checkpoints (`rotate_half`): dimensions (i, i + d/2) rotate together with frequency i.
    /// `convert_hf_to_gguf.py` permutes the rows of q and k to turn this into `.interleaved`.
    case halfSplit
}

public struct ModelConfig: Sendable, Equatable, Codable {
    public var architecture: String = "llama"
    /// Model width C.
    public var dim: Int
    /// SwiGLU hidden width.
    public var hiddenDim: Int
    public var nLayers: Int
    public var nHeads: Int
    public var nKVHeads: Int
    public var vocabSize: Int
    /// Longest context the model was trained for.
    public var contextLength: Int
    public var ropeTheta: Float
    public var normEps: Float
    /// The output projection reuses the token embedding.
    public var tiedEmbeddings: Bool
    public var ropeLayout: RopeLayout
    /// Head size; `dim / nHeads` for every model we read.
    public var headDim: Int

    public init(dim: Int, hiddenDim: Int, nLayers: Int, nHeads: Int, nKVHeads: Int, vocabSize: Int,
                contextLength: Int, ropeTheta: Float = 10000, normEps: Float = 1e-5,
                tiedEmbeddings: Bool, ropeLayout: RopeLayout, headDim: Int? = nil) {
        self.dim = dim
        self.hiddenDim = hiddenDim
        self.nLayers = nLayers
        self.nHeads = nHeads
        self.nKVHeads = nKVHeads
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.ropeTheta = ropeTheta
        self.normEps = normEps
        self.tiedEmbeddings = tiedEmbeddings
        self.ropeLayout = ropeLayout
        self.headDim = headDim ?? (nHeads > 0 ? dim / nHeads : 0)
    }

    public var kvDim: Int { nKVHeads * headDim }
    public var qDim: Int { nHeads * headDim }

    /// Checks the numbers agree with each other; `file` names the source in the error.
    public func validate(file: String) throws {
        func fail(_ field: String, _ expected: String, _ found: Any) throws -> Never {
            throw ModelFormatError(file: file, field: field, expected: expected, found: "\(found)")
        }
        if dim <= 0 || dim > 1 << 16 { try fail("dim", "1...65536", dim) }
        if hiddenDim <= 0 || hiddenDim > 1 << 18 { try fail("hidden_dim", "1...262144", hiddenDim) }
        if nLayers <= 0 || nLayers > 1024 { try fail("n_layers", "1...1024", nLayers) }
        if nHeads <= 0 || nHeads > dim { try fail("n_heads", "1...dim", nHeads) }
        if nKVHeads <= 0 || nHeads % nKVHeads != 0 { try fail("n_kv_heads", "a divisor of n_heads (\(nHeads))", nKVHeads) }
        if headDim <= 0 || headDim % 2 != 0 { try fail("head_dim", "a positive even number", headDim) }
        if vocabSize <= 0 || vocabSize > 1 << 22 { try fail("vocab_size", "1...4194304", vocabSize) }
        if contextLength <= 0 { try fail("context_length", "> 0", contextLength) }
        if !(ropeTheta > 0) { try fail("rope_theta", "> 0", ropeTheta) }
        if !(normEps > 0) { try fail("norm_eps", "> 0", normEps) }
    }

    /// Shapes (rows, cols) of every canonical tensor, rows = output features (PyTorch Linear layout).
    public func expectedShapes() -> [(name: String, shape: [Int])] {
        var out: [(String, [Int])] = [(TensorName.tokenEmbedding, [vocabSize, dim])]
        for l in 0..<nLayers {
            out.append((TensorName.attnNorm(l), [dim]))
            out.append((TensorName.attnQ(l), [qDim, dim]))
            out.append((TensorName.attnK(l), [kvDim, dim]))
            out.append((TensorName.attnV(l), [kvDim, dim]))
            out.append((TensorName.attnOutput(l), [dim, qDim]))
            out.append((TensorName.ffnNorm(l), [dim]))
            out.append((TensorName.ffnGate(l), [hiddenDim, dim]))
            out.append((TensorName.ffnUp(l), [hiddenDim, dim]))
            out.append((TensorName.ffnDown(l), [dim, hiddenDim]))
        }
        out.append((TensorName.outputNorm, [dim]))
        if !tiedEmbeddings { out.append((TensorName.output, [vocabSize, dim])) }
        return out
    }

    /// Parameters counted once (a tied output is not counted twice).
    public var parameterCount: Int { expectedShapes().reduce(0) { $0 + $1.shape.reduce(1, *) } }
}

/// Canonical tensor names: llama.cpp's GGUF names, whatever the source format calls them.
public enum TensorName {
    public static let tokenEmbedding = "token_embd.weight"
    public static let outputNorm = "output_norm.weight"
    public static let output = "output.weight"
    public static func attnNorm(_ l: Int) -> String { "blk.\(l).attn_norm.weight" }
    public static func attnQ(_ l: Int) -> String { "blk.\(l).attn_q.weight" }
    public static func attnK(_ l: Int) -> String { "blk.\(l).attn_k.weight" }
    public static func attnV(_ l: Int) -> String { "blk.\(l).attn_v.weight" }
    public static func attnOutput(_ l: Int) -> String { "blk.\(l).attn_output.weight" }
    public static func ffnNorm(_ l: Int) -> String { "blk.\(l).ffn_norm.weight" }
    public static func ffnGate(_ l: Int) -> String { "blk.\(l).ffn_gate.weight" }
    public static func ffnUp(_ l: Int) -> String { "blk.\(l).ffn_up.weight" }
    public static func ffnDown(_ l: Int) -> String { "blk.\(l).ffn_down.weight" }
}
