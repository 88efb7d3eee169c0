// ggml `Q6_K`: 6-bit super-blocks of 256 with signed 8-bit sub-block scales. Reference dequantizer only.

/// `block_q6_K` (210 bytes, 6.5625 bits/weight):
/// - `ql: [128] u8` at 0, low 4 bits; `qh: [64] u8` at 128, high 2 bits; in 128-weight half n
///   (ql + 64n, qh + 32n), for l < 32: weight l = low nibble of ql[l] with qh[l] bits 0-1,
///   weight 32+l = low nibble of ql[32+l] with bits 2-3, weight 64+l = high nibble of ql[l] with
///   bits 4-5, weight 96+l = high nibble of ql[32+l] with bits 6-7;
/// - `scales: [16] i8` at 192, one per 16 weights; `d: f16` at 208.
///
/// Weight = (d * scale) * (q - 32).
public enum Q6KBlock: GGMLBlockFormat {
    public static let type = GGMLType.q6_K
    public static let blockSize = 256
    public static let byteSize = 210

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 208)
        var ql = block
        var qh = block + 128
        var sc = block + 192
        var y = out
        for _ in 0..<2 {
            for l in 0..<32 {
                let s = l / 16
                let a = ql.loadU8(at: l), b = ql.loadU8(at: l + 32), h = qh.loadU8(at: l)
                let q1 = Int32((a & 0x0F) | ((h & 3) << 4)) - 32
                let q2 = Int32((b & 0x0F) | (((h >> 2) & 3) << 4)) - 32
                let q3 = Int32((a >> 4) | (((h >> 4) & 3) << 4)) - 32
                let q4 = Int32((b >> 4) | (((h >> 6) & 3) << 4)) - 32
                y[l] = d * Float(sc.loadI8(at: s)) * Float(q1)
                y[l + 32] = d * Float(sc.loadI8(at: s + 2)) * Float(q2)
                y[l + 64] = d * Float(sc.loadI8(at: s + 4)) * Float(q3)
                y[l + 96] = d * Float(sc.loadI8(at: s + 6)) * Float(q4)
            }
            y += 128
            ql += 64
            qh += 32
            sc += 8
        }
    }
}
