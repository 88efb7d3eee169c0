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

/// A one-layer F32 model written field by field: exercises the optional keys and their defaults.
struct TinyGGUFModel {
    var arch = "mistral"
    var vocabFromTokens = true
    var keyLength: UInt32? = 8      // head_dim 8 with 2 heads of an 8-wide model: q is 16 wide
    var untied = true
    /// Head size the tensors are written for (2 heads, 2 KV heads); may contradict `keyLength`.
    var shapeHeadDim: UInt64 = 8

    /// (name, ne) in file order.
    var tensors: [(String, [UInt64])] {
        let qkv = 2 * shapeHeadDim
        var t: [(String, [UInt64])] = [
            ("token_embd.weight", [8, 4]), ("blk.0.attn_norm.weight", [8]),
            ("blk.0.attn_q.weight", [8, qkv]), ("blk.0.attn_k.weight", [8, qkv]), ("blk.0.attn_v.weight", [8, qkv]),
            ("blk.0.attn_output.weight", [qkv, 8]), ("blk.0.ffn_norm.weight", [8]),
            ("blk.0.ffn_gate.weight", [8, 16]), ("blk.0.ffn_up.weight", [8, 16]), ("blk.0.ffn_down.weight", [16, 8]),
            ("output_norm.weight", [8]),
        ]
        if untied { t.append(("output.weight", [8, 4])) }
        return t
    }

    func bytes() -> GGUFBytes {
        var kvs: [(inout GGUFBytes) -> Void] = [
            { $0.kvString("general.architecture", arch) },
            { $0.kvU32("\(arch).embedding_length", 8) },
            { $0.kvU32("\(arch).feed_forward_length", 16) },
            { $0.kvU32("\(arch).block_count", 1) },
            { $0.kvU32("\(arch).attention.head_count", 2) },
            { $0.kvU32("\(arch).context_length", 32) },
            { g in g.str("\(arch).attention.layer_norm_rms_epsilon"); g.u32(6); g.u32(Float(1e-6).bitPattern) },
        ]
        if let keyLength { kvs.append { $0.kvU32("\(arch).attention.key_length", keyLength) } }
        if vocabFromTokens {
            kvs.append { g in
                g.str("tokenizer.ggml.tokens"); g.u32(9); g.u32(8); g.u64(4)
                for s in ["<unk>", "a", "b", "c"] { g.str(s) }
            }
        }
        var g = GGUFBytes()
        g.header(tensors: UInt64(tensors.count), kvs: UInt64(kvs.count))
        for kv in kvs { kv(&g) }
        var offset: UInt64 = 0
        for (name, ne) in tensors {
            g.tensorInfo(name, ne: ne, offset: offset)
            offset += (ne.reduce(1, *) * 4 + 31) / 32 * 32
        }
        g.align()
        for (_, ne) in tensors {
            for i in 0..<Int(ne.reduce(1, *)) { g.u32(Float(i).bitPattern) }
            g.align()
        }
        return g
    }
}

@Suite struct GGUFModelConfigTests {
    @Test func optionalKeysAndDefaults() throws {
        let m = try GGUFModel(path: try TinyGGUFModel().bytes().write("tiny"))
        let c = m.config
        #expect(c.architecture == "mistral" && c.dim == 8 && c.hiddenDim == 16 && c.nLayers == 1)
        #expect(c.nHeads == 2 && c.nKVHeads == 2)       // head_count_kv absent: = head_count
        #expect(c.headDim == 8 && c.qDim == 16)         // from attention.key_length
        #expect(c.vocabSize == 4)                       // from tokenizer.ggml.tokens
        #expect(c.ropeTheta == 10000 && c.normEps == 1e-6 && c.contextLength == 32)
        #expect(!c.tiedEmbeddings && c.ropeLayout == .interleaved)
        #expect(try m.info("blk.0.attn_q.weight").shape == [16, 8])
        #expect(try m.dequantize("blk.0.attn_q.weight") == (0..<128).map(Float.init))
        #expect(throws: ModelFormatError.self) { try m.dequantize("blk.1.attn_q.weight") }
        var small = [Float](repeating: 0, count: 3)
        #expect(throws: ModelFormatError.self) {
            try small.withUnsafeMutableBufferPointer { try m.dequantize("output_norm.weight", into: $0) }
        }
    }

    @Test func vocabFromEmbeddingAndTiedOutput() throws {
        let m = try GGUFModel(path: try TinyGGUFModel(vocabFromTokens: false, keyLength: nil, untied: false, shapeHeadDim: 4).bytes().write("tied"))
        #expect(m.config.vocabSize == 4 && m.config.tiedEmbeddings && m.config.headDim == 4)
    }

    /// A shape that contradicts the metadata is caught by `validateShapes` in init.
    @Test func shapeContradictingMetadata() throws {
        #expect {
            try GGUFModel(path: try TinyGGUFModel(keyLength: 4).bytes().write("badshape"))
        } throws: { e in
            "\(e)".contains("tensor blk.0.attn_q.weight shape") && "\(e)".contains("expected [8, 8]")
        }
    }
}
