// ggml `MXFP4` (OCP microscaling FP4): blocks of 32 E2M1 values sharing a power-of-two scale. Reference
// dequantizer and quantizer (`quantize_row_mxfp4_ref`, which llama-quantize uses; it takes no imatrix).
//
// 4.25 bits per weight: the one ggml type below 4.5 bpw whose block is 32 wide, so the only way under
// Q4_0's size for rows that are not a multiple of 256.
//
// ggml has no importance-weighted MXFP4 quantizer; ours (`fitWeighted`, used by GPTQ's importance fit and
// by RTN with an imatrix) is our own: the power-of-two scale is the best of the reference exponent and its
// two neighbours by weighted squared error. The blocks it writes are ordinary MXFP4.
#if canImport(Glibc)
import Glibc
#endif

/// `block_mxfp4` (17 bytes, 4.25 bits/weight):
/// - `e: u8` at 0, an E8M0 exponent;
/// - `qs: [16] u8` at 1; byte j holds weight j in its low nibble and weight j+16 in its high nibble.
///
/// Weight = levels[q] · 2^(e − 128), `levels` = ggml's `kvalues_mxfp4` (E2M1 values doubled, sign in bit 3).
public enum MXFP4Block: GGMLBlockFormat {
    public static let type = GGMLType.mxfp4
    public static let blockSize = 32
    public static let byteSize = 17
    /// `kvalues_mxfp4`: 0, 1, 2, 3, 4, 6, 8, 12, then the same negated (code 8 is a second zero).
    public static let levels: [Int8] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12]

    /// `ggml_e8m0_to_fp32_half`: 2^(e − 128), built from bits (subnormal for e < 2).
    @inline(__always)
    public static func halfScale(_ e: UInt8) -> Float {
        Float(bitPattern: e < 2 ? UInt32(0x0020_0000) << UInt32(e) : UInt32(e - 1) << 23)
    }

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = halfScale(block.loadU8(at: 0))
        levels.withUnsafeBufferPointer { v in
            for j in 0..<16 {
                let b = block.loadU8(at: 1 + j)
                out[j] = Float(v[Int(b & 0x0F)]) * d
                out[j + 16] = Float(v[Int(b >> 4)]) * d
            }
        }
    }

    /// e = floor(log2(amax)) − 2 + 127, so amax lands in the top binade of the levels (6·2^(e−127) ≤ …);
    /// 0 for an all-zero block. The float → u8 cast keeps the low byte of C's (int) conversion.
    static func exponent(_ x: UnsafePointer<Float>) -> UInt8 {
        var amax: Float = 0
        for j in 0..<32 where amax < abs(x[j]) { amax = abs(x[j]) }
        guard amax > 0 else { return 0 }
        return UInt8(truncatingIfNeeded: truncatedInt32(log2f(amax).rounded(.down) - 2 + 127))
    }

    /// ggml's `best_index_mxfp4`: the first level with the smallest |level·d − x|.
    @inline(__always)
    static func bestIndex(_ v: UnsafeBufferPointer<Int8>, _ x: Float, _ d: Float) -> UInt8 {
        var best = 0, bestErr = abs(Float(v[0]) * d - x)
        for i in 1..<16 {
            let err = abs(Float(v[i]) * d - x)
            if err < bestErr { best = i; bestErr = err }
        }
        return UInt8(best)
    }
}

extension MXFP4Block: GGMLBlockQuantizer {
    public static let maxCode = 15
    /// None: the E8M0 exponent is a power of two, not a field weights are linear in.
    public static let linearHalfFields: [Int] = []
    public static var codebook: [Float]? { levels.map { Float($0) } }

    public static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        let e = exponent(x), d = halfScale(e)
        out.storeU8(e, at: 0)
        levels.withUnsafeBufferPointer { v in
            for j in 0..<16 {
                out.storeU8(bestIndex(v, x[j], d) | bestIndex(v, x[j + 16], d) << 4, at: 1 + j)
            }
        }
    }

    /// scale = 2^(e − 128), offset 0: `d·level + 0` is the dequantizer's `level·d` (a power of two times a
    /// small integer, exact).
    public static func fit(block x: UnsafePointer<Float>, parameters: UnsafeMutableRawPointer,
                           scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        let e = exponent(x)
        parameters.storeU8(e, at: 0)
        let d = halfScale(e)
        for j in 0..<32 { s[j] = d; o[j] = 0 }
    }

    public static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        for j in 0..<16 { block.orU8(codes[j] & 0x0F | (codes[j + 16] & 0x0F) << 4, at: 1 + j) }
    }
}

extension MXFP4Block: GGMLImportanceQuantizer {
    /// The exponent among e₀ − 1, e₀, e₀ + 1 (e₀ the reference's; out-of-range ones skipped) whose nearest
    /// levels give the smallest Σ weight·(level·d − x)²; a tie keeps the earlier of e₀, e₀ + 1, e₀ − 1.
    /// The reference exponent lets 6·d fall anywhere in [0.75, 1.5]·amax, so clipping the largest weight
    /// (e₀ − 1 halves d) or sparing it (e₀ + 1) is often cheaper where the weights say so.
    public static func fitWeighted(block x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                   parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                                   scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        let e0 = exponent(x)
        var best = e0
        if e0 != 0 {
            levels.withUnsafeBufferPointer { v in
                func error(_ e: UInt8) -> Float {
                    let d = halfScale(e)
                    var err: Float = 0
                    for j in 0..<32 {
                        let diff = Float(v[Int(bestIndex(v, x[j], d))]) * d - x[j]
                        err += weights[j] * diff * diff
                    }
                    return err
                }
                var bestError = error(e0)
                func consider(_ e: UInt8) {
                    let err = error(e)
                    if err < bestError { best = e; bestError = err }
                }
                if e0 < 255 { consider(e0 + 1) }
                consider(e0 - 1)
            }
        }
        parameters.storeU8(best, at: 0)
        let d = halfScale(best)
        levels.withUnsafeBufferPointer { v in
            for j in 0..<32 { codes[j] = bestIndex(v, x[j], d) }
        }
        for j in 0..<32 { scale[j] = d; offset[j] = 0 }
    }
}
