import Foundation
import Testing
import TestSupport
import HessianDist
@testable import Node

/// The forward pass against the NumPy reference written in Tests/Python/reference_forward.py.
@Suite struct LlamaForwardTests {
    static let stories = TestData.shared("llama2c/stories260K.bin")

    /// Max |a-b| over max |b|: logits near zero make elementwise relative error meaningless.
    func relErr(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        var d: Float = 0, m: Float = 0
        for i in 0..<a.count { d = max(d, abs(a[i] - b[i])); m = max(m, abs(b[i])) }
        return d / m
    }

    @Test func stories260KMatchesNumpyAndDecodesGreedily() throws {
        let dir = try TestData.tempDir("fwd")
        let ref = dir.appendingPathComponent("ref.f32").path
        // The reference decodes greedily itself; we must pick the same ids and produce the same logits.
        let ids = try runPython("reference_forward.py", [Self.stories, ref, "greedy:40"])
            .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").map { Int32($0)! }
        let model = try LlamaModel(source: openModel(path: Self.stories))
        let logits = try model.forward(tokens: ids, B: 1, T: ids.count)
        let expected = try readF32(ref)
        #expect(relErr(logits, expected) < 1e-4, "logits differ from numpy by \(relErr(logits, expected))")
        let V = model.config.vocabSize
        for t in 0..<(ids.count - 1) {
            let row = logits[(t * V)..<((t + 1) * V)]
            let arg = row.indices.max { row[$0] < row[$1] }! - t * V
            #expect(Int32(arg) == ids[t + 1], "greedy step \(t)")
        }
    }

    /// Two sequences in one batch give the same logits as each alone, and `logitsFrom` slices rows.
    @Test func batchingAndLogitSlicingAgree() throws {
        let model = try LlamaModel(source: openModel(path: Self.stories))
        let a: [Int32] = [1, 403, 407, 261, 378, 432, 383, 286], b: [Int32] = [1, 30, 200, 5, 511, 77, 9, 300]
        let both = try model.forward(tokens: a + b, B: 2, T: 8, logitsFrom: 3)
        let la = try model.forward(tokens: a, B: 1, T: 8, logitsFrom: 3)
        let lb = try model.forward(tokens: b, B: 1, T: 8, logitsFrom: 3)
        #expect(relErr(both, la + lb) < 1e-5)
    }

    /// A node holding only blocks 2..<5 continues exactly where a node holding 0..<2 stopped.
    @Test func pipelineStagesComposeToTheWholeModel() throws {
        let src = try openModel(path: Self.stories)
        let whole = try LlamaModel(source: src)
        let first = try LlamaModel(source: src, layers: 0..<2, embedding: true, head: false)
        let second = try LlamaModel(source: src, layers: 2..<5, embedding: false, head: true)
        let toks: [Int32] = [1, 403, 407, 261, 378, 432]
        let a = Activations(config: src.config, B: 1, T: toks.count)
        try first.embed(a, tokens: toks)
        first.blocks(a)
        second.blocks(a)
        var staged = [Float](repeating: 0, count: toks.count * src.config.vocabSize)
        staged.withUnsafeMutableBufferPointer { second.head(a, into: $0.baseAddress!) }
        #expect(staged == (try whole.forward(tokens: toks, B: 1, T: toks.count)))
        #expect(second.parameterBytes < whole.parameterBytes)
    }

    @Test func rejectsTokensOutsideTheVocabulary() throws {
        let model = try LlamaModel(source: openModel(path: Self.stories))
        #expect(throws: ModelRuntimeError.self) { try model.forward(tokens: [1, 512], B: 1, T: 2) }
    }
}

/// The half-split RoPE path: an HF checkpoint (q/k rows in HF order) runs through the same kernels
/// with `ropeLayout == .halfSplit` and must predict what the llama2.c original predicts.
@Suite struct RopeLayoutForwardTests {
    @Test func hfCheckpointForwardEqualsLlama2cForward() throws {
        let (dir, _) = try convertStories260K(dtype: "F32")
        let hf = try openModel(path: dir)
        #expect(hf.config.ropeLayout == .halfSplit)
        let orig = try LlamaModel(source: openModel(path: LlamaForwardTests.stories))
        let conv = try LlamaModel(source: hf)
        let toks: [Int32] = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298]
        let a = try orig.forward(tokens: toks, B: 1, T: toks.count)
        let b = try conv.forward(tokens: toks, B: 1, T: toks.count)
        var d: Float = 0, m: Float = 0
        for i in 0..<a.count { d = max(d, abs(a[i] - b[i])); m = max(m, abs(a[i])) }
        #expect(d / m < 1e-5, "relative difference \(d / m)")
    }
}

/// SmolLM2 (GQA 9/3, theta 1e5, Q4_1 + Q8_0 weights) against the NumPy reference fed by gguf-py's own
/// dequantizers: a different reader, different dequantizers, a different forward.
@Suite struct SmolLM2ForwardTests {
    @Test(.enabled(if: TestData.smolLM2 != nil)) func logitsMatchNumpyReference() throws {
        let path = TestData.smolLM2!
        let dir = try TestData.tempDir("smol-fwd")
        let ref = dir.appendingPathComponent("ref.f32").path
        // " The quick brown fox jumps over the lazy dog. 1234" in SmolLM2 ids plus a few arbitrary ones.
        let toks: [Int32] = [378, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30, 216, 33, 34, 35, 36, 1, 49151]
        try runPython("reference_forward.py", [path, ref, toks.map(String.init).joined(separator: ",")])
        let model = try LlamaModel(source: openModel(path: path), contextLength: 64)
        let logits = try model.forward(tokens: toks, B: 1, T: toks.count)
        let expected = try readF32(ref)
        var d: Float = 0, m: Float = 0
        for i in 0..<logits.count { d = max(d, abs(logits[i] - expected[i])); m = max(m, abs(expected[i])) }
        #expect(d / m < 1e-4, "max |Δlogit| / max |logit| = \(d / m)")
    }
}
