// ggml `Q8_0`: symmetric 8-bit blocks of 32. Reference dequantizer only.

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
