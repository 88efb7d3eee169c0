// GGUFModel: metadata -> ModelConfig, and SmolLM2-135M (when fetched) dequantized exactly as gguf-py does.
import Foundation
import Testing
import TestSupport
import HessianDist
@testable import Node

@Suite struct GGUFModelTests {
    @Test(.enabled(if: TestData.smolLM2 != nil, "SmolLM2-135M-Instruct.Q4_1.gguf not fetched"))
    func smolLM2ConfigAndTensors() throws {
        let path = try #require(TestData.smolLM2)
        let src = try openModel(path: path)
        let m = try #require(src as? GGUFModel)
        #expect(m.format == "GGUF v3")
        let c = m.config
        #expect(c.architecture == "llama" && c.dim == 576 && c.hiddenDim == 1536 && c.nLayers == 30)
        #expect(c.nHeads == 9 && c.nKVHeads == 3 && c.headDim == 64 && c.vocabSize == 49152)
        #expect(c.ropeTheta == 100000 && c.normEps == 1e-5 && c.contextLength == 8192)
        #expect(c.tiedEmbeddings && c.ropeLayout == .interleaved)
        #expect(c.parameterCount == 134_515_008)
        #expect(m.tensors.count == 272 && m.tensors.reduce(0) { $0 + $1.elementCount } == 134_515_008)
        #expect(try m.info("blk.0.attn_k.weight") == TensorInfo(name: "blk.0.attn_k.weight", shape: [192, 576], type: .q4_1))
        #expect(try m.gguf.metadata.stringArray("tokenizer.ggml.tokens").count == 49152)

        let dir = try TestData.tempDir("smol")
        try runPython("gguf_dump_tensors.py", [path, dir.path, "blk.0.attn_q.weight", "token_embd.weight:4",
                                               "blk.0.attn_norm.weight"])
        for name in ["blk.0.attn_q.weight", "blk.0.attn_norm.weight"] {
            let want = try readF32(dir.appendingPathComponent("\(name).f32").path)
            expectBitExact(try m.dequantize(name), want, name)
        }
        // token_embd (Q8_0): the first 4 rows through the same dispatcher GGUFModel uses.
        let emb = try #require(m.gguf.tensor(TensorName.tokenEmbedding))
        #expect(emb.type == .q8_0 && emb.shape == [49152, 576])
        let rows = 4 * 576
        var got = [Float](repeating: 0, count: rows)
        try got.withUnsafeMutableBufferPointer { out in
            try m.gguf.withTensorBytes(emb.name) { raw in
                try dequantizeRow(.q8_0, from: UnsafeRawBufferPointer(rebasing: raw.prefix(rows / 32 * 34)), into: out)
            }
        }
        expectBitExact(got, try readF32(dir.appendingPathComponent("token_embd.weight.f32").path), "token_embd rows 0..<4")
    }

    /// Dequantizes every tensor once and reports the time (debug builds are ~10x slower than release).
    @Test(.enabled(if: TestData.smolLM2 != nil, "SmolLM2-135M-Instruct.Q4_1.gguf not fetched"))
    func smolLM2DequantizesEveryTensor() throws {
        let m = try GGUFModel(path: try #require(TestData.smolLM2))
        let clock = ContinuousClock()
        var total = 0
        var buf = [Float](repeating: 0, count: m.tensors.map(\.elementCount).max()!)
        let elapsed = try clock.measure {
            for t in m.tensors {
                try buf.withUnsafeMutableBufferPointer { b in
                    try m.dequantize(t.name, into: UnsafeMutableBufferPointer(rebasing: b[0..<t.elementCount]))
                }
                total += t.elementCount
            }
        }
        #expect(total == 134_515_008)
        print("dequantized \(total) SmolLM2 weights in \(elapsed)")
    }

    @Test func rejectsOtherArchitectures() throws {
        var g = GGUFBytes()
        g.header(tensors: 0, kvs: 1)
        g.kvString("general.architecture", "gpt2")
        let p = try g.write("gpt2")
        #expect {
            try GGUFModel(path: p)
        } throws: { e in
            let s = "\(e)"
            return s.contains("general.architecture") && s.contains("llama or mistral") && s.contains("found gpt2")
        }
        // openModel recognizes the magic and reports the missing hyperparameters by key.
        var h = GGUFBytes()
        h.header(tensors: 0, kvs: 1)
        h.kvString("general.architecture", "llama")
        let q = try h.write("nohparams")
        #expect {
            try openModel(path: q)
        } throws: { e in
            "\(e)".contains("metadata llama.attention.head_count")
        }
    }
}
