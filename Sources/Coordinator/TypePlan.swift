// Which ggml type each tensor of a GGUF export gets: the requested type for block linears, llama.cpp's
// defaults for the embedding and output, F32 for norms, and an explicit, reported fallback when a row
// length is not a whole number of the type's blocks (SmolLM2's 576 is not a multiple of 256).
import HessianDist
import Node

public struct TypeChoice: Sendable, Codable {
    public var name: String
    public var type: String
    /// Why the requested type was not used, if it was not.
    public var fallbackFrom: String?
}

public struct TypePlan: Sendable {
    public var types: [String: GGMLType]
    public var choices: [TypeChoice]
    /// Per-column importance (an imatrix) for tensors the export quantizes itself, i.e. not block linears:
    /// the embedding of a mixed plan, quantized with the statistics its price was measured with.
    public var importance: [String: [Float]] = [:]

    /// llama.cpp's fallbacks for k-quants on rows that are not multiples of 256 (`tensor_type_fallback` in
    /// llama-quant.cpp, which sends Q2_K and Q3_K to Q4_0 and IQ4_XS to IQ4_NL).
    public static func fallback(for t: GGMLType) -> GGMLType {
        switch t {
        case .q2_K, .q3_K: return .q4_0
        case .q4_K: return .q5_0
        case .q5_K: return .q5_1
        case .q6_K: return .q8_0
        case .iq4_xs: return .iq4_nl
        default: return .f16
        }
    }

    /// `linear` for block weights; `embedding` and `output` default as llama.cpp's mixes do: a tied embedding
    /// serves as the output and gets Q6_K (falling back to Q8_0), an untied one gets `linear`'s type and the
    /// separate output Q6_K.
    public init(config c: ModelConfig, tensors: [TensorInfo], linear: GGMLType, embedding: GGMLType?, output: GGMLType?) {
        var types: [String: GGMLType] = [:]
        var choices: [TypeChoice] = []
        for t in tensors {
            var want: GGMLType
            if t.shape.count == 1 {
                want = .f32
            } else if t.name == TensorName.tokenEmbedding {
                want = embedding ?? (c.tiedEmbeddings ? .q6_K : linear)
            } else if t.name == TensorName.output {
                want = output ?? .q6_K
            } else {
                want = linear
            }
            var chosen = want
            var from: String? = nil
            let cols = t.shape.last ?? 1
            while !(chosen == .f32 || chosen == .f16 || cols % chosen.blockSize == 0) {
                chosen = Self.fallback(for: chosen)
            }
            if chosen != want { from = want.description }
            types[t.name] = chosen
            choices.append(TypeChoice(name: t.name, type: chosen.description, fallbackFrom: from))
        }
        self.types = types
        self.choices = choices
    }

    /// The file type llama.cpp would record: the linear type's mix.
    public static func fileType(for linear: GGMLType) -> Int {
        (LlamaFileType(mainType: linear) ?? .allF32).rawValue
    }
}
