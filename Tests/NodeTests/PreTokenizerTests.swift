import Foundation
import Testing
import TestSupport
@testable import Node

/// The hand-written pre-tokenizer scanners against the regexes themselves (Hugging Face `tokenizers`
/// Split pre-tokenizers with llama.cpp's regex lists), piece boundary by piece boundary.
@Suite struct PreTokenizerTests {
    static let tricky = [
        "Hello world", "I'm sure you've seen they'll do it; IT'S 'quoted' DON'T We'Re", "multiple   spaces",
        "  leading and trailing  ", "tabs\tand\t\ttabs", "new\nlines\n\n\nand\r\nCRLF \n  \n x", "12345 3.14159 1,000,000",
        "⅔ ٣٤ ²", "naïve café 日本語 🙂", "<|im_start|>user\nhi<|im_end|>", " ", "\n", "x", "a  \n  b",
        "emoji 👩‍👩‍👧 family", "Ünïcödé ΑΒΓ Привет", "punct!!! ...??? ---> (a)[b]{c} $5 +1 <=> ^~|`",
        "\u{00A0}nbsp\u{2003}em\u{3000}ideo", "x!\n\ny", "' 's 'x", "abc123def 456",
    ]

    static func texts() throws -> [String] {
        let wiki = try TokenizerFixtures.text("text/wikitext2_test_joined.txt")
        let shakespeare = try TokenizerFixtures.text("text/tinyshakespeare_input.txt")
        func head(_ s: String, _ n: Int) -> String { String(s.unicodeScalars.prefix(n)) }
        return TokenizerFixtures.pieces(head(wiki, 120_000), size: 4000)
            + TokenizerFixtures.pieces(head(shakespeare, 60_000), size: 4000) + tricky
    }

    @Test(arguments: [PreTokenizer.gpt2, .smollm, .llama3, .qwen2, .default])
    func matchesRegexReference(_ family: PreTokenizer) throws {
        let texts = try Self.texts()
        let dir = try TestData.tempDir("pre")
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = dir.appendingPathComponent("texts.json")
        try JSONSerialization.data(withJSONObject: texts).write(to: p)
        let out = try runPython("pretokenize_reference.py", [family.rawValue, p.path])
        let want = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [[[Int]]]
        #expect(want.count == texts.count)
        for (t, spans) in zip(texts, want) {
            let sc = t.unicodeScalars.map(\.value)
            let got = family.split(sc, sc.map { ScalarClass.of(Unicode.Scalar($0)!) }).map { [$0.lowerBound, $0.upperBound] }
            if got != spans {
                let k = (0..<min(got.count, spans.count)).first { got[$0] != spans[$0] } ?? min(got.count, spans.count)
                func show(_ r: [[Int]]) -> [String] {
                    r[max(0, k - 2)..<min(r.count, k + 3)].map { String(String.UnicodeScalarView(sc[$0[0]..<$0[1]].map { Unicode.Scalar($0)! })).debugDescription }
                }
                Issue.record("\(family) on \(t.prefix(60).debugDescription): piece \(k): swift \(show(got)) vs regex \(show(spans))")
                return
            }
        }
    }
}
