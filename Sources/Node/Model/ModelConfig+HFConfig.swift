// Hugging Face `config.json` for llama-family models (llama, mistral; qwen2 when it has no biases)
// -> `ModelConfig` with the half-split RoPE layout. Not tokenizer or generation configs.
import Foundation

extension ModelConfig {
    /// The `model_type`s we read, and the GGUF architecture each becomes (llama.cpp converts Mistral as llama).
    public static let hfModelTypes: [String: String] = ["llama": "llama", "mistral": "llama", "qwen2": "qwen2"]

    /// Reads `config.json` at `path`.
    public init(hfConfigAt path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ModelFormatError(file: path, field: "file", expected: "a readable config.json",
                                   found: "\(error.localizedDescription)",
                                   hint: "a Hugging Face checkpoint needs config.json beside its safetensors")
        }
        try self.init(hfConfig: data, file: path)
    }

    /// Parses a Hugging Face `config.json`; `file` names it in errors. Missing keys throw naming the key;
    /// `rope_scaling` other than null/"default" throws (no scaled RoPE is implemented). Mistral's
    /// `sliding_window` is ignored: it only matters beyond the window, longer than our calibration contexts.
    public init(hfConfig data: Data, file: String) throws {
        let c = try JSONFields(try JSONValue.parse(data, file: file, field: "config JSON"), file: file)
        let modelType = try c.string("model_type")
        guard let arch = Self.hfModelTypes[modelType] else {
            throw c.fail("model_type", "one of \(Self.hfModelTypes.keys.sorted().joined(separator: ", "))",
                         "\"\(modelType)\"", hint: "only llama-family checkpoints are supported")
        }
        if let act = try c.optionalString("hidden_act"), act != "silu" {
            throw c.fail("hidden_act", "\"silu\" (SwiGLU)", "\"\(act)\"")
        }
        if let scaling = c.optional("rope_scaling") {
            let s = try JSONFields(scaling, file: file, context: "rope_scaling")
            let type = try s.optionalString("rope_type") ?? s.optionalString("type")
            if type != "default" {
                throw ModelFormatError(file: file, field: "rope_scaling",
                                       expected: "null (no RoPE scaling is implemented)",
                                       found: "type \(type.map { "\"\($0)\"" } ?? "missing")",
                                       hint: "RoPE scaling (linear, dynamic, yarn, llama3, ...) is not supported")
            }
        }
        for key in ["attention_bias", "mlp_bias"] where try c.optionalBool(key) == true {
            throw c.fail(key, "false (llama-family layers have no biases)", "true")
        }
        let heads = try c.int("num_attention_heads")
        let dim = try c.int("hidden_size")
        let headDim = try c.optionalInt("head_dim")
        if headDim == nil, heads > 0, dim % heads != 0 {
            throw c.fail("num_attention_heads", "a divisor of hidden_size (\(dim)) when head_dim is absent", "\(heads)")
        }
        self.init(dim: dim, hiddenDim: try c.int("intermediate_size"), nLayers: try c.int("num_hidden_layers"),
                  nHeads: heads, nKVHeads: try c.optionalInt("num_key_value_heads") ?? heads,
                  vocabSize: try c.int("vocab_size"), contextLength: try c.int("max_position_embeddings"),
                  ropeTheta: Float(try c.optionalDouble("rope_theta") ?? 10000),
                  normEps: Float(try c.double("rms_norm_eps")),
                  tiedEmbeddings: try c.optionalBool("tie_word_embeddings") ?? false,
                  ropeLayout: .halfSplit, headDim: headDim)
        architecture = arch
        try validate(file: file)
    }
}
