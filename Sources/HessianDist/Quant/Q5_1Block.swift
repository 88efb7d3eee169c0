// ggml `Q5_1`: asymmetric 5-bit blocks of 32 (scale, minimum, packed fifth bits). Reference dequantizer only.

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
