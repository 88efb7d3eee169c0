// ggml `Q2_K`: 2-bit super-blocks of 256 with 4-bit sub-block scales and minimums. Reference dequantizer and quantizer.

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

extension Q2KBlock: GGMLBlockQuantizer {
    public static let maxCode = 3
    /// The f16 fields the block's weights are linear in, codes and the rest fixed: d and dmin.
    public static let linearHalfFields = [80, 82]

    /// `quantize_row_q2_K_ref`: per 16-weight sub-block an affine fit (`make_qkx2_quants`, weights |x|,
    /// absolute error, 16 candidates from -0.5 in steps of 0.1); scales and mins quantized to 4 bits
    /// against d = max_scale/15 and dmin = max_min/15 (f16); codes re-rounded on the stored grid as
    /// round((x + dmin·m)/(d·sc)) clamped to 0...3, except in sub-blocks whose stored d·sc is 0, which
    /// keep the fit's codes.
    public static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        out.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { L in
            let L = L.baseAddress!
            fitScales(x, out, L)
            requantize(x, UnsafeRawPointer(out), L)
            packCodes(L, into: out)
        }
    }

    /// The codes on the stored grid, round((x + dmin·m)/(d·sc)) clamped to 0...3, except in sub-blocks
    /// whose stored d·sc is 0 (those keep the fit's codes in `L`).
    static func requantize(_ x: UnsafePointer<Float>, _ p: UnsafeRawPointer, _ L: UnsafeMutablePointer<UInt8>) {
        let d = p.loadF16(at: 80), dmin = p.loadF16(at: 82)
        for j in 0..<16 {
            let sc = p.loadU8(at: j)
            let dj = d * Float(sc & 0x0F)
            if dj == 0 { continue }
            let dm = dmin * Float(sc >> 4)
            for i in 16 * j..<16 * j + 16 { L[i] = UInt8(max(0, min(3, nearestInt((x[i] + dm) / dj)))) }
        }
    }

    /// Writes scales, d and dmin (bytes 0-15, 80-83) into `out` and the fit's codes to `L`.
    private static func fitScales(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, _ L: UnsafeMutablePointer<UInt8>) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16 + 16 + 16) { buf in
            let scales = buf.baseAddress!, mins = scales + 16, weights = scales + 32
            var laux = (UInt64(0), UInt64(0))
            var maxScale: Float = 0, maxMin: Float = 0
            withUnsafeMutableBytes(of: &laux) { la in
                let Laux = la.baseAddress!.assumingMemoryBound(to: UInt8.self)
                for j in 0..<16 {
                    for l in 0..<16 { weights[l] = abs(x[16 * j + l]) }
                    (scales[j], mins[j]) = makeQKX2Quants(n: 16, nmax: 3, x: x + 16 * j, weights: weights, L: L + 16 * j,
                                                         Laux: Laux, rmin: -0.5, rdelta: 0.1, nstep: 15, useMAD: true)
                    if scales[j] > maxScale { maxScale = scales[j] }
                    if mins[j] > maxMin { maxMin = mins[j] }
                }
            }
            let q4scale: Float = 15
            if maxScale > 0 {
                let iscale = q4scale / maxScale
                for j in 0..<16 { out.storeU8(UInt8(truncatingIfNeeded: nearestInt(iscale * scales[j])), at: j) }
                out.storeF16(maxScale / q4scale, at: 80)
            } else {
                for j in 0..<16 { out.storeU8(0, at: j) }
                out.storeF16(0, at: 80)
            }
            if maxMin > 0 {
                let iscale = q4scale / maxMin
                for j in 0..<16 { out.orU8(UInt8(truncatingIfNeeded: nearestInt(iscale * mins[j]) << 4), at: j) }
                out.storeF16(maxMin / q4scale, at: 82)
            } else {
                out.storeF16(0, at: 82)
            }
        }
    }

    /// Sub-block s (weights 16s..<16s+16): scale d·(sc & 15), offset −dmin·(sc >> 4) — the dequantizer's
    /// own `dl·q − ml`.
    public static func fit(block x: UnsafePointer<Float>, parameters: UnsafeMutableRawPointer,
                           scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { fitScales(x, parameters, $0.baseAddress!) }
        grid(UnsafeRawPointer(parameters), s, o)
    }

    static func grid(_ p: UnsafeRawPointer, _ s: UnsafeMutablePointer<Float>, _ o: UnsafeMutablePointer<Float>) {
        let d = p.loadF16(at: 80), dmin = p.loadF16(at: 82)
        for j in 0..<16 {
            let sc = p.loadU8(at: j)
            let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
            for i in 16 * j..<16 * j + 16 { s[i] = dl; o[i] = -ml }
        }
    }

    /// Two 128-weight halves; byte l of half n holds weights 128n + 32k + l in bit pair 2k.
    public static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        packTwoBitCodes(codes, into: block + 16)
    }
}

