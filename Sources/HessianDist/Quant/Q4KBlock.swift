// ggml `Q4_K`: 4-bit super-blocks of 256 with 6-bit sub-block scales and minimums. Reference dequantizer and quantizer.

/// `block_q4_K` (144 bytes, 4.5 bits/weight):
/// - `d: f16` at 0 (super-scale of the scales); `dmin: f16` at 2 (super-scale of the mins);
/// - `scales: [12] u8` at 4; eight 6-bit (scale, min) pairs, unpacked by `scaleMin` (`get_scale_min_k4`);
/// - `qs: [128] u8` at 16; four 64-weight chunks of 32 bytes; in chunk c, byte l holds weight
///   `64c + l` (low nibble, sub-block 2c) and `64c + 32 + l` (high nibble, sub-block 2c+1).
///
/// Weight = (d * sc) * q - (dmin * m).
public enum Q4KBlock: GGMLBlockFormat {
    public static let type = GGMLType.q4_K
    public static let blockSize = 256
    public static let byteSize = 144

    /// ggml's `get_scale_min_k4`: sub-blocks 0-3 use the low 6 bits of bytes j and j+4; sub-blocks
    /// 4-7 take a nibble of byte j+4 and the top two bits of byte j-4 (scale) or byte j (min).
    /// Shared with Q5_K.
    @inline(__always)
    static func scaleMin(_ j: Int, _ q: UnsafeRawPointer) -> (scale: UInt8, min: UInt8) {
        if j < 4 {
            return (q.loadU8(at: j) & 63, q.loadU8(at: j + 4) & 63)
        }
        let scale = (q.loadU8(at: j + 4) & 0x0F) | ((q.loadU8(at: j - 4) >> 6) << 4)
        let min = (q.loadU8(at: j + 4) >> 4) | ((q.loadU8(at: j) >> 6) << 4)
        return (scale, min)
    }

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 0)
        let dmin = block.loadF16(at: 2)
        let scales = block + 4
        var q = block + 16
        var y = out
        for chunk in 0..<4 {
            let (sc1, m1) = scaleMin(2 * chunk, scales)
            let (sc2, m2) = scaleMin(2 * chunk + 1, scales)
            let d1 = d * Float(sc1), min1 = dmin * Float(m1)
            let d2 = d * Float(sc2), min2 = dmin * Float(m2)
            for l in 0..<32 { y[l] = d1 * Float(q.loadU8(at: l) & 0x0F) - min1 }
            for l in 0..<32 { y[32 + l] = d2 * Float(q.loadU8(at: l) >> 4) - min2 }
            q += 32
            y += 64
        }
    }
}

extension Q4KBlock: GGMLBlockQuantizer {
    public static let maxCode = 15
    /// The f16 fields the block's weights are linear in, codes and the rest fixed: d and dmin.
    public static let linearHalfFields = [0, 2]

    /// `quantize_row_q4_K_ref`; see `fitScaleMinK` for the scale search and re-rounding.
    public static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        out.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { L in
            fitScaleMinK(x, out, L.baseAddress!, nmax: 15, rmin: -1, nstep: 20, refine: true)
            packCodes(L.baseAddress!, into: out)
        }
    }

    /// Sub-block j (32 weights): scale d·sc_j, offset −dmin·m_j — the dequantizer's own `d1·q − min1`.
    public static func fit(block x: UnsafePointer<Float>, parameters: UnsafeMutableRawPointer,
                           scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) {
            fitScaleMinK(x, parameters, $0.baseAddress!, nmax: 15, rmin: -1, nstep: 20, refine: false)
        }
        scaleMinKGrid(UnsafeRawPointer(parameters), s, o)
    }

    /// Chunk c: byte l of `qs` (at 16 + 32c) holds weight 64c + l (low nibble) and 64c + 32 + l (high).
    public static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        for c in 0..<4 {
            for l in 0..<32 {
                block.orU8(codes[64 * c + l] & 0x0F | (codes[64 * c + 32 + l] & 0x0F) << 4, at: 16 + 32 * c + l)
            }
        }
    }
}

