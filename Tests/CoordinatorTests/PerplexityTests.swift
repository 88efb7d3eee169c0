import Foundation
import Testing
import TestSupport
import Node
@testable import Coordinator

@Suite struct PerplexityTests {
    @Test func accumulatorMatchesClosedForm() {
        var a = NLLAccumulator()
        let v = [1.0, 2.0, 4.0, 3.0]
        for x in v { a.add(x) }
        let mean = 2.5, variance = (1.0 + 4 + 16 + 9) / 4 - mean * mean
        #expect(abs(a.perplexity - exp(mean)) < 1e-12)
        #expect(abs(a.standardError - (variance / 3).squareRoot() * exp(mean)) < 1e-12)
    }

    /// The protocol against a direct NumPy computation of the same chunks on stories260K.
    @Test func matchesNumpyReferenceProtocol() throws {
        let path = TestData.shared("llama2c/stories260K.bin")
        let model = try LlamaModel(source: openModel(path: path))
        // Deterministic pseudo-text of 3 chunks of 16 plus a tail that must be ignored.
        var s: UInt64 = 7
        let tokens: [Int32] = (0..<(3 * 16 + 5)).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Int32(s >> 33) % 512
        }
        let r1 = try evaluatePerplexity(model: model, tokens: tokens, options: .init(context: 16, bos: 1))
        let r2 = try evaluatePerplexity(model: model, tokens: tokens, options: .init(context: 16, batch: 2, bos: 1))
        #expect(r1.chunks == 3 && r1.tokensScored == 3 * 7)
        // Batching changes GEMM blocking, so only rounding may differ.
        #expect(abs(r1.perplexity - r2.perplexity) < 1e-5 * r1.perplexity)
        // Reference: per chunk, first token -> BOS, logits by reference_forward.py, score positions 8..14.
        let dir = try TestData.tempDir("ppl")
        var nll: [Double] = []
        for c in 0..<3 {
            var chunk = Array(tokens[(c * 16)..<((c + 1) * 16)])
            chunk[0] = 1
            let out = dir.appendingPathComponent("c\(c).f32").path
            try runPython("reference_forward.py", [path, out, chunk.map(String.init).joined(separator: ","), "--from", "8"])
            let l = try readF32(out)
            for j in 0..<7 {
                let row = l[(j * 512)..<((j + 1) * 512)].map(Double.init)
                let m = row.max()!
                let lse = log(row.map { exp($0 - m) }.reduce(0, +)) + m
                nll.append(lse - row[Int(chunk[8 + j + 1])])
            }
        }
        let ppl = exp(nll.reduce(0, +) / Double(nll.count))
        #expect(abs(r1.perplexity - ppl) / ppl < 1e-4, "\(r1.perplexity) vs numpy \(ppl)")
        #expect(throws: EvaluationError.self) {
            try evaluatePerplexity(model: model, tokens: Array(tokens.prefix(20)), options: .init(context: 16))
        }
    }
}

@Suite struct ReferenceComparisonTests {
    @Test func klOfTwoDistributionsMatchesClosedForm() {
        var k = KLAccumulator()
        let a: [Float] = [0, log(3)], b: [Float] = [log(3), 0]  // p = (1/4, 3/4), q = (3/4, 1/4)
        k.add(ref: a, model: b, n: 2, target: 1)
        let expected = 0.25 * log(0.25 / 0.75) + 0.75 * log(0.75 / 0.25)
        #expect(abs(k.result.meanKL - expected) < 1e-7)
        #expect(k.result.top1Agreement == 0)
        #expect(abs(k.result.referencePerplexity - 4.0 / 3.0) < 1e-6)
    }

    @Test func aModelAgainstItselfHasZeroKL() throws {
        let path = TestData.shared("llama2c/stories260K.bin")
        let m = try LlamaModel(source: openModel(path: path))
        let tokens: [Int32] = (0..<64).map { Int32(($0 * 37 + 11) % 512) }
        let r = try evaluatePerplexity(model: m, tokens: tokens, options: .init(context: 16, bos: 1), reference: m)
        let k = try #require(r.reference)
        #expect(k.meanKL < 1e-6 && k.top1Agreement == 1)
        #expect(abs(k.referencePerplexity - r.perplexity) < 1e-9 * r.perplexity)
    }
}
