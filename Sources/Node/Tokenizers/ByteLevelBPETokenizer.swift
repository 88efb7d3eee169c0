// GGUF `tokenizer.ggml.model = "gpt2"`: byte-level BPE as llama.cpp's llm_tokenizer_bpe.
// Text -> pre-tokenizer words (PreTokenizer) -> UTF-8 bytes, each byte one GPT-2 "byte character"
// -> merges by rank (lowest first, leftmost on ties) over token ids. Words are cached per call.
// Not SentencePiece; control tokens in the text stay text (parse_special = false).

public struct ByteLevelBPETokenizer: Tokenizer {
    let vocab: GGUFVocab
    public let preTokenizer: PreTokenizer
    public let addsBOS: Bool
    /// llama3/tekken-style: a word that is itself a token is not merged (llama.cpp `ignore_merges`).
    public let ignoreMerges: Bool
    /// Token id of each byte's GPT-2 character (-1 when the vocabulary lacks it).
    private let byteToken: [Int32]
    /// (left id << 32 | right id) -> (rank << 32 | merged id).
    private let merges: [UInt64: UInt64]
    /// Token texts decoded from byte characters to raw bytes -> id (for ignore_merges).
    private let rawIDs: ByteStringTable
    /// Raw bytes of each token (byte characters decoded), for decode.
    private let rawBytes: [[UInt8]]

    public var vocabSize: Int { vocab.count }
    public var bosToken: Int32? { vocab.bos }
    public var eosToken: Int32? { vocab.eos }

