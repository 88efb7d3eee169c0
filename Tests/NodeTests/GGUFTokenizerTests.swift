import Foundation
import Testing
import TestSupport
@testable import Node

/// GGUF `llama` (SentencePiece) against sentencepiece itself on the Llama 2 vocabulary.
@Suite(.enabled(if: TokenizerFixtures.hasSentencePiece, "needs `pip install sentencepiece`"))
struct SentencePieceTokenizerTests {
    static let model = TestData.shared("llama2c/tokenizer.model")

    static func tokenizer() throws -> Tokenizer {
        let dir = try TestData.tempDir("spm")
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = dir.appendingPathComponent("vocab.json").path
        try runPython("spm_vocab_from_model.py", ["vocab", model, json])
        let meta = try TokenizerFixtures.metadata(json: json, file: "tokenizer.model")
        return try makeGGUFTokenizer(metadata: meta)
    }

    @Test func matchesSentencePiece() throws {
        let tok = try Self.tokenizer()
        #expect(tok is SentencePieceTokenizer)
        #expect(tok.vocabSize == 32000 && tok.bosToken == 1 && tok.eosToken == 2 && tok.addsBOS)
        let wiki = try TokenizerFixtures.text("text/wikitext2_test_joined.txt")
            .split(separator: "\n", omittingEmptySubsequences: true).prefix(1500).map(String.init)
        let shakespeare = try TokenizerFixtures.text("text/tinyshakespeare_input.txt")
            .split(separator: "\n", omittingEmptySubsequences: true).prefix(1500).map(String.init)
        let tricky = ["Hello world", " leading space", "trailing space ", "two  spaces", "line\nbreak\n",
                      "don't stop 12345", "naïve café 日本語 🙂", "\t tab", "<s> is text, not BOS", "x"]
        let texts = wiki + shakespeare + tricky
        let want = try TokenizerFixtures.pythonIDs("spm_vocab_from_model.py", ["encode", Self.model], texts: texts)
        let got = texts.map { tok.encode($0, addBOS: false) }
        let mismatch = TokenizerFixtures.firstMismatch(got, want, texts: texts)
        #expect(mismatch == nil, "\(mismatch ?? "")")
        // BOS, space prefix, byte fallback and decode.
        let ids = tok.encode("Hi 🙂", addBOS: true)
        #expect(ids.first == 1)
        #expect(tok.decode(Array(ids.dropFirst())) == " Hi 🙂")
        #expect(tok.encode("", addBOS: true) == [1])
    }

    @Test func spacePrefixFollowsMetadata() throws {
        let dir = try TestData.tempDir("spm2")
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = dir.appendingPathComponent("vocab.json").path
        try runPython("spm_vocab_from_model.py", ["vocab", Self.model, json])
        var meta = try TokenizerFixtures.metadata(json: json, file: "tokenizer.model")
        let with = try makeGGUFTokenizer(metadata: meta).encode("Hello", addBOS: false)
        meta.values["tokenizer.ggml.add_space_prefix"] = .bool(false)
        meta.values["tokenizer.ggml.add_bos_token"] = .bool(false)
        let tok = try makeGGUFTokenizer(metadata: meta)
        let without = tok.encode("Hello", addBOS: false)
        #expect(!tok.addsBOS)
        #expect(with != without)
        #expect(tok.decode(with) == " Hello" && tok.decode(without) == "Hello")
    }
}

/// GGUF `gpt2` (byte-level BPE, smollm pre-tokenizer) against Hugging Face `tokenizers` on SmolLM2's vocabulary.
@Suite(.enabled(if: TestData.smolLM2 != nil, "needs the SmolLM2 GGUF from the setup script"))
struct ByteLevelBPETokenizerTests {
    /// Dumped and parsed once for all tests of the suite (they run in parallel).
    static let shared: Result<Tokenizer, Error> = Result { try makeGGUFTokenizer(metadata: try metadata()) }
    static func tokenizer() throws -> Tokenizer { try shared.get() }

    static func metadata() throws -> GGUFMetadata {
        let dir = try TestData.tempDir("bpe")
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = dir.appendingPathComponent("tok.json").path
        try runPython("gguf_tokenizer_dump.py", [TestData.smolLM2!, json])
        return try TokenizerFixtures.metadata(json: json, file: "SmolLM2-135M-Instruct.Q4_1.gguf")
    }

