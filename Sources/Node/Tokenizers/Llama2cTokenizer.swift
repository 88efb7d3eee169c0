// llama2.c's tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length, bytes.
// Encodes exactly as run.c `encode()` (greedy best-score pair merging over vocabulary strings);
// not SentencePiece itself, and not the GGUF `llama` tokenizer (see SentencePieceTokenizer).
import Wire

public struct Llama2cTokenizer: Tokenizer {
    public let path: String
    public let vocabSize: Int
    public let maxTokenLength: Int
    /// Each token's bytes as stored (byte-fallback tokens are the literal text "<0xNN>").
    public let pieces: [[UInt8]]
    public let scores: [Float]
    private let table: ByteStringTable

    /// run.c hard-codes BOS = 1 and EOS = 2; byte b is token b + 3.
    public var bosToken: Int32? { 1 }
    public var eosToken: Int32? { 2 }
    public var addsBOS: Bool { true }
    static let byteOffset = 3

    /// Reads `vocabSize` tokens (the model header's vocab_size); the file must hold exactly that many.
    public init(path: String, vocabSize: Int) throws {
        self.path = path
        self.vocabSize = vocabSize
        guard vocabSize >= Self.byteOffset + 256, vocabSize <= 1 << 24 else {
            throw ModelFormatError(file: path, field: "vocab_size",
                                   expected: "259...16777216 (3 specials + 256 byte tokens at least)",
                                   found: "\(vocabSize)", hint: "pass the checkpoint header's vocab_size")
        }
        let file = try MappedFile(path: path)
        var pieces: [[UInt8]] = []
        var scores: [Float] = []
        pieces.reserveCapacity(vocabSize)
        scores.reserveCapacity(vocabSize)
        let maxLen: Int = try file.withAllBytes { raw in
            var r = ByteReader(raw)
            func fail(_ field: String, _ expected: String, _ found: String, _ hint: String? = nil) -> ModelFormatError {
                ModelFormatError(file: path, field: field, expected: expected, found: found, hint: hint)
            }
            guard r.remaining >= 4 else { throw fail("max_token_length", "an int32", "\(r.remaining) bytes") }
            let maxLen = Int(try r.read(Int32.self, "max_token_length"))
            guard maxLen >= 1, maxLen <= 1 << 16 else {
                throw fail("max_token_length", "1...65536", "\(maxLen)", "not a llama2.c tokenizer file")
            }
            for i in 0..<vocabSize {
                guard r.remaining >= 8 else {
                    throw fail("token \(i)", "a float32 score and an int32 length", "\(r.remaining) bytes left",
                               "the file holds fewer than vocab_size = \(vocabSize) tokens (truncated, or the wrong tokenizer for this model)")
                }
                let score = try r.readFloat("token \(i) score")
                let len = Int(try r.read(Int32.self, "token \(i) length"))
                guard len >= 0, len <= maxLen else {
                    throw fail("token \(i) length", "0...\(maxLen) (max_token_length)", "\(len)")
                }
                guard r.remaining >= len else {
                    throw fail("token \(i) bytes", "\(len) bytes", "\(r.remaining) bytes left", "the file is truncated")
                }
                pieces.append(Array(try r.readBytes(len, "token \(i) bytes")))
                scores.append(score)
            }
            guard r.remaining == 0 else {
                throw fail("file size", "\(r.offset) bytes for \(vocabSize) tokens", "\(raw.count) bytes",
                           "the file holds more tokens than vocab_size; wrong tokenizer for this model?")
            }
            return maxLen
        }
        self.maxTokenLength = maxLen
        self.pieces = pieces
        self.scores = scores
        var table = ByteStringTable(capacity: vocabSize)
        // run.c bsearches a sorted copy; with duplicate strings any copy may win. We keep the first.
        for (i, p) in pieces.enumerated() { table.insert(p, Int32(i), overwrite: false) }
        self.table = table
    }

    private func lookup(_ bytes: [UInt8]) -> Int32? { table.lookup(bytes) }

    /// run.c `encode(t, text, bos, eos=0, ...)`: dummy " " prefix, code points (or their bytes + 3),
    /// then merge the adjacent pair whose concatenation is a token with the highest score (leftmost on ties).
    public func encode(_ text: String, addBOS: Bool) -> [Int32] { encode(text, addBOS: addBOS, merging: true) }

    /// `merging: false`: the code points (or their bytes) before the merge loop, for the tests.
    func encode(_ text: String, addBOS: Bool, merging: Bool) -> [Int32] {
        var tokens: [Int32] = []
        if addBOS { tokens.append(1) }
        let bytes = Array(text.utf8)
        if !bytes.isEmpty, let space = lookup([0x20]) { tokens.append(space) }
        var i = 0
        var buf: [UInt8] = []
        while i < bytes.count {
            // One code point: a lead byte plus at most three continuation bytes (run.c's grouping).
            buf.removeAll(keepingCapacity: true)
            buf.append(bytes[i])
            i += 1
            while i < bytes.count, bytes[i] & 0xC0 == 0x80, buf.count < 4 {
                buf.append(bytes[i])
                i += 1
            }
            if let id = lookup(buf) {
                tokens.append(id)
            } else {
                for b in buf { tokens.append(Int32(b) + Int32(Self.byteOffset)) }
            }
        }
        return merging ? merge(tokens) : tokens
    }