/// The scale search shared by Q4_K and Q5_K (`quantize_row_q{4,5}_K_ref` up to the code packing): per
/// 32-weight sub-block an affine fit (`make_qkx2_quants`, weights sqrt(mean x²) + |x|, squared error,
/// nstep+1 candidates from rmin in steps of 0.1); scales and mins quantized to 6 bits against
/// d = max_scale/63 and dmin = max_min/63 (f16) and packed as `get_scale_min_k4` reads them. Writes
/// d, dmin and scales (bytes 0-15) into `out` and the fit's codes into `L`; with `refine`, re-rounds
/// the codes on the stored grid as round((x + dmin·m)/(d·sc)) clamped to 0...nmax, except in
/// sub-blocks whose stored d·sc is 0 (those keep the fit's codes).
func fitScaleMinK(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, _ L: UnsafeMutablePointer<UInt8>,
                  nmax: Int32, rmin: Float, nstep: Int, refine: Bool) {
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 8 + 8 + 32) { buf in
        let scales = buf.baseAddress!, mins = scales + 8, weights = scales + 16
        var laux = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        var maxScale: Float = 0, maxMin: Float = 0
        withUnsafeMutableBytes(of: &laux) { la in
            let Laux = la.baseAddress!.assumingMemoryBound(to: UInt8.self)
            for j in 0..<8 {
                let xs = x + 32 * j
                var sumX2: Float = 0
                for l in 0..<32 { sumX2 += xs[l] * xs[l] }
                let avX = (sumX2 / 32).squareRoot()
                for l in 0..<32 { weights[l] = avX + abs(xs[l]) }
                (scales[j], mins[j]) = makeQKX2Quants(n: 32, nmax: nmax, x: xs, weights: weights, L: L + 32 * j,
                                                     Laux: Laux, rmin: rmin, rdelta: 0.1, nstep: nstep, useMAD: false)
                if scales[j] > maxScale { maxScale = scales[j] }
                if mins[j] > maxMin { maxMin = mins[j] }
            }
        }
        let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
        let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
        for j in 0..<8 {
            packScaleMinK(out + 4, j, min(63, UInt8(truncatingIfNeeded: nearestInt(invScale * scales[j]))),
                          min(63, UInt8(truncatingIfNeeded: nearestInt(invMin * mins[j]))))
        }
        out.storeF16(maxScale / 63, at: 0)
        out.storeF16(maxMin / 63, at: 2)
        if refine { requantizeScaleMinK(x, UnsafeRawPointer(out), L, nmax: nmax) }
    }
}

/// Sub-block j's 6-bit scale `ls` and min `lm` into the 12 scale bytes `q`, laid out as
/// `get_scale_min_k4` reads them (`q` zeroed before sub-block 0).
@inline(__always)
func packScaleMinK(_ q: UnsafeMutableRawPointer, _ j: Int, _ ls: UInt8, _ lm: UInt8) {
    if j < 4 {
        q.storeU8(ls, at: j)
        q.storeU8(lm, at: j + 4)
    } else {
        q.storeU8(ls & 0x0F | (lm & 0x0F) << 4, at: j + 4)
        q.orU8((ls >> 4) << 6, at: j - 4)
        q.orU8((lm >> 4) << 6, at: j)
    }
}

/// The codes on a Q4_K/Q5_K block's stored grid, round((x + dmin·m)/(d·sc)) clamped to 0...nmax, except in
/// sub-blocks whose stored d·sc is 0 (those keep the search's codes in `L`).
func requantizeScaleMinK(_ x: UnsafePointer<Float>, _ p: UnsafeRawPointer, _ L: UnsafeMutablePointer<UInt8>, nmax: Int32) {
    let d = p.loadF16(at: 0), dmin = p.loadF16(at: 2)
    for j in 0..<8 {
        let (sc, m) = Q4KBlock.scaleMin(j, p + 4)
        let dj = d * Float(sc)
        if dj == 0 { continue }
        let dm = dmin * Float(m)
        for i in 32 * j..<32 * j + 32 { L[i] = UInt8(max(0, min(nmax, nearestInt((x[i] + dm) / dj)))) }
    }
}

