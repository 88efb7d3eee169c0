// Malformed GGUF files built byte by byte: each must throw a ModelFormatError naming the field,
// never trap or allocate from a corrupt count.
import Foundation
import Testing
import TestSupport
@testable import Node

/// Writes GGUF bytes field by field, valid or not.
struct GGUFBytes {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func str(_ s: String) { u64(UInt64(s.utf8.count)); bytes += s.utf8 }

    mutating func header(version: UInt32 = 3, tensors: UInt64, kvs: UInt64, magic: UInt32 = GGUFFile.magic) {
        u32(magic); u32(version); u64(tensors); u64(kvs)
    }
    mutating func kvString(_ key: String, _ v: String) { str(key); u32(8); str(v) }
    mutating func kvU32(_ key: String, _ v: UInt32) { str(key); u32(4); u32(v) }
    mutating func tensorInfo(_ name: String, ne: [UInt64], type: UInt32 = 0, offset: UInt64) {
        str(name); u32(UInt32(ne.count)); ne.forEach { u64($0) }; u32(type); u64(offset)
    }
    mutating func align(_ a: Int = 32) { while bytes.count % a != 0 { bytes.append(0) } }
    mutating func data(_ n: Int) { bytes += (0..<n).map { UInt8(truncatingIfNeeded: $0) } }

    /// Two F32 tensors of 8 floats at relative offsets 0 and `secondOffset`.
    static func twoTensors(secondOffset: UInt64 = 32, secondNE: [UInt64] = [8], secondType: UInt32 = 0,
                           secondName: String = "b", dataBytes: Int = 64) -> GGUFBytes {
        var g = GGUFBytes()
        g.header(tensors: 2, kvs: 1)
        g.kvString("general.architecture", "llama")
        g.tensorInfo("a", ne: [8], offset: 0)
        g.tensorInfo(secondName, ne: secondNE, type: secondType, offset: secondOffset)
        g.align()
        g.data(dataBytes)
        return g
    }

    func write(_ tag: String) throws -> String {
        let p = try TestData.tempDir("gguf-bad").appendingPathComponent("\(tag).gguf").path
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }
}

