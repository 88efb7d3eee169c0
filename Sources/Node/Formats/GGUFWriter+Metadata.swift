// The metadata we write: copied from an input GGUF with the quantization keys replaced, or built from
// scratch for the llama architecture (hyperparameters + a llama2.c vocabulary as a SentencePiece one).
// Not the container encoding (`GGUFWriter.swift`).
import HessianDist

/// llama.cpp's `enum llama_ftype` (llama.h), the value of `general.file_type`: what most 2-D weights
/// are stored as. The K-quant mixes (`_S`, `_M`, `_L`) differ in which tensors get more bits; the number
/// is informational (llama.cpp prints it and uses it to guess defaults), the tensor types are what load.
/// Gaps are ids llama.cpp retired (4 Q4_1_SOME_F16, 5 Q4_2, 6 Q4_3) or IQ types we do not write.
public enum LlamaFileType: Int, Sendable, CaseIterable {
    case allF32 = 0
    case mostlyF16 = 1
    case mostlyQ4_0 = 2
    case mostlyQ4_1 = 3
    case mostlyQ8_0 = 7
    case mostlyQ5_0 = 8
    case mostlyQ5_1 = 9
    case mostlyQ2_K = 10
    case mostlyQ3_K_S = 11
    case mostlyQ3_K_M = 12
    case mostlyQ3_K_L = 13
    case mostlyQ4_K_S = 14
    case mostlyQ4_K_M = 15
    case mostlyQ5_K_S = 16
    case mostlyQ5_K_M = 17
    case mostlyQ6_K = 18
    case mostlyIQ4_NL = 25
    case mostlyIQ4_XS = 30
    case mostlyBF16 = 32
    /// llama.cpp has no all-MXFP4 file type; its one MXFP4 mix is for MoE experts.
    case mostlyMXFP4_MOE = 38

    /// The file type whose main weight type is `type` (the `_M` mix for K-quants); nil for Q8_1/Q8_K.
    public init?(mainType type: GGMLType) {
        switch type {
        case .f32: self = .allF32
        case .f16: self = .mostlyF16
        case .bf16: self = .mostlyBF16
        case .q4_0: self = .mostlyQ4_0
        case .q4_1: self = .mostlyQ4_1
        case .q5_0: self = .mostlyQ5_0
        case .q5_1: self = .mostlyQ5_1
        case .q8_0: self = .mostlyQ8_0
        case .q2_K: self = .mostlyQ2_K
        case .q3_K: self = .mostlyQ3_K_M
        case .q4_K: self = .mostlyQ4_K_M
        case .q5_K: self = .mostlyQ5_K_M
        case .q6_K: self = .mostlyQ6_K
        case .iq4_nl: self = .mostlyIQ4_NL
        case .iq4_xs: self = .mostlyIQ4_XS
        case .mxfp4: self = .mostlyMXFP4_MOE
        case .q8_1, .q8_K: return nil
        }
    }
}

public enum GGUFMetadataKey {
    public static let architecture = "general.architecture"
    public static let name = "general.name"
    public static let alignment = "general.alignment"
    public static let fileType = "general.file_type"
    public static let quantizationVersion = "general.quantization_version"
    /// ggml's `GGML_QNT_VERSION`: the current block layouts of the quantized types.
    public static let currentQuantizationVersion: UInt32 = 2
}

/// The metadata of `source` for a re-quantized copy: every key in the source's order, except
/// `general.file_type` (set to `fileType`), `general.quantization_version` (2) and `general.alignment`
/// (`alignment`, or dropped for the default 32), which keep their source position or are appended.
/// `overrides` replace keys in place (or are appended): e.g. a new `general.name`.
public func ggufMetadata(copying source: GGUFMetadata, fileType: Int, alignment: Int? = nil,
                         overrides: [(String, GGUFValue)] = []) -> [(String, GGUFValue)] {
    var replace: [String: GGUFValue] = [
        GGUFMetadataKey.fileType: .uint32(UInt32(fileType)),
        GGUFMetadataKey.quantizationVersion: .uint32(GGUFMetadataKey.currentQuantizationVersion),
    ]
    var order = [GGUFMetadataKey.fileType, GGUFMetadataKey.quantizationVersion]
    if let a = alignment, a != GGUFFile.defaultAlignment {
        replace[GGUFMetadataKey.alignment] = .uint32(UInt32(a))
        order.append(GGUFMetadataKey.alignment)
    }
    for (k, v) in overrides {
        if replace[k] == nil { order.append(k) }
        replace[k] = v
    }
    var out: [(String, GGUFValue)] = []
    var done = Set<String>()
    for k in source.keys {
        if let v = replace[k] {
            out.append((k, v))
            done.insert(k)
        } else if k == GGUFMetadataKey.alignment {
            continue   // default alignment: the key is dropped
        } else if let v = source[k] {
            out.append((k, v))
        }
    }
    for k in order where !done.contains(k) { out.append((k, replace[k]!)) }
    return out
}

