// Hugging Face checkpoints converted from stories260K by Tests/Python/llama2c_to_hf.py must read back
// as the llama2.c checkpoint (F32, bit-exact after un-permuting q/k) or as numpy's own F16/BF16 rounding.
import Foundation
import Testing
import TestSupport
import HessianDist
@testable import Node

/// Runs the converter into a fresh directory; returns (checkpoint dir, numpy round-trip reference file).
func convertStories260K(dtype: String, shards: Int = 1) throws -> (dir: String, expect: String) {
    let tmp = try TestData.tempDir("hf-\(dtype)-\(shards)")
    let dir = tmp.appendingPathComponent("ckpt").path
    let expect = tmp.appendingPathComponent("expect.safetensors").path
    try runPython("llama2c_to_hf.py", [TestData.shared("llama2c/stories260K.bin"), dir,
                                       "--dtype", dtype, "--shards", "\(shards)", "--expect", expect])
    return (dir, expect)
}

/// Bit-exact comparison reporting the first differing index and the count of differences.
func expectBitEqual(_ a: [Float], _ b: [Float], _ what: String,
                    sourceLocation: SourceLocation = #_sourceLocation) {
    guard a.count == b.count else {
        Issue.record("\(what): \(a.count) vs \(b.count) elements", sourceLocation: sourceLocation)
        return
    }
    var first = -1, diffs = 0
    for i in 0..<a.count where a[i].bitPattern != b[i].bitPattern {
        if first < 0 { first = i }
        diffs += 1
    }
    #expect(diffs == 0, "\(what): \(diffs) differ, first at \(first): \(first >= 0 ? "\(a[first]) vs \(b[first])" : "")",
            sourceLocation: sourceLocation)
}

@Suite struct SafetensorsModelTests {
    static let stories = TestData.shared("llama2c/stories260K.bin")

    @Test func f32ConversionEqualsLlama2cBitExact() throws {
        let (dir, _) = try convertStories260K(dtype: "F32")
        let m = try openModel(path: dir)
        let ref = try Llama2cCheckpoint(path: Self.stories)
        #expect(m is SafetensorsModel)
        #expect(m.config.ropeLayout == .halfSplit)
        var c = m.config
        c.ropeLayout = .interleaved
        #expect(c == ref.config)
        #expect(m.tensors.map(\.name) == ref.tensors.map(\.name))
        #expect(m.tensors.allSatisfy { $0.type == .f32 })
        try m.validateShapes()

        let hs = m.config.headDim
        for t in ref.tensors {
            var got = try m.dequantize(t.name)
            #expect(try m.info(t.name).shape == t.shape, "\(t.name) shape")
            if t.name.hasSuffix("attn_q.weight") || t.name.hasSuffix("attn_k.weight") {
                // Stored half-split: differs from llama2.c until permuted back.
                #expect(got != (try ref.dequantize(t.name)), "\(t.name) should be stored un-permuted")
                got.withUnsafeMutableBufferPointer {
                    permuteRopeRows($0, rows: t.shape[0], cols: t.shape[1], headDim: hs, from: .halfSplit, to: .interleaved)
                }
            }
            expectBitEqual(got, try ref.dequantize(t.name), t.name)
        }
    }

    @Test(arguments: ["F16", "BF16"])
    func halfConversionsEqualNumpyRounding(dtype: String) throws {
        let (dir, expect) = try convertStories260K(dtype: dtype)
        let m = try openModel(path: dir) as! SafetensorsModel
        let ref = try SafetensorsFile(path: expect)
        let type: GGMLType = dtype == "F16" ? .f16 : .bf16
        #expect(m.tensors.allSatisfy { $0.type == type })
        #expect(m.tensors.count == m.config.expectedShapes().count)
        for t in m.tensors {
            expectBitEqual(try m.dequantize(t.name), try ref.dequantize(m.hfName(for: t.name)), "\(dtype) \(t.name)")
        }
    }

