// The scalar pieces every reference quantizer shares, each matching one C idiom of ggml-quants.c bit
// for bit: f32 -> f16 rounding, `nearest_int`, C's float -> int truncation, little-endian stores, and
// the protocol a quantizable block type adopts. Not the formats themselves (`Q4_0Block`, ...), nor the
// K-quant scale searches (`KQuantSearch.swift`).
//
// Float order: every expression is written in the C source's evaluation order, one IEEE single
// rounding per operation. Swift never contracts `a*b + c` into a fused multiply-add, which matches
// ggml-base as llama.cpp builds it for x86-64 (no -march flags on ggml-quants.c, hence no FMA).

/// A ggml block type with a reference quantizer and the pieces the GPTQ grid (`GGMLGrid`) needs.
public protocol GGMLBlockQuantizer: GGMLBlockFormat {
    /// Largest code of one weight on the block's affine grid (`GGMLGrid.maxCode`).
    static var maxCode: Int { get }
    /// Reference quantizer, bit-exact with ggml-quants.c `quantize_row_*_ref` for one block: reads
    /// `blockSize` floats at `x`, writes `byteSize` bytes at `out` (any alignment).
    static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer)
    /// The reference quantizer's scales (and mins) for the block `x`, written into `parameters`
    /// (`byteSize` bytes; the code region is zeroed), and per weight the exact float `scale` and
    /// `offset` with `dequantize(code q) == scale * Float(q) + offset` (see `QuantGrid`).
    static func fit(block x: UnsafePointer<Float>, parameters: UnsafeMutableRawPointer,
                    scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>)
    /// ORs the codes (`0...maxCode`, one per weight in order) into the code region of `block`,
    /// which must be zero there.
    static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer)
    /// For the non-uniform types (IQ4_NL, IQ4_XS, MXFP4), the value of each code before scaling: the weight is
    /// `scale · codebook[q] + offset`. Nil (the default) for the affine grids, `scale · q + offset`.
    static var codebook: [Float]? { get }
    /// Byte offsets of the f16 fields (scales, mins, super-scales) the block's weights are linear in when
    /// the codes and every other field are fixed: what `refitScales` may re-solve after GPTQ's sweep.
    static var linearHalfFields: [Int] { get }
}

extension GGMLBlockQuantizer {
    public static var codebook: [Float]? { nil }
}

/// Float -> IEEE half bits, round to nearest even, overflow to infinity: `GGML_FP32_TO_FP16`
/// (F16C's `vcvtps2ph` and ggml's software fallback agree on every finite input).
@inline(__always)
func floatToHalfBits(_ f: Float) -> UInt16 {
    #if os(macOS) && arch(x86_64)
    return softwareFloatToHalfBits(f)  // Float16 is unavailable on Intel Macs
    #else
    return Float16(f).bitPattern
    #endif
}

/// Float -> half by moving fields with explicit round-to-nearest-even; NaNs become quiet NaNs keeping
/// the top payload bits. Tested against `Float16` (QuantizeTests.softwareFloatToHalfIsExact).
func softwareFloatToHalfBits(_ f: Float) -> UInt16 {
    let x = f.bitPattern
    let sign = UInt16(truncatingIfNeeded: (x >> 16) & 0x8000)
    let exponent = Int((x >> 23) & 0xFF)
    let mantissa = x & 0x7F_FFFF
    if exponent == 0xFF {
        return sign | (mantissa == 0 ? 0x7C00 : 0x7E00 | UInt16(truncatingIfNeeded: mantissa >> 13))
    }
    let e = exponent - 127 + 15
    if e >= 0x1F { return sign | 0x7C00 }
    if e >= 1 {  // normal half: drop 13 mantissa bits, round half to even; a carry may reach inf
        var h = UInt32(e) << 10 | mantissa >> 13
        let rest = mantissa & 0x1FFF
        if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) { h += 1 }
        return sign | UInt16(h)
    }
    // Subnormal half (units of 2^-24) or zero: the value is m * 2^(exponent - 150).
    guard exponent != 0 else { return sign }  // float subnormals are far below 2^-25
    let shift = UInt32(126 - exponent)         // >= 14
    guard shift <= 24 else { return sign }
    let m = mantissa | 0x80_0000
    var h = m >> shift
    let rest = m & ((1 << shift) - 1), half: UInt32 = 1 << (shift - 1)
    if rest > half || (rest == half && h & 1 == 1) { h += 1 }
    return sign | UInt16(h)
}

/// `GGML_FP32_TO_FP16` then `GGML_FP16_TO_FP32`: the value a dequantizer reads back from an f16 field.
@inline(__always)
func roundToHalf(_ f: Float) -> Float { halfToFloat(floatToHalfBits(f)) }

/// ggml's `nearest_int`: adds 1.5·2^23 so the float unit does the rounding (to nearest, ties to even)
/// and reads the integer from the mantissa. Exact for |f| <= 2^22; beyond that (asserted away in
/// release builds of ggml) it returns the same wrapped value ggml does.
@inline(__always)
func nearestInt(_ f: Float) -> Int32 {
    let v = f + 12_582_912
    return Int32(bitPattern: v.bitPattern & 0x007F_FFFF) - 0x0040_0000
}

/// C's `(int)f` as x86-64 compiles it (`cvttss2si`): truncation toward zero; NaN and out-of-range
/// values give INT_MIN instead of trapping. The narrower casts of ggml (`(int8_t)`, `(uint8_t)`) keep
/// the low byte of this.
@inline(__always)
func truncatedInt32(_ f: Float) -> Int32 {
    guard f > -2_147_483_904, f < 2_147_483_648 else { return Int32.min }  // also false for NaN
    return Int32(f.rounded(.towardZero))
}

extension UnsafeMutableRawPointer {
    /// Stores `f` as a little-endian IEEE half at `offset` (any alignment), rounded like `GGML_FP32_TO_FP16`.
    @inline(__always)
    func storeF16(_ f: Float, at offset: Int) {
        storeBytes(of: floatToHalfBits(f).littleEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inline(__always)
    func storeU8(_ v: UInt8, at offset: Int) { storeBytes(of: v, toByteOffset: offset, as: UInt8.self) }

    @inline(__always)
    func orU8(_ v: UInt8, at offset: Int) {
        storeBytes(of: load(fromByteOffset: offset, as: UInt8.self) | v, toByteOffset: offset, as: UInt8.self)
    }
}
