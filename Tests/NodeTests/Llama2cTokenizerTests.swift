import Foundation
import Testing
import TestSupport
@testable import Node

@Suite struct Llama2cTokenizerTests {
    static let tok512 = TestData.shared("llama2c/tok512.bin")

    static func storyLines() throws -> [String] {
        try TokenizerFixtures.text("text/tinystories_valid_sample.txt")
            .replacingOccurrences(of: "\r\n", with: "\n")
            .split(separator: "\n").map(String.init)
    }

    @Test func roundTripsTinyStories() throws {
        let tok = try Llama2cTokenizer(path: Self.tok512, vocabSize: 512)
        #expect(tok.maxTokenLength == 7)
        let lines = try Self.storyLines()
        #expect(lines.count >= 18)
        for line in lines {
            let ids = tok.encode(line, addBOS: true)
            #expect(ids.first == 1)
            #expect(ids.allSatisfy { $0 >= 0 && $0 < 512 })
            #expect(ids.count < line.utf8.count)   // merges happened
            // After BOS comes the dummy-prefix " ", which run.c's decode strips; here the caller does.
            let text = tok.decode(Array(ids.dropFirst()))
            #expect(text == " " + line)
        }
        #expect(tok.encode("", addBOS: false) == [])
        #expect(tok.encode("", addBOS: true) == [1])
    }

    @Test func matchesPythonRunCEncode() throws {
        let tok = try Llama2cTokenizer(path: Self.tok512, vocabSize: 512)
        // Ids computed once with Tests/Python/llama2c_encode.py (a separate re-implementation of run.c).
        #expect(tok.encode("Once upon a time, there was a little girl named Lily.", addBOS: false)
                == [403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426])
        // Multi-byte text exercises the <0xNN> fallback (byte + 3) and the byte decode.
        let odd = "naïve café 日本語 🙂 \t x  y"
        let ids = tok.encode(odd, addBOS: false)
        #expect(tok.decode(ids) == " " + odd)
        let texts = try Self.storyLines() + [odd, "Hello, World!", "  two  spaces  ", "a"]
        let want = try TokenizerFixtures.pythonIDs("llama2c_encode.py", [Self.tok512, "512"], texts: texts)
        let got = texts.map { tok.encode($0, addBOS: false) }
        let mismatch = TokenizerFixtures.firstMismatch(got, want, texts: texts)
        #expect(mismatch == nil, "\(mismatch ?? "")")
    }

    /// The heap merge is run.c's scanning loop, token for token: on whole stories, on repetitive text
    /// (many equal-score pairs, where the leftmost must win) and on bytes without merges.
    @Test func heapMergeEqualsTheScanningLoop() throws {
        let tok = try Llama2cTokenizer(path: Self.tok512, vocabSize: 512)
        let story = try TokenizerFixtures.text("text/tinystories_valid_sample.txt")
        var texts = [String(story.prefix(4000)), String(repeating: "aaaa ", count: 200), String(repeating: "the the  ", count: 100),
                     "日本語🙂\u{0}\u{7f}", "x", ""]
        var rng = SeededRandom(seed: 11)
        let alphabet = Array("abcde thn.\n")
        for _ in 0..<20 { texts.append(String((0..<300).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })) }
        for (i, t) in texts.enumerated() {
            let initial = tok.encode(t, addBOS: true, merging: false)
            #expect(tok.merge(initial) == tok.mergeByScanning(initial), "text \(i)")
        }
    }

    @Test func rejectsWrongVocabSizeAndTruncation() throws {
        // tokenizer.bin holds 32000 tokens: reading only 512 leaves bytes over.
        #expect {
            try Llama2cTokenizer(path: TestData.shared("llama2c/tokenizer.bin"), vocabSize: 512)
        } throws: { e in
            let s = "\(e)"
            return s.contains("tokenizer.bin") && s.contains("file size") && s.contains("vocab_size")
        }
        #expect(throws: ModelFormatError.self) { try Llama2cTokenizer(path: Self.tok512, vocabSize: 600) }
        #expect(throws: ModelFormatError.self) { try Llama2cTokenizer(path: Self.tok512, vocabSize: 100) }
        let dir = try TestData.tempDir("l2ct")
        let src = try Data(contentsOf: URL(fileURLWithPath: Self.tok512))
        let p = dir.appendingPathComponent("cut.bin").path
        try src.prefix(src.count - 3).write(to: URL(fileURLWithPath: p))
        #expect {
            try Llama2cTokenizer(path: p, vocabSize: 512)
        } throws: { e in
            let s = "\(e)"
            return s.contains("cut.bin") && s.contains("token 511")
        }
    }

    @Test func llama2VocabRoundTrips() throws {
        let tok = try Llama2cTokenizer(path: TestData.shared("llama2c/tokenizer.bin"), vocabSize: 32000)
        let s = "The quick brown fox — jumps over 12 lazy dogs. naïve 日本語 🙂"
        #expect(tok.decode(tok.encode(s, addBOS: false)) == " " + s)
    }
}
