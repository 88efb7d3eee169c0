// ggml `Q4_0`: symmetric 4-bit blocks of 32. Reference dequantizer only.

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