    @Test(arguments: ["F32", "BF16"])
    func shardedEqualsSingleFile(dtype: String) throws {
        let single = try openModel(path: try convertStories260K(dtype: dtype, shards: 1).dir)
        let (dir, _) = try convertStories260K(dtype: dtype, shards: 2)
        let byDir = try openModel(path: dir)
        let byIndex = try openModel(path: dir + "/model.safetensors.index.json")
        for sharded in [byDir, byIndex] {
            #expect((sharded as? SafetensorsModel)?.files.count == 2)
            #expect(sharded.config == single.config)
            #expect(sharded.tensors == single.tensors)
            for t in single.tensors {
                expectBitEqual(try sharded.dequantize(t.name), try single.dequantize(t.name), "sharded \(t.name)")
            }
        }
    }

    @Test func opensSafetensorsFilePath() throws {
        let (dir, _) = try convertStories260K(dtype: "F32")
        let m = try openModel(path: dir + "/model.safetensors")
        #expect(m.format == "safetensors")
        try m.validateShapes()
        // The extra rotary buffer in the file is ignored, the tied output absent.
        let f = (m as! SafetensorsModel).files[0]
        #expect(f.tensor("model.layers.0.self_attn.rotary_emb.inv_freq") != nil)
        #expect(f.metadata == ["format": "pt"])
        #expect(!m.tensors.contains { $0.name == TensorName.output })
    }

    @Test func nameMappingRoundTrips() throws {
        let cfg = ModelConfig(dim: 64, hiddenDim: 172, nLayers: 12, nHeads: 8, nKVHeads: 4, vocabSize: 512,
                              contextLength: 512, tiedEmbeddings: false, ropeLayout: .halfSplit)
        for (name, _) in cfg.expectedShapes() {
            let hf = try #require(HFTensorName.hf(name), "\(name)")
            #expect(HFTensorName.canonical(hf) == name)
        }
        #expect(HFTensorName.hf(TensorName.attnQ(11)) == "model.layers.11.self_attn.q_proj.weight")
        #expect(HFTensorName.hf(TensorName.ffnDown(0)) == "model.layers.0.mlp.down_proj.weight")
        #expect(HFTensorName.hf(TensorName.output) == "lm_head.weight")
        #expect(HFTensorName.canonical("model.layers.0.self_attn.rotary_emb.inv_freq") == nil)
        #expect(HFTensorName.canonical("model.layers.01.mlp.up_proj.weight") == nil)
        #expect(HFTensorName.isLinearBias("model.layers.3.self_attn.q_proj.bias"))
    }
}

@Suite struct RopePermutationTests {
    @Test func roundTripIsIdentity() {
        let rows = 3 * 6, cols = 5
        let w0 = (0..<(rows * cols)).map { Float($0) * 0.25 - 7 }
        var w = w0
        w.withUnsafeMutableBufferPointer {
            permuteRopeRows($0, rows: rows, cols: cols, headDim: 6, from: .halfSplit, to: .interleaved)
        }
        #expect(w != w0)
        w.withUnsafeMutableBufferPointer {
            permuteRopeRows($0, rows: rows, cols: cols, headDim: 6, from: .interleaved, to: .halfSplit)
        }
        #expect(w == w0)
        w.withUnsafeMutableBufferPointer {
            permuteRopeRows($0, rows: rows, cols: cols, headDim: 6, from: .halfSplit, to: .halfSplit)
        }
        #expect(w == w0)
    }

    @Test(arguments: [(4, 8, 3), (3, 6, 7), (2, 2, 1)])
    func matchesConvertHfToGgufPermute(nHead: Int, headDim: Int, cols: Int) throws {
        let dir = try TestData.tempDir("rope")
        try runPython("rope_permute_ref.py", [dir.path, "\(nHead)", "\(headDim)", "\(cols)"])
        let input = try readF32(dir.appendingPathComponent("input.f32").path)
        let want = try readF32(dir.appendingPathComponent("permuted.f32").path)
        var w = input
        w.withUnsafeMutableBufferPointer {
            permuteRopeRows($0, rows: nHead * headDim, cols: cols, headDim: headDim, from: .halfSplit, to: .interleaved)
        }
        expectBitEqual(w, want, "halfSplit -> interleaved")
        var back = want
        back.withUnsafeMutableBufferPointer {
            permuteRopeRows($0, rows: nHead * headDim, cols: cols, headDim: headDim, from: .interleaved, to: .halfSplit)
        }
        expectBitEqual(back, input, "interleaved -> halfSplit")
    }
}
