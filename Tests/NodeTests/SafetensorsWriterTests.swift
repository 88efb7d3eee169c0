// SafetensorsWriter against our reader, against the reference `safetensors` package (which must rewrite
// our file byte for byte), its state machine and atomicity; the fp16 conversion and the RoPE row map.
import Foundation
import Testing
import TestSupport
import HessianDist
@testable import Node

@Suite struct SafetensorsWriterTests {
    /// Deterministic values in [-2, 2).
    static func values(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int32(truncatingIfNeeded: s >> 32)) / Float(1 << 30)
        }
    }

    static func write(_ path: String, _ tensors: [(SafetensorsTensorSpec, [UInt8])]) throws {
        let w = try SafetensorsWriter(path: path)
        let bytes = Dictionary(uniqueKeysWithValues: tensors.map { ($0.0.name, $0.1) })
        for s in SafetensorsWriter.referenceOrder(tensors.map(\.0)) { try w.addTensor(s) }
        for s in w.declared { try w.writeTensorData(s.name, bytes[s.name]!) }
        try w.finish()
    }

    static func leBytes<T: FixedWidthInteger>(_ v: [T]) -> [UInt8] { v.map(\.littleEndian).withUnsafeBytes { Array($0) } }

    @Test func roundTripsThroughReaderAndReferenceLibrary() throws {
        let dir = try TestData.tempDir("stw")
        defer { try? FileManager.default.removeItem(at: dir) }
        let f32 = Self.values(6 * 5, seed: 1), f16 = Self.values(7, seed: 2).map { Float(Float16($0)) }
        let i32: [Int32] = [0, -1, .max, .min, 12345], i64: [Int64] = [-3, 1 << 40], u8: [UInt8] = [0, 7, 255]
        let tensors: [(SafetensorsTensorSpec, [UInt8])] = [
            (.init(name: "w.f32", dtype: .f32, shape: [6, 5]), Self.leBytes(f32.map(\.bitPattern))),
            (.init(name: "a.f16", dtype: .f16, shape: [7]), Self.leBytes(f16.map { Float16($0).bitPattern })),
            (.init(name: "b.i32", dtype: .i32, shape: [5, 1]), Self.leBytes(i32)),
            (.init(name: "c.i64", dtype: .i64, shape: [2]), Self.leBytes(i64)),
            (.init(name: "d.u8", dtype: .u8, shape: [3]), u8),
            (.init(name: "empty", dtype: .f32, shape: [0, 4]), []),
        ]
        let path = dir.appendingPathComponent("a.safetensors").path
        try Self.write(path, tensors)

        let r = try SafetensorsFile(path: path)
        #expect(r.metadata == ["format": "pt"])
        #expect(r.dataStart % 8 == 0, "header padded to a multiple of 8")
        #expect(try r.dequantize("w.f32") == f32)
        #expect(try r.dequantize("a.f16") == f16)
        for (spec, bytes) in tensors {
            #expect(r.tensor(spec.name)?.shape == spec.shape && r.tensor(spec.name)?.dtype == spec.dtype, "\(spec.name)")
            #expect(try r.withTensorBytes(spec.name) { Array($0) } == bytes, "\(spec.name) bytes")
        }
        let rewritten = dir.appendingPathComponent("b.safetensors").path
        let out = try runPython("safetensors_rewrite.py", [path, rewritten])
        #expect(out.contains("\"identical\": true"), "safetensors.save_file wrote a different file: \(out)")
    }

    @Test func bf16AndFloatConversionReadBack() throws {
        let dir = try TestData.tempDir("stw-bf16")
        defer { try? FileManager.default.removeItem(at: dir) }
        let v = Self.values(33, seed: 3) + [0, -0.0, 65504, 1e-7, 70000]
        let path = dir.appendingPathComponent("h.safetensors").path
        let w = try SafetensorsWriter(path: path, metadata: [:])
        try w.addTensor(name: "h", dtype: .f16, shape: [v.count])
        try w.addTensor(name: "b", dtype: .bf16, shape: [v.count])
        try w.addTensor(name: "f", dtype: .f32, shape: [v.count])
        try w.writeTensorData("h", floats: v)
        try w.writeTensorData("b", floats: v)
        try w.writeTensorData("f", floats: v)
        try w.finish()
        let r = try SafetensorsFile(path: path)
        #expect(r.metadata.isEmpty)
        #expect(try r.dequantize("h").map(\.bitPattern) == v.map { Float(Float16($0)).bitPattern })
        #expect(try r.dequantize("b").map(\.bitPattern) == v.map { Float(bitPattern: UInt32(floatToBF16Bits($0)) << 16).bitPattern })
        #expect(try r.dequantize("f") == v)
        // And the reference library reads the BF16 file too (its header at least: numpy cannot hold bf16).
        _ = try run("python3", ["-c", "from safetensors import safe_open; f = safe_open('\(path)', framework='numpy'); assert sorted(f.keys()) == ['b', 'f', 'h']"])
    }

    @Test func stateMachineErrorsLeaveNothing() throws {
        let dir = try TestData.tempDir("stw-err")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("x.safetensors").path
        func expectGone(_ sourceLocation: SourceLocation = #_sourceLocation) throws {
            let left = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            #expect(left.isEmpty, "left behind: \(left)", sourceLocation: sourceLocation)
        }
        do {
            let w = try SafetensorsWriter(path: path)
            try w.addTensor(name: "a", dtype: .f32, shape: [2])
            #expect(throws: SafetensorsWriterError.self) { try w.addTensor(name: "a", dtype: .f16, shape: [1]) }
            #expect(w.state == .failed)
            #expect(throws: SafetensorsWriterError.self) { try w.finish() }
        }
        try expectGone()
        do {
            let w = try SafetensorsWriter(path: path)
            try w.addTensor(name: "a", dtype: .f32, shape: [2])
            try w.addTensor(name: "b", dtype: .f32, shape: [1])
            let e = #expect(throws: SafetensorsWriterError.self) { try w.writeTensorData("b", [0, 0, 0, 0]) }
            #expect(e?.description.contains("declared order") == true, "\(String(describing: e))")
        }
        try expectGone()
        do {
            let w = try SafetensorsWriter(path: path)
            try w.addTensor(name: "a", dtype: .f32, shape: [2])
            #expect(throws: SafetensorsWriterError.self) { try w.writeTensorData("a", [0, 0, 0]) }
        }
        try expectGone()
        do {
            let w = try SafetensorsWriter(path: path)
            try w.addTensor(name: "a", dtype: .f32, shape: [1])
            try w.addTensor(name: "b", dtype: .f32, shape: [1])
            try w.writeTensorData("a", [0, 0, 0, 0])
            let e = #expect(throws: SafetensorsWriterError.self) { try w.finish() }
            #expect(e?.description.contains("next is b") == true)
        }
        try expectGone()
        do {   // dropped before finish
            let w = try SafetensorsWriter(path: path)
            try w.addTensor(name: "a", dtype: .f32, shape: [1])
            try w.writeTensorData("a", [0, 0, 0, 0])
        }
        try expectGone()
        // No tensors: a valid file with only the metadata.
        let w = try SafetensorsWriter(path: path)
        try w.finish()
        #expect(try SafetensorsFile(path: path).tensors.isEmpty)
    }

    @Test func portableHalfConversionMatchesFloat16() {
        var xs: [Float] = [0, -0.0, 1, -1, 65504, 65519.99, 65520, 1e-8, 5.96e-8, 2.98e-8, 2.9802322e-8, 6.1035156e-5,
                           6.1e-5, .infinity, -.infinity, .greatestFiniteMagnitude, .leastNonzeroMagnitude]
        // Every half-way point between consecutive halves in a few binades (ties to even), and randoms.
        for h in stride(from: UInt16(0), to: 0x7c00, by: 37) {
            let a = Float(Float16(bitPattern: h)), b = Float(Float16(bitPattern: h + 1))
            xs += [a, (a + b) / 2, a.nextUp, ((a + b) / 2).nextDown, ((a + b) / 2).nextUp]
        }
        xs += Self.values(2000, seed: 9).map { $0 * 3e4 } + Self.values(2000, seed: 10).map { $0 * 1e-5 }
        for x in xs + xs.map({ -$0 }) {
            #expect(floatToHalfBitsPortable(x) == Float16(x).bitPattern, "\(x)")
        }
        #expect(Float16(bitPattern: floatToHalfBitsPortable(.nan)).isNaN)
    }

    @Test func ropeRowMapEqualsFloatPermutation() {
        for (rows, hd) in [(64, 8), (32, 16), (12, 4)] {
            let cols = 3
            let w = Self.values(rows * cols, seed: UInt64(rows))
            for (from, to) in [(RopeLayout.interleaved, RopeLayout.halfSplit), (.halfSplit, .interleaved)] {
                var expected = w
                expected.withUnsafeMutableBufferPointer { permuteRopeRows($0, rows: rows, cols: cols, headDim: hd, from: from, to: to) }
                let p = ropeRowPermutation(rows: rows, headDim: hd, from: from, to: to)
                #expect(gatherRows(w, rowLength: cols, permutation: p) == expected, "\(rows) \(hd) \(from)->\(to)")
            }
        }
    }
}
