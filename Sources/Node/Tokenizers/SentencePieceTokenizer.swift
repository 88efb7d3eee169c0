// GGUF `tokenizer.ggml.model = "llama"`: SentencePiece BPE as llama.cpp's llm_tokenizer_spm.
// Spaces become "▁", an optional space prefix, then the adjacent pair whose text is a token with the
// highest score merges first (leftmost on ties); pieces that never formed a token fall back to
// <0xNN> byte tokens. Not the Unigram model (`t5`), and no text normalization.

public struct SentencePieceTokenizer: Tokenizer {
    let vocab: GGUFVocab
    /// `tokenizer.ggml.add_space_prefix` (default true): a " " before text at the start or after a special token.
    public let addSpacePrefix: Bool
    public let addsBOS: Bool
    /// Token of each byte: "<0xNN>", else the one-byte token, else unknown (llama.cpp `byte_to_token`).
    private let byteTokens: [Int32?]

    public var vocabSize: Int { vocab.count }
    public var bosToken: Int32? { vocab.bos }
    public var eosToken: Int32? { vocab.eos }
    public var unknownToken: Int32? { vocab.unk }

    public init(metadata: GGUFMetadata) throws {
        // llama.cpp's defaults for SPM vocabularies: BOS 1, EOS 2, UNK 0, add BOS, add space prefix.
        let v = try GGUFVocab(metadata: metadata, defaultBOS: 1, defaultEOS: 2, defaultUNK: 0)
        vocab = v
        addSpacePrefix = try v.optionalBool(metadata, GGUFKey.addSpacePrefix, default: true)
        addsBOS = try v.optionalBool(metadata, GGUFKey.addBOS, default: true)
        let hex = Array("0123456789ABCDEF".utf8)
        byteTokens = (0..<256).map { b -> Int32? in
            let name: [UInt8] = [0x3C, 0x30, 0x78, hex[b >> 4], hex[b & 15], 0x3E]
            return v.ids.lookup(name) ?? v.ids.lookup([UInt8(b)]) ?? v.unk
        }
    }

    public func encode(_ text: String, addBOS: Bool) -> [Int32] {
        var out: [Int32] = []
        if addBOS, let b = vocab.bos { out.append(b) }
        let bytes = Array(text.utf8)
        var prevSpecial = true
        for frag in vocab.partition(bytes) {
            switch frag {
            case .token(let t):
                out.append(t)
                prevSpecial = true
            case .text(let r):
                // Escape: " " -> "▁" (E2 96 81), with the space prefix first when asked.
                var s: [UInt8] = []
                s.reserveCapacity(r.count * 2 + 3)
                if addSpacePrefix && prevSpecial { s += [0xE2, 0x96, 0x81] }
                for b in bytes[r] {
                    if b == 0x20 { s += [0xE2, 0x96, 0x81] } else { s.append(b) }
                }
                tokenize(s, into: &out)
                prevSpecial = false
            }
        }
        return out
    }

    private struct Bigram {
        var left: Int32
        var right: Int32
        var score: Float
        var size: Int32
    }

    /// llm_tokenizer_spm_session::tokenize over escaped UTF-8.
    private func tokenize(_ s: [UInt8], into out: inout [Int32]) {
        guard !s.isEmpty else { return }
        // Symbols: one per UTF-8 character (lead byte decides the length, clipped at the end).
        var start: [Int32] = [], len: [Int32] = [], prev: [Int32] = [], next: [Int32] = []
        var off = 0
        while off < s.count {
            let n = min(Self.utf8Length(s[off]), s.count - off)
            let idx = Int32(start.count)
            start.append(Int32(off)); len.append(Int32(n))
            prev.append(idx - 1)
            off += n
            next.append(off == s.count ? -1 : idx + 1)
        }
        // Highest score first; equal scores: leftmost first.
        var queue = MergeHeap<Bigram> { a, b in a.score > b.score || (a.score == b.score && a.left < b.left) }
        s.withUnsafeBufferPointer { sp in
            func tryAdd(_ l: Int32, _ r: Int32) {
                guard l >= 0, r >= 0 else { return }
                let a = Int(start[Int(l)]), n = Int(len[Int(l)] + len[Int(r)])
                guard let id = vocab.ids.lookup(UnsafeBufferPointer(rebasing: sp[a..<(a + n)])) else { return }
                queue.push(Bigram(left: l, right: r, score: vocab.scores[Int(id)], size: Int32(n)))
            }
            for i in 1..<start.count { tryAdd(Int32(i - 1), Int32(i)) }
            while let bg = queue.pop() {
                let l = Int(bg.left), r = Int(bg.right)
                // Skip bigrams whose symbols changed since they were queued.
                if len[l] == 0 || len[r] == 0 || len[l] + len[r] != bg.size { continue }
                len[l] += len[r]
                len[r] = 0
                next[l] = next[r]
                if next[r] >= 0 { prev[Int(next[r])] = bg.left }
                tryAdd(prev[l], bg.left)
                tryAdd(bg.left, next[l])
            }
            // Every merged symbol is a token; single characters that are not fall back to bytes.
            var i: Int32 = 0
            while i != -1 {
                let a = Int(start[Int(i)]), n = Int(len[Int(i)])
                let piece = UnsafeBufferPointer(rebasing: sp[a..<(a + n)])
                if let id = vocab.ids.lookup(piece) {
                    out.append(id)
                } else {
                    for b in piece { if let t = byteTokens[Int(b)] { out.append(t) } }
                }
                i = next[Int(i)]
            }
        }
    }

    static func utf8Length(_ lead: UInt8) -> Int {
        switch lead >> 4 {
        case 0xC, 0xD: return 2
        case 0xE: return 3
        case 0xF: return 4
        default: return 1
        }
    }

    /// llama.cpp `token_to_piece(special: false)`: "▁" -> " " for normal tokens, the byte of a byte token,
    /// "▅" for unknown, raw text for user-defined, nothing for control and unused tokens.
    public func decode(_ token: Int32) -> [UInt8] {
        guard token >= 0, Int(token) < vocab.count else { return [] }
        let text = vocab.texts[Int(token)]
        switch vocab.type(token) {
        case .normal:
            var out: [UInt8] = []
            var i = 0
            while i < text.count {
                if i + 2 < text.count, text[i] == 0xE2, text[i + 1] == 0x96, text[i + 2] == 0x81 {
                    out.append(0x20); i += 3
                } else {
                    out.append(text[i]); i += 1
                }
            }
            return out
        case .byte: return Llama2cTokenizer.hexByte(text).map { [$0] } ?? []
        case .unknown: return [0xE2, 0x96, 0x85]
        case .userDefined: return text
        case .control, .unused, .undefined: return []
        }
    }
}
