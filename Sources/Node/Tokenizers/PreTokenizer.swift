// Pre-tokenizer regexes of byte-level BPE vocabularies, chosen by `tokenizer.ggml.pre` as llama.cpp's
// llm_tokenizer_bpe does, written as hand-made scanners over Unicode scalars (no regex engine).
// Each stage splits every piece of the previous stage; text between matches stays a piece, as in
// llama.cpp's unicode_regex_split. Only the families below are implemented.

/// Per-scalar classes the regexes need (llama.cpp `unicode_cpt_flags`).
struct ScalarClass: OptionSet {
    let rawValue: UInt8
    static let letter = ScalarClass(rawValue: 1)       // \p{L}
    static let number = ScalarClass(rawValue: 2)       // \p{N}
    static let whitespace = ScalarClass(rawValue: 4)   // \s: Unicode White_Space
    static let punctuation = ScalarClass(rawValue: 8) // \p{P}
    static let present = ScalarClass(rawValue: 128)   // any scalar inside the piece (0 = out of range)

    static let ascii: [ScalarClass] = (0..<128).map { classify(Unicode.Scalar(UInt8($0))) }

    static func of(_ s: Unicode.Scalar) -> ScalarClass { s.value < 128 ? ascii[Int(s.value)] : classify(s) }

    static func classify(_ s: Unicode.Scalar) -> ScalarClass {
        var c: ScalarClass = .present
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            c.insert(.letter)
        case .decimalNumber, .letterNumber, .otherNumber:
            c.insert(.number)
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            c.insert(.punctuation)
        default: break
        }
        if s.properties.isWhitespace { c.insert(.whitespace) }
        return c
    }
}

/// The split rules of one `tokenizer.ggml.pre` family.
public enum PreTokenizer: String, Sendable {
    /// llama.cpp's default for BPE: punctuation runs, GPT-2 pattern, number runs, 3-digit groups.
    case `default`
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// Each \p{N} alone, then the GPT-2 pattern (smollm, starcoder, refact, command-r, codeshell, ...).
    case smollm
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case llama3
    /// As llama3 with `\p{N}` (single digits) instead of `\p{N}{1,3}`.
    case qwen2

    /// llama.cpp's mapping of `tokenizer.ggml.pre` values to these families; nil for names not handled here.
    /// A missing key means `default`. "gpt2" is accepted as an alias of llama.cpp's "gpt-2".
    public static func named(_ pre: String) -> PreTokenizer? {
        switch pre {
        case "default": return .default
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
             "dbrx", "smaug-bpe":
            return .llama3
        case "gpt-2", "gpt2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
             "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais",
             "exaone4", "trillion", "granite-docling":
            return .gpt2
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b":
            return .smollm
        case "qwen2", "deepseek-r1-qwen", "kormo", "megrez", "stablelm2", "hunyuan", "solar-open":
            return .qwen2
        default: return nil
        }
    }

    /// Splits `s` (with classes `c`) into pieces, as ranges of scalar indices in order.
    func split(_ s: [UInt32], _ c: [ScalarClass]) -> [Range<Int>] {
        let all = s.isEmpty ? [] : [0..<s.count]
        switch self {
        case .gpt2: return Self.gpt2(s, c, all)
        case .smollm: return Self.gpt2(s, c, Self.isolate(c, all, .number))
        case .llama3: return Self.llama3(s, c, all, digits: 3)
        case .qwen2: return Self.llama3(s, c, all, digits: 1)
        case .default:
            let punct = Self.runs(all) { i in
                c[i].contains(.punctuation) || [0x24, 0x2B, 0x3C, 0x3D, 0x3E, 0x5E, 0x7E, 0x7C].contains(s[i])
            }
            let numberRuns = Self.runs(Self.gpt2(s, c, punct)) { c[$0].contains(.number) }
            return Self.asciiDigitTriples(s, numberRuns)
        }
    }