/// Per-weight scale d·sc_j and offset −dmin·m_j of a Q4_K/Q5_K block's eight 32-weight sub-blocks.
func scaleMinKGrid(_ p: UnsafeRawPointer, _ s: UnsafeMutablePointer<Float>, _ o: UnsafeMutablePointer<Float>) {
    let d = p.loadF16(at: 0), dmin = p.loadF16(at: 2)
    for j in 0..<8 {
        let (sc, m) = Q4KBlock.scaleMin(j, p + 4)
        let dl = d * Float(sc), ml = dmin * Float(m)
        for i in 32 * j..<32 * j + 32 { s[i] = dl; o[i] = -ml }
    }
}

extension Q4KBlock: GGMLImportanceQuantizer {
    /// `quantize_row_q4_K_impl`'s weights: `qw[l]·sqrt(σ² + x²)`, σ² = 2·Σx²/256 over the super-block.
    public static func importanceWeights(block x: UnsafePointer<Float>, imatrix qw: UnsafePointer<Float>,
                                         rowSigma2: Float, into weight: UnsafeMutablePointer<Float>) {
        kQuantImportanceWeights(x, qw, weight)
    }

    /// `quantize_row_q4_K_impl`; see `fitScaleMinKWeighted`.
    public static func fitWeighted(block x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                   parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                                   scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        fitScaleMinKWeighted(x, weights, parameters, codes, nmax: 15, clampStoredScales: false)
        scaleMinKGrid(UnsafeRawPointer(parameters), scale, offset)
    }
}

/// The weighted search shared by Q4_K and Q5_K (`quantize_row_q{4,5}_K_impl` up to the code packing):
/// per 32-weight sub-block a weighted affine fit (`make_qkx3_quants`, 37 candidates from -0.9 in steps
/// of 0.05); the eight scales and mins quantized to 6 bits by `make_qp_quants` weighted by the
/// sub-blocks' summed weights, d and dmin as its f16 results; codes re-rounded on the stored grid
/// except in sub-blocks whose d·sc is 0. `clampStoredScales` is Q5_K's `MIN(63, ·)` before packing
/// (Q4_K packs the search's byte as it is).
func fitScaleMinKWeighted(_ x: UnsafePointer<Float>, _ weights: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer,
                          _ L: UnsafeMutablePointer<UInt8>, nmax: Int32, clampStoredScales: Bool) {
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 24) { buf in
        let scales = buf.baseAddress!, mins = scales + 8, sw = scales + 16
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 48) { lb in
            let Laux = lb.baseAddress!, Ls = Laux + 32, Lm = Laux + 40
            for j in 0..<8 {
                let w = weights + 32 * j
                var sumW: Float = 0
                for l in 0..<32 { sumW += w[l] }
                sw[j] = sumW
                (scales[j], mins[j]) = makeQKX3Quants(n: 32, nmax: nmax, x: x + 32 * j, weights: w, L: L + 32 * j,
                                                     Laux: Laux, rmin: -0.9, rdelta: 0.05, nstep: 36, useMAD: false)
            }
            let dBlock = makeQPQuants(n: 8, nmax: 63, x: scales, L: Ls, weights: sw)
            let mBlock = makeQPQuants(n: 8, nmax: 63, x: mins, L: Lm, weights: sw)
            for j in 0..<8 {
                packScaleMinK(out + 4, j, clampStoredScales ? min(63, Ls[j]) : Ls[j],
                              clampStoredScales ? min(63, Lm[j]) : Lm[j])
            }
            out.storeF16(dBlock, at: 0)
            out.storeF16(mBlock, at: 2)
        }
    }
    requantizeScaleMinK(x, UnsafeRawPointer(out), L, nmax: nmax)
}
