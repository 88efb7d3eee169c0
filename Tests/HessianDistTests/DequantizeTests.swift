// The ggml block types against the type table, hand-worked blocks for the quirks, and the
// dispatcher's errors. The bit-exact comparison with gguf-py is in NodeTests/GGUFFileTests.
import Testing
@testable import HessianDist

@Suite struct DequantizeTests {
    static var formats: [(GGMLType, any GGMLBlockFormat.Type)] { [
        (.f32, F32Block.self), (.f16, F16Block.self), (.bf16, BF16Block.self),
        (.q4_0, Q4_0Block.self), (.q4_1, Q4_1Block.self), (.q5_0, Q5_0Block.self), (.q5_1, Q5_1Block.self),
        (.q8_0, Q8_0Block.self), (.q2_K, Q2KBlock.self), (.q3_K, Q3KBlock.self), (.q4_K, Q4KBlock.self),
        (.q5_K, Q5KBlock.self), (.q6_K, Q6KBlock.self),
    ] }

    /// Each block type's sizes agree with `GGMLType`'s table (itself checked against ggml's).
    @Test func blockSizesMatchTypeTable() {
        for (t, f) in Self.formats {
            #expect(f.type == t, "\(t)")
            #expect(f.blockSize == t.blockSize, "\(t) block size")
            #expect(f.byteSize == t.typeSize, "\(t) byte size")
            #expect(t.blockFormat.map { $0 == f } == true, "\(t) dispatch")
        }
        #expect(GGMLType.q8_1.blockFormat == nil && GGMLType.q8_K.blockFormat == nil)
    }

    func dequantize(_ t: GGMLType, _ bytes: [UInt8], count: Int) throws -> [Float] {
        var out = [Float](repeating: .nan, count: count)
        try bytes.withUnsafeBytes { src in try out.withUnsafeMutableBufferPointer { try dequantizeRow(t, from: src, into: $0) } }
        return out
    }

    /// Q4_0 by hand: d = 0.5 (f16 0x3800); byte j = (hi << 4) | lo gives weights j and j+16.
    @Test func q4_0ByHand() throws {
        var block: [UInt8] = [0x00, 0x38]
        for j in 0..<16 { block.append(UInt8(15 - j) << 4 | UInt8(j)) }
        let y = try dequantize(.q4_0, block, count: 32)
        for j in 0..<16 {
            #expect(y[j] == Float(j - 8) * 0.5)
            #expect(y[j + 16] == Float(7 - j) * 0.5)
        }
    }

    /// Q5_1 by hand: the fifth bit of weight i is bit i of qh, weight = q * d + m.
    @Test func q5_1ByHand() throws {
        // d = 1 (0x3C00), m = -2 (0xC000), qh = 0x8000_0001: weights 0 and 31 get +16.
        var block: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0x00, 0x80]
        block += [UInt8](repeating: 0x21, count: 16)  // low nibble 1, high nibble 2
        let y = try dequantize(.q5_1, block, count: 32)
        #expect(y[0] == 15 && y[1] == -1 && y[16] == 0 && y[31] == 16)
    }

    /// Q3_K's quirks: a CLEAR hmask bit subtracts 4; scales are 6-bit, stored +32.
    @Test func q3KByHand() throws {
        var block = [UInt8](repeating: 0, count: 110)
        block[0] = 0x01              // hmask: weight 0 has its high bit set
        block[32] = 0x03             // qs: weight 0 low bits 3 (bit pair 0 of byte 0)
        // Scale 0: low nibble 1 (byte 0 low), high bits 2 (byte 8 bits 0-1) -> 0x21 = 33 -> +1.
        // Scale 1: low nibble 0 (byte 1), high bits 0 -> 0 -> -32.
        block[96] = 0x01
        block[96 + 8] = 0x02
        block[108] = 0x00; block[109] = 0x3C  // d = 1
        let y = try dequantize(.q3_K, block, count: 256)
        #expect(y[0] == 3)                  // 1 * (3 - 0)
        #expect(y[1] == -4)                 // 1 * (0 - 4): hmask bit clear
        #expect(y[16] == 128)               // scale 1 = -32: -32 * (0 - 4)
    }

    /// Q4_K's `get_scale_min_k4`: sub-blocks 4..7 take nibbles of bytes 8..11 and the top bits of 0..7.
    @Test func q4KScaleMinUnpacking() {
        var scales = [UInt8](repeating: 0, count: 12)
        scales[0] = 0b11_000101   // sub-block 0 scale 5, top bits 3 -> sub-block 4 scale high bits
        scales[4] = 0b10_000111   // sub-block 0 min 7, top bits 2 -> sub-block 4 min high bits
        scales[8] = 0x9A          // sub-block 4: scale low nibble 0xA, min low nibble 0x9
        scales.withUnsafeBytes { p in
            let s0 = Q4KBlock.scaleMin(0, p.baseAddress!), s4 = Q4KBlock.scaleMin(4, p.baseAddress!)
            #expect(s0.scale == 5 && s0.min == 7)
            #expect(s4.scale == 0x3A && s4.min == 0x29)
        }
    }

    /// Reading from an odd address gives the same values (the loads are unaligned).
    @Test func unalignedSource() throws {
        var bytes = [UInt8](repeating: 0, count: 1 + 2 * 210)
        var x: UInt32 = 12345
        for i in bytes.indices { x = x &* 1_103_515_245 &+ 12345; bytes[i] = UInt8(truncatingIfNeeded: x >> 16) }
        bytes[1 + 208] = 0x00; bytes[1 + 209] = 0x3C
        bytes[1 + 210 + 208] = 0x00; bytes[1 + 210 + 209] = 0x3C
        let shifted = try dequantize(.q6_K, Array(bytes[1...]), count: 512)
        var odd = [Float](repeating: 0, count: 512)
        try bytes.withUnsafeBytes { raw in
            try odd.withUnsafeMutableBufferPointer {
                try dequantizeRow(.q6_K, from: UnsafeRawBufferPointer(rebasing: raw[1...]), into: $0)
            }
        }
        #expect(odd.map(\.bitPattern) == shifted.map(\.bitPattern))
    }

    /// The Intel-Mac fallback conversion agrees with `Float16` on every half, NaN payloads included.
    @Test func softwareHalfConversionIsExact() {
        var mismatches: [UInt16] = []
        for h in 0...UInt16.max where softwareHalfToFloat(h).bitPattern != Float(Float16(bitPattern: h)).bitPattern {
            mismatches.append(h)
        }
        #expect(mismatches.count == 0, "first: \(mismatches.prefix(4).map { String($0, radix: 16) })")
    }

    @Test func dispatcherErrors() throws {
        #expect {
            _ = try dequantize(.q4_K, [UInt8](repeating: 0, count: 144), count: 100)
        } throws: { e in
            guard let e = e as? QuantFormatError else { return false }
            return e.field == "element count" && "\(e)".contains("multiple of the block size 256") && e.hint != nil
        }
        #expect {
            _ = try dequantize(.q8_0, [UInt8](repeating: 0, count: 33), count: 32)
        } throws: { e in
            "\(e)".contains("34 bytes for 32 weights") && "\(e)".contains("found 33")
        }
        for t in [GGMLType.q8_1, .q8_K] {
            #expect {
                _ = try dequantize(t, [UInt8](repeating: 0, count: t.typeSize), count: t.blockSize)
            } throws: { e in
                (e as? QuantFormatError)?.field == "type" && "\(e)".contains("hint")
            }
        }
        // Zero weights from zero bytes is not an error.
        #expect(try dequantize(.q2_K, [], count: 0).isEmpty)
    }
}
