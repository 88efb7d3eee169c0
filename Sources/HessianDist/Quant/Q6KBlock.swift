// ggml `Q6_K`: 6-bit super-blocks of 256 with signed 8-bit sub-block scales. Reference dequantizer and quantizer.

/// `block_q6_K` (210 bytes, 6.5625 bits/weight):
/// - `ql: [128] u8` at 0, low 4 bits; `qh: [64] u8` at 128, high 2 bits; in 128-weight half n
///   (ql + 64n, qh + 32n), for l < 32: weight l = low nibble of ql[l] with qh[l] bits 0-1,
///   weight 32+l = low nibble of ql[32+l] with bits 2-3, weight 64+l = high nibble of ql[l] with
///   bits 4-5, weight 96+l = high nibble of ql[32+l] with bits 6-7;
/// - `scales: [16] i8` at 192, one per 16 weights; `d: f16` at 208.
///
/// Weight = (d * scale) * (q - 32).
public enum Q6KBlock: GGMLBlockFormat {
    public static let type = GGMLType.q6_K
    public static let blockSize = 256
    public static let byteSize = 210

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 208)
        var ql = block
        var qh = block + 128
        var sc = block + 192
        var y = out
        for _ in 0..<2 {
            for l in 0..<32 {
                let s = l / 16
                let a = ql.loadU8(at: l), b = ql.loadU8(at: l + 32), h = qh.loadU8(at: l)
                let q1 = Int32((a & 0x0F) | ((h & 3) << 4)) - 32
                let q2 = Int32((b & 0x0F) | (((h >> 2) & 3) << 4)) - 32
                let q3 = Int32((a >> 4) | (((h >> 4) & 3) << 4)) - 32
                let q4 = Int32((b >> 4) | (((h >> 6) & 3) << 4)) - 32
                y[l] = d * Float(sc.loadI8(at: s)) * Float(q1)
                y[l + 32] = d * Float(sc.loadI8(at: s + 2)) * Float(q2)
                y[l + 64] = d * Float(sc.loadI8(at: s + 4)) * Float(q3)
                y[l + 96] = d * Float(sc.loadI8(at: s + 6)) * Float(q4)
            }
            y += 128
            ql += 64
            qh += 32
            sc += 8
        }
    }
}

extension Q6KBlock: GGMLBlockQuantizer {
    /// Codes 0...63 stand for q - 32 = -32...31.
    public static let maxCode = 63
    /// The f16 fields the block's weights are linear in, codes and the rest fixed: d.
    public static let linearHalfFields = [208]

