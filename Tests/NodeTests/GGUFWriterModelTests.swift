// GGUFWriter on real models: SmolLM2 copied unchanged through the writer with copied metadata, and
// stories260K (llama2.c) written from scratch as F32 with built llama metadata and vocabulary.
import Foundation
import Testing
import TestSupport
import HessianDist
@testable import Node

@Suite struct GGUFWriterModelTests {
    /// Every tensor of `source` in file order with its stored bytes, read lazily one at a time.
    static func copiedTensors(_ source: GGUFFile) -> [(info: GGUFTensorSpec, bytes: () throws -> [UInt8])] {
        source.tensors.map { t in
            (GGUFTensorSpec(name: t.name, shape: t.shape, type: t.type), { try source.withTensorBytes(t.name) { Array($0) } })
        }
    }

    @Test(.enabled(if: TestData.smolLM2 != nil, "needs the SmolLM2 GGUF from the setup script"))
    func smolLM2CopiesUnchanged() throws {
        let src = try GGUFFile(path: TestData.smolLM2!)
        let dir = try TestData.tempDir("ggufw-smol")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("copy.gguf").path
        let fileType = try src.metadata.int("general.file_type")
        let md = ggufMetadata(copying: src.metadata, fileType: fileType)
        try writeGGUF(path: path, metadata: md, tensors: Self.copiedTensors(src))
        #expect(try directoryListing(dir) == ["copy.gguf"])

        // Our reader: the same metadata in the same order (file type and quantization version are already
        // Q4_1 = 3 and 2 in the source), the same tensors at the same offsets with the same bytes.
        let out = try GGUFFile(path: path)
        #expect(src.metadata["general.quantization_version"] == .uint32(2))
        expectSameMetadata(out.metadata.keys.map { ($0, out.metadata[$0]!) },
                           src.metadata.keys.map { ($0, src.metadata[$0]!) }, "copied metadata")
        #expect(out.alignment == src.alignment && out.dataOffset == src.dataOffset)
        #expect(out.tensors == src.tensors)
        for t in src.tensors {
            let a = try src.withTensorBytes(t.name) { Array($0) }
            let b = try out.withTensorBytes(t.name) { Array($0) }
            #expect(a == b, "\(t.name) bytes")
        }
        // The same layout gives the same size (llama.cpp pads after the last tensor too).
        let size = { (p: String) in try FileManager.default.attributesOfItem(atPath: p)[.size] as! Int }
        #expect(try size(path) == size(src.path))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(contentsOf: URL(fileURLWithPath: src.path)),
                "byte-identical copy")
        // gguf-py reads both: same tensors (types, shapes, bytes) and the same tokenizer.* metadata.
        let report = try runPython("gguf_read_written.py", ["compare", src.path, path])
        #expect(report.hasPrefix("ok "), "\(report)")
    }

    /// Changing the file type replaces `general.file_type` in place; alignment and overrides too.
    @Test func copiedMetadataReplacesOnlyTheQuantizationKeys() throws {
        let src = GGUFMetadata(file: "src.gguf", values: [
            "general.architecture": .string("llama"), "general.alignment": .uint32(64),
            "general.file_type": .uint32(3), "general.name": .string("m"), "llama.block_count": .uint32(2),
        ], keys: ["general.architecture", "general.alignment", "general.file_type", "general.name", "llama.block_count"])
        let a = ggufMetadata(copying: src, fileType: LlamaFileType.mostlyQ4_K_M.rawValue)
        expectSameMetadata(a, [("general.architecture", .string("llama")), ("general.file_type", .uint32(15)),
                               ("general.name", .string("m")), ("llama.block_count", .uint32(2)),
                               ("general.quantization_version", .uint32(2))], "default alignment")
        let b = ggufMetadata(copying: src, fileType: 7, alignment: 128, overrides: [("general.name", .string("q")), ("x.y", .bool(true))])
        expectSameMetadata(b, [("general.architecture", .string("llama")), ("general.alignment", .uint32(128)),
                               ("general.file_type", .uint32(7)), ("general.name", .string("q")),
                               ("llama.block_count", .uint32(2)), ("general.quantization_version", .uint32(2)),
                               ("x.y", .bool(true))], "alignment and overrides")
    }

    @Test func llamaFileTypeMatchesGGUFPy() throws {
        // gguf-py's LlamaFileType mirrors llama.h's enum llama_ftype.
        let out = try run(ProcessInfo.processInfo.environment["HESSDIST_PYTHON"] ?? "python3",
                          ["-c", "import gguf\nfor m in gguf.LlamaFileType: print(m.name, m.value)"])
        var py: [String: Int] = [:]
        for line in out.split(separator: "\n") {
            let p = line.split(separator: " ")
            py[String(p[0])] = Int(p[1])!
        }
        for t in LlamaFileType.allCases {
            let name = "\(t)".dropFirst("mostly".count).uppercased()
            let key = t == .allF32 ? "ALL_F32" : "MOSTLY_" + name
            #expect(py[key] == t.rawValue, "\(key): ours \(t.rawValue), gguf-py \(py[key].map(String.init) ?? "missing")")
        }
        #expect(LlamaFileType(mainType: .q4_K) == .mostlyQ4_K_M && LlamaFileType(mainType: .f32) == .allF32)
    }

    @Test func stories260KFromScratch() throws {
        let ckpt = try Llama2cCheckpoint(path: TestData.shared("llama2c/stories260K.bin"))
        let tok = try Llama2cTokenizer(path: TestData.shared("llama2c/tok512.bin"), vocabSize: ckpt.config.vocabSize)
        let dir = try TestData.tempDir("ggufw-260k")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("stories260K.gguf").path
        let md = try ggufMetadata(for: ckpt.config, tokenizer: tok, name: "stories260K")
        let tensors = ckpt.tensors.map { t in
            (info: GGUFTensorSpec(name: t.name, shape: t.shape, type: .f32), bytes: { () throws -> [UInt8] in
                try ckpt.dequantize(t.name).withUnsafeBytes { Array($0) }
            })
        }
        try writeGGUF(path: path, metadata: md, tensors: tensors)

        // Our model reader: the same config and weights.
        let model = try GGUFModel(path: path)
        #expect(model.config == ckpt.config, "\(model.config) vs \(ckpt.config)")
        #expect(try model.gguf.metadata.int("general.file_type") == 0)
        #expect(model.tensors.map(\.name) == ckpt.tensors.map(\.name))
        for t in ckpt.tensors {
            #expect(try model.dequantize(t.name) == ckpt.dequantize(t.name), "\(t.name)")
        }

        // The GGUF `llama` tokenizer on the converted vocabulary encodes as llama2.c does.
        let gtok = try makeGGUFTokenizer(metadata: model.gguf.metadata)
        #expect(gtok is SentencePieceTokenizer && gtok.vocabSize == 512 && gtok.bosToken == 1 && gtok.eosToken == 2)
        let md2 = model.gguf.metadata
        let tokens = try md2.stringArray("tokenizer.ggml.tokens")
        let types = try md2.intArray("tokenizer.ggml.token_type")
        #expect(Array(tokens.prefix(4)) == ["<unk>", "<s>", "</s>", "<0x00>"])
        #expect(Array(types.prefix(4)) == [2, 3, 3, 6] && types[3 + 255] == 6 && types[3 + 256] == 1)
        #expect(tokens.contains("\u{2581}the") && !tokens.contains { $0.contains(" ") })
        let stories = try String(contentsOfFile: TestData.shared("text/tinystories_valid_sample.txt"), encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: true).prefix(200).map(String.init)
        let texts = ["Once upon a time, there was a little girl named Lily.",
                     "She liked to play outside in the sun with her dog, Max!",
                     "\"Can I have some cake?\" asked Tom. Mom said yes.", "x", "  two spaces", "caf\u{e9} 🙂"] + stories
        var mismatches: [String] = []
        for s in texts {
            for bos in [false, true] where gtok.encode(s, addBOS: bos) != tok.encode(s, addBOS: bos) {
                mismatches.append("\(bos) \(s.prefix(60)): \(gtok.encode(s, addBOS: bos).prefix(12)) vs \(tok.encode(s, addBOS: bos).prefix(12))")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches, first: \(mismatches.first ?? "")")

        // gguf-py reads it: the same metadata and the same weights.
        let py = try GGUFPyDump(path)
        defer { try? FileManager.default.removeItem(at: py.dir) }
        expectSameMetadata(py.kv, md, "gguf-py metadata")
        #expect(py.tensors.map(\.name) == ckpt.tensors.map(\.name))
        for (i, t) in ckpt.tensors.enumerated() {
            expectBitExact(try py.values(i), try ckpt.dequantize(t.name), "\(t.name)")
        }
    }

    @Test func builtMetadataRefusesAMismatchedTokenizer() throws {
        let ckpt = try Llama2cCheckpoint(path: TestData.shared("llama2c/stories260K.bin"))
        var config = ckpt.config
        let tok = try Llama2cTokenizer(path: TestData.shared("llama2c/tok512.bin"), vocabSize: 512)
        config.vocabSize = 1000
        #expect(throws: GGUFWriterError.self) { try ggufMetadata(for: config, tokenizer: tok, name: "x") }
        config = ckpt.config
        config.architecture = "gpt2"
        #expect(throws: GGUFWriterError.self) { try ggufMetadata(for: config, tokenizer: nil, name: "x") }
        let md = try ggufMetadata(for: ckpt.config, tokenizer: nil, name: "x", fileType: LlamaFileType.mostlyQ6_K.rawValue)
        #expect(!md.contains { $0.0.hasPrefix("tokenizer.") })
        #expect(md.first { $0.0 == "general.file_type" }?.1 == .uint32(18))
    }
}
