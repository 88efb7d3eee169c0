// ggml `Q5_K`: 5-bit super-blocks of 256 with 6-bit sub-block scales and minimums. Reference dequantizer and quantizer.

/// `block_q5_K` (176 bytes, 5.5 bits/weight):
/// - `d: f16` at 0; `dmin: f16` at 2; `scales: [12] u8` at 4, packed as in Q4_K (`Q4KBlock.scaleMin`);
/// - `qh: [32] u8` at 16; bit b of byte l is the fifth bit of weight `32b + l`;
/// - `qs: [128] u8` at 48; low 4 bits, laid out as Q4_K's `qs`.
///
/// Weight = (d * sc) * q - (dmin * m).
public enum Q5KBlock: GGMLBlockFormat {
    public static let type = GGMLType.q5_K
    public static let blockSize = 256
    public static let byteSize = 176

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 0)
        let dmin = block.loadF16(at: 2)
        let scales = block + 4
        let qh = block + 16
        var ql = block + 48
        var y = out
        var u1: UInt8 = 1, u2: UInt8 = 2
        for chunk in 0..<4 {
            let (sc1, m1) = Q4KBlock.scaleMin(2 * chunk, scales)
            let (sc2, m2) = Q4KBlock.scaleMin(2 * chunk + 1, scales)
            let d1 = d * Float(sc1), min1 = dmin * Float(m1)
            let d2 = d * Float(sc2), min2 = dmin * Float(m2)
            for l in 0..<32 {
                let h: UInt8 = qh.loadU8(at: l) & u1 != 0 ? 16 : 0
                y[l] = d1 * Float((ql.loadU8(at: l) & 0x0F) + h) - min1
            }
            for l in 0..<32 {
                let h: UInt8 = qh.loadU8(at: l) & u2 != 0 ? 16 : 0
                y[32 + l] = d2 * Float((ql.loadU8(at: l) >> 4) + h) - min2
            }
            ql += 32
            y += 64
            u1 = u1 &<< 2
            u2 = u2 &<< 2
        }
    }
}

extension Q5KBlock: GGMLBlockQuantizer {
    public static let maxCode = 31
    /// The f16 fields the block's weights are linear in, codes and the rest fixed: d and dmin.
    public static let linearHalfFields = [0, 2]

    /// `quantize_row_q5_K_ref`: Q4_K's search (`fitScaleMinK`) with nmax 31, 16 candidates from -0.5.
    public static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        out.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { L in
            fitScaleMinK(x, out, L.baseAddress!, nmax: 31, rmin: -0.5, nstep: 15, refine: true)
            packCodes(L.baseAddress!, into: out)
        }
    }

    /// Sub-block j (32 weights): scale d·sc_j, offset −dmin·m_j — the dequantizer's own `d1·q − min1`.
    public static func fit(block x: UnsafePointer<Float>, parameters: UnsafeMutableRawPointer,
                           scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) {
            fitScaleMinK(x, parameters, $0.baseAddress!, nmax: 31, rmin: -0.5, nstep: 15, refine: false)
        }
        scaleMinKGrid(UnsafeRawPointer(parameters), s, o)
    }

    /// Low nibbles as Q4_K's `qs` (at 48); the fifth bit of weight 64c + l is bit 2c of `qh[l]`, of
    /// weight 64c + 32 + l bit 2c + 1.
    public static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        for c in 0..<4 {
            for l in 0..<32 {
                let q1 = codes[64 * c + l], q2 = codes[64 * c + 32 + l]
                block.orU8(q1 & 0x0F | (q2 & 0x0F) << 4, at: 48 + 32 * c + l)
                block.orU8(((q1 >> 4) & 1) << UInt8(2 * c) | ((q2 >> 4) & 1) << UInt8(2 * c + 1), at: 16 + l)
            }
        }
    }
}

extension Q5KBlock: GGMLImportanceQuantizer {
    /// `quantize_row_q5_K_impl`'s weights: `qw[l]·sqrt(σ² + x²)`, σ² = 2·Σx²/256 over the super-block.
    public static func importanceWeights(block x: UnsafePointer<Float>, imatrix qw: UnsafePointer<Float>,
                                         rowSigma2: Float, into weight: UnsafeMutablePointer<Float>) {
        kQuantImportanceWeights(x, qw, weight)
    }

    /// `quantize_row_q5_K_impl`: Q4_K's weighted search with nmax 31 (see `fitScaleMinKWeighted`).
    public static func fitWeighted(block x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                   parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                                   scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        fitScaleMinKWeighted(x, weights, parameters, codes, nmax: 31, clampStoredScales: true)
        scaleMinKGrid(UnsafeRawPointer(parameters), scale, offset)
    }
}
