import Foundation
import Testing
import TestSupport
@testable import Node

@Suite struct Llama2cCheckpointTests {
    @Test func readsStories260K() throws {
        let m = try Llama2cCheckpoint(path: TestData.shared("llama2c/stories260K.bin"))
        let c = m.config
        #expect(c.dim == 64 && c.hiddenDim == 172 && c.nLayers == 5 && c.nHeads == 8 && c.nKVHeads == 4)
        #expect(c.vocabSize == 512 && c.contextLength == 512 && c.tiedEmbeddings && c.headDim == 8)
        try m.validateShapes()
        // The first embedding row, as read independently with numpy from byte offset 28.
        let emb = try m.dequantize(TensorName.tokenEmbedding)
        let raw = try Data(contentsOf: URL(fileURLWithPath: m.path))
        let first = raw.subdata(in: 28..<32).withUnsafeBytes { Float(bitPattern: $0.loadUnaligned(as: UInt32.self)) }
        #expect(emb[0] == first)
    }

    @Test func rejectsTruncatedFile() throws {
        let dir = try TestData.tempDir("l2c")
        let src = try Data(contentsOf: URL(fileURLWithPath: TestData.shared("llama2c/stories260K.bin")))
        let p = dir.appendingPathComponent("trunc.bin").path
        try src.prefix(src.count - 4).write(to: URL(fileURLWithPath: p))
        #expect {
            try Llama2cCheckpoint(path: p)
        } throws: { e in
            let s = "\(e)"
            return s.contains("trunc.bin") && s.contains("file size") && s.contains("truncated")
        }
        // An absurd header must be rejected before anything is sized from it.
        var bad = src
        bad.replaceSubrange(0..<4, with: withUnsafeBytes(of: Int32(1 << 30).littleEndian) { Data($0) })
        let q = dir.appendingPathComponent("bad.bin").path
        try bad.write(to: URL(fileURLWithPath: q))
        #expect(throws: ModelFormatError.self) { try Llama2cCheckpoint(path: q) }
    }
}