/// The 2-bit code layout shared by Q2_K and Q3_K's low bits: 64 bytes, byte 32n + l holds
/// weight 128n + 32k + l in bits 2k, 2k+1.
@inline(__always)
func packTwoBitCodes(_ codes: UnsafePointer<UInt8>, into qs: UnsafeMutableRawPointer) {
    for n in 0..<2 {
        for l in 0..<32 {
            let c = codes + 128 * n + l
            qs.orU8(c[0] & 3 | (c[32] & 3) << 2 | (c[64] & 3) << 4 | (c[96] & 3) << 6, at: 32 * n + l)
        }
    }
}

extension Q2KBlock: GGMLImportanceQuantizer {
    /// `quantize_row_q2_K_impl`'s `weight[l] = qw[l]·sqrt(σ² + x²)`, σ² = Σx²/256 over the super-block.
    public static func importanceWeights(block x: UnsafePointer<Float>, imatrix qw: UnsafePointer<Float>,
                                         rowSigma2: Float, into weight: UnsafeMutablePointer<Float>) {
        var sumX2: Float = 0
        for j in 0..<256 { sumX2 += x[j] * x[j] }
        let sigma2 = sumX2 / 256
        for j in 0..<256 { weight[j] = qw[j] * (sigma2 + x[j] * x[j]).squareRoot() }
    }

    /// `quantize_row_q2_K_impl`: per 16-weight sub-block a weighted affine fit (`make_qkx3_quants`, 37
    /// candidates from -0.9 in steps of 0.05, squared error); the sixteen scales and mins quantized to
    /// 4 bits by `make_qp_quants` weighted by the sub-blocks' summed weights; codes re-rounded on the grid.
    public static func fitWeighted(block x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                   parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                                   scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 48) { buf in
            let scales = buf.baseAddress!, mins = scales + 16, sw = scales + 32
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 48) { lb in
                let Laux = lb.baseAddress!, Ls = Laux + 16, Lm = Laux + 32
                for j in 0..<16 {
                    let w = weights + 16 * j
                    sw[j] = 0
                    for l in 0..<16 { sw[j] += w[l] }
                    (scales[j], mins[j]) = makeQKX3Quants(n: 16, nmax: 3, x: x + 16 * j, weights: w, L: codes + 16 * j,
                                                         Laux: Laux, rmin: -0.9, rdelta: 0.05, nstep: 36, useMAD: false)
                }
                let dm = makeQPQuants(n: 16, nmax: 15, x: scales, L: Ls, weights: sw)
                let mm = makeQPQuants(n: 16, nmax: 15, x: mins, L: Lm, weights: sw)
                parameters.storeF16(dm, at: 80)
                parameters.storeF16(mm, at: 82)
                for j in 0..<16 { parameters.storeU8(Ls[j] | Lm[j] << 4, at: j) }
            }
        }
        requantize(x, UnsafeRawPointer(parameters), codes)
        grid(UnsafeRawPointer(parameters), scale, offset)
    }
}
