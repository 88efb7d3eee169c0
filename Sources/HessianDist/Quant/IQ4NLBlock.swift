// ggml `IQ4_NL`: 4-bit blocks of 32 on a fixed non-uniform grid of 16 levels. Reference dequantizer and
// quantizer (llama-quantize's: the scale search of `quantize_iq4_nl`); the GPTQ grid is `GGMLGrid`.
//
// Same size as Q4_0, lower error: the levels are denser near zero, where most weights are. Its block
// is 32 wide, so it also serves rows that are not a multiple of 256 (SmolLM2's 576), where no K-quant fits.

/// `block_iq4_nl` (18 bytes, 4.5 bits/weight):
/// - `d: f16` at 0, the scale;
/// - `qs: [16] u8` at 2; byte j holds weight j in its low nibble and weight j+16 in its high nibble.
///
/// Weight = d · levels[q] with `levels` = ggml's `kvalues_iq4nl`.
public enum IQ4NLBlock: GGMLBlockFormat {
    public static let type = GGMLType.iq4_nl
    public static let blockSize = 32
    public static let byteSize = 18
    /// `kvalues_iq4nl`, ascending.
    public static let levels: [Int8] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 0)
        levels.withUnsafeBufferPointer { v in
            for j in 0..<16 {
                let b = block.loadU8(at: 2 + j)
                out[j] = d * Float(v[Int(b & 0x0F)])
                out[j + 16] = d * Float(v[Int(b >> 4)])
            }
        }
    }

    /// ggml's `best_index_int8(16, kvalues_iq4nl, x)`: the nearest level by bisection, the upper one on a tie.
    @inline(__always)
    static func bestIndex(_ v: UnsafeBufferPointer<Int8>, _ x: Float) -> Int {
        if x <= Float(v[0]) { return 0 }
        if x >= Float(v[15]) { return 15 }
        var lo = 0, hi = 15
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if x < Float(v[mid]) { hi = mid } else { lo = mid }
        }
        return x - Float(v[hi - 1]) < Float(v[hi]) - x ? hi - 1 : hi
    }

    /// `quantize_row_iq4_nl_impl(32, 32, x, …, kvalues_iq4nl, quant_weights, ntry: 7)` up to the f16
    /// store: a least-squares scale from d = max/−(−127), then 15 more starting points
    /// (−127 + t)/max, t = −7…7, each refitted by weighted least squares; the best Σw·q·x²/Σw·q² wins.
    /// Returns the float scale (0 for a block below GROUP_MAX_EPS); `weights` are ggml's `weight[j]`.
    static func searchScale(_ x: UnsafePointer<Float>, weights w: UnsafePointer<Float>) -> Float {
        levels.withUnsafeBufferPointer { v in
            var amax: Float = 0, max: Float = 0
            for j in 0..<32 {
                let ax = abs(x[j])
                if ax > amax { amax = ax; max = x[j] }
            }
            if amax < 1e-15 { return 0 }  // GROUP_MAX_EPS
            var d = -max / Float(v[0])
            var id = 1 / d
            var sumqx: Float = 0, sumq2: Float = 0
            for j in 0..<32 {
                let q = Float(v[bestIndex(v, id * x[j])])
                sumqx += w[j] * q * x[j]
                sumq2 += w[j] * q * q
            }
            d = sumq2 > 0 ? sumqx / sumq2 : 0
            var best = d * sumqx
            for t in -7...7 {
                id = Float(t + Int(v[0])) / max
                sumqx = 0; sumq2 = 0
                for j in 0..<32 {
                    let q = Float(v[bestIndex(v, id * x[j])])
                    sumqx += w[j] * q * x[j]
                    sumq2 += w[j] * q * q
                }
                if sumq2 > 0 && sumqx * sumqx > best * sumq2 {
                    d = sumqx / sumq2
                    best = d * sumqx
                }
            }
            return d
        }
    }

    /// The search without an imatrix (`quant_weights` NULL): weight[j] = x[j]².
    static func plainScale(_ x: UnsafePointer<Float>) -> Float {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { w in
            for j in 0..<32 { w[j] = x[j] * x[j] }
            return searchScale(x, weights: w.baseAddress!)
        }
    }

    /// The codes ggml writes for scale `d`: the nearest levels to x·(1/d) with the float (unrounded) d.
    static func nearestCodes(_ x: UnsafePointer<Float>, d: Float, into codes: UnsafeMutablePointer<UInt8>) {
        let id: Float = d != 0 ? 1 / d : 0
        levels.withUnsafeBufferPointer { v in
            for j in 0..<32 { codes[j] = UInt8(bestIndex(v, id * x[j])) }
        }
    }

    /// The grid of a block with stored scale: value = f16(d)·level + 0.
    static func grid(_ parameters: UnsafeRawPointer, _ s: UnsafeMutablePointer<Float>, _ o: UnsafeMutablePointer<Float>) {
        let d = parameters.loadF16(at: 0)
        for j in 0..<32 { s[j] = d; o[j] = 0 }
    }
}

extension IQ4NLBlock: GGMLBlockQuantizer {
    public static let maxCode = 15
    /// The f16 fields the block's weights are linear in, codes and the rest fixed: d.
    public static let linearHalfFields = [0]
    public static var codebook: [Float]? { levels.map { Float($0) } }

    /// llama-quantize without an imatrix (`quantize_iq4_nl`, quant_weights NULL): weight[j] = x[j]².
    /// Not `quantize_row_iq4_nl_ref`, which skips the search (ntry −1) and is not what makes files.
    public static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        let d = plainScale(x)
        out.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        out.storeF16(d, at: 0)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { q in
            nearestCodes(x, d: d, into: q.baseAddress!)
            packCodes(q.baseAddress!, into: out)
        }
    }

    public static func fit(block x: UnsafePointer<Float>, parameters: UnsafeMutableRawPointer,
                           scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        parameters.storeF16(plainScale(x), at: 0)
        grid(parameters, s, o)
    }

    public static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        for j in 0..<16 { block.orU8(codes[j] & 0x0F | (codes[j + 16] & 0x0F) << 4, at: 2 + j) }
    }
}

extension IQ4NLBlock: GGMLImportanceQuantizer {
    /// `quantize_iq4_nl` with quant_weights: σ² is over the block (2/32·Σx²), not the row.
    public static func importanceWeights(block x: UnsafePointer<Float>, imatrix qw: UnsafePointer<Float>,
                                         rowSigma2: Float, into weight: UnsafeMutablePointer<Float>) {
        iq4ImportanceWeights(x, qw, weight, count: 32)
    }

    /// The weighted scale search; the codes are the nearest levels to x/d with the float d, as ggml's.
    public static func fitWeighted(block x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                   parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                                   scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        let d = searchScale(x, weights: weights)
        parameters.storeF16(d, at: 0)
        nearestCodes(x, d: d, into: codes)
        grid(parameters, scale, offset)
    }
}

/// `quantize_row_iq4_nl_impl`'s weights for a super-block of `count` (32 for IQ4_NL, 256 for IQ4_XS):
/// `qw[j]·sqrt(σ² + x[j]²)` with σ² = Σx²·(2/count) over the super-block.
func iq4ImportanceWeights(_ x: UnsafePointer<Float>, _ qw: UnsafePointer<Float>, _ weight: UnsafeMutablePointer<Float>, count: Int) {
    var sigma2: Float = 0
    for j in 0..<count { sigma2 += x[j] * x[j] }
    sigma2 *= 2 / Float(count)
    for j in 0..<count { weight[j] = qw[j] * (sigma2 + x[j] * x[j]).squareRoot() }
}
