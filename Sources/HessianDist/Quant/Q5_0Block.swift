// ggml `Q5_0`: symmetric 5-bit blocks of 32, the fifth bits packed in one u32. Reference dequantizer only.

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