    /// run.c's merge loop: while some adjacent pair concatenates to a token, merge the pair whose token
    /// scores highest (the leftmost among equal scores; none below run.c's initial best, −1e10). In
    /// O(n log n) rather than run.c's O(n²), which took minutes on a 1 MB calibration text: the tokens are a
    /// linked list, and every adjacent pair sits in a max-heap by (score, position), with entries made stale
    /// by a merge (a side changed or gone) skipped when they come up. Positions keep their original order, so
    /// the smallest position is the leftmost pair, as in run.c's scan. `mergeByScanning` is run.c's loop
    /// itself, kept as the test oracle.
    func merge(_ input: [Int32]) -> [Int32] {
        let n = input.count
        guard n >= 2 else { return input }
        var tokens = input
        var next = Array(1...n), prev = Array(-1..<(n - 1)), alive = [Bool](repeating: true, count: n)
        var version = [Int](repeating: 0, count: n)
        var heap = MergeHeap<PairMerge> { a, b in a.score > b.score || (a.score == b.score && a.left < b.left) }
        func push(_ i: Int) {
            let j = next[i]
            guard j < n, let id = lookup(pieces[Int(tokens[i])] + pieces[Int(tokens[j])]), scores[Int(id)] > -1e10 else { return }
            heap.push(.init(score: scores[Int(id)], left: i, right: j, leftVersion: version[i], rightVersion: version[j], id: id))
        }
        for i in 0..<(n - 1) { push(i) }
        while let e = heap.pop() {
            guard alive[e.left], alive[e.right], next[e.left] == e.right, version[e.left] == e.leftVersion, version[e.right] == e.rightVersion else { continue }
            tokens[e.left] = e.id
            version[e.left] += 1
            alive[e.right] = false
            let k = next[e.right]
            next[e.left] = k
            if k < n { prev[k] = e.left }
            if prev[e.left] >= 0 { push(prev[e.left]) }
            push(e.left)
        }
        var out: [Int32] = []
        var i = 0 // the first token is never merged away (a merge keeps its left side)
        while i < n { out.append(tokens[i]); i = next[i] }
        return out
    }

    /// run.c's merge loop as written: scan every pair for the best score, merge, repeat (O(n²)).
    func mergeByScanning(_ input: [Int32]) -> [Int32] {
        var tokens = input
        var pairID: [Int32] = []
        var pairScore: [Float] = []
        func scorePair(_ k: Int) -> (Int32, Float) {
            let cat = pieces[Int(tokens[k])] + pieces[Int(tokens[k + 1])]
            if let id = lookup(cat) { return (id, scores[Int(id)]) }
            return (-1, -.infinity)
        }
        if tokens.count >= 2 {
            for k in 0..<(tokens.count - 1) {
                let (id, s) = scorePair(k)
                pairID.append(id)
                pairScore.append(s)
            }
        }
        while true {
            var best = -1
            var bestScore: Float = -1e10   // run.c's initial best_score
            for k in 0..<pairScore.count where pairID[k] >= 0 && pairScore[k] > bestScore {
                bestScore = pairScore[k]
                best = k
            }
            if best < 0 { break }
            tokens[best] = pairID[best]
            tokens.remove(at: best + 1)
            pairID.remove(at: best)
            pairScore.remove(at: best)
            if best > 0 { (pairID[best - 1], pairScore[best - 1]) = scorePair(best - 1) }
            if best < pairID.count { (pairID[best], pairScore[best]) = scorePair(best) }
        }
        return tokens
    }

    /// run.c `decode` without the BOS rule: "<0xNN>" pieces give their byte, others their bytes.
    public func decode(_ token: Int32) -> [UInt8] {
        guard token >= 0, Int(token) < pieces.count else { return [] }
        let p = pieces[Int(token)]
        if let b = Self.hexByte(p) { return [b] }
        return p
    }

    /// The byte of a "<0xNN>" piece (upper- or lower-case hex), nil for anything else.
    static func hexByte(_ p: [UInt8]) -> UInt8? {
        guard p.count == 6, p[0] == 0x3C, p[1] == 0x30, p[2] == 0x78, p[5] == 0x3E,
              let hi = hexDigit(p[3]), let lo = hexDigit(p[4]) else { return nil }
        return hi << 4 | lo
    }

    static func hexDigit(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}

/// A candidate merge of the pair (left, right), valid while both sides are as they were when queued.
struct PairMerge {
    let score: Float
    let left: Int, right: Int
    let leftVersion: Int, rightVersion: Int
    let id: Int32
}
