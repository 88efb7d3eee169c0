// The vocabulary part of GGUF tokenizer metadata (tokens, scores, token types, special ids) shared by
// the `llama` (SentencePiece) and `gpt2` (byte-level BPE) tokenizers, and the factory choosing one.
// Follows llama.cpp's llama_vocab::load; not a GGUF file reader (that takes a GGUFMetadata).

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`).
public enum GGUFTokenType: Int, Sendable {
    case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

enum GGUFKey {
    static let model = "tokenizer.ggml.model"
    static let pre = "tokenizer.ggml.pre"
    static let tokens = "tokenizer.ggml.tokens"
    static let scores = "tokenizer.ggml.scores"
    static let tokenType = "tokenizer.ggml.token_type"
    static let merges = "tokenizer.ggml.merges"
    static let bos = "tokenizer.ggml.bos_token_id"
    static let eos = "tokenizer.ggml.eos_token_id"
    static let unk = "tokenizer.ggml.unknown_token_id"
    static let addBOS = "tokenizer.ggml.add_bos_token"
    static let addSpacePrefix = "tokenizer.ggml.add_space_prefix"
}

/// Picks the tokenizer named by `tokenizer.ggml.model`: `llama` (SentencePiece BPE) or `gpt2` (byte-level BPE).
public func makeGGUFTokenizer(metadata: GGUFMetadata) throws -> Tokenizer {
    let model = try metadata.string(GGUFKey.model)
    switch model {
    case "llama": return try SentencePieceTokenizer(metadata: metadata)
    case "gpt2": return try ByteLevelBPETokenizer(metadata: metadata)
    default:
        throw ModelFormatError(file: metadata.file, field: "metadata \(GGUFKey.model)",
                               expected: "\"llama\" or \"gpt2\"", found: "\"\(model)\"",
                               hint: "this tokenizer type is not supported")
    }
}

/// A piece of input text after user-defined tokens were cut out of it (llama.cpp `tokenizer_st_partition`).
enum TextFragment {
    case text(Range<Int>)
    case token(Int32)
}

struct GGUFVocab: Sendable {
    let file: String
    /// Each token's text as UTF-8 bytes (empty texts become "[EMPTY_i]" as in llama.cpp).
    let texts: [[UInt8]]
    let scores: [Float]
    let types: [GGUFTokenType]
    /// Token text -> id; a later duplicate wins, as llama.cpp's `token_to_id[word] = i`.
    let ids: ByteStringTable
    let bos: Int32?
    let eos: Int32?
    let unk: Int32?
    /// User-defined tokens, longest first: llama.cpp splits them out of text even with parse_special = false.
    let userDefined: [Int32]

    init(metadata m: GGUFMetadata, defaultBOS: Int32?, defaultEOS: Int32?, defaultUNK: Int32?) throws {
        file = m.file
        let tokens = try m.stringArray(GGUFKey.tokens)
        let n = tokens.count
        guard n > 0, n <= Int(Int32.max) else {
            throw ModelFormatError(file: m.file, field: "metadata \(GGUFKey.tokens)", expected: "a non-empty array",
                                   found: "\(n) tokens")
        }
        var texts: [[UInt8]] = []
        texts.reserveCapacity(n)
        var table = ByteStringTable(capacity: n)
        for (i, t) in tokens.enumerated() {
            let bytes = t.isEmpty ? Array("[EMPTY_\(i)]".utf8) : Array(t.utf8)
            texts.append(bytes)
            table.insert(bytes, Int32(i), overwrite: true)
        }
        self.texts = texts
        self.ids = table

        // Scores and types are optional in llama.cpp (0 and normal when absent); when present, one per token.
        if m[GGUFKey.scores] != nil {
            let s = try m.doubleArray(GGUFKey.scores)
            guard s.count == n else {
                throw ModelFormatError(file: m.file, field: "metadata \(GGUFKey.scores)",
                                       expected: "\(n) scores (one per token)", found: "\(s.count)")
            }
            scores = s.map { Float($0) }
        } else {
            scores = Array(repeating: 0, count: n)
        }
        if m[GGUFKey.tokenType] != nil {
            let t = try m.intArray(GGUFKey.tokenType)
            guard t.count == n else {
                throw ModelFormatError(file: m.file, field: "metadata \(GGUFKey.tokenType)",
                                       expected: "\(n) token types (one per token)", found: "\(t.count)")
            }
            types = t.map { GGUFTokenType(rawValue: $0) ?? .undefined }
        } else {
            types = Array(repeating: .normal, count: n)
        }

        // Special ids: the metadata wins when it names a token inside the vocabulary (llama.cpp ignores others).
        func special(_ key: String, _ fallback: Int32?) -> Int32? {
            if let v = m[key]?.int, v >= 0, v < n { return Int32(v) }
            if let f = fallback, f >= 0, Int(f) < n { return f }
            return nil
        }
        bos = special(GGUFKey.bos, defaultBOS)
        eos = special(GGUFKey.eos, defaultEOS)
        unk = special(GGUFKey.unk, defaultUNK)
        let ty = types
        userDefined = (0..<n).filter { ty[$0] == .userDefined }
            .sorted { texts[$0].count > texts[$1].count }.map { Int32($0) }
    }

    var count: Int { texts.count }

    func type(_ t: Int32) -> GGUFTokenType { t >= 0 && Int(t) < types.count ? types[Int(t)] : .undefined }

    func optionalBool(_ m: GGUFMetadata, _ key: String, default d: Bool) throws -> Bool {
        m[key] == nil ? d : try m.bool(key)
    }

    /// Cuts user-defined tokens out of `bytes`, longest token first, leftmost occurrence first.
    func partition(_ bytes: [UInt8]) -> [TextFragment] {
        guard !bytes.isEmpty else { return [] }
        var frags: [TextFragment] = [.text(0..<bytes.count)]
        if userDefined.isEmpty { return frags }
        for id in userDefined {
            let needle = texts[Int(id)]
            var out: [TextFragment] = []
            for f in frags {
                guard case .text(let r) = f else { out.append(f); continue }
                var from = r.lowerBound
                var i = r.lowerBound
                while i + needle.count <= r.upperBound {
                    if bytes[i] == needle[0], bytes[i..<(i + needle.count)].elementsEqual(needle) {
                        if i > from { out.append(.text(from..<i)) }
                        out.append(.token(id))
                        i += needle.count
                        from = i
                    } else {
                        i += 1
                    }
                }
                if from < r.upperBound { out.append(.text(from..<r.upperBound)) }
            }
            frags = out
        }
        return frags
    }
}
