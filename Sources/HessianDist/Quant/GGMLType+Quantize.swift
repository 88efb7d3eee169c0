// Quantizing fp32 rows and tensors to ggml types with the reference (round-to-nearest, no importance
// matrix) quantizers: size checks, then one loop over blocks per format. Not the per-format algorithms
// (`Q4_0Block.swift`, `Q4KBlock.swift`, ...) nor the GPTQ grid (`GGMLGrid.swift`).

extension GGMLType {
    /// The block type with a reference quantizer for this ggml type; nil for plain floats (converted,
    /// not quantized) and for Q8_1/Q8_K (dot-product intermediates, never stored).
    public var blockQuantizer: (any GGMLBlockQuantizer.Type)? {
        switch self {
        case .q4_0: return Q4_0Block.self
        case .q4_1: return Q4_1Block.self
        case .q5_0: return Q5_0Block.self
        case .q5_1: return Q5_1Block.self
        case .q8_0: return Q8_0Block.self
        case .q2_K: return Q2KBlock.self
        case .q3_K: return Q3KBlock.self
        case .q4_K: return Q4KBlock.self
        case .q5_K: return Q5KBlock.self
        case .q6_K: return Q6KBlock.self
        case .iq4_nl: return IQ4NLBlock.self
        case .iq4_xs: return IQ4XSBlock.self
        case .mxfp4: return MXFP4Block.self
        case .f32, .f16, .bf16, .q8_1, .q8_K: return nil
        }
    }

    /// True for the types `quantizeRow` and `GGMLGrid` accept: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K,
    /// IQ4_NL, IQ4_XS, MXFP4.
    public var isQuantizable: Bool { blockQuantizer != nil }

    /// Whether a tensor row of `rowLength` weights can be stored in this type: a storage type (not
    /// Q8_1/Q8_K) and a whole number of blocks (ggml quantizes rows independently, so a block never
    /// straddles two rows). Any length >= 0 for F32/F16/BF16.
    public func canStore(rowLength: Int) -> Bool {
        blockFormat != nil && rowLength >= 0 && rowLength % blockSize == 0
    }
}

/// Quantizes `x.count` weights (a whole number of blocks; one or more contiguous rows) to `type` into
/// `out` (`type.byteCount(elements: x.count)` bytes, any alignment), bit-exact with ggml's
/// `quantize_row_*_ref`. Throws `QuantFormatError` for a type without a quantizer, a count that is
/// not a multiple of the block size, or a wrongly sized `out`.
/// Inputs are assumed finite: NaN or infinite weights give whatever ggml's C gives on x86-64 (no trap).
public func quantizeRow(_ type: GGMLType, from x: UnsafeBufferPointer<Float>,
                        into out: UnsafeMutableRawBufferPointer) throws {
    guard let q = type.blockQuantizer else {
        throw QuantFormatError(type: type, field: "type", expected: "a quantized ggml type (Q4_0..Q8_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS, MXFP4)",
                               found: "\(type)",
                               hint: type.blockFormat == nil ? "\(type) is a dot-product intermediate, not a storage format"
                                                             : "plain float types are converted, not quantized")
    }
    guard x.count % type.blockSize == 0 else {
        throw QuantFormatError(type: type, field: "element count",
                               expected: "a multiple of the block size \(type.blockSize)", found: "\(x.count)",
                               hint: "a tensor row must be a whole number of blocks; check `canStore(rowLength:)` first")
    }
    guard let bytes = type.byteCount(elements: x.count), bytes == out.count else {
        throw QuantFormatError(type: type, field: "destination bytes",
                               expected: "\(type.byteCount(elements: x.count).map(String.init) ?? "?") bytes for \(x.count) weights",
                               found: "\(out.count)")
    }
    guard let src = x.baseAddress, let dst = out.baseAddress else { return }  // zero weights
    quantizeBlocks(q, from: src, into: dst, blocks: x.count / type.blockSize)
}

/// Quantizes a row-major `rows x cols` fp32 matrix at `x` to `type`, each row independently (ggml's
/// layout: row r starts at byte `r * type.byteCount(elements: cols)`). Throws as `quantizeRow`, and
/// for negative or overflowing sizes.
public func quantizeTensor(_ type: GGMLType, rows: Int, cols: Int, from x: UnsafePointer<Float>) throws -> [UInt8] {
    guard rows >= 0, cols >= 0 else {
        throw QuantFormatError(type: type, field: "shape", expected: "rows >= 0 and cols >= 0", found: "\(rows) x \(cols)")
    }
    let (count, overflow) = rows.multipliedReportingOverflow(by: cols)
    guard !overflow, let total = type.byteCount(elements: count), cols % type.blockSize == 0 else {
        throw QuantFormatError(type: type, field: "row length",
                               expected: "a multiple of the block size \(type.blockSize)", found: "\(cols) (\(rows) rows)",
                               hint: "ggml quantizes rows independently; keep such a tensor in F16/F32")
    }
    var out = [UInt8](repeating: 0, count: total)
    try out.withUnsafeMutableBytes { try quantizeRow(type, from: UnsafeBufferPointer(start: x, count: count), into: $0) }
    return out
}

/// The block loop, specialized per format once the existential is opened.
private func quantizeBlocks<B: GGMLBlockQuantizer>(_: B.Type, from x: UnsafePointer<Float>,
                                                   into out: UnsafeMutableRawPointer, blocks: Int) {
    var p = x, y = out
    for _ in 0..<blocks {
        B.quantize(block: p, into: y)
        p += B.blockSize
        y += B.byteSize
    }
}
