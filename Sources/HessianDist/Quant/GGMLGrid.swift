// The GPTQ grid of a ggml type: fit a block's scales the way the reference quantizer does, let the
// solver pick codes, pack them into the block. Not the quantizers (`quantizeRow`) nor the solver.

/// The `QuantGrid` of a quantized ggml type: one group is one ggml block (32 weights, or 256 for the
/// K-quants). `fit` computes the block's f16 scales (and mins, 6-bit sub-block scales, ...) exactly as
/// `quantize_row_*_ref` does from the given weights and writes the block bytes with a zero code region
/// to `parameters`; `pack` then ORs the solver's codes in. Codes are the grid's `0...maxCode`; the
/// dequantized weight is `scale[i] * Float(q) + offset[i]` (IQ4_NL, IQ4_XS, MXFP4: `scale[i] * codebook[q] + offset[i]`,
/// offset 0) evaluated as two roundings (no FMA), equal as
/// a Float to what `dequantizeRow` gives for the packed block (see `QuantGrid` for the one sign-of-zero
/// exception and the finite-scale condition).
///
/// With `importance` (per column of the group, e.g. diag(H)), types that have llama.cpp's weighted scale
/// search (`GGMLType.importanceQuantizer`: Q4_0..Q5_1, IQ4_NL, IQ4_XS, Q2_K..Q6_K) fit the block with it, weights used as
/// given; the other types ignore it and fit as their reference quantizer.
public struct GGMLGrid: QuantGrid {
    public let type: GGMLType
    public let groupSize: Int
    public let maxCode: Int
    public let parameterBytes: Int
    /// IQ4_NL's and MXFP4's levels (`GGMLBlockQuantizer.codebook`); nil for the affine types.
    public let codebook: [Float]?

    /// Throws `QuantFormatError` for types without a reference quantizer (F32, F16, BF16, Q8_1, Q8_K).
    public init(type: GGMLType) throws {
        guard let q = type.blockQuantizer else {
            throw QuantFormatError(type: type, field: "type", expected: "a quantized ggml type (Q4_0..Q8_0, Q2_K..Q6_K)",
                                   found: "\(type)", hint: "GPTQ needs a grid of codes; plain floats and Q8_1/Q8_K have none")
        }
        self.type = type
        groupSize = q.blockSize
        maxCode = q.maxCode
        parameterBytes = q.byteSize
        codebook = q.codebook
    }

    /// On a codebook, the first level with the smallest |scale·level + offset − w| (ggml's
    /// `best_index_mxfp4` rule); otherwise the affine rounding of `QuantGrid`.
    @inline(__always)
    public func nearestCode(_ w: Float, scale: Float, offset: Float) -> UInt8 {
        guard let codebook else { return affineNearestCode(w, scale: scale, offset: offset) }
        return codebook.withUnsafeBufferPointer { v in
            var best = 0, bestErr = abs(scale * v[0] + offset - w)
            for i in 1..<v.count {
                let err = abs(scale * v[i] + offset - w)
                if err < bestErr { best = i; bestErr = err }
            }
            return UInt8(best)
        }
    }

    @inline(__always)
    public func value(code q: UInt8, scale: Float, offset: Float) -> Float {
        guard let codebook else { return scale * Float(q) + offset }
        return scale * codebook[Int(q)] + offset
    }

    public func fit(weights w: UnsafePointer<Float>, importance: UnsafePointer<Float>?,
                    parameters: UnsafeMutableRawPointer,
                    scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        if let importance, let q = type.importanceQuantizer {
            // The search's own codes are not used: the solver picks codes on the fitted grid.
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: groupSize) { codes in
                q.fitWeighted(block: w, weights: importance, parameters: parameters, codes: codes.baseAddress!,
                              scale: scale, offset: offset)
            }
        } else {
            type.blockQuantizer!.fit(block: w, parameters: parameters, scale: scale, offset: offset)
        }
    }

    /// Writes one block (`parameterBytes` bytes at `block`): the fitted `parameters` with the codes
    /// (`groupSize` values in `0...maxCode`) packed into its code region.
    public func pack(parameters: UnsafeRawPointer, codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        block.copyMemory(from: parameters, byteCount: parameterBytes)
        type.blockQuantizer!.packCodes(codes, into: block)
    }
}