/// Opening `g` throws a ModelFormatError whose text contains every string in `mentions`.
func expectRejected(_ g: GGUFBytes, _ tag: String, mentions: [String],
                    sourceLocation: SourceLocation = #_sourceLocation) throws {
    let path = try g.write(tag)
    do {
        _ = try GGUFFile(path: path)
        Issue.record("\(tag): opened", sourceLocation: sourceLocation)
    } catch let e as ModelFormatError {
        let s = "\(e)"
        #expect(e.file == path, sourceLocation: sourceLocation)
        for m in mentions { #expect(s.contains(m), "\(tag): \(s) lacks \(m)", sourceLocation: sourceLocation) }
    }
}

@Suite struct GGUFCorruptionTests {
    @Test func builderMakesAValidFile() throws {
        let g = try GGUFFile(path: try GGUFBytes.twoTensors().write("valid"))
        #expect(g.tensors.map(\.name) == ["a", "b"] && g.alignment == 32 && g.version == 3)
        #expect(g.tensors[1].offset == g.dataOffset + 32)
        let v2 = GGUFBytes.twoTensors()
        var b = v2
        b.bytes[4] = 2  // version 2: same layout
        #expect(try GGUFFile(path: try b.write("v2")).version == 2)
    }

    @Test func badMagicAndVersion() throws {
        var g = GGUFBytes.twoTensors()
        g.bytes[0] = UInt8(ascii: "X")
        try expectRejected(g, "magic", mentions: ["magic", "0x46554747", "not a GGUF file"])
        g = GGUFBytes.twoTensors()
        g.bytes[4] = 1
        try expectRejected(g, "v1", mentions: ["version", "2 or 3", "found 1", "v1"])
        g = GGUFBytes.twoTensors()
        g.bytes[4] = 0; g.bytes[7] = 3
        try expectRejected(g, "bigendian", mentions: ["version", "big-endian"])
        try expectRejected(GGUFBytes(), "empty", mentions: ["header: magic", "truncated"])
    }

    @Test func absurdCounts() throws {
        var g = GGUFBytes()
        g.header(tensors: 1 << 60, kvs: 0)
        try expectRejected(g, "tensors", mentions: ["tensor_count", "found 1152921504606846976"])
        g = GGUFBytes()
        g.header(tensors: 0, kvs: UInt64.max)
        try expectRejected(g, "kvs", mentions: ["kv_count"])
        // An array claiming 2^60 uint32s must be refused before anything is reserved.
        g = GGUFBytes()
        g.header(tensors: 0, kvs: 1)
        g.str("big"); g.u32(9); g.u32(4); g.u64(1 << 60); g.u32(1)
        try expectRejected(g, "array", mentions: ["metadata key big", "array count", "at most 1 ", "found 1152921504606846976"])
        // A string length of 2^63 + 1 (beyond Int) is refused, not trapped on.
        g = GGUFBytes()
        g.header(tensors: 0, kvs: 1)
        g.str("s"); g.u32(8); g.u64((1 << 63) + 1)
        try expectRejected(g, "string", mentions: ["metadata key s", "string value length"])
        // Deeply nested arrays stop at the depth limit instead of recursing without bound.
        g = GGUFBytes()
        g.header(tensors: 0, kvs: 1)
        g.str("deep"); g.u32(9)
        for _ in 0..<20 { g.u32(9); g.u64(1) }
        g.u32(0); g.u64(0)
        try expectRejected(g, "deep", mentions: ["metadata key deep", "nesting"])
    }

    @Test func badMetadata() throws {
        var g = GGUFBytes()
        g.header(tensors: 0, kvs: 1)
        g.str("k"); g.u32(13); g.u32(0)
        try expectRejected(g, "vtype", mentions: ["metadata key k", "value type", "found 13"])
        g = GGUFBytes()
        g.header(tensors: 0, kvs: 2)
        g.kvU32("k", 1); g.kvU32("k", 2)
        try expectRejected(g, "dupkey", mentions: ["duplicate of k"])
        g = GGUFBytes()
        g.header(tensors: 0, kvs: 1)
        g.kvU32("general.alignment", 48)
        try expectRejected(g, "align", mentions: ["general.alignment", "power of two"])
        g = GGUFBytes()
        g.header(tensors: 0, kvs: 1)
        g.str("b"); g.u32(7); g.u8(2)
        try expectRejected(g, "bool", mentions: ["bool value", "0 or 1"])
        g = GGUFBytes()
        g.header(tensors: 0, kvs: 1)
        g.u64(2); g.bytes += [0xFF, 0xFE]; g.u32(4); g.u32(0)
        try expectRejected(g, "utf8", mentions: ["metadata KV 0", "key", "valid UTF-8"])
    }

    @Test func badTensorInfos() throws {
        try expectRejected(.twoTensors(secondOffset: 4096), "outside", mentions: ["tensor b", "data", "inside the file"])
        try expectRejected(.twoTensors(secondOffset: UInt64(Int.max) - 31), "overflow", mentions: ["tensor b"])
        try expectRejected(.twoTensors(secondOffset: 0), "overlap", mentions: ["tensor b", "overlaps", "where a ends"])
        try expectRejected(.twoTensors(secondOffset: 16), "unaligned", mentions: ["tensor info 1 (b)", "offset", "alignment 32"])
        try expectRejected(.twoTensors(secondName: "a"), "dupname", mentions: ["tensor info 1 (a)", "unique tensor names"])
        try expectRejected(.twoTensors(secondType: 19), "ttype", mentions: ["tensor info 1 (b)", "type", "found 19"])
        try expectRejected(.twoTensors(secondNE: [1, 1, 1, 1, 8]), "ndims", mentions: ["n_dims", "1...4", "found 5"])
        try expectRejected(.twoTensors(secondNE: [48, 1], secondType: 2), "rowlen", mentions: ["ne[0]", "Q4_0 block size 32", "48"])
        try expectRejected(.twoTensors(secondNE: [1 << 40, 1 << 40]), "elements", mentions: ["tensor info 1 (b)", "ne"])
        try expectRejected(.twoTensors(dataBytes: 60), "shortdata", mentions: ["tensor b", "truncated"])
    }
}
