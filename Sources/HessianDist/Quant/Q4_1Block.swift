// ggml `Q4_1`: asymmetric 4-bit blocks of 32 (scale and minimum). Reference dequantizer only.

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
