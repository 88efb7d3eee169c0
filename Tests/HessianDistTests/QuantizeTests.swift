// The reference quantizers against Python (gguf-py for Q4_0..Q8_0, the NumPy port of ggml-quants.c in
// Tests/Python/ggml_quant_reference.py for every type), per-type error budgets, the GPTQ grid
// (`GGMLGrid`) round trip, and the dispatcher's errors.
import Foundation
import Testing
import TestSupport
@testable import HessianDist

/// The fixture directory written once by Tests/Python/quant_fixtures.py, and its stdout.
enum QuantFixtures {
    static let written: Result<(dir: String, log: String), any Error> = Result {
        let dir = try TestData.tempDir("quant").path
        let log = try runPython("quant_fixtures.py", [dir])
        return (dir, log)
    }

    static func floats(_ t: GGMLType) throws -> [Float] { try readF32(try written.get().dir + "/\(t).in.f32") }

    static func bytes(_ t: GGMLType, _ kind: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: try written.get().dir + "/\(t).\(kind).bin")))
    }

    /// Blocks where gguf-py's FMA-emulating Q4_0/Q5_0 disagrees with the no-FMA reference.
    static func ggufMismatchBlocks(_ t: GGMLType) throws -> [Int] {
        let line = try written.get().log.split(separator: "\n").first { $0.hasPrefix("\(t) ") } ?? ""
        guard let r = line.range(of: "gguf_mismatch_blocks=[") else { return [] }
        return line[r.upperBound...].prefix { $0 != "]" }.split(separator: ",").compactMap {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
    }
}

