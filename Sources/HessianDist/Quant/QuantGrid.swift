// The contract between the GPTQ solver and a storage format: which values a weight may take.
// Not a quantizer by itself: ggml formats (`Q4_1Block`, `Q4KBlock`, ...) and the integer group grid of
// GPTQ safetensors each provide one.

/// A per-(row, group) affine grid: weight i of a group may take `scale[i] * q + offset[i]` for an integer
/// code `q` in `0...maxCode` (or `scale[i] * level(q) + offset[i]` on a fixed non-uniform set of levels:
/// `value(code:scale:offset:)`). The grid of a group is fitted from the weights the GPTQ sweep holds when it
/// reaches the group's first column (error-compensated by then), so what is stored is what was optimised.
///
/// Every ggml type fits this form: Q4_0 is `d·(q−8)` (offset −8d), Q4_1 `d·q + m`, Q8_0 `d·(q−128)`,
/// the K-quants `d·sc_j·q − dmin·m_j` with per-sub-block scale and offset inside one super-block.
///
/// Exactness: the value of code q is `scale * Float(q) + offset`, two IEEE roundings (no FMA). For the
/// ggml grids (`GGMLGrid`) this equals the dequantizer's float bit for bit: where ggml computes
/// `q·d + m` or `dl·q − ml` the expression is the same, and where it computes `(q − z)·d` (Q4_0, Q5_0,
/// Q8_0, Q3_K, Q6_K) every product of the f16-derived scale by an integer code fits in 24 bits, so
/// `d·q`, `z·d` and their difference are exact. Two exceptions: a zero comes out +0 where `(q − z)·d`
/// gives −0 for a negative d, and a scale that overflowed f16 to inf gives NaN (inf − inf) where ggml
/// gives ±inf. The contract is unchanged from the first version; only this note is new.
public protocol QuantGrid: Sendable {
    /// Consecutive input columns fitted together (32 for Q4_0, 256 for K-quants, the GPTQ group size,
    /// or the whole row).
    var groupSize: Int { get }
    /// Largest code; codes are `0...maxCode` and must fit in a byte.
    var maxCode: Int { get }
    /// Bytes of the fitted parameters of one group (ggml: the block bytes before the codes are packed in).
    var parameterBytes: Int { get }

    /// Fits one group of one row from its current weights `w` (`groupSize` values; `importance`, if given,
    /// weighs each column, e.g. the imatrix / diag(H)). Writes the stored parameters to `parameters`
    /// and, per weight, the exact float `scale` and `offset` a dequantizer will use (after any f16 rounding).
    func fit(weights w: UnsafePointer<Float>, importance: UnsafePointer<Float>?,
             parameters: UnsafeMutableRawPointer,
             scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>)

    /// The code whose value is nearest to `w` on the group's grid `(scale, offset)`.
    func nearestCode(_ w: Float, scale: Float, offset: Float) -> UInt8
    /// The weight code `q` stands for: `scale · q + offset` (the default), or `scale · level(q) + offset`
    /// on a non-uniform grid (IQ4_NL, IQ4_XS, MXFP4: see `GGMLGrid.codebook`).
    func value(code q: UInt8, scale: Float, offset: Float) -> Float
}

extension QuantGrid {
    @inline(__always)
    public func nearestCode(_ w: Float, scale: Float, offset: Float) -> UInt8 {
        affineNearestCode(w, scale: scale, offset: offset)
    }

    @inline(__always)
    public func value(code q: UInt8, scale: Float, offset: Float) -> Float { scale * Float(q) + offset }

    /// The code nearest to `w` on the affine grid `(scale, offset)`: `clamp(round((w - offset) / scale))`.
    /// Ties and a zero scale resolve to the code whose value is `offset` (q = 0) the same way every time.
    @inline(__always)
    public func affineNearestCode(_ w: Float, scale: Float, offset: Float) -> UInt8 {
        guard scale != 0 else { return 0 }
        let q = ((w - offset) / scale).rounded(.toNearestOrEven)
        return UInt8(max(0, min(Float(maxCode), q)))
    }
}
