// A LLaMA-family GGUF as a `WeightSource`: `{arch}.*` metadata to `ModelConfig`, tensors dequantized
// with `dequantizeRow`. Not the container parsing (`GGUFFile`) and not the tokenizer (reads `gguf.metadata`).
import HessianDist

public final class GGUFModel: WeightSource {
    public let path: String
    /// The container, for readers of other metadata (tokenizers, chat templates).
    public let gguf: GGUFFile
    public let config: ModelConfig
    public let tensors: [TensorInfo]
    public var format: String { "GGUF v\(gguf.version)" }

    /// Architectures whose tensors and hyperparameters are llama's under their own key prefix.
    public static let supportedArchitectures = ["llama", "mistral"]

    public init(path: String, file: MappedFile? = nil) throws {
        self.path = path
        let gguf = try GGUFFile(path: path, file: file)
        self.gguf = gguf
        self.tensors = gguf.tensors.map { TensorInfo(name: $0.name, shape: $0.shape, type: $0.type) }
        self.config = try Self.config(gguf, path: path)
        try validateShapes()
    }

    /// Reads the hyperparameters; optional keys get llama.cpp's defaults.
    static func config(_ gguf: GGUFFile, path: String) throws -> ModelConfig {
        let md = gguf.metadata
        let arch = try md.string("general.architecture")
        guard supportedArchitectures.contains(arch) else {
            throw ModelFormatError(file: path, field: "metadata general.architecture",
                                   expected: supportedArchitectures.joined(separator: " or "), found: arch,
                                   hint: "only LLaMA-family models are supported")
        }
        func key(_ k: String) -> String { "\(arch).\(k)" }
        let heads = try md.int(key("attention.head_count"))
        let kvHeads = md[key("attention.head_count_kv")] == nil ? heads : try md.int(key("attention.head_count_kv"))
        // llama.cpp's default base when a converter omitted it (`rope_freq_base_train` = 10000).
        let theta = md[key("rope.freq_base")] == nil ? 10000 : try md.double(key("rope.freq_base"))
        let headDim = md[key("attention.key_length")] == nil ? nil : try md.int(key("attention.key_length"))
        var config = ModelConfig(
            dim: try md.int(key("embedding_length")),
            hiddenDim: try md.int(key("feed_forward_length")),
            nLayers: try md.int(key("block_count")),
            nHeads: heads,
            nKVHeads: kvHeads,
            vocabSize: try vocabSize(gguf, key: key("vocab_size")),
            contextLength: try md.int(key("context_length")),
            ropeTheta: Float(theta),
            normEps: Float(try md.double(key("attention.layer_norm_rms_epsilon"))),
            tiedEmbeddings: gguf.tensor(TensorName.output) == nil,
            ropeLayout: .interleaved,
            headDim: headDim)
        config.architecture = arch
        try config.validate(file: path)
        return config
    }

    /// `{arch}.vocab_size`, else the tokenizer's token count, else the embedding's rows.
    static func vocabSize(_ gguf: GGUFFile, key: String) throws -> Int {
        if gguf.metadata[key] != nil { return try gguf.metadata.int(key) }
        if let tokens = gguf.metadata["tokenizer.ggml.tokens"]?.array { return tokens.count }
        guard let emb = gguf.tensor(TensorName.tokenEmbedding), emb.ne.count == 2 else {
            throw ModelFormatError(file: gguf.path, field: "metadata \(key)", expected: "a vocabulary size",
                                   found: "no \(key), tokenizer.ggml.tokens or 2-D \(TensorName.tokenEmbedding)")
        }
        return emb.ne[1]
    }

    public func dequantize(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let t = gguf.tensor(name) else {
            throw ModelFormatError(file: path, field: "tensor \(name)", expected: "present", found: "missing")
        }
        guard out.count == t.elementCount else {
            throw ModelFormatError(file: path, field: "tensor \(name)", expected: "\(t.elementCount) floats",
                                   found: "a buffer of \(out.count)")
        }
        try gguf.withTensorBytes(name) { raw in try dequantizeRow(t.type, from: raw, into: out) }
    }
}
