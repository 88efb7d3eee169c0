// ggml `Q4_0`: symmetric 4-bit blocks of 32. Reference dequantizer and quantizer; the grid is `GGMLGrid`.

/// `block_q4_0` (18 bytes, 4.5 bits/weight):
/// - `d: f16` at 0, the scale;
/// - `qs: [16] u8` at 2; byte j holds weight j in its low nibble and weight j+16 in its high nibble.
///
/// Weight = (q - 8) * d.
public enum Q4_0Block: GGMLBlockFormat {
    public static let type = GGMLType.q4_0
    public static let blockSize = 32
    public static let byteSize = 18

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 0)
        for j in 0..<16 {
            let b = block.loadU8(at: 2 + j)
            out[j] = Float(Int32(b & 0x0F) - 8) * d
            out[j + 16] = Float(Int32(b >> 4) - 8) * d
        }
    }
}

extension Q4_0Block: GGMLBlockQuantizer {
    /// Codes 0...15 stand for q - 8 = -8...7.
    public static let maxCode = 15
    /// The f16 fields the block's weights are linear in, codes and the rest fixed: d.
    public static let linearHalfFields = [0]

    /// `quantize_row_q4_0_ref`: d = (the weight of largest magnitude, sign kept) / -8, so that weight
    /// gets code 0; q = min(15, trunc(x * (1/d) + 8.5)) with the UNROUNDED 1/d; d is stored as f16.
    public static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        let d = scale(x)
        let id: Float = d != 0 ? 1 / d : 0
        out.storeF16(d, at: 0)
        for j in 0..<16 {
            let x0 = x[j] * id, x1 = x[j + 16] * id
            let q0 = UInt8(truncatingIfNeeded: min(15, Int32(Int8(truncatingIfNeeded: truncatedInt32(x0 + 8.5)))))
            let q1 = UInt8(truncatingIfNeeded: min(15, Int32(Int8(truncatingIfNeeded: truncatedInt32(x1 + 8.5)))))
            out.storeU8(q0 | q1 << 4, at: 2 + j)
        }
    }

    /// d = max / -8 where max is the first weight of largest magnitude (sign kept).
    @inline(__always)
    static func scale(_ x: UnsafePointer<Float>) -> Float {
        var amax: Float = 0, max: Float = 0
        for j in 0..<32 where amax < abs(x[j]) {
            amax = abs(x[j])
            max = x[j]
        }
        return max / -8
    }

    /// scale = f16(d), offset = -8·f16(d): `d·q + (-8d)` equals the dequantizer's `(q - 8)·d` exactly
    /// (every product of a half by an integer below 2^13 is exact in Float), except that a zero comes
    /// out +0 where the dequantizer gives -0 for a negative d.
    public static func fit(block x: UnsafePointer<Float>, parameters: UnsafeMutableRawPointer,
                           scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        parameters.storeF16(scale(x), at: 0)
        let d = UnsafeRawPointer(parameters).loadF16(at: 0)
        for j in 0..<32 { s[j] = d; o[j] = -8 * d }
    }

    public static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        for j in 0..<16 { block.orU8(codes[j] & 0x0F | (codes[j + 16] & 0x0F) << 4, at: 2 + j) }
    }
}
