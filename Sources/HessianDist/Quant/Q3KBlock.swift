// ggml `Q3_K`: 3-bit super-blocks of 256 with 6-bit signed sub-block scales. Reference dequantizer and quantizer.

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

extension Q3KBlock: GGMLBlockQuantizer {
    /// Codes 0...7 stand for q - 4 = -4...3 (hmask bit = code > 3, low bits = code & 3).
    public static let maxCode = 7
    /// The f16 fields the block's weights are linear in, codes and the rest fixed: d.
    public static let linearHalfFields = [108]

    /// `quantize_row_q3_K_ref`: per 16-weight sub-block `make_q3_quants` (x² weights, coordinate
    /// descent); the sixteen signed scales quantized to 6 bits against d = max_scale / -32 (the scale of
    /// largest magnitude, sign kept); codes re-rounded as round(x / (d·sc)) clamped to -4...3, except in
    /// sub-blocks whose stored d·sc is 0, which keep the search's codes.
    public static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        out.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { L in
            let L = L.baseAddress!
            fitScales(x, out, L)
            requantize(x, UnsafeRawPointer(out), L)
            L.withMemoryRebound(to: UInt8.self, capacity: 256) { packCodes($0, into: out) }
        }
    }

    /// The codes on the stored grid, round(x / (d·sc)) clamped to -4...3 (stored + 4), except in
    /// sub-blocks whose stored d·sc is 0 (those keep the search's codes in `L`).
    static func requantize(_ x: UnsafePointer<Float>, _ p: UnsafeRawPointer, _ L: UnsafeMutablePointer<Int8>) {
        let d = p.loadF16(at: 108)
        for j in 0..<16 {
            let dj = d * Float(scale(j, p + 96))
            if dj == 0 { continue }
            for i in 16 * j..<16 * j + 16 { L[i] = Int8(max(-4, min(3, nearestInt(x[i] / dj))) + 4) }
        }
    }

    /// Writes the packed scales (bytes 96-107) and d (108) into `out`, the search's codes to `L`.
    private static func fitScales(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, _ L: UnsafeMutablePointer<Int8>) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { buf in
            let scales = buf.baseAddress!
            var maxScale: Float = 0, amax: Float = 0
            for j in 0..<16 {
                scales[j] = makeQ3Quants(n: 16, nmax: 4, x: x + 16 * j, L: L + 16 * j)
                let a = abs(scales[j])
                if a > amax { amax = a; maxScale = scales[j] }
            }
            for b in 96..<108 { out.storeU8(0, at: b) }
            if maxScale != 0 {
                let iscale = -32 / maxScale
                for j in 0..<16 {
                    let l8 = Int8(truncatingIfNeeded: nearestInt(iscale * scales[j]))
                    let l = UInt8(max(-32, min(31, Int32(l8))) + 32)
                    if j < 8 { out.storeU8(l & 0x0F, at: 96 + j) } else { out.orU8((l & 0x0F) << 4, at: 96 + j - 8) }
                    out.orU8((l >> 4) << UInt8(2 * (j / 4)), at: 96 + 8 + j % 4)
                }
                out.storeF16(1 / iscale, at: 108)
            } else {
                out.storeF16(0, at: 108)
            }
        }
    }

    /// Sub-block s: scale d·(sc_s − 32), offset −4·scale; `scale·q + offset` equals the dequantizer's
    /// `dl·(q − 4)` exactly (all products below 2^24), zero coming out +0.
    public static func fit(block x: UnsafePointer<Float>, parameters: UnsafeMutableRawPointer,
                           scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { fitScales(x, parameters, $0.baseAddress!) }
        grid(UnsafeRawPointer(parameters), s, o)
    }

    static func grid(_ p: UnsafeRawPointer, _ s: UnsafeMutablePointer<Float>, _ o: UnsafeMutablePointer<Float>) {
        let d = p.loadF16(at: 108)
        for j in 0..<16 {
            let dl = d * Float(scale(j, p + 96))
            for i in 16 * j..<16 * j + 16 { s[i] = dl; o[i] = -4 * dl }
        }
    }

    /// hmask bit (i / 32) of byte i % 32 set for codes above 3; the low two bits laid out as Q2_K's.
    public static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        for i in 0..<256 where codes[i] > 3 { block.orU8(1 << UInt8(i / 32), at: i % 32) }
        packTwoBitCodes(codes, into: block + 32)
    }
}

extension Q3KBlock: GGMLImportanceQuantizer {
    /// `quantize_row_q3_K_impl`'s `weight[l] = qw[l]·sqrt(σ² + x²)`, σ² = 2·Σx²/256 over the super-block.
    public static func importanceWeights(block x: UnsafePointer<Float>, imatrix qw: UnsafePointer<Float>,
                                         rowSigma2: Float, into weight: UnsafeMutablePointer<Float>) {
        kQuantImportanceWeights(x, qw, weight)
    }

    /// `quantize_row_q3_K_impl`: per 16-weight sub-block the weighted symmetric search (`make_qx_quants`,
    /// nmax 4); the sixteen signed scales quantized to 6 bits by the same search (nmax 32) weighted by the
    /// sub-blocks' summed weights; codes re-rounded on the grid.
    public static func fitWeighted(block x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                   parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                                   scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { buf in
            let scales = buf.baseAddress!, sw = scales + 16
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { lb in
                let Ls = lb.baseAddress!
                for j in 0..<16 {
                    let w = weights + 16 * j
                    var sumW: Float = 0
                    for l in 0..<16 { sumW += w[l] }
                    sw[j] = sumW
                    scales[j] = makeQXQuants(n: 16, nmax: 4, x: x + 16 * j, L: codes + 16 * j, weights: w)
                }
                let dBlock = makeQXQuants(n: 16, nmax: 32, x: scales, L: Ls, weights: sw)
                for j in 0..<16 {
                    let l = Ls[j]
                    if j < 8 { parameters.storeU8(l & 0x0F, at: 96 + j) } else { parameters.orU8((l & 0x0F) << 4, at: 96 + j - 8) }
                    parameters.orU8((l >> 4) << UInt8(2 * (j / 4)), at: 96 + 8 + j % 4)
                }
                parameters.storeF16(dBlock, at: 108)
            }
        }
        codes.withMemoryRebound(to: Int8.self, capacity: 256) { requantize(x, UnsafeRawPointer(parameters), $0) }
        grid(UnsafeRawPointer(parameters), scale, offset)
    }
}

/// The imatrix weights of Q3_K, Q4_K and Q5_K (`quantize_row_q{3,4,5}_K_impl`): `qw[l]·sqrt(σ² + x²)`
/// with σ² = 2·Σx²/256 over the 256-weight super-block (not the row, unlike the 32-weight types).
func kQuantImportanceWeights(_ x: UnsafePointer<Float>, _ qw: UnsafePointer<Float>, _ weight: UnsafeMutablePointer<Float>) {
    var sumX2: Float = 0
    for j in 0..<256 { sumX2 += x[j] * x[j] }
    let sigma2 = 2 * sumX2 / 256
    for j in 0..<256 { weight[j] = qw[j] * (sigma2 + x[j] * x[j]).squareRoot() }
}
