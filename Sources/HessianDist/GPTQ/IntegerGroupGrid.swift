// The GPTQ reference quantizer (IST-DASLab/gptq `quant.py`, min-max `find_params`) as a `QuantGrid`.
// Not the solver and not the safetensors exporter: it fits one (row, group) and says what to store.

/// b-bit integer codes with one scale and one zero point per (row, group), min-max fitted:
/// `value = scale · (q − zero)`, written for the solver as `scale · q + offset` with `offset = −scale · zero`.
///
/// Fit rules (the reference's `find_params` for weights): `xmin = min(w, 0)`, `xmax = max(w, 0)`;
/// symmetric: `xmax = max(|xmin|, xmax)` and `xmin = −xmax` if `xmin < 0`; if `xmin == xmax` (an all-zero
/// group) use −1, +1; `scale = (xmax − xmin) / maxq`; `zero = round(−xmin / scale)` (symmetric: `(maxq+1)/2`).
///
/// One departure: an asymmetric zero point is at least 1. GPTQ v1 checkpoints (what transformers, vLLM
/// and AutoGPTQ load) store `zero − 1` in `bits` bits, so a zero of 0 cannot be written. It occurs for a
/// group that is (nearly) all positive, `xmin > −scale/2`; there the grid is refitted as
/// `scale = xmax / (maxq − 1)`, `zero = 1`, which still covers `[xmin, xmax]` (−scale ≤ xmin, since
/// −xmin ≤ scale_old/2 ≤ xmax/(2·maxq − 1)) at the cost of one code step below zero.
///
/// Storage: GPTQ checkpoints keep the scale in fp16. With `.f16` the scale is rounded to fp16 *inside*
/// `fit`, and the zero point is computed from that rounded scale, so the solver compensates the error of the
/// grid that is actually stored. Then `scale · (q − zero)` and `scale · q + offset` are the same float:
/// an fp16 scale has 11 significant bits and `|q − zero| ≤ 255` has 8, so every product and the
/// difference are exact in Float. The exporter must store `scale` (fp16 or f32 as chosen) and `zero`.
///
/// `parameters` of one group: the scale (little-endian fp16, or f32 with `.f32`) then `zero` as one byte.
public struct IntegerGroupGrid: QuantGrid {
    /// How the scale is stored (and therefore rounded in `fit`).
    public enum ScaleFormat: Sendable { case f16, f32 }

    public let bits: Int
    public let groupSize: Int
    public let symmetric: Bool
    public let scaleFormat: ScaleFormat
    public var maxCode: Int { (1 << bits) - 1 }
    public var parameterBytes: Int { (scaleFormat == .f16 ? 2 : 4) + 1 }

    /// `bits` in 2...8; `groupSize` −1 for one group per row (then it becomes `columns`), else a positive
    /// divisor of `columns` (GPTQ uses 32, 64 or 128).
    public init(bits: Int, groupSize: Int, columns: Int, symmetric: Bool = false,
                scaleFormat: ScaleFormat = .f16) throws {
        guard (2...8).contains(bits) else {
            throw GPTQError.invalidGrid("bits \(bits) outside 2...8")
        }
        let g = groupSize == -1 ? columns : groupSize
        guard g > 0, columns > 0, columns % g == 0 else {
            throw GPTQError.invalidGrid("group size \(groupSize) does not divide \(columns) columns; use -1 (whole row) or a divisor such as 32, 64, 128")
        }
        self.bits = bits
        self.groupSize = g
        self.symmetric = symmetric
        self.scaleFormat = scaleFormat
    }

    public func fit(weights w: UnsafePointer<Float>, importance: UnsafePointer<Float>?,
                    parameters: UnsafeMutableRawPointer,
                    scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        // Range including 0 (min-max; `importance` does not change a min-max fit).
        var xmin: Float = 0, xmax: Float = 0
        for i in 0..<groupSize {
            xmin = min(xmin, w[i])
            xmax = max(xmax, w[i])
        }
        if symmetric {
            xmax = max(abs(xmin), xmax)
            if xmin < 0 { xmin = -xmax }
        }
        if xmin == xmax { xmin = -1; xmax = 1 }
        let maxq = Float(maxCode)
        // The stored scale: fp16 clamped to its finite range and never 0, so the zero point stays finite.
        func stored(_ s: Float) -> Float {
            scaleFormat == .f16 ? max(Float(Float16(min(s, 65504))), Float(Float16.leastNonzeroMagnitude)) : s
        }
        var s = stored((xmax - xmin) / maxq)
        var z: Float = symmetric ? Float((maxCode + 1) / 2)
                                 : max(0, min(maxq, (-xmin / s).rounded(.toNearestOrEven)))
        if z == 0 {
            // v1 stores zero − 1: refit so that zero = 1 (see the type's comment).
            s = stored(xmax / (maxq - 1))
            z = 1
        }
        let o = -(s * z)
        for i in 0..<groupSize { scale[i] = s; offset[i] = o }
        switch scaleFormat {
        case .f16: parameters.storeBytes(of: Float16(s).bitPattern.littleEndian, toByteOffset: 0, as: UInt16.self)
        case .f32: parameters.storeBytes(of: s.bitPattern.littleEndian, toByteOffset: 0, as: UInt32.self)
        }
        parameters.storeBytes(of: UInt8(z), toByteOffset: parameterBytes - 1, as: UInt8.self)
    }

    /// The grid a group's stored `parameters` stand for, read back as `fit` wrote them: the scale (f16 or
    /// f32, little-endian) and `offset = −(scale · zero)` from the zero point byte.
    public func storedGrid(_ parameters: UnsafeRawPointer) -> (scale: Float, offset: Float) {
        let s: Float
        switch scaleFormat {
        case .f16: s = Float(Float16(bitPattern: UInt16(littleEndian: parameters.loadUnaligned(as: UInt16.self))))
        case .f32: s = Float(bitPattern: UInt32(littleEndian: parameters.loadUnaligned(as: UInt32.self)))
        }
        let z = Float(parameters.load(fromByteOffset: parameterBytes - 1, as: UInt8.self))
        return (s, -(s * z))
    }
}