    /// `\p{N}`: each number scalar is a piece of its own.
    static func isolate(_ c: [ScalarClass], _ pieces: [Range<Int>], _ cls: ScalarClass) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(pieces.count)
        for p in pieces {
            var from = p.lowerBound
            for i in p where c[i].contains(cls) {
                if i > from { out.append(from..<i) }
                out.append(i..<(i + 1))
                from = i + 1
            }
            if from < p.upperBound { out.append(from..<p.upperBound) }
        }
        return out
    }

    /// `[...]+`: maximal runs of scalars satisfying `member` are pieces.
    static func runs(_ pieces: [Range<Int>], _ member: (Int) -> Bool) -> [Range<Int>] {
        var out: [Range<Int>] = []
        for p in pieces {
            var from = p.lowerBound
            var i = p.lowerBound
            while i < p.upperBound {
                if member(i) {
                    var j = i + 1
                    while j < p.upperBound, member(j) { j += 1 }
                    if i > from { out.append(from..<i) }
                    out.append(i..<j)
                    from = j
                    i = j
                } else {
                    i += 1
                }
            }
            if from < p.upperBound { out.append(from..<p.upperBound) }
        }
        return out
    }

    /// `[0-9][0-9][0-9]`: leftmost non-overlapping triples of ASCII digits.
    static func asciiDigitTriples(_ s: [UInt32], _ pieces: [Range<Int>]) -> [Range<Int>] {
        func digit(_ i: Int) -> Bool { s[i] >= 0x30 && s[i] <= 0x39 }
        var out: [Range<Int>] = []
        for p in pieces {
            var from = p.lowerBound
            var i = p.lowerBound
            while i + 3 <= p.upperBound {
                if digit(i), digit(i + 1), digit(i + 2) {
                    if i > from { out.append(from..<i) }
                    out.append(i..<(i + 3))
                    i += 3
                    from = i
                } else {
                    i += 1
                }
            }
            if from < p.upperBound { out.append(from..<p.upperBound) }
        }
        return out
    }

    private static let apostrophe: UInt32 = 0x27, space: UInt32 = 0x20, cr: UInt32 = 0x0D, lf: UInt32 = 0x0A

    /// The GPT-2 pattern, scanned as llama.cpp's unicode_regex_split_custom_gpt2.
    static func gpt2(_ s: [UInt32], _ c: [ScalarClass], _ pieces: [Range<Int>]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(pieces.count + s.count / 4)
        for p in pieces {
            let end = p.upperBound
            @inline(__always) func cls(_ i: Int) -> ScalarClass { i < end ? c[i] : [] }
            @inline(__always) func scalar(_ i: Int) -> UInt32 { i < end ? s[i] : UInt32.max }
            var pos = p.lowerBound
            var prevEnd = pos
            @inline(__always) func emit(_ e: Int) {
                if e > prevEnd { out.append(prevEnd..<e) }
                prevEnd = e
            }
            while pos < end {
                let cp = s[pos]
                // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive)
                if cp == apostrophe && pos + 1 < end {
                    let n1 = s[pos + 1]
                    if n1 == 0x73 || n1 == 0x74 || n1 == 0x6D || n1 == 0x64 { pos += 2; emit(pos); continue }
                    if pos + 2 < end {
                        let n2 = s[pos + 2]
                        if (n1 == 0x72 && n2 == 0x65) || (n1 == 0x76 && n2 == 0x65) || (n1 == 0x6C && n2 == 0x6C) {
                            pos += 3; emit(pos); continue
                        }
                    }
                }
                let c2 = cp == space ? cls(pos + 1) : c[pos]
                // ' ?\p{L}+', ' ?\p{N}+'
                if c2.contains(.letter) || c2.contains(.number) {
                    let want: ScalarClass = c2.contains(.letter) ? .letter : .number
                    if cp == space { pos += 1 }
                    while cls(pos).contains(want) { pos += 1 }
                    emit(pos)
                    continue
                }
                // ' ?[^\s\p{L}\p{N}]+'
                if c2.contains(.present) && c2.isDisjoint(with: [.whitespace, .letter, .number]) {
                    if cp == space { pos += 1 }
                    while cls(pos).contains(.present) && cls(pos).isDisjoint(with: [.whitespace, .letter, .number]) {
                        pos += 1
                    }
                    emit(pos)
                    continue
                }
                var nws = 0
                while cls(pos + nws).contains(.whitespace) { nws += 1 }
                // '\s+(?!\S)': leave the last whitespace for the next token when a non-space follows.
                if nws > 1 && scalar(pos + nws) != UInt32.max { pos += nws - 1; emit(pos); continue }
                if nws > 0 { pos += nws; emit(pos); continue }
                pos += 1
                emit(pos)
            }
        }
        return out
    }

    /// The Llama 3 pattern (digits: 3) or Qwen2's (digits: 1), as llama.cpp's unicode_regex_split_custom_llama3.
    static func llama3(_ s: [UInt32], _ c: [ScalarClass], _ pieces: [Range<Int>], digits: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(pieces.count + s.count / 4)
        func lower(_ x: UInt32) -> UInt32 { x >= 0x41 && x <= 0x5A ? x + 32 : x }
        for p in pieces {
            let end = p.upperBound
            @inline(__always) func cls(_ i: Int) -> ScalarClass { i < end ? c[i] : [] }
            @inline(__always) func scalar(_ i: Int) -> UInt32 { i < end ? s[i] : UInt32.max }
            var pos = p.lowerBound
            var prevEnd = pos
            @inline(__always) func emit(_ e: Int) {
                if e > prevEnd { out.append(prevEnd..<e) }
                prevEnd = e
            }
            while pos < end {
                let cp = s[pos]
                let f = c[pos]
                // (?i:'s|'t|'re|'ve|'m|'ll|'d)
                if cp == apostrophe && pos + 1 < end {
                    let n1 = lower(s[pos + 1])
                    if n1 == 0x73 || n1 == 0x74 || n1 == 0x6D || n1 == 0x64 { pos += 2; emit(pos); continue }
                    if pos + 2 < end {
                        let n2 = lower(s[pos + 2])
                        if (n1 == 0x72 && n2 == 0x65) || (n1 == 0x76 && n2 == 0x65) || (n1 == 0x6C && n2 == 0x6C) {
                            pos += 3; emit(pos); continue
                        }
                    }
                }
                // [^\r\n\p{L}\p{N}]?\p{L}+
                if !(cp == cr || cp == lf || f.contains(.number)) {
                    if f.contains(.letter) || cls(pos + 1).contains(.letter) {
                        pos += 1
                        while cls(pos).contains(.letter) { pos += 1 }
                        emit(pos)
                        continue
                    }
                }
                // \p{N}{1,digits}
                if f.contains(.number) {
                    var ini = pos
                    while cls(pos).contains(.number) {
                        pos += 1
                        if pos - ini >= digits { emit(pos); ini = pos }
                    }
                    emit(pos)
                    continue
                }
                // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
                let c2 = cp == space ? cls(pos + 1) : f
                if c2.isDisjoint(with: [.whitespace, .letter, .number]) {
                    if cp == space { pos += 1 }
                    while cls(pos).contains(.present) && cls(pos).isDisjoint(with: [.whitespace, .letter, .number]) {
                        pos += 1
                    }
                    while scalar(pos) == cr || scalar(pos) == lf { pos += 1 }
                    emit(pos)
                    continue
                }
                var nws = 0
                var lastNewlineEnd = 0
                while cls(pos + nws).contains(.whitespace) {
                    let x = s[pos + nws]
                    if x == cr || x == lf { lastNewlineEnd = pos + nws + 1 }
                    nws += 1
                }
                // \s*[\r\n]+
                if lastNewlineEnd > 0 { pos = lastNewlineEnd; emit(pos); continue }
                if nws > 1 && scalar(pos + nws) != UInt32.max { pos += nws - 1; emit(pos); continue }
                if nws > 0 { pos += nws; emit(pos); continue }
                pos += 1
                emit(pos)
            }
        }
        return out
    }
}
