// GGUFWriter: round trip through our GGUFFile and through gguf-py's GGUFReader (metadata of every
// value type, tensors of every stored type, alignment 32 and 64), the state machine and atomicity.
import Foundation
import Testing
import TestSupport
import HessianDist
@testable import Node

/// Deterministic bytes for test tensors (SplitMix64).
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
    /// A random finite half (the top exponent bit is cleared when the exponent is all ones).
    mutating func finiteHalfBits() -> UInt16 {
        var b = UInt16(truncatingIfNeeded: next())
        if b & 0x7C00 == 0x7C00 { b ^= 0x4000 }
        return b
    }
}

enum WriterFixtures {
    /// Byte offsets of the f16 fields (scales, mins) inside one block, as in gguf_fixtures.py.
    static let f16Fields: [GGMLType: [Int]] = [
        .q4_0: [0], .q4_1: [0, 2], .q5_0: [0], .q5_1: [0, 2], .q8_0: [0],
        .q2_K: [80, 82], .q3_K: [108], .q4_K: [0, 2], .q5_K: [0, 2], .q6_K: [208], .iq4_nl: [0], .iq4_xs: [0],
        .mxfp4: [],  // an E8M0 exponent byte: every value is finite
    ]

    /// Random block bytes whose f16 scale fields are finite (dequantization is defined for any other bits).
    static func randomTensor(_ type: GGMLType, shape: [Int], rng: inout SplitMix64) -> [UInt8] {
        let n = shape.reduce(1, *)
        var b = rng.bytes(type.byteCount(elements: n)!)
        if let fields = f16Fields[type] {
            for block in 0..<(n / type.blockSize) {
                for off in fields {
                    let h = rng.finiteHalfBits()
                    b[block * type.typeSize + off] = UInt8(h & 0xFF)
                    b[block * type.typeSize + off + 1] = UInt8(h >> 8)
                }
            }
        } else if type == .f32 {
            for i in 0..<n {   // finite floats: normal values from random halves scaled
                let f = Float(Float16(bitPattern: rng.finiteHalfBits()))
                withUnsafeBytes(of: f.bitPattern.littleEndian) { for k in 0..<4 { b[i * 4 + k] = $0[k] } }
            }
        }
        return b
    }

    /// Metadata of every value type, nested and empty arrays included.
    static func everyValueType(alignment: Int) -> [(String, GGUFValue)] {
        var md: [(String, GGUFValue)] = [("general.architecture", .string("llama"))]
        if alignment != 32 { md.append(("general.alignment", .uint32(UInt32(alignment)))) }
        md += [
            ("test.u8", .uint8(200)), ("test.i8", .int8(-100)), ("test.u16", .uint16(60000)),
            ("test.i16", .int16(-30000)), ("test.u32", .uint32(4_000_000_000)), ("test.i32", .int32(-2_000_000_000)),
            ("test.f32", .float32(1.5)), ("test.f32.tiny", .float32(.leastNonzeroMagnitude)),
            ("test.bool", .bool(false)), ("test.string", .string("h\u{e9}llo w\u{f6}rld \u{2713} \u{2581}")),
            ("test.string.empty", .string("")),
            ("test.u64", .uint64((1 << 63) + 5)), ("test.i64", .int64(-(1 << 62))), ("test.f64", .float64(-0.1)),
            ("test.array.i32", .array([.int32(1), .int32(-2), .int32(3)])),
            ("test.array.f32", .array([.float32(0.25), .float32(-8)])),
            ("test.array.bool", .array([.bool(true), .bool(false), .bool(true)])),
            ("test.array.str", .array([.string("a"), .string("bc"), .string("")])),
            ("test.array.u8", .array([.uint8(7), .uint8(255)])),
            ("test.array.u64", .array([.uint64(.max), .uint64(0)])),
            ("test.array.f64", .array([.float64(1e300), .float64(-0.0)])),
            ("test.array.empty", .array([])),
            ("test.array.nested", .array([.array([.int32(1), .int32(2)]), .array([.int32(3)])])),
            ("test.array.nested_str", .array([.array([.string("x")]), .array([.string("y"), .string("z")])])),
            ("test.array.nested_mixed", .array([.array([.int16(-1)]), .array([.float32(2)]), .array([])])),
        ]
        return md
    }

