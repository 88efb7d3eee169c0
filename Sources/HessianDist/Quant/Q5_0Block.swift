// ggml `Q5_0`: symmetric 5-bit blocks of 32, the fifth bits packed in one u32. Reference dequantizer and quantizer.

/// `block_q5_0` (22 bytes, 5.5 bits/weight):
/// - `d: f16` at 0, the scale;
/// - `qh: u32` (little-endian) at 2; bit i is the high bit of weight i;
/// - `qs: [16] u8` at 6; byte j holds the low 4 bits of weight j (low nibble) and of weight j+16 (high).
///
/// Weight = (q - 16) * d.
public enum Q5_0Block: GGMLBlockFormat {
    public static let type = GGMLType.q5_0
    public static let blockSize = 32
    public static let byteSize = 22

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 0)
        let qh = block.loadU32LE(at: 2)
        for j in 0..<16 {
            let b = UInt32(block.loadU8(at: 6 + j))
            let h0 = ((qh >> UInt32(j)) << 4) & 0x10
            let h1 = (qh >> UInt32(j + 12)) & 0x10
            out[j] = Float(Int32(bitPattern: (b & 0x0F) | h0) - 16) * d
            out[j + 16] = Float(Int32(bitPattern: (b >> 4) | h1) - 16) * d
        }
    }
}

extension Q5_0Block: GGMLBlockQuantizer {
    /// Codes 0...31 stand for q - 16 = -16...15.
    public static let maxCode = 31
    /// The f16 fields the block's weights are linear in, codes and the rest fixed: d.
    public static let linearHalfFields = [0]

    /// `quantize_row_q5_0_ref`: as Q4_0 with d = max / -16, q = min(31, trunc(x * (1/d) + 16.5)).
    public static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        let d = scale(x)
        let id: Float = d != 0 ? 1 / d : 0
        out.storeF16(d, at: 0)
        var codes = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &codes) { c in
            for j in 0..<32 {
                let t = truncatedInt32(x[j] * id + 16.5)
                c[j] = UInt8(truncatingIfNeeded: min(31, Int32(Int8(truncatingIfNeeded: t))))
            }
            out.storeBytes(of: UInt32(0), toByteOffset: 2, as: UInt32.self)
            for j in 0..<16 { out.storeU8(0, at: 6 + j) }
            packCodes(c.baseAddress!.assumingMemoryBound(to: UInt8.self), into: out)
        }
    }

    /// d = max / -16 where max is the first weight of largest magnitude (sign kept).
    @inline(__always)
    static func scale(_ x: UnsafePointer<Float>) -> Float {
        var amax: Float = 0, max: Float = 0
        for j in 0..<32 where amax < abs(x[j]) {
            amax = abs(x[j])
            max = x[j]
        }
        return max / -16
    }

    /// scale = f16(d), offset = -16·f16(d) (exact, as for Q4_0; zero comes out +0).
    public static func fit(block x: UnsafePointer<Float>, parameters: UnsafeMutableRawPointer,
                           scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        parameters.storeF16(scale(x), at: 0)
        let d = UnsafeRawPointer(parameters).loadF16(at: 0)
        for j in 0..<32 { s[j] = d; o[j] = -16 * d }
    }

    public static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        var qh = UInt32(littleEndian: UnsafeRawPointer(block).loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        for j in 0..<16 {
            let q0 = codes[j], q1 = codes[j + 16]
            block.orU8(q0 & 0x0F | (q1 & 0x0F) << 4, at: 6 + j)
            qh |= UInt32((q0 >> 4) & 1) << UInt32(j) | UInt32((q1 >> 4) & 1) << UInt32(j + 16)
        }
        block.storeBytes(of: qh.littleEndian, toByteOffset: 2, as: UInt32.self)
    }
}
