// Corrupt safetensors files, configs and indexes must throw ModelFormatError naming the file and the
// field (never crash, never read out of bounds), as the reference library rejects the same files.
import Foundation
import Testing
import TestSupport
@testable import Node

/// Writes `8-byte length + header + data`; `length` overrides the header length field.
func writeSafetensors(_ dir: URL, _ name: String, header: String, data: [UInt8], length: UInt64? = nil) throws -> String {
    var bytes = withUnsafeBytes(of: (length ?? UInt64(header.utf8.count)).littleEndian) { [UInt8]($0) }
    bytes += Array(header.utf8) + data
    let p = dir.appendingPathComponent(name).path
    try Data(bytes).write(to: URL(fileURLWithPath: p))
    return p
}

/// Expects a ModelFormatError whose description contains every string in `needles`.
func expectFormatError(_ needles: [String], sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected a ModelFormatError mentioning \(needles), got success", sourceLocation: sourceLocation)
    } catch let e as ModelFormatError {
        if ProcessInfo.processInfo.environment["SHOW_ERRORS"] != nil { print("ERR:", e) }
        for n in needles {
            #expect("\(e)".contains(n), "missing \"\(n)\" in: \(e)", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("expected a ModelFormatError, got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct SafetensorsCorruptionTests {
    let dir: URL
    init() throws { dir = try TestData.tempDir("st-bad") }

    func open(_ name: String, header: String, data: [UInt8], length: UInt64? = nil) throws {
        _ = try SafetensorsFile(path: try writeSafetensors(dir, name, header: header, data: data, length: length))
    }

    @Test func validMinimalFileOpens() throws {
        let p = try writeSafetensors(dir, "ok.safetensors", header:
            #"{"__metadata__":{"k":"v"},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0,3],"data_offsets":[8,8]}}"#,
            data: [0, 0, 0x80, 0x3f, 0x80, 0x3f, 0x00, 0xc0])
        let f = try SafetensorsFile(path: p)
        #expect(f.tensors.map(\.name) == ["a", "b", "e"])
        #expect(try f.dequantize("a") == [1])
        #expect(try f.dequantize("b") == [1, -2])
        #expect(try f.dequantize("e") == [])
        #expect(f.metadata == ["k": "v"])
    }

    @Test func portableHalfConversionMatchesFloat16() {
        for h in 0...UInt16.max {
            let a = halfBitsToFloatPortable(h), b = halfBitsToFloat(h)
            if b.isNaN {
                #expect(a.isNaN, "\(h)")
            } else if a.bitPattern != b.bitPattern {
                Issue.record("half 0x\(String(h, radix: 16)): \(a) vs \(b)")
                return
            }
        }
    }

    @Test func headerLengthHuge() {
        expectFormatError(["huge.safetensors", "header length", "100000000"]) {
            try open("huge.safetensors", header: "{}", data: [], length: 1 << 62)
        }
        expectFormatError(["huge2.safetensors", "header length"]) {
            try open("huge2.safetensors", header: "{}", data: [], length: UInt64.max)
        }
    }

    @Test func headerLengthBeyondFile() {
        expectFormatError(["beyond.safetensors", "header length", "truncated"]) {
            try open("beyond.safetensors", header: "{}", data: [], length: 4096)
        }
        expectFormatError(["tiny.safetensors", "header length"]) {
            let p = dir.appendingPathComponent("tiny.safetensors").path
            try Data([1, 2, 3]).write(to: URL(fileURLWithPath: p))
            _ = try SafetensorsFile(path: p)
        }
    }

    @Test func invalidJSON() {
        expectFormatError(["badjson.safetensors", "header JSON"]) {
            try open("badjson.safetensors", header: #"{"a": {"dtype": "F32", "shape": [1"#, data: [])
        }
        expectFormatError(["notobj.safetensors", "header"]) {
            try open("notobj.safetensors", header: "[1,2]", data: [])
        }
        expectFormatError(["entry.safetensors", "tensor a", "JSON object"]) {
            try open("entry.safetensors", header: #"{"a": 3}"#, data: [])
        }
    }

    @Test func truncatedData() throws {
        let (ckpt, _) = try convertStories260K(dtype: "F32")
        let src = try Data(contentsOf: URL(fileURLWithPath: ckpt + "/model.safetensors"))
        let p = dir.appendingPathComponent("trunc.safetensors").path
        try src.prefix(src.count - 4).write(to: URL(fileURLWithPath: p))
        expectFormatError(["trunc.safetensors", "data_offsets", "truncated"]) { _ = try SafetensorsFile(path: p) }
    }

    @Test func overlappingOffsets() {
        expectFormatError(["overlap.safetensors", "tensor b data_offsets", "overlapping a"]) {
            try open("overlap.safetensors", header:
                #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                data: [UInt8](repeating: 0, count: 12))
        }
        // Two names aliasing the same bytes overlap too.
        expectFormatError(["alias.safetensors", "data_offsets", "overlapping"]) {
            try open("alias.safetensors", header:
                #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
                data: [0, 0, 0x80, 0x3f])
        }
    }

    @Test func holesAndTrailingBytes() {
        expectFormatError(["hole.safetensors", "tensor b data_offsets", "hole"]) {
            try open("hole.safetensors", header:
                #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                data: [UInt8](repeating: 0, count: 12))
        }
        expectFormatError(["lead.safetensors", "tensor a data_offsets", "start at 0"]) {
            try open("lead.safetensors", header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                     data: [UInt8](repeating: 0, count: 8))
        }
        expectFormatError(["trail.safetensors", "data section", "trailing"]) {
            try open("trail.safetensors", header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                     data: [UInt8](repeating: 0, count: 8))
        }
    }

    @Test func duplicateKeys() {
        expectFormatError(["dup.safetensors", "header", "duplicate", "\"a\" more than once"]) {
            try open("dup.safetensors", header:
                #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
                data: [0, 0, 0x80, 0x3f])
        }
        // Keys inside strings, nested objects and metadata do not count as top-level keys.
        let keys = #"{"__metadata__":{"x":"{\"a\",","y":"b"},"a,\"b":{"shape":[1,2],"q":"}"}}"#
        #expect(Array(keys.utf8).withUnsafeBytes { SafetensorsFile.topLevelKeys($0) } == ["__metadata__", #"a,\"b"#])
    }

    @Test func badDType() {
        expectFormatError(["dtype.safetensors", "tensor a dtype", "F33"]) {
            try open("dtype.safetensors", header: #"{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#,
                     data: [0, 0, 0, 0])
        }
    }

    @Test func unsupportedDTypeParsesButRefusesToDequantize() throws {
        let p = try writeSafetensors(dir, "i64.safetensors",
                                     header: #"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#,
                                     data: [UInt8](repeating: 0, count: 8))
        let f = try SafetensorsFile(path: p)
        #expect(f.tensor("a")?.dtype == .i64)
        expectFormatError(["i64.safetensors", "tensor a dtype", "I64", "F32, F16 or BF16"]) {
            _ = try f.dequantize("a")
        }
    }

    @Test func shapeOffsetMismatchAndNegativeDims() {
        expectFormatError(["mismatch.safetensors", "tensor a data_offsets", "12 bytes", "8 bytes"]) {
            try open("mismatch.safetensors", header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                     data: [UInt8](repeating: 0, count: 8))
        }
        expectFormatError(["neg.safetensors", "tensor a shape[1]", ">= 0", "-2"]) {
            try open("neg.safetensors", header: #"{"a":{"dtype":"F32","shape":[2,-2],"data_offsets":[0,16]}}"#,
                     data: [UInt8](repeating: 0, count: 16))
        }
        expectFormatError(["neg0.safetensors", "tensor a shape[0]", "-1"]) {
            try open("neg0.safetensors", header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
                     data: [UInt8](repeating: 0, count: 4))
        }
        expectFormatError(["ovf.safetensors", "tensor a shape", "overflow"]) {
            try open("ovf.safetensors", header:
                #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#,
                data: [UInt8](repeating: 0, count: 4))
        }
        expectFormatError(["frac.safetensors", "tensor a shape[0]", "integer"]) {
            try open("frac.safetensors", header: #"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#,
                     data: [UInt8](repeating: 0, count: 4))
        }
        expectFormatError(["offs.safetensors", "tensor a data_offsets", "[begin, end]"]) {
            try open("offs.safetensors", header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#,
                     data: [UInt8](repeating: 0, count: 4))
        }
    }

    // MARK: config.json and the sharded index

    /// A converted F32 checkpoint whose config.json is rewritten by `edit`.
    func checkpointWithConfig(_ edit: (inout [String: Any]) -> Void, shards: Int = 1) throws -> String {
        let (ckpt, _) = try convertStories260K(dtype: "F32", shards: shards)
        let url = URL(fileURLWithPath: ckpt + "/config.json")
        var c = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&c)
        try JSONSerialization.data(withJSONObject: c).write(to: url)
        return ckpt
    }

    @Test func missingConfigKey() throws {
        for key in ["hidden_size", "num_hidden_layers", "rms_norm_eps", "model_type"] {
            let ckpt = try checkpointWithConfig { $0.removeValue(forKey: key) }
            expectFormatError(["config.json", key]) { _ = try openModel(path: ckpt) }
        }
    }

    @Test func configDefaultsAndRejections() throws {
        // num_key_value_heads defaults to the head count; then k's shape disagrees with the config.
        let mha = try checkpointWithConfig { $0.removeValue(forKey: "num_key_value_heads") }
        expectFormatError(["blk.0.attn_k.weight shape", "[64, 64]", "[32, 64]"]) { _ = try openModel(path: mha) }
        let scaled = try checkpointWithConfig { $0["rope_scaling"] = ["type": "linear", "factor": 2.0] }
        expectFormatError(["config.json", "rope_scaling", "linear"]) { _ = try openModel(path: scaled) }
        let gpt = try checkpointWithConfig { $0["model_type"] = "gpt2" }
        expectFormatError(["config.json", "model_type", "gpt2"]) { _ = try openModel(path: gpt) }
        let typed = try checkpointWithConfig { $0["hidden_size"] = "64" }
        expectFormatError(["config.json", "hidden_size", "integer"]) { _ = try openModel(path: typed) }
        // Untied without lm_head: the required output tensor is missing.
        let untied = try checkpointWithConfig { $0["tie_word_embeddings"] = false }
        expectFormatError(["output.weight", "missing"]) { _ = try openModel(path: untied) }
        // Defaults: rope_theta absent -> 10000; mistral reads as llama.
        let m = try openModel(path: try checkpointWithConfig {
            $0.removeValue(forKey: "rope_theta")
            $0["model_type"] = "mistral"
        })
        #expect(m.config.ropeTheta == 10000 && m.config.architecture == "llama")
    }

    /// A sharded F32 checkpoint whose index weight_map is rewritten by `edit`.
    func shardedWithIndex(_ edit: (inout [String: Any]) -> Void) throws -> String {
        let (ckpt, _) = try convertStories260K(dtype: "F32", shards: 2)
        let url = URL(fileURLWithPath: ckpt + "/model.safetensors.index.json")
        var index = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        var map = index["weight_map"] as! [String: Any]
        edit(&map)
        index["weight_map"] = map
        try JSONSerialization.data(withJSONObject: index).write(to: url)
        return ckpt
    }

    @Test func indexPointingToMissingTensor() throws {
        let name = "model.layers.0.self_attn.q_proj.weight"
        let ckpt = try shardedWithIndex { map in
            let shard = map[name] as! String
            map[name] = shard.contains("00001") ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors"
        }
        expectFormatError(["model.safetensors.index.json", "weight_map \(name)", "shard"]) {
            _ = try openModel(path: ckpt)
        }
        let ghost = try shardedWithIndex { $0["model.layers.9.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors" }
        expectFormatError(["model.safetensors.index.json", "model.layers.9.mlp.up_proj.weight"]) {
            _ = try openModel(path: ghost)
        }
        let noShard = try shardedWithIndex { $0[name] = "model-00003-of-00002.safetensors" }
        expectFormatError(["model-00003-of-00002.safetensors"]) { _ = try openModel(path: noShard) }
        let escape = try shardedWithIndex { $0[name] = "../model.safetensors" }
        expectFormatError(["model.safetensors.index.json", "weight_map \(name)"]) { _ = try openModel(path: escape) }
        // A tensor left out of the index is missing from the model.
        let dropped = try shardedWithIndex { $0.removeValue(forKey: "model.layers.2.mlp.down_proj.weight") }
        expectFormatError(["blk.2.ffn_down.weight", "missing"]) { _ = try openModel(path: dropped) }
    }

    @Test func biasesAreRefused() throws {
        let p = try writeSafetensors(dir, "model.safetensors", header:
            #"{"model.layers.0.self_attn.q_proj.bias":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            data: [0, 0, 0, 0])
        let cfg = try ModelConfig(hfConfig: Data(#"{"model_type":"qwen2","hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":4,"max_position_embeddings":16,"rms_norm_eps":1e-6}"#.utf8), file: "config.json")
        #expect(cfg.architecture == "qwen2" && cfg.nKVHeads == 2 && !cfg.tiedEmbeddings)
        expectFormatError(["model.safetensors", "q_proj.bias", "qwen2"]) {
            _ = try SafetensorsModel(path: p, config: cfg, files: [SafetensorsFile(path: p)])
        }
    }
}