    static func compare(_ tok: Tokenizer, _ texts: [String]) throws {
        let want = try TokenizerFixtures.pythonIDs("hf_tokenizer_from_gguf.py", [TestData.smolLM2!], texts: texts)
        let got = texts.map { tok.encode($0, addBOS: false) }
        let mismatch = TokenizerFixtures.firstMismatch(got, want, texts: texts)
        #expect(mismatch == nil, "\(mismatch ?? "")")
        for (t, ids) in zip(texts, got) { #expect(tok.decode(ids) == t) }
    }

    @Test func matchesHuggingFaceOnWikitextAndShakespeare() throws {
        let tok = try Self.tokenizer()
        let bpe = try #require(tok as? ByteLevelBPETokenizer)
        #expect(bpe.preTokenizer == .smollm && !bpe.ignoreMerges)
        #expect(tok.vocabSize == 49152 && tok.bosToken == 1 && tok.eosToken == 2 && !tok.addsBOS)
        let wiki = try TokenizerFixtures.text("text/wikitext2_test_joined.txt")
        let head = String(wiki.utf8.prefix(200_000).split(separator: 0x0A, omittingEmptySubsequences: false)
            .dropLast().map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n"))
        try Self.compare(tok, TokenizerFixtures.pieces(head, size: 2000))
        let shakespeare = try TokenizerFixtures.text("text/tinyshakespeare_input.txt")
        try Self.compare(tok, TokenizerFixtures.pieces(shakespeare, size: 8000))
    }

    @Test func matchesHuggingFaceOnTrickyStrings() throws {
        let tok = try Self.tokenizer()
        try Self.compare(tok, [
            "Hello world", "I'm sure you've seen they'll do it, he'd say; it's 'quoted' and DON'T SHOUT",
            "multiple   spaces    here", "  leading and trailing  ", "trailing space ", "tabs\tand\t\ttabs",
            "new\nlines\n\n\nand\r\nCRLF\n", "digits 12345 and 3.14159, 1,000,000 ⅔ ٣٤", "naïve café 日本語 🙂",
            "<|im_start|>user\nnot special<|im_end|>", " ", "\n", "", "x", "a  \n  b", "emoji 👩‍👩‍👧 family",
            "Ünïcödé ΑΒΓ αβγ Привет мир", "punct!!! ...??? ---> (a)[b]{c}", "don't'd 's", "\u{00A0}nbsp\u{2003}em",
        ])
    }

    @Test func tokenizesAllOfWikitextQuickly() throws {
        let tok = try Self.tokenizer()
        let wiki = try TokenizerFixtures.text("text/wikitext2_test_joined.txt")
        let t0 = Date()
        let ids = tok.encode(wiki, addBOS: false)
        let seconds = Date().timeIntervalSince(t0)
        print("smollm: \(wiki.utf8.count) bytes of wikitext2_test_joined.txt -> \(ids.count) tokens in \(String(format: "%.2f", seconds)) s")
        #expect(seconds < 5)
        let want = try TokenizerFixtures.pythonIDs("hf_tokenizer_from_gguf.py", [TestData.smolLM2!], texts: [wiki])
        #expect(ids.count == want[0].count)
        #expect(ids == want[0])
    }
}

/// Factory and pre-tokenizer rules on small hand-made vocabularies.
@Suite struct GGUFTokenizerFactoryTests {
    static func meta(_ extra: [String: GGUFValue]) -> GGUFMetadata {
        let chars = ["a", "b", "c", "ab", "Ġ", "Ġa", "1", "2", "3"]
        var v: [String: GGUFValue] = [
            "tokenizer.ggml.model": .string("gpt2"),
            "tokenizer.ggml.tokens": .array(chars.map { .string($0) }),
            "tokenizer.ggml.merges": .array([.string("a b"), .string("Ġ a")]),
        ]
        for (k, x) in extra { v[k] = x }
        return GGUFMetadata(file: "tiny.gguf", values: v, keys: Array(v.keys))
    }

    @Test func rejectsUnknownModelAndPre() {
        #expect {
            try makeGGUFTokenizer(metadata: Self.meta(["tokenizer.ggml.model": .string("t5")]))
        } throws: { e in
            let s = "\(e)"
            return s.contains("tiny.gguf") && s.contains("tokenizer.ggml.model") && s.contains("\"t5\"")
        }
        #expect {
            try makeGGUFTokenizer(metadata: Self.meta(["tokenizer.ggml.pre": .string("klingon")]))
        } throws: { e in
            let s = "\(e)"
            return s.contains("tokenizer.ggml.pre") && s.contains("\"klingon\"")
        }
        #expect(throws: ModelFormatError.self) {
            try makeGGUFTokenizer(metadata: Self.meta(["tokenizer.ggml.model": .int32(3)]))
        }
    }

    @Test func tinyGPT2VocabMergesAndFlags() throws {
        let tok = try makeGGUFTokenizer(metadata: Self.meta(["tokenizer.ggml.pre": .string("smollm")]))
        #expect(tok.encode("ab a", addBOS: false) == [3, 5])
        #expect(tok.encode("123", addBOS: false) == [6, 7, 8])
        #expect(!tok.addsBOS)
        let l3 = try makeGGUFTokenizer(metadata: Self.meta(["tokenizer.ggml.pre": .string("llama-bpe"),
                                                             "tokenizer.ggml.bos_token_id": .uint32(0)]))
        #expect(l3.addsBOS)
        #expect(l3.encode("ab", addBOS: true) == [0, 3])
    }

    /// User-defined tokens are cut out of the text before pre-tokenization (llama.cpp does so even with
    /// parse_special = false); control tokens are not.
    @Test func userDefinedTokensAreSplitOut() throws {
        var types = [GGUFValue](repeating: .int32(1), count: 10)
        types[9] = .int32(4)
        var m = Self.meta(["tokenizer.ggml.pre": .string("smollm"), "tokenizer.ggml.token_type": .array(types)])
        var toks = m.values["tokenizer.ggml.tokens"]!.array!
        toks.append(.string("<x>"))
        m.values["tokenizer.ggml.tokens"] = .array(toks)
        let bpe = try makeGGUFTokenizer(metadata: m)
        #expect(bpe.encode("ab<x>a", addBOS: false) == [3, 9, 0])
        #expect(bpe.decode([3, 9, 0]) == "ab<x>a")

        // SentencePiece: the space prefix comes back after a special token; unknown pieces fall back to UNK
        // when the vocabulary has no byte tokens.
        let pieces = ["<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "ab", "<x>"]
        let spmTypes: [Int32] = [2, 3, 3, 1, 1, 1, 1, 1, 4]
        let v: [String: GGUFValue] = [
            "tokenizer.ggml.model": .string("llama"),
            "tokenizer.ggml.tokens": .array(pieces.map { .string($0) }),
            "tokenizer.ggml.scores": .array((0..<9).map { .float32(-Float($0)) }),
            "tokenizer.ggml.token_type": .array(spmTypes.map { .int32($0) }),
        ]
        let spm = try makeGGUFTokenizer(metadata: GGUFMetadata(file: "spm.gguf", values: v, keys: Array(v.keys)))
        #expect(spm.encode("a<x>b", addBOS: true) == [1, 6, 8, 3, 5])
        #expect(spm.encode("c", addBOS: false) == [3, 0])
        #expect(spm.encode("<s>", addBOS: false).contains(1) == false)
        #expect(spm.decode([1, 6, 8, 3, 5]) == " a<x> b")
    }

    /// Pre-tokenizer splits on strings whose regex result is known.
    @Test func preTokenizerSplits() {
        func words(_ p: PreTokenizer, _ s: String) -> [String] {
            let sc = s.unicodeScalars.map(\.value)
            let cl = sc.map { ScalarClass.of(Unicode.Scalar($0)!) }
            return p.split(sc, cl).map { r in String(String.UnicodeScalarView(r.map { Unicode.Scalar(sc[$0])! })) }
        }
        #expect(words(.gpt2, "Hello world  x 123 it's!!") == ["Hello", " world", " ", " x", " 123", " it", "'s", "!!"])
        #expect(words(.smollm, "ab 123") == ["ab", " ", "1", "2", "3"])
        #expect(words(.llama3, "Hello  WORLD'S 12345\n\n x") == ["Hello", " ", " WORLD", "'S", " ", "123", "45", "\n\n", " x"])
        #expect(words(.qwen2, "v12") == ["v", "1", "2"])
        #expect(words(.gpt2, "end  ") == ["end", "  "])
        #expect(words(.default, "a+b=1234") == ["a", "+", "b", "=", "123", "4"])
    }
}