    /// `quantize_row_q6_K_ref`: per 16-weight sub-block `make_qx_quants` (x² weights, 19 candidates);
    /// the sixteen signed scales quantized to int8 against d = max_scale / -128 (largest magnitude, sign
    /// kept; a block below 1e-15 is all zeros); codes re-rounded as round(x / (d·sc)) clamped to
    /// -32...31, except in sub-blocks whose stored d·sc is 0, which keep the search's codes.
    public static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        out.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { L in
            let L = L.baseAddress!
            guard fitScales(x, out, L) else { return }
            requantize(x, UnsafeRawPointer(out), L)
            packCodes(L, into: out)
        }
    }

    /// The codes on the stored grid, round(x / (d·sc)) clamped to -32...31 (stored + 32), except in
    /// sub-blocks whose stored d·sc is 0 (those keep the search's codes in `L`).
    static func requantize(_ x: UnsafePointer<Float>, _ p: UnsafeRawPointer, _ L: UnsafeMutablePointer<UInt8>) {
        let d = p.loadF16(at: 208)
        for j in 0..<16 {
            let dj = d * Float(p.loadI8(at: 192 + j))
            if dj == 0 { continue }
            for i in 16 * j..<16 * j + 16 { L[i] = UInt8(max(-32, min(31, nearestInt(x[i] / dj))) + 32) }
        }
    }

    /// Writes scales (192-207) and d (208) into `out`, the search's codes to `L`; false (block left
    /// zero) when every sub-block scale is below `groupMaxEps`. `weights` per weight (the imatrix path),
    /// x² when nil.
    private static func fitScales(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, _ L: UnsafeMutablePointer<UInt8>,
                                  weights: UnsafePointer<Float>? = nil) -> Bool {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { buf in
            let scales = buf.baseAddress!
            var maxScale: Float = 0, maxAbs: Float = 0
            for j in 0..<16 {
                scales[j] = makeQXQuants(n: 16, nmax: 32, x: x + 16 * j, L: L + 16 * j, weights: weights.map { $0 + 16 * j })
                let a = abs(scales[j])
                if a > maxAbs { maxAbs = a; maxScale = scales[j] }
            }
            guard maxAbs >= groupMaxEps else { return false }
            let iscale = -128 / maxScale
            out.storeF16(1 / iscale, at: 208)
            for j in 0..<16 { out.storeU8(UInt8(truncatingIfNeeded: min(127, nearestInt(iscale * scales[j]))), at: 192 + j) }
            return true
        }
    }

    /// Sub-block s (16 weights): scale d·sc_s, offset −32·scale; `scale·q + offset` equals the
    /// dequantizer's `(d·sc)·(q − 32)` exactly (d·sc has at most 18 significant bits, times q ≤ 63
    /// at most 24), zero coming out +0.
    public static func fit(block x: UnsafePointer<Float>, parameters: UnsafeMutableRawPointer,
                           scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        _ = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { fitScales(x, parameters, $0.baseAddress!) }
        grid(UnsafeRawPointer(parameters), s, o)
    }

    static func grid(_ p: UnsafeRawPointer, _ s: UnsafeMutablePointer<Float>, _ o: UnsafeMutablePointer<Float>) {
        let d = p.loadF16(at: 208)
        for j in 0..<16 {
            let dl = d * Float(p.loadI8(at: 192 + j))
            for i in 16 * j..<16 * j + 16 { s[i] = dl; o[i] = -32 * dl }
        }
    }

    /// In half n: `ql[64n + l]` = weight 128n + l (low nibble) | weight 128n + 64 + l (high);
    /// `ql[64n + 32 + l]` = weights 128n + 32 + l | 128n + 96 + l; `qh[32n + l]` the four top bit pairs.
    public static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        for n in 0..<2 {
            for l in 0..<32 {
                let c = codes + 128 * n + l
                let q1 = c[0], q2 = c[32], q3 = c[64], q4 = c[96]
                block.orU8(q1 & 0x0F | (q3 & 0x0F) << 4, at: 64 * n + l)
                block.orU8(q2 & 0x0F | (q4 & 0x0F) << 4, at: 64 * n + 32 + l)
                block.orU8((q1 >> 4) & 3 | ((q2 >> 4) & 3) << 2 | ((q3 >> 4) & 3) << 4 | ((q4 >> 4) & 3) << 6,
                           at: 128 + 32 * n + l)
            }
        }
    }
}

extension Q6KBlock: GGMLImportanceQuantizer {
    /// `quantize_row_q6_K_impl` weighs by the imatrix itself (its σ² term is commented out in ggml).
    public static func importanceWeights(block x: UnsafePointer<Float>, imatrix qw: UnsafePointer<Float>,
                                         rowSigma2: Float, into weight: UnsafeMutablePointer<Float>) {
        for j in 0..<256 { weight[j] = qw[j] }
    }

    /// `quantize_row_q6_K_impl`: the reference search with the given weights in place of x².
    public static func fitWeighted(block x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                   parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                                   scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        if fitScales(x, parameters, codes, weights: weights) {
            requantize(x, UnsafeRawPointer(parameters), codes)
        } else {
            for i in 0..<256 { codes[i] = 0 }  // ggml zeroes the whole block
        }
        grid(UnsafeRawPointer(parameters), scale, offset)
    }
}
