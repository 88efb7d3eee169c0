// ggml `Q5_1`: asymmetric 5-bit blocks of 32 (scale, minimum, packed fifth bits). Reference dequantizer and quantizer.

/// `block_q5_1` (24 bytes, 6 bits/weight):
/// - `d: f16` at 0, the scale; `m: f16` at 2, the minimum;
/// - `qh: u32` (little-endian) at 4; bit i is the high bit of weight i;
/// - `qs: [16] u8` at 8; byte j holds the low 4 bits of weight j (low nibble) and of weight j+16 (high).
///
/// Weight = q * d + m.
public enum Q5_1Block: GGMLBlockFormat {
    public static let type = GGMLType.q5_1
    public static let blockSize = 32
    public static let byteSize = 24

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 0)
        let m = block.loadF16(at: 2)
        let qh = block.loadU32LE(at: 4)
        for j in 0..<16 {
            let b = UInt32(block.loadU8(at: 8 + j))
            let h0 = ((qh >> UInt32(j)) << 4) & 0x10
            let h1 = (qh >> UInt32(j + 12)) & 0x10
            out[j] = Float((b & 0x0F) | h0) * d + m
            out[j + 16] = Float((b >> 4) | h1) * d + m
        }
    }
}

extension Q5_1Block: GGMLBlockQuantizer {
    public static let maxCode = 31
    /// The f16 fields the block's weights are linear in, codes and the rest fixed: d and m.
    public static let linearHalfFields = [0, 2]

    /// `quantize_row_q5_1_ref`: d = (max - min) / 31, m = min; q = trunc((x - min) * (1/d) + 0.5), no
    /// clamp (ggml has none: the largest weight lands on 31 up to rounding).
    public static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        let (d, lo) = scaleMin(x)
        let id: Float = d != 0 ? 1 / d : 0
        out.storeF16(d, at: 0)
        out.storeF16(lo, at: 2)
        var codes = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &codes) { c in
            for j in 0..<32 {
                c[j] = UInt8(truncatingIfNeeded: truncatedInt32((x[j] - lo) * id + 0.5))
            }
            out.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
            for j in 0..<16 { out.storeU8(0, at: 8 + j) }
            packCodes(c.baseAddress!.assumingMemoryBound(to: UInt8.self), into: out)
        }
    }

    /// (d, min) before f16 rounding.
    @inline(__always)
    static func scaleMin(_ x: UnsafePointer<Float>) -> (d: Float, min: Float) {
        var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
        for j in 0..<32 {
            if x[j] < lo { lo = x[j] }
            if x[j] > hi { hi = x[j] }
        }
        return ((hi - lo) / 31, lo)
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

    /// The low nibbles go to `qs`, the fifth bits (0x10; bits above are dropped as ggml drops them)
    /// to `qh`.
    public static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        var qh = UInt32(littleEndian: UnsafeRawPointer(block).loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        for j in 0..<16 {
            let q0 = codes[j], q1 = codes[j + 16]
            block.orU8(q0 & 0x0F | (q1 & 0x0F) << 4, at: 8 + j)
            qh |= UInt32((q0 >> 4) & 1) << UInt32(j) | UInt32((q1 >> 4) & 1) << UInt32(j + 16)
        }
        block.storeBytes(of: qh.littleEndian, toByteOffset: 4, as: UInt32.self)
    }
}
