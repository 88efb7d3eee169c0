// llama.cpp's importance-matrix quantizers for the 32-weight block types (ggml-quants.c
// `quantize_row_q4_0_impl`, `_q4_1_impl`, `_q5_0_impl`, `_q5_1_impl`, `quantize_iq4_nl`): a block's scale (and minimum)
// come from a weighted search instead of the min/max rule, so the weights that matter most are
// rounded best. Used two ways: RTN with an imatrix (bit-exact with `llama-quantize --imatrix`), and
// GPTQ's per-block fit with diag(H) as the weights (`GGMLGrid`). The K-quants' searches
// (`quantize_row_q{2,3,4,5,6}_K_impl`) sit beside their block types. Q8_0 has no such path in ggml (its
// quantizer ignores the imatrix); neither has MXFP4, whose weighted exponent choice is ours (`MXFP4Block`).

/// A block type whose scale search takes per-weight importance.
public protocol GGMLImportanceQuantizer: GGMLBlockQuantizer {
    /// The weighted scale search for one block `x` with per-weight `weights` (already combined, as
    /// ggml's `weight[j]`): writes the block's parameters to `parameters` (code region zeroed), the
    /// search's codes to `codes` (`0...maxCode`) and per weight the exact float `scale` and `offset`
    /// of the stored grid (see `QuantGrid`).
    static func fitWeighted(block x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                            parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                            scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>)
    /// ggml's `weight[j]` for one block of a row from the imatrix `qw`. Default (Q4_0..Q5_1):
    /// `qw[j]·sqrt(σ² + x[j]²)` with σ² = Σx²/cols over the row (`rowSigma2`); IQ4_NL and the K-quants
    /// take σ² from the block instead.
    static func importanceWeights(block x: UnsafePointer<Float>, imatrix qw: UnsafePointer<Float>,
                                  rowSigma2: Float, into weight: UnsafeMutablePointer<Float>)
}

extension GGMLImportanceQuantizer {
    public static func importanceWeights(block x: UnsafePointer<Float>, imatrix qw: UnsafePointer<Float>,
                                         rowSigma2: Float, into weight: UnsafeMutablePointer<Float>) {
        for j in 0..<32 { weight[j] = qw[j] * (rowSigma2 + x[j] * x[j]).squareRoot() }
    }
}

extension GGMLType {
    /// The importance-aware quantizer of this type, nil for Q8_0 (ggml ignores an imatrix there). MXFP4's
    /// is ours: ggml has none.
    public var importanceQuantizer: (any GGMLImportanceQuantizer.Type)? {
        switch self {
        case .q4_0: return Q4_0Block.self
        case .q4_1: return Q4_1Block.self
        case .q5_0: return Q5_0Block.self
        case .q5_1: return Q5_1Block.self
        case .iq4_nl: return IQ4NLBlock.self
        case .iq4_xs: return IQ4XSBlock.self
        case .q2_K: return Q2KBlock.self
        case .q3_K: return Q3KBlock.self
        case .q4_K: return Q4KBlock.self
        case .q5_K: return Q5KBlock.self
        case .q6_K: return Q6KBlock.self
        case .mxfp4: return MXFP4Block.self
        default: return nil
        }
    }
}

/// Symmetric blocks (Q4_0: nmax 8, Q5_0: nmax 16): `make_qx_quants(32, nmax, x, L, 1, weight)`, d as f16.
private func fitSymmetric(nmax: Int32, x: UnsafePointer<Float>, weights: UnsafePointer<Float>, byteSize: Int,
                          parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                          scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
    parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
    let d = makeQXQuants(n: 32, nmax: nmax, x: x, L: codes, weights: weights)
    parameters.storeF16(d, at: 0)
    let dh = UnsafeRawPointer(parameters).loadF16(at: 0)
    for j in 0..<32 { s[j] = dh; o[j] = -Float(nmax) * dh }
}

/// Affine blocks (Q4_1: nmax 15, Q5_1: nmax 31): `make_qkx3_quants(32, nmax, x, weight, L, &min, Laux,
/// -0.9, 0.05, 36, false)`, d and m = −min as f16.
private func fitAffine(nmax: Int32, x: UnsafePointer<Float>, weights: UnsafePointer<Float>, byteSize: Int,
                       parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                       scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
    parameters.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
    var aux = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
    let (d, theMin) = withUnsafeMutableBytes(of: &aux) { a in
        makeQKX3Quants(n: 32, nmax: nmax, x: x, weights: weights, L: codes,
                       Laux: a.baseAddress!.assumingMemoryBound(to: UInt8.self),
                       rmin: -0.9, rdelta: 0.05, nstep: 36, useMAD: false)
    }
    parameters.storeF16(d, at: 0)
    parameters.storeF16(-theMin, at: 2)
    let p = UnsafeRawPointer(parameters)
    let dh = p.loadF16(at: 0), mh = p.loadF16(at: 2)
    for j in 0..<32 { s[j] = dh; o[j] = mh }
}