    public init(metadata m: GGUFMetadata) throws {
        // llama.cpp's BPE defaults: BOS = EOS = 11, no UNK; the metadata normally overrides them.
        let v = try GGUFVocab(metadata: m, defaultBOS: 11, defaultEOS: 11, defaultUNK: nil)
        vocab = v
        let preName = m[GGUFKey.pre] == nil ? "default" : try m.string(GGUFKey.pre)
        guard let pre = PreTokenizer.named(preName) else {
            throw ModelFormatError(file: m.file, field: "metadata \(GGUFKey.pre)",
                                   expected: "a supported pre-tokenizer (default, gpt-2, smollm, llama-bpe, qwen2, ...)",
                                   found: "\"\(preName)\"", hint: "this pre-tokenizer's regexes are not implemented")
        }
        preTokenizer = pre
        let llama3Group = ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"]
        ignoreMerges = llama3Group.contains(preName)
        addsBOS = try v.optionalBool(m, GGUFKey.addBOS, default: llama3Group.contains(preName))

        // GPT-2 bytes <-> unicode: printable Latin-1 bytes map to themselves, the rest to U+0100 onwards.
        let (toChar, toByte) = Self.byteCharMaps()
        byteToken = (0..<256).map { b in v.ids.lookup(Array(String(toChar[b]).utf8)) ?? -1 }
        var raw: [[UInt8]] = []
        raw.reserveCapacity(v.count)
        var rawIDs = ByteStringTable(capacity: v.count)
        for (i, t) in v.texts.enumerated() {
            var bytes: [UInt8] = []
            var ok = true
            for u in String(decoding: t, as: UTF8.self).unicodeScalars {
                if let b = toByte[u.value] { bytes.append(b) } else { ok = false; bytes += Array(String(u).utf8) }
            }
            raw.append(bytes)
            if ok { rawIDs.insert(bytes, Int32(i), overwrite: true) }
        }
        rawBytes = raw
        self.rawIDs = rawIDs

        // Merges "left right" -> rank. Pairs whose parts or result are not tokens can never apply to ids.
        let list = try m.stringArray(GGUFKey.merges)
        var merges: [UInt64: UInt64] = [:]
        merges.reserveCapacity(list.count)
        for (rank, line) in list.enumerated() {
            let u = Array(line.utf8)
            // llama.cpp splits at the first space after the first byte.
            guard u.count >= 2, let sp = u[1...].firstIndex(of: 0x20) else { continue }
            let left = Array(u[..<sp]), right = Array(u[(sp + 1)...])
            guard let l = v.ids.lookup(left), let r = v.ids.lookup(right), let res = v.ids.lookup(left + right)
            else { continue }
            let key = UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))
            if merges[key] == nil { merges[key] = UInt64(rank) << 32 | UInt64(UInt32(bitPattern: res)) }
        }
        self.merges = merges
    }

    static func byteCharMaps() -> (toChar: [Unicode.Scalar], toByte: [UInt32: UInt8]) {
        var toChar = [Unicode.Scalar](repeating: "\0", count: 256)
        var toByte: [UInt32: UInt8] = [:]
        var n: UInt32 = 0
        for b in 0..<256 {
            let direct = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            let cp = direct ? UInt32(b) : 256 + n
            if !direct { n += 1 }
            toChar[b] = Unicode.Scalar(cp)!
            toByte[cp] = UInt8(b)
        }
        return (toChar, toByte)
    }

    public func encode(_ text: String, addBOS: Bool) -> [Int32] {
        var out: [Int32] = []
        if addBOS, let b = vocab.bos { out.append(b) }
        let bytes = Array(text.utf8)
        var cache: [[UInt8]: [Int32]] = [:]
        for frag in vocab.partition(bytes) {
            switch frag {
            case .token(let t): out.append(t)
            case .text(let r): encodeText(bytes[r], into: &out, cache: &cache)
            }
        }
        return out
    }

    private func encodeText(_ text: ArraySlice<UInt8>, into out: inout [Int32], cache: inout [[UInt8]: [Int32]]) {
        let scalars = String(decoding: text, as: UTF8.self).unicodeScalars.map(\.value)
        let classes = scalars.map { ScalarClass.of(Unicode.Scalar($0)!) }
        var word: [UInt8] = []
        for piece in preTokenizer.split(scalars, classes) {
            word.removeAll(keepingCapacity: true)
            for i in piece { Self.appendUTF8(scalars[i], to: &word) }
            if let hit = cache[word] { out += hit; continue }
            let ids = bpe(word)
            cache[word] = ids
            out += ids
        }
    }

    static func appendUTF8(_ v: UInt32, to a: inout [UInt8]) {
        switch v {
        case 0..<0x80: a.append(UInt8(v))
        case 0x80..<0x800:
            a.append(UInt8(0xC0 | (v >> 6))); a.append(UInt8(0x80 | (v & 0x3F)))
        case 0x800..<0x10000:
            a.append(UInt8(0xE0 | (v >> 12))); a.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            a.append(UInt8(0x80 | (v & 0x3F)))
        default:
            a.append(UInt8(0xF0 | (v >> 18))); a.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
            a.append(UInt8(0x80 | ((v >> 6) & 0x3F))); a.append(UInt8(0x80 | (v & 0x3F)))
        }
    }

    /// Merges one word's byte tokens: repeatedly the adjacent pair of lowest rank, leftmost on ties
    /// (what llama.cpp's queue, ordered by (rank, left index), produces).
    func bpe(_ word: [UInt8]) -> [Int32] {
        if ignoreMerges, let id = rawIDs.lookup(word) { return [id] }
        var syms = word.map { byteToken[Int($0)] }
        if syms.count > 1 {
            // rank[k] for pair (syms[k], syms[k+1]); Int.max = no merge.
            var rank = [Int](repeating: .max, count: syms.count - 1)
            var result = [Int32](repeating: -1, count: syms.count - 1)
            func look(_ k: Int) {
                let l = syms[k], r = syms[k + 1]
                rank[k] = .max
                guard l >= 0, r >= 0,
                      let m = merges[UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))] else { return }
                rank[k] = Int(m >> 32)
                result[k] = Int32(bitPattern: UInt32(truncatingIfNeeded: m))
            }
            for k in 0..<rank.count { look(k) }
            while true {
                var best = -1, bestRank = Int.max
                for k in 0..<rank.count where rank[k] < bestRank { bestRank = rank[k]; best = k }
                if best < 0 { break }
                syms[best] = result[best]
                syms.remove(at: best + 1)
                rank.remove(at: best)
                result.remove(at: best)
                if best > 0 { look(best - 1) }
                if best < rank.count { look(best) }
            }
        }
        // A byte whose character is not a token has no id; llama.cpp drops it too.
        return syms.filter { $0 >= 0 }
    }

    /// llama.cpp `token_to_piece(special: false)`: byte characters back to bytes; control tokens print nothing.
    public func decode(_ token: Int32) -> [UInt8] {
        guard token >= 0, Int(token) < vocab.count else { return [] }
        switch vocab.type(token) {
        case .control, .unused: return []
        case .userDefined: return vocab.texts[Int(token)]
        default: return rawBytes[Int(token)]
        }
    }
}
