import Testing
import TestSupport
import HessianDist
@testable import Node

@Suite struct DecodeTests {
    let stories = TestData.shared("llama2c/stories260K.bin")

    /// Two sequences decoded step by step with the cache give the full forward's logits at every position.
    @Test func cachedDecodingEqualsFullForward() throws {
        let m = try LlamaModel(source: openModel(path: stories), contextLength: 32)
        let a: [Int32] = [1, 403, 407, 261, 378, 432, 383, 286, 261], b: [Int32] = [1, 30, 200, 5, 511, 77, 9, 300, 2]
        let full = try m.forward(tokens: a + b, B: 2, T: a.count)
        let cache = m.makeCache(B: 2, capacity: 16)
        let V = m.config.vocabSize
        var step = [Float](repeating: 0, count: 2 * V)
        var worst: Float = 0, scale: Float = 0
        for t in 0..<a.count {
            try step.withUnsafeMutableBufferPointer { try m.decodeStep(tokens: [a[t], b[t]], cache: cache, into: $0.baseAddress!) }
            for s in 0..<2 {
                for v in 0..<V {
                    let ref = full[(s * a.count + t) * V + v]
                    worst = max(worst, abs(step[s * V + v] - ref))
                    scale = max(scale, abs(ref))
                }
            }
        }
        #expect(worst / scale < 1e-5, "max relative difference \(worst / scale)")
        #expect(cache.length == a.count)
    }

    @Test func samplingIsSeededAndValid() throws {
        let m = try LlamaModel(source: openModel(path: stories), contextLength: 32)
        let s1 = try sampleSequences(model: m, count: 3, length: 20, bos: 1, seed: 42)
        let s2 = try sampleSequences(model: m, count: 3, length: 20, bos: 1, seed: 42)
        let s3 = try sampleSequences(model: m, count: 3, length: 20, bos: 1, seed: 43)
        #expect(s1 == s2)
        #expect(s1 != s3)
        #expect(s1.allSatisfy { $0.count == 20 && $0[0] == 1 && $0.allSatisfy { $0 >= 0 && $0 < 512 } })
        #expect(Set(s1.map { $0[1] }).count > 1, "second tokens are drawn uniformly, so the samples differ")
    }
}
