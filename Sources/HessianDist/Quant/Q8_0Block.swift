// ggml `Q8_0`: symmetric 8-bit blocks of 32. Reference dequantizer and quantizer.

/// `block_q8_0` (34 bytes, 8.5 bits/weight):
/// - `d: f16` at 0, the scale;
/// - `qs: [32] i8` at 2, one signed byte per weight.
///
/// Weight = q * d.
public enum Q8_0Block: GGMLBlockFormat {
    public static let type = GGMLType.q8_0
    public static let blockSize = 32
    public static let byteSize = 34

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 0)
        for j in 0..<32 {
            out[j] = Float(block.loadI8(at: 2 + j)) * d
        }
    }
}

extension Q8_0Block: GGMLBlockQuantizer {
    /// Grid codes 0...255 stand for the stored signed byte q - 128.
    public static let maxCode = 255
    /// The f16 fields the block's weights are linear in, codes and the rest fixed: d.
    public static let linearHalfFields = [0]

    /// `quantize_row_q8_0_ref`: d = amax / 127, q = roundf(x * (1/d)) (ties away from zero) with the
    /// unrounded d; d stored as f16.
    public static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        let d = scale(x)
        let id: Float = d != 0 ? 1 / d : 0
        out.storeF16(d, at: 0)
        for j in 0..<32 {
            let q = truncatedInt32((x[j] * id).rounded(.toNearestOrAwayFromZero))
            out.storeU8(UInt8(truncatingIfNeeded: q), at: 2 + j)
        }
    }

    /// d = max|x| / 127 (`MAX(amax, fabsf(v))`).
    @inline(__always)
    static func scale(_ x: UnsafePointer<Float>) -> Float {
        var amax: Float = 0
        for j in 0..<32 { amax = Swift.max(amax, abs(x[j])) }
        return amax / 127
    }

    /// scale = f16(d), offset = -128·f16(d): `d·q - 128d` equals `(q - 128)·d` exactly (products of a
    /// half by integers below 2^13 are exact).
    public static func fit(block x: UnsafePointer<Float>, parameters: UnsafeMutableRawPointer,
                           scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        parameters.storeF16(scale(x), at: 0)
        let d = UnsafeRawPointer(parameters).loadF16(at: 0)
        for j in 0..<32 { s[j] = d; o[j] = -128 * d }
    }

    /// Grid code c is stored as the signed byte c - 128, i.e. c with its top bit flipped.
    public static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        for j in 0..<32 { block.orU8(codes[j] ^ 0x80, at: 2 + j) }
    }
}
