// GGUFFile against gguf-py: a fixture with a tensor of every type we decode and metadata of every
// value type (Tests/Python/gguf_fixtures.py); values must match gguf.quants.dequantize bit for bit.
import Foundation
import Testing
import TestSupport
import HessianDist
@testable import Node

/// The fixture directory, written once per test run.
enum GGUFFixtures {
    static let dir: Result<URL, any Error> = Result {
        let d = try TestData.tempDir("gguf-fixtures")
        try runPython("gguf_fixtures.py", [d.path])
        return d
    }
    static func file() throws -> (GGUFFile, URL) {
        let d = try dir.get()
        return (try GGUFFile(path: d.appendingPathComponent("fixtures.gguf").path), d)
    }
}

/// Bitwise equality, NaN == NaN (payloads may differ between half->float conversions).
func expectBitExact(_ got: [Float], _ want: [Float], _ what: String,
                    sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.count == want.count, "\(what): \(got.count) values, expected \(want.count)", sourceLocation: sourceLocation)
    var mismatches = 0, first = -1
    var maxDiff: Float = 0
    for i in 0..<min(got.count, want.count) where got[i].bitPattern != want[i].bitPattern && !(got[i].isNaN && want[i].isNaN) {
        if first < 0 { first = i }
        mismatches += 1
        maxDiff = max(maxDiff, abs(got[i] - want[i]))
    }
    #expect(mismatches == 0, "\(what): \(mismatches) mismatches, max |diff| \(maxDiff), first at \(first): \(first >= 0 ? "\(got[first]) vs \(want[first])" : "")",
            sourceLocation: sourceLocation)
}

@Suite struct GGUFFileTests {
    @Test func everyTypeDequantizesBitExactWithGGUFPy() throws {
        let (g, dir) = try GGUFFixtures.file()
        let types = Set(g.tensors.map(\.type))
        for t in GGMLType.allCases where t.blockFormat != nil {
            #expect(types.contains(t), "fixture lacks \(t)")
        }
        #expect(g.tensors.count == 21)
        for t in g.tensors {
            let want = try readF32(dir.appendingPathComponent("\(t.name).f32").path)
            var got = [Float](repeating: 0, count: t.elementCount)
            try got.withUnsafeMutableBufferPointer { out in
                try g.withTensorBytes(t.name) { raw in
                    #expect(raw.count == t.byteCount)
                    try dequantizeRow(t.type, from: raw, into: out)
                }
            }
            expectBitExact(got, want, "\(t.name) (\(t.type))")
        }
    }

    @Test func layoutAndShapes() throws {
        let (g, _) = try GGUFFixtures.file()
        #expect(g.version == 3 && g.alignment == 64 && g.dataOffset % 64 == 0)
        let f32 = try #require(g.tensor("f32"))
        #expect(f32.ne == [5, 3, 2] && f32.shape == [2, 3, 5] && f32.type == .f32 && f32.byteCount == 120)
        let q6 = try #require(g.tensor("q6_k"))
        #expect(q6.ne == [512, 3] && q6.shape == [3, 512] && q6.byteCount == 3 * 2 * 210)
        for t in g.tensors { #expect(t.offset % 64 == 0 && t.offset >= g.dataOffset, "\(t.name)") }
        #expect(g.tensor("missing") == nil)
        #expect(throws: ModelFormatError.self) { try g.withTensorBytes("missing") { _ in } }
    }

    /// Metadata of every value type, as gguf_fixtures.py writes it, in file order.
    @Test func metadataOfEveryType() throws {
        let (g, _) = try GGUFFixtures.file()
        let expected: [(String, GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("general.alignment", .uint32(64)),
            ("test.u8", .uint8(200)),
            ("test.i8", .int8(-100)),
            ("test.u16", .uint16(60000)),
            ("test.i16", .int16(-30000)),
            ("test.u32", .uint32(4_000_000_000)),
            ("test.i32", .int32(-2_000_000_000)),
            ("test.f32", .float32(1.5)),
            ("test.bool", .bool(true)),
            ("test.string", .string("h\u{e9}llo w\u{f6}rld \u{2713}")),
            ("test.u64", .uint64((1 << 63) + 5)),
            ("test.i64", .int64(-(1 << 62))),
            ("test.f64", .float64(-0.1)),
            ("test.array.i32", .array([.int32(1), .int32(-2), .int32(3)])),
            ("test.array.f32", .array([.float32(0.25), .float32(-8)])),
            ("test.array.bool", .array([.bool(true), .bool(false), .bool(true)])),
            ("test.array.str", .array([.string("a"), .string("bc"), .string("")])),
            ("test.array.u8", .array([.uint8(7), .uint8(255)])),
            ("test.array.nested", .array([.array([.int32(1), .int32(2)]), .array([.int32(3)])])),
            ("test.array.nested_str", .array([.array([.string("x")]), .array([.string("y"), .string("z")])])),
        ]
        #expect(g.metadata.keys == expected.map(\.0))
        for (k, v) in expected { #expect(g.metadata[k] == v, "\(k)") }
        #expect(try g.metadata.stringArray("test.array.str") == ["a", "bc", ""])
        #expect(g.metadata.file.hasSuffix("fixtures.gguf"))
    }

    /// Cutting the file anywhere before the end of the last tensor's data throws a ModelFormatError;
    /// cutting only trailing padding still opens.
    @Test func truncationAnywhereThrows() throws {
        let (g, dir) = try GGUFFixtures.file()
        let full = try Data(contentsOf: URL(fileURLWithPath: g.path))
        let dataEnd = g.tensors.map { $0.offset + $0.byteCount }.max()!
        let path = try TestData.tempDir("gguf-trunc").appendingPathComponent("cut.gguf").path
        _ = dir
        var thrown = 0
        for cut in stride(from: 0, to: full.count, by: 7) {
            try full.prefix(cut).write(to: URL(fileURLWithPath: path))
            do {
                _ = try GGUFFile(path: path)
                #expect(cut >= dataEnd, "a file cut at \(cut) of \(full.count) opened")
            } catch let e as ModelFormatError {
                #expect(cut < dataEnd, "cut at \(cut) >= data end \(dataEnd) threw \(e)")
                #expect(e.file == path)
                thrown += 1
            }
        }
        #expect(thrown > 1000)
    }
}
