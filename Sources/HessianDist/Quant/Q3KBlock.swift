// ggml `Q3_K`: 3-bit super-blocks of 256 with 6-bit signed sub-block scales. Reference dequantizer only.

/// `block_q3_K` (110 bytes, 3.4375 bits/weight):
/// - `hmask: [32] u8` at 0; bit b of byte l is the high bit of weight `32b + l`, and a CLEAR bit
///   subtracts 4 (ggml's quirk: the stored value is q + 4 when the bit is set);
/// - `qs: [64] u8` at 32; low 2 bits, laid out as in Q2_K (half n, bit pair 2j, byte l ->
///   weight `128n + 32j + l`);
/// - `scales: [12] u8` at 96; sixteen 6-bit scales: the low 4 bits of scale s are the low nibble of
///   byte s (s < 8) or the high nibble of byte s-8; the high 2 bits are bits `2*(s/4)` of byte
///   `8 + s%4`; the scale is that value minus 32;
/// - `d: f16` at 108, the super-scale.
///
/// Weight = (d * (scale - 32)) * (low2 - (hbit ? 0 : 4)).
public enum Q3KBlock: GGMLBlockFormat {
    public static let type = GGMLType.q3_K
    public static let blockSize = 256
    public static let byteSize = 110

    /// The sixteen signed scales (before `d`), unpacked as ggml's `kmask1/kmask2` shuffle does.
    @inline(__always)
    static func scale(_ s: Int, _ scales: UnsafeRawPointer) -> Int32 {
        let low = s < 8 ? scales.loadU8(at: s) & 0x0F : scales.loadU8(at: s - 8) >> 4
        let high = (scales.loadU8(at: 8 + s % 4) >> UInt8(2 * (s / 4))) & 0x03
        return Int32(low | (high << 4)) - 32
    }

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 108)
        let hm = block
        let qs = block + 32
        let scales = block + 96
        var y = out
        var s = 0
        var m: UInt8 = 1
        for half in 0..<2 {
            let q = qs + 32 * half
            for j in 0..<4 {
                let shift = UInt8(2 * j)
                for part in 0..<2 {
                    let dl = d * Float(scale(s, scales))
                    s += 1
                    for l in 0..<16 {
                        let i = 16 * part + l
                        let low = Int32((q.loadU8(at: i) >> shift) & 3)
                        let sub: Int32 = hm.loadU8(at: i) & m != 0 ? 0 : 4
                        y[l] = dl * Float(low - sub)
                    }
                    y += 16
                }
                m = m &<< 1
            }
        }
    }
}