/// SplitMix64 and Box-Muller: deterministic normal samples without Foundation's random.
struct SeededNormal {
    var state: UInt64
    mutating func nextU64() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { (Double(nextU64() >> 11) + 0.5) * 0x1p-53 }
    mutating func next() -> Float {
        Float((-2 * Foundation.log(uniform())).squareRoot() * Foundation.cos(2 * Double.pi * uniform()))
    }
    mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

func quantized(_ t: GGMLType, _ x: [Float]) throws -> [UInt8] {
    var out = [UInt8](repeating: 0xAA, count: t.byteCount(elements: x.count) ?? 0)
    try x.withUnsafeBufferPointer { src in try out.withUnsafeMutableBytes { try quantizeRow(t, from: src, into: $0) } }
    return out
}

func dequantized(_ t: GGMLType, _ bytes: [UInt8], count: Int) throws -> [Float] {
    var y = [Float](repeating: .nan, count: count)
    try bytes.withUnsafeBytes { src in try y.withUnsafeMutableBufferPointer { try dequantizeRow(t, from: src, into: $0) } }
    return y
}

/// The first differing block and byte, for a readable failure.
func firstByteDifference(_ a: [UInt8], _ b: [UInt8], blockBytes: Int) -> String {
    guard a.count == b.count else { return "sizes \(a.count) vs \(b.count)" }
    guard let i = a.indices.first(where: { a[$0] != b[$0] }) else { return "identical" }
    let n = a.indices.filter { a[$0] != b[$0] }.count
    return "\(n) bytes differ; first at block \(i / blockBytes) byte \(i % blockBytes): \(a[i]) vs \(b[i])"
}

@Suite struct QuantizeTests {
    static let quantTypes: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_nl, .iq4_xs, .mxfp4]
    static let legacyTypes: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0]

    /// The NumPy port itself against llama.cpp's own C: libggml-base's `ggml_quantize_chunk` writes the
    /// same bytes as the port for every fixture, with and without an imatrix (MXFP4 without: ggml ignores
    /// one there, the weighted exponent choice is ours). So the Swift tests below, which compare with the
    /// port, compare with llama.cpp.
    @Test func numpyPortMatchesLibggml() throws {
        let lib = TestData.libggmlBase
        try #require(FileManager.default.fileExists(atPath: lib),
                     "\(lib) is missing: run scripts/setup.sh (it builds llama.cpp's libggml-base for this check)")
        let out = try runPython("ggml_library_check.py", [lib, try QuantFixtures.written.get().dir])
        let lines = out.split(separator: "\n")
        #expect(lines.count == 24, "\(out)")  // 13 types without an imatrix, 11 with one
        #expect(lines.allSatisfy { $0.hasSuffix("mismatched=[]") }, "\(out)")
    }

    /// Every quantizable type's bytes equal the NumPy port of `quantize_row_*_ref` (itself checked against
    /// llama.cpp's libggml-base by `numpyPortMatchesLibggml`) on 34 blocks of random data, outliers,
    /// zeros, all-equal blocks, magnitudes 1e-30...1e30, grid-aligned ties, one-signed and ramp blocks.
    @Test(arguments: quantTypes)
    func matchesNumPyReference(_ t: GGMLType) throws {
        let x = try QuantFixtures.floats(t)
        let expected = try QuantFixtures.bytes(t, "ref")
        let got = try quantized(t, x)
        #expect(got == expected, "\(t): \(firstByteDifference(got, expected, blockBytes: t.typeSize))")
    }

    /// Q4_0..Q8_0 equal `gguf.quants.quantize` byte for byte, except in blocks the fixture script
    /// lists where gguf-py disagrees with llama.cpp: its FMA emulation (Q4_0/Q5_0 near-ties) and the
    /// sign of a zero d/m in an all-(-0.0) block (we follow ggml: 0x8000).
    /// llama.cpp's importance-matrix quantizers (`quantize_q4_0(…, quant_weights)` etc.: σ² of the row or
    /// block, weights imatrix·sqrt(σ² + x²), weighted scale search; the K-quants' sub-block scales by
    /// `make_qp_quants` / `make_qx_quants` weighted too) equal the NumPy port (checked against libggml-base's
    /// `ggml_quantize_chunk` with an imatrix by `numpyPortMatchesLibggml`) on 17 rows × 64
    /// (9 × 512 for the K-quants and IQ4_XS) with dominant and dead columns. MXFP4's weighted exponent choice is ours
    /// (ggml ignores an imatrix there); the NumPy port states the same rule independently.
    @Test(arguments: [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .iq4_nl, .iq4_xs, .mxfp4, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K])
    func importanceQuantizerMatchesNumPyReference(_ t: GGMLType) throws {
        let dir = try QuantFixtures.written.get().dir
        let x = try readF32(dir + "/\(t).imat.in.f32"), imat = try readF32(dir + "/\(t).imat.w.f32")
        let cols = imat.count, rows = x.count / cols
        let expected = try QuantFixtures.bytes(t, "imat.ref")
        let got = try x.withUnsafeBufferPointer { try quantizeTensor(t, rows: rows, cols: cols, from: $0.baseAddress!, importance: imat) }
        #expect(got == expected, "\(t): \(firstByteDifference(got, expected, blockBytes: t.typeSize))")
        // The importance changes the result (else the test would pass for a quantizer that ignores it).
        let plain = try x.withUnsafeBufferPointer { try quantizeTensor(t, rows: rows, cols: cols, from: $0.baseAddress!) }
        #expect(plain != expected)
        #expect(throws: QuantFormatError.self) {
            try x.withUnsafeBufferPointer { try quantizeTensor(t, rows: rows, cols: cols, from: $0.baseAddress!, importance: [1, 2]) }
        }
    }

    @Test(arguments: legacyTypes)
    func matchesGGUFPy(_ t: GGMLType) throws {
        let x = try QuantFixtures.floats(t)
        let gguf = try QuantFixtures.bytes(t, "gguf")
        let skip = Set(try QuantFixtures.ggufMismatchBlocks(t))
        let got = try quantized(t, x)
        for b in skip {
            let allZero = x[b * 32..<(b + 1) * 32].allSatisfy { $0 == 0 }
            #expect(allZero || t == .q4_0 || t == .q5_0, "\(t): gguf-py differs in block \(b)")
        }
        #expect(got.count == gguf.count)
        for b in 0..<(x.count / 32) where !skip.contains(b) {
            let r = b * t.typeSize..<(b + 1) * t.typeSize
            #expect(Array(got[r]) == Array(gguf[r]), "\(t) block \(b)")
        }
    }

    /// Named RMSE budgets of quantize -> dequantize on N(0, 1) weights (ggml test-quantize-fns style,
    /// which uses a cosine signal; ours is normal data, 64 Ki weights). Each budget is ~5% above what the
    /// reference quantizer reaches here, so a regression in the scale search fails.
    static let rmseBudget: [GGMLType: Float] = [
        .q4_0: 0.0895, .q4_1: 0.0820, .q5_0: 0.0449, .q5_1: 0.0396, .q8_0: 0.00562,
        .q2_K: 0.3105, .q3_K: 0.1587, .q4_K: 0.0748, .q5_K: 0.0378, .q6_K: 0.0187, .iq4_nl: 0.0800, .iq4_xs: 0.0806, .mxfp4: 0.1209,
    ]

    @Test(arguments: quantTypes)
    func errorBudget(_ t: GGMLType) throws {
        var rng = SeededNormal(state: 42)
        let x = rng.array(1 << 16)
        let y = try dequantized(t, try quantized(t, x), count: x.count)
        var se: Double = 0
        for i in x.indices { se += Double(x[i] - y[i]) * Double(x[i] - y[i]) }
        let rmse = Float((se / Double(x.count)).squareRoot())
        let budget = try #require(Self.rmseBudget[t])
        #expect(rmse <= budget, "\(t) RMSE \(rmse) over budget \(budget)")
        print("\(t) RMSE \(rmse) (budget \(budget))")
    }

    /// `quantizeTensor` quantizes each row on its own and lays the rows out back to back.
    @Test func tensorIsRowsBackToBack() throws {
        var rng = SeededNormal(state: 7)
        for t in [GGMLType.q4_1, .q4_K] {
            let rows = 3, cols = 2 * t.blockSize
            let x = rng.array(rows * cols)
            let all = try x.withUnsafeBufferPointer { try quantizeTensor(t, rows: rows, cols: cols, from: $0.baseAddress!) }
            var concat: [UInt8] = []
            for r in 0..<rows { concat += try quantized(t, Array(x[r * cols..<(r + 1) * cols])) }
            #expect(all == concat, "\(t)")
        }
    }

    @Test func errorsAndPredicates() throws {
        #expect(Self.quantTypes.allSatisfy { $0.isQuantizable })
        #expect(![GGMLType.f32, .f16, .bf16, .q8_1, .q8_K].contains { $0.isQuantizable })
        #expect(GGMLType.q4_K.canStore(rowLength: 512) && !GGMLType.q4_K.canStore(rowLength: 96))
        #expect(GGMLType.q4_0.canStore(rowLength: 96) && GGMLType.f16.canStore(rowLength: 7))
        #expect(!GGMLType.q8_K.canStore(rowLength: 256) && !GGMLType.q4_0.canStore(rowLength: -32))
        #expect { _ = try quantized(.q4_K, [Float](repeating: 0, count: 100)) } throws: { e in
            guard let e = e as? QuantFormatError else { return false }
            return e.field == "element count" && "\(e)".contains("multiple of the block size 256") && e.hint != nil
        }
        #expect { _ = try quantized(.f16, [1, 2]) } throws: { e in (e as? QuantFormatError)?.field == "type" }
        #expect {
            var out = [UInt8](repeating: 0, count: 17)
            try [Float](repeating: 1, count: 32).withUnsafeBufferPointer { src in
                try out.withUnsafeMutableBytes { try quantizeRow(.q4_0, from: src, into: $0) }
            }
        } throws: { e in "\(e)".contains("18 bytes for 32 weights") && "\(e)".contains("found 17") }
        #expect {
            _ = try [Float](repeating: 0, count: 64).withUnsafeBufferPointer {
                try quantizeTensor(.q8_0, rows: 2, cols: 33, from: $0.baseAddress!)
            }
        } throws: { e in (e as? QuantFormatError)?.field == "row length" }
        for t in [GGMLType.f32, .f16, .bf16, .q8_1, .q8_K] {
            #expect(throws: QuantFormatError.self) { _ = try GGMLGrid(type: t) }
        }
        #expect(try quantized(.q6_K, []).isEmpty)
    }

    /// The Intel-Mac f32 -> f16 fallback agrees with `Float16` around every half (the value, the midpoint
    /// to the next half and one ulp either side) and on random bit patterns (NaNs by NaN-ness).
    @Test func softwareFloatToHalfIsExact() {
        var bad: [UInt32] = []
        func check(_ f: Float) {
            let a = softwareFloatToHalfBits(f), b = Float16(f).bitPattern
            if a != b && !(f.isNaN && a & 0x7C00 == 0x7C00 && a & 0x3FF != 0) { bad.append(f.bitPattern) }
        }
        for h in UInt16(0)..<0x7C00 {
            for sign: Float in [1, -1] {
                let v = Float(Float16(bitPattern: h)), next = Float(Float16(bitPattern: h + 1))
                let mid = (v + next) / 2
                for f in [v, mid, mid.nextUp, mid.nextDown] { check(sign * f) }
            }
        }
        var rng = SeededNormal(state: 3)
        for _ in 0..<200_000 { check(Float(bitPattern: UInt32(truncatingIfNeeded: rng.nextU64()))) }
        for f: Float in [.infinity, -.infinity, .nan, 65520, 65519.99, 1e-8, 2.98e-8, 5.96e-8] { check(f) }
        #expect(bad.isEmpty, "first: \(bad.prefix(4).map { String($0, radix: 16) })")
    }
}