    /// One tensor of every type we store, with shapes giving 1-D, 3-D and multi-block rows.
    static func everyTensorType() -> [(GGUFTensorSpec, [UInt8])] {
        var rng = SplitMix64(state: 42)
        var specs: [GGUFTensorSpec] = [
            GGUFTensorSpec(name: "f32.3d", shape: [2, 3, 5], type: .f32),
            GGUFTensorSpec(name: "f32.1d", shape: [17], type: .f32),
            GGUFTensorSpec(name: "f16", shape: [3, 7], type: .f16),
            GGUFTensorSpec(name: "bf16", shape: [3, 7], type: .bf16),
        ]
        for t in [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .iq4_nl, .mxfp4] {
            specs.append(GGUFTensorSpec(name: "\(t)".lowercased(), shape: [3, 96], type: t))
        }
        for t in [GGMLType.q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_xs] {
            specs.append(GGUFTensorSpec(name: "\(t)".lowercased(), shape: [3, 512], type: t))
        }
        specs.append(GGUFTensorSpec(name: "blk.0.attn_q.weight", shape: [2, 2, 256], type: .q4_K))
        return specs.map { ($0, randomTensor($0.type, shape: $0.shape, rng: &rng)) }
    }
}

/// gguf-py's view of a file: `gguf_read_written.py dump`.
struct GGUFPyDump {
    var version: Int
    var alignment: Int
    var dataOffset: Int
    var kv: [(String, GGUFValue)]
    var tensors: [(name: String, type: UInt32, ne: [Int], offset: Int, nBytes: Int)]
    var dir: URL

    init(_ path: String) throws {
        dir = try TestData.tempDir("ggufpy")
        try runPython("gguf_read_written.py", ["dump", path, dir.path])
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("meta.json"))) as! [String: Any]
        version = (obj["version"] as! NSNumber).intValue
        alignment = (obj["alignment"] as! NSNumber).intValue
        dataOffset = (obj["data_offset"] as! NSNumber).intValue
        kv = (obj["kv"] as! [[Any]]).map { ($0[0] as! String, Self.value($0[1] as! [String: Any])) }
        tensors = (obj["tensors"] as! [[String: Any]]).map {
            ($0["name"] as! String, ($0["type"] as! NSNumber).uint32Value, ($0["ne"] as! [NSNumber]).map(\.intValue),
             ($0["offset"] as! NSNumber).intValue, ($0["n_bytes"] as! NSNumber).intValue)
        }
    }

    /// gguf-py's dequantization of tensor `i`.
    func values(_ i: Int) throws -> [Float] { try readF32(dir.appendingPathComponent("\(i).f32").path) }

    static func value(_ o: [String: Any]) -> GGUFValue {
        let type = o["type"] as! String
        if type == "array" { return .array((o["value"] as! [[String: Any]]).map(value)) }
        if type == "bool" { return .bool(o["value"] as! Bool) }
        if type == "string" { return .string(o["value"] as! String) }
        let s = o["value"] as! String
        switch type {
        case "uint8": return .uint8(UInt8(s)!)
        case "int8": return .int8(Int8(s)!)
        case "uint16": return .uint16(UInt16(s)!)
        case "int16": return .int16(Int16(s)!)
        case "uint32": return .uint32(UInt32(s)!)
        case "int32": return .int32(Int32(s)!)
        case "uint64": return .uint64(UInt64(s)!)
        case "int64": return .int64(Int64(s)!)
        case "float32": return .float32(Float(bitPattern: UInt32(s)!))
        case "float64": return .float64(Double(bitPattern: UInt64(s)!))
        default: fatalError("unknown type \(type)")
        }
    }
}

/// Files in `dir` (to check that no partial file is left behind).
func directoryListing(_ dir: URL) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
}

/// Bitwise metadata equality (float NaN/−0 included): compares the encoded bytes.
func expectSameMetadata(_ got: [(String, GGUFValue)], _ want: [(String, GGUFValue)], _ what: String,
                        sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.map(\.0) == want.map(\.0), "\(what): keys/order", sourceLocation: sourceLocation)
    for ((k, a), (_, b)) in zip(got, want) {
        #expect(a.typeID == b.typeID && a.encodedPayload == b.encodedPayload, "\(what): \(k): \(String(describing: a).prefix(200)) vs \(String(describing: b).prefix(200))",
                sourceLocation: sourceLocation)
    }
}

