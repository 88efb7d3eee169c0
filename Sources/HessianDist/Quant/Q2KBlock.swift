// ggml `Q2_K`: 2-bit super-blocks of 256 with 4-bit sub-block scales and minimums. Reference dequantizer only.

/// `block_q2_K` (84 bytes, 2.625 bits/weight):
/// - `scales: [16] u8` at 0; sub-block s (16 weights) has scale `scales[s] & 0xF` and min `scales[s] >> 4`;
/// - `qs: [64] u8` at 16; two 128-weight halves of 32 bytes; in half n, bit pair `2j` of byte l
///   is weight `128n + 32j + l` (l < 32);
/// - `d: f16` at 80 (super-scale of the scales); `dmin: f16` at 82 (super-scale of the mins).
///
/// Weight = (d * sc) * q - (dmin * m).
public enum Q2KBlock: GGMLBlockFormat {
    public static let type = GGMLType.q2_K
    public static let blockSize = 256
    public static let byteSize = 84

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 80)
        let dmin = block.loadF16(at: 82)
        let qs = block + 16
        var y = out
        var s = 0
        for half in 0..<2 {
            let q = qs + 32 * half
            for j in 0..<4 {
                let shift = UInt8(2 * j)
                for part in 0..<2 {  // bytes l and l+16 use consecutive sub-block scales
                    let sc = block.loadU8(at: s)
                    s += 1
                    let dl = d * Float(sc & 0x0F)
                    let ml = dmin * Float(sc >> 4)
                    for l in 0..<16 {
                        y[l] = dl * Float((q.loadU8(at: 16 * part + l) >> shift) & 3) - ml
                    }
                    y += 16
                }
            }
        }
    }
}