extension Q4_0Block: GGMLImportanceQuantizer {
    public static func fitWeighted(block x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                   parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                                   scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        fitSymmetric(nmax: 8, x: x, weights: weights, byteSize: byteSize, parameters: parameters, codes: codes,
                     scale: scale, offset: offset)
    }
}

extension Q5_0Block: GGMLImportanceQuantizer {
    public static func fitWeighted(block x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                   parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                                   scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        fitSymmetric(nmax: 16, x: x, weights: weights, byteSize: byteSize, parameters: parameters, codes: codes,
                     scale: scale, offset: offset)
    }
}

extension Q4_1Block: GGMLImportanceQuantizer {
    public static func fitWeighted(block x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                   parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                                   scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        fitAffine(nmax: 15, x: x, weights: weights, byteSize: byteSize, parameters: parameters, codes: codes,
                  scale: scale, offset: offset)
    }
}

extension Q5_1Block: GGMLImportanceQuantizer {
    public static func fitWeighted(block x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                   parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                                   scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        fitAffine(nmax: 31, x: x, weights: weights, byteSize: byteSize, parameters: parameters, codes: codes,
                  scale: scale, offset: offset)
    }
}

/// `quantize_<type>(src, dst, rows, cols, quant_weights)` for a row-major `rows × cols` matrix with an
/// importance matrix (`cols` values, the imatrix's mean squared activation per input column): per block
/// the type's `importanceWeights` (e.g. `imatrix[j]·sqrt(σ² + x[j]²)`, σ² of the row), then the weighted
/// search. Bit-exact with llama.cpp's imatrix quantization, except MXFP4 (ggml ignores the imatrix there;
/// see `MXFP4Block.fitWeighted`). Q8_0 quantizes as `quantizeTensor` does, exactly as ggml.
public func quantizeTensor(_ type: GGMLType, rows: Int, cols: Int, from x: UnsafePointer<Float>,
                           importance: [Float]) throws -> [UInt8] {
    guard let q = type.importanceQuantizer else { return try quantizeTensor(type, rows: rows, cols: cols, from: x) }
    guard importance.count == cols else {
        throw QuantFormatError(type: type, field: "importance", expected: "\(cols) values (one per input column)",
                               found: "\(importance.count)", hint: "the imatrix entry must come from this tensor's inputs")
    }
    var out = try quantizeTensor(type, rows: rows, cols: cols, from: x)  // validates the shape; overwritten
    let rowBytes = cols / type.blockSize * type.typeSize
    importance.withUnsafeBufferPointer { imp in
        out.withUnsafeMutableBytes { dst in
            for r in 0..<rows {
                quantizeRowWeighted(q, x: x + r * cols, cols: cols, importance: imp.baseAddress!,
                                    into: dst.baseAddress! + r * rowBytes)
            }
        }
    }
    return out
}

private func quantizeRowWeighted<B: GGMLImportanceQuantizer>(_: B.Type, x: UnsafePointer<Float>, cols: Int,
                                                             importance: UnsafePointer<Float>,
                                                             into out: UnsafeMutableRawPointer) {
    var sumX2: Float = 0
    for j in 0..<cols { sumX2 += x[j] * x[j] }
    let sigma2 = sumX2 / Float(cols)
    let n = B.blockSize
    var weight = [Float](repeating: 0, count: n), codes = [UInt8](repeating: 0, count: n)
    var scale = weight, offset = weight
    for b in 0..<(cols / n) {
        let xb = x + n * b, qw = importance + n * b
        weight.withUnsafeMutableBufferPointer { B.importanceWeights(block: xb, imatrix: qw, rowSigma2: sigma2, into: $0.baseAddress!) }
        let block = out + b * B.byteSize
        B.fitWeighted(block: xb, weights: weight, parameters: block, codes: &codes, scale: &scale, offset: &offset)
        B.packCodes(codes, into: block)
    }
}