@Suite struct GGUFWriterTests {
    @Test(arguments: [32, 64])
    func roundTripThroughOurReaderAndGGUFPy(alignment: Int) throws {
        let dir = try TestData.tempDir("ggufw-rt")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("rt.gguf").path
        let md = WriterFixtures.everyValueType(alignment: alignment)
        let tensors = WriterFixtures.everyTensorType()

        let w = try GGUFWriter(path: path)
        #expect(w.state == .header)
        try w.addKeyValues(md)
        #expect(w.state == .kv && w.alignment == alignment)
        for (spec, bytes) in tensors { #expect(try w.addTensorInfo(spec) == bytes.count) }
        #expect(w.state == .tensorInfos)
        #expect(!FileManager.default.fileExists(atPath: path))
        for (spec, bytes) in tensors { try w.writeTensorData(spec.name, bytes) }
        #expect(w.state == .data && !FileManager.default.fileExists(atPath: path))
        try w.finish()
        #expect(w.state == .finished)
        #expect(try directoryListing(dir) == ["rt.gguf"])

        // Our reader: same metadata in the same order, same bytes, aligned offsets, declared offsets.
        let g = try GGUFFile(path: path)
        #expect(g.version == 3 && g.alignment == alignment && g.dataOffset % alignment == 0)
        expectSameMetadata(g.metadata.keys.map { ($0, g.metadata[$0]!) }, md, "our reader")
        #expect(g.tensors.map(\.name) == tensors.map(\.0.name))
        for ((spec, bytes), (t, declared)) in zip(tensors, zip(g.tensors, w.declaredTensors)) {
            #expect(t.shape == spec.shape && t.type == spec.type && t.ne == spec.shape.reversed(), "\(t.name)")
            #expect(t.offset % alignment == 0 && t.offset == g.dataOffset + declared.offset, "\(t.name)")
            let stored = try g.withTensorBytes(t.name) { Array($0) }
            #expect(stored == bytes, "\(t.name) bytes")
        }
        // The file ends at the last tensor's padded end.
        let last = g.tensors.last!
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        #expect(size == (last.offset + last.byteCount + alignment - 1) / alignment * alignment)

        // gguf-py: same metadata, offsets, and dequantized values bit for bit equal to dequantizeRow.
        let py = try GGUFPyDump(path)
        defer { try? FileManager.default.removeItem(at: py.dir) }
        #expect(py.version == 3 && py.alignment == alignment && py.dataOffset == g.dataOffset)
        expectSameMetadata(py.kv, md, "gguf-py")
        #expect(py.tensors.map(\.name) == g.tensors.map(\.name))
        for (i, (p, t)) in zip(py.tensors, g.tensors).enumerated() {
            #expect(p.type == t.type.rawValue && p.ne == t.ne && p.offset == t.offset && p.nBytes == t.byteCount, "\(t.name)")
            var ours = [Float](repeating: 0, count: t.elementCount)
            try ours.withUnsafeMutableBufferPointer { out in
                try g.withTensorBytes(t.name) { try dequantizeRow(t.type, from: $0, into: out) }
            }
            expectBitExact(ours, try py.values(i), "\(t.name) (\(t.type))")
        }
    }

    /// A file with metadata only: `finish()` writes the header.
    @Test func metadataOnlyFile() throws {
        let dir = try TestData.tempDir("ggufw-md")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("md.gguf").path
        try writeGGUF(path: path, metadata: [("general.architecture", .string("llama"))], tensors: [])
        let g = try GGUFFile(path: path)
        #expect(g.tensors.isEmpty && g.metadata.keys == ["general.architecture"])
        let empty = dir.appendingPathComponent("empty.gguf").path
        try GGUFWriter(path: empty).finish()
        #expect(try GGUFFile(path: empty).metadata.keys.isEmpty)
    }

    // MARK: state machine and atomicity

    /// Runs `body` on a fresh writer over `dir/x.gguf`, expects it to throw a GGUFWriterError, and checks the
    /// writer failed and left nothing behind (no final file, no partial file).
    func expectFailure(_ what: String, sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: (GGUFWriter) throws -> Void) throws {
        let dir = try TestData.tempDir("ggufw-fail")
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = try GGUFWriter(path: dir.appendingPathComponent("x.gguf").path)
        #expect(try directoryListing(dir).count == 1, "\(what): partial file exists while writing", sourceLocation: sourceLocation)
        var thrown: (any Error)?
        do { try body(w) } catch { thrown = error }
        #expect(thrown is GGUFWriterError, "\(what): threw \(String(describing: thrown))", sourceLocation: sourceLocation)
        #expect(w.state == .failed, "\(what): state \(w.state)", sourceLocation: sourceLocation)
        let left = try directoryListing(dir)
        #expect(left.isEmpty, "\(what): left \(left)", sourceLocation: sourceLocation)
        // A failed writer refuses everything afterwards.
        #expect(throws: GGUFWriterError.self, sourceLocation: sourceLocation) { try w.finish() }
        #expect(throws: GGUFWriterError.self, sourceLocation: sourceLocation) { try w.addKeyValue("late", .bool(true)) }
    }

    static let a = GGUFTensorSpec(name: "a", shape: [2, 32], type: .q8_0)
    static let b = GGUFTensorSpec(name: "b", shape: [4], type: .f32)
    static let aBytes = [UInt8](repeating: 0, count: 2 * 34)
    static let bBytes = [UInt8](repeating: 0, count: 16)

    @Test func outOfOrderCallsThrow() throws {
        try expectFailure("kv after tensor info") { w in
            try w.addTensorInfo(Self.a)
            try w.addKeyValue("general.name", .string("x"))
        }
        try expectFailure("data before tensor infos") { w in
            try w.addKeyValue("general.name", .string("x"))
            try w.writeTensorData("a", Self.aBytes)
        }
        try expectFailure("tensor info after data") { w in
            try w.addTensorInfo(Self.a)
            try w.writeTensorData("a", Self.aBytes)
            try w.addTensorInfo(Self.b)
        }
        try expectFailure("kv after data") { w in
            try w.addTensorInfo(Self.a)
            try w.writeTensorData("a", Self.aBytes)
            try w.addKeyValue("general.name", .string("x"))
        }
        try expectFailure("data out of declared order") { w in
            try w.addTensorInfo(Self.a)
            try w.addTensorInfo(Self.b)
            try w.writeTensorData("b", Self.bBytes)
        }
        try expectFailure("data of an undeclared tensor") { w in
            try w.addTensorInfo(Self.a)
            try w.writeTensorData("c", Self.aBytes)
        }
        try expectFailure("more data than declared") { w in
            try w.addTensorInfo(Self.a)
            try w.writeTensorData("a", Self.aBytes)
            try w.writeTensorData("a", Self.aBytes)
        }
        try expectFailure("finish with data missing") { w in
            try w.addTensorInfo(Self.a)
            try w.addTensorInfo(Self.b)
            try w.writeTensorData("a", Self.aBytes)
            try w.finish()
        }
    }

    @Test func invalidDeclarationsThrow() throws {
        try expectFailure("duplicate key") { w in
            try w.addKeyValue("k", .uint8(1))
            try w.addKeyValue("k", .uint8(2))
        }
        try expectFailure("empty key") { w in try w.addKeyValue("", .uint8(1)) }
        try expectFailure("heterogeneous array") { w in try w.addKeyValue("k", .array([.int32(1), .uint32(2)])) }
        try expectFailure("heterogeneous nested array") { w in
            try w.addKeyValue("k", .array([.array([.int32(1), .string("2")])]))
        }
        try expectFailure("alignment not a power of two") { w in try w.addKeyValue("general.alignment", .uint32(48)) }
        try expectFailure("alignment of the wrong type") { w in try w.addKeyValue("general.alignment", .int32(64)) }
        try expectFailure("duplicate tensor name") { w in
            try w.addTensorInfo(Self.a)
            try w.addTensorInfo(GGUFTensorSpec(name: "a", shape: [8], type: .f32))
        }
        try expectFailure("row length not a whole number of blocks") { w in
            try w.addTensorInfo(name: "q", shape: [32, 33], type: .q4_0)
        }
        try expectFailure("five dimensions") { w in try w.addTensorInfo(name: "t", shape: [1, 1, 1, 1, 1], type: .f32) }
        try expectFailure("name too long") { w in
            try w.addTensorInfo(name: String(repeating: "n", count: 64), shape: [1], type: .f32)
        }
        try expectFailure("too few bytes") { w in
            try w.addTensorInfo(Self.a)
            try w.writeTensorData("a", Array(Self.aBytes.dropLast()))
        }
        try expectFailure("too many bytes") { w in
            try w.addTensorInfo(Self.b)
            try w.writeTensorData("b", Self.bBytes + [0])
        }
    }

    @Test func errorsNameTheCallAndHint() throws {
        let dir = try TestData.tempDir("ggufw-msg")
        defer { try? FileManager.default.removeItem(at: dir) }
        let w = try GGUFWriter(path: dir.appendingPathComponent("x.gguf").path)
        try w.addTensorInfo(Self.a)
        do {
            try w.addKeyValue("general.name", .string("x"))
            Issue.record("no error")
        } catch let e as GGUFWriterError {
            #expect(e.field.contains("addKeyValue(general.name)") && e.found.contains("tensorInfos"), "\(e)")
            #expect(e.hint?.contains("before the first tensor info") == true, "\(e)")
        }
    }

    @Test func abandonedWriterLeavesNothing() throws {
        let dir = try TestData.tempDir("ggufw-abandon")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("x.gguf").path
        do {   // dropped mid-data
            let w = try GGUFWriter(path: path)
            try w.addTensorInfo(Self.a)
            try w.addTensorInfo(Self.b)
            try w.writeTensorData("a", Self.aBytes)
            #expect(try directoryListing(dir).count == 1)
        }
        #expect(try directoryListing(dir).isEmpty)
        let w = try GGUFWriter(path: path)   // explicitly abandoned
        try w.addKeyValue("k", .bool(true))
        w.abandon()
        #expect(w.state == .failed)
        #expect(try directoryListing(dir).isEmpty)
        #expect(throws: GGUFWriterError.self) { try w.addKeyValue("k2", .bool(true)) }
    }

    /// A failed rewrite leaves the previous file at the path untouched; a successful one replaces it.
    @Test func existingFileSurvivesAFailedRewrite() throws {
        let dir = try TestData.tempDir("ggufw-keep")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("x.gguf").path
        let old = Data("previous contents".utf8)
        try old.write(to: URL(fileURLWithPath: path))
        struct ProviderFailed: Error {}
        #expect(throws: ProviderFailed.self) {
            try writeGGUF(path: path, metadata: [("k", .uint8(1))],
                          tensors: [(Self.a, { Self.aBytes }), (Self.b, { throw ProviderFailed() })])
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == old)
        #expect(try directoryListing(dir) == ["x.gguf"])
        #expect(throws: GGUFWriterError.self) {
            try writeGGUF(path: path, metadata: [], tensors: [(Self.b, { Self.aBytes })])
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == old)
        try writeGGUF(path: path, metadata: [("k", .uint8(1))], tensors: [(Self.a, { Self.aBytes }), (Self.b, { Self.bBytes })])
        #expect(try GGUFFile(path: path).tensors.map(\.name) == ["a", "b"])
        #expect(try directoryListing(dir) == ["x.gguf"])
    }

    @Test func finishedWriterRefusesMoreAndKeepsItsFile() throws {
        let dir = try TestData.tempDir("ggufw-done")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("x.gguf").path
        let w = try GGUFWriter(path: path)
        try w.addTensorInfo(Self.b)
        try w.writeTensorData("b", Self.bBytes)
        try w.finish()
        #expect(throws: GGUFWriterError.self) { try w.finish() }
        #expect(w.state == .finished)
        #expect(try GGUFFile(path: path).tensors.count == 1)
    }

    @Test func unwritableDirectoryThrowsAtCreation() throws {
        #expect(throws: FileWriteError.self) { _ = try GGUFWriter(path: "/nonexistent-dir-\(getpid())/x.gguf") }
    }
}