/// llama-architecture metadata built from `config` (the keys llama.cpp's `llm_load_hparams` reads, as
/// `convert_hf_to_gguf.py` writes them: counts as uint32, epsilon and RoPE base as float32) and, for a
/// llama2.c tokenizer, a `llama` (SentencePiece) vocabulary. `tokenizer` nil writes no vocabulary.
/// The q/k rows must already be in GGUF's interleaved RoPE order (`permuteRopeRows` for `.halfSplit`).
public func ggufMetadata(for config: ModelConfig, tokenizer: Tokenizer?, name: String,
                         fileType: Int = LlamaFileType.allF32.rawValue) throws -> [(String, GGUFValue)] {
    let arch = config.architecture
    guard GGUFModel.supportedArchitectures.contains(arch) else {
        throw GGUFWriterError(file: name, field: "config.architecture",
                              expected: GGUFModel.supportedArchitectures.joined(separator: " or "), found: arch)
    }
    try config.validate(file: name)
    func u32(_ v: Int) -> GGUFValue { .uint32(UInt32(v)) }
    var md: [(String, GGUFValue)] = [
        (GGUFMetadataKey.architecture, .string(arch)),
        (GGUFMetadataKey.name, .string(name)),
        ("\(arch).context_length", u32(config.contextLength)),
        ("\(arch).embedding_length", u32(config.dim)),
        ("\(arch).block_count", u32(config.nLayers)),
        ("\(arch).feed_forward_length", u32(config.hiddenDim)),
        ("\(arch).rope.dimension_count", u32(config.headDim)),
        ("\(arch).attention.head_count", u32(config.nHeads)),
        ("\(arch).attention.head_count_kv", u32(config.nKVHeads)),
    ]
    if config.headDim * config.nHeads != config.dim {
        md.append(("\(arch).attention.key_length", u32(config.headDim)))
        md.append(("\(arch).attention.value_length", u32(config.headDim)))
    }
    md += [
        ("\(arch).attention.layer_norm_rms_epsilon", .float32(config.normEps)),
        ("\(arch).rope.freq_base", .float32(config.ropeTheta)),
        ("\(arch).vocab_size", u32(config.vocabSize)),
        (GGUFMetadataKey.fileType, u32(fileType)),
        (GGUFMetadataKey.quantizationVersion, .uint32(GGUFMetadataKey.currentQuantizationVersion)),
    ]
    switch tokenizer {
    case nil:
        break
    case let t as Llama2cTokenizer:
        guard t.vocabSize == config.vocabSize else {
            throw GGUFWriterError(file: t.path, field: "tokenizer vocab size", expected: "\(config.vocabSize) (the model's)",
                                  found: "\(t.vocabSize)", hint: "the tokenizer does not belong to this model")
        }
        md += try llamaVocabMetadata(t)
    default:
        throw GGUFWriterError(file: name, field: "tokenizer", expected: "a llama2.c tokenizer (or none)",
                              found: "\(type(of: tokenizer!))",
                              hint: "a tokenizer read from GGUF is copied with ggufMetadata(copying:fileType:)")
    }
    return md
}

/// A llama2.c vocabulary as GGUF `llama` tokenizer metadata, as llama.cpp's convert-llama2c-to-ggml
/// loads one: ids 0, 1, 2 are `<unk>` (unknown), `<s>`, `</s>` (control) — llama2.c stores the latter
/// two as "\n<s>\n" and "\n</s>\n"; empty pieces are control tokens; "<0xNN>" pieces are byte tokens;
/// in all others the spaces llama2.c stores become SentencePiece's "▁" (U+2581). Scores are copied.
func llamaVocabMetadata(_ t: Llama2cTokenizer) throws -> [(String, GGUFValue)] {
    var tokens: [GGUFValue] = [], scores: [GGUFValue] = [], types: [GGUFValue] = []
    tokens.reserveCapacity(t.vocabSize)
    for (i, piece) in t.pieces.enumerated() {
        let text: String
        let type: GGUFTokenType
        switch i {
        case 0: (text, type) = ("<unk>", .unknown)
        case 1: (text, type) = ("<s>", .control)
        case 2: (text, type) = ("</s>", .control)
        default:
            let s = String(decoding: piece, as: UTF8.self)
            guard s.utf8.elementsEqual(piece) else {
                throw GGUFWriterError(file: t.path, field: "token \(i)", expected: "valid UTF-8",
                                      found: "\(piece.count) bytes that are not",
                                      hint: "GGUF token texts are UTF-8 strings")
            }
            if piece.isEmpty {
                (text, type) = (s, .control)
            } else if Llama2cTokenizer.hexByte(piece) != nil {
                (text, type) = (s, .byte)
            } else {
                (text, type) = (s.replacingSpaces(), .normal)
            }
        }
        tokens.append(.string(text))
        scores.append(.float32(t.scores[i]))
        types.append(.int32(Int32(type.rawValue)))
    }
    return [
        (GGUFKey.model, .string("llama")),
        (GGUFKey.tokens, .array(tokens)),
        (GGUFKey.scores, .array(scores)),
        (GGUFKey.tokenType, .array(types)),
        (GGUFKey.bos, .uint32(1)),
        (GGUFKey.eos, .uint32(2)),
        (GGUFKey.unk, .uint32(0)),
    ]
}

private extension String {
    /// " " -> "▁" (U+2581), SentencePiece's visible space.
    func replacingSpaces() -> String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0 == " " ? "\u{2581}" : $0 }))
    }
}
