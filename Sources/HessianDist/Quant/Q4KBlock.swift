// ggml `Q4_K`: 4-bit super-blocks of 256 with 6-bit sub-block scales and minimums. Reference dequantizer only.

/// `block_q4_K` (144 bytes, 4.5 bits/weight):
/// - `d: f16` at 0 (super-scale of the scales); `dmin: f16` at 2 (super-scale of the mins);
/// - `scales: [12] u8` at 4; eight 6-bit (scale, min) pairs, unpacked by `scaleMin` (`get_scale_min_k4`);
/// - `qs: [128] u8` at 16; four 64-weight chunks of 32 bytes; in chunk c, byte l holds weight
///   `64c + l` (low nibble, sub-block 2c) and `64c + 32 + l` (high nibble, sub-block 2c+1).
///
/// Weight = (d * sc) * q - (dmin * m).
public enum Q4KBlock: GGMLBlockFormat {
    public static let type = GGMLType.q4_K
    public static let blockSize = 256
    public static let byteSize = 144

    /// ggml's `get_scale_min_k4`: sub-blocks 0-3 use the low 6 bits of bytes j and j+4; sub-blocks
    /// 4-7 take a nibble of byte j+4 and the top two bits of byte j-4 (scale) or byte j (min).
    /// Shared with Q5_K.
    @inline(__always)
    static func scaleMin(_ j: Int, _ q: UnsafeRawPointer) -> (scale: UInt8, min: UInt8) {
        if j < 4 {
            return (q.loadU8(at: j) & 63, q.loadU8(at: j + 4) & 63)
        }
        let scale = (q.loadU8(at: j + 4) & 0x0F) | ((q.loadU8(at: j - 4) >> 6) << 4)
        let min = (q.loadU8(at: j + 4) >> 4) | ((q.loadU8(at: j) >> 6) << 4)
        return (scale, min)
    }

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 0)
        let dmin = block.loadF16(at: 2)
        let scales = block + 4
        var q = block + 16
        var y = out
        for chunk in 0..<4 {
            let (sc1, m1) = scaleMin(2 * chunk, scales)
            let (sc2, m2) = scaleMin(2 * chunk + 1, scales)
            let d1 = d * Float(sc1), min1 = dmin * Float(m1)
            let d2 = d * Float(sc2), min2 = dmin * Float(m2)
            for l in 0..<32 { y[l] = d1 * Float(q.loadU8(at: l) & 0x0F) - min1 }
            for l in 0..<32 { y[32 + l] = d2 * Float(q.loadU8(at: l) >> 4) - min2 }
            q += 32
            y += 64
        }
    }
}
