// ggml `Q4_1`: asymmetric 4-bit blocks of 32 (scale and minimum). Reference dequantizer and quantizer.

/// `block_q4_1` (20 bytes, 5 bits/weight):
/// - `d: f16` at 0, the scale; `m: f16` at 2, the minimum;
/// - `qs: [16] u8` at 4; byte j holds weight j (low nibble) and weight j+16 (high nibble).
///
/// Weight = q * d + m (two roundings, as ggml: no fused multiply-add).
public enum Q4_1Block: GGMLBlockFormat {
    public static let type = GGMLType.q4_1
    public static let blockSize = 32
    public static let byteSize = 20

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 0)
        let m = block.loadF16(at: 2)
        for j in 0..<16 {
            let b = block.loadU8(at: 4 + j)
            out[j] = Float(b & 0x0F) * d + m
            out[j + 16] = Float(b >> 4) * d + m
        }
    }
}

extension Q4_1Block: GGMLBlockQuantizer {
    public static let maxCode = 15
    /// The f16 fields the block's weights are linear in, codes and the rest fixed: d and m.
    public static let linearHalfFields = [0, 2]

    /// `quantize_row_q4_1_ref`: d = (max - min) / 15, m = min; q = min(15, trunc((x - min) * (1/d) + 0.5))
    /// with the unrounded d and min; d and m stored as f16.
    public static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        let (d, lo) = scaleMin(x)
        let id: Float = d != 0 ? 1 / d : 0
        out.storeF16(d, at: 0)
        out.storeF16(lo, at: 2)
        for j in 0..<16 {
            let x0 = (x[j] - lo) * id, x1 = (x[j + 16] - lo) * id
            let q0 = UInt8(truncatingIfNeeded: min(15, Int32(Int8(truncatingIfNeeded: truncatedInt32(x0 + 0.5)))))
            let q1 = UInt8(truncatingIfNeeded: min(15, Int32(Int8(truncatingIfNeeded: truncatedInt32(x1 + 0.5)))))
            out.storeU8(q0 | q1 << 4, at: 4 + j)
        }
    }

    /// (d, min) before f16 rounding: min starts at FLT_MAX, max at -FLT_MAX, as ggml.
    @inline(__always)
    static func scaleMin(_ x: UnsafePointer<Float>) -> (d: Float, min: Float) {
        var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
        for j in 0..<32 {
            if x[j] < lo { lo = x[j] }
            if x[j] > hi { hi = x[j] }
        }
        return ((hi - lo) / 15, lo)
    }

    /// scale = f16(d), offset = f16(m): the dequantizer's own `q·d + m`.
    public static func fit(block x: UnsafePointer<Float>, parameters: UnsafeMutableRawPointer,
                           scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        let (d, lo) = scaleMin(x)
        parameters.storeF16(d, at: 0)
        parameters.storeF16(lo, at: 2)
        let p = UnsafeRawPointer(parameters)
        let dh = p.loadF16(at: 0), mh = p.loadF16(at: 2)
        for j in 0..<32 { s[j] = dh; o[j] = mh }
    }

    public static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        for j in 0..<16 { block.orU8(codes[j] & 0x0F | (codes[j + 16] & 0x0F) << 4, at: 4 + j) }
    }
}
