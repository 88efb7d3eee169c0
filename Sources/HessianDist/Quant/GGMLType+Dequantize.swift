// Dequantizing a run of ggml blocks to fp32: size checks, then one loop over blocks per format.
// Not the per-format bit layouts: those live in `Q4_0Block.swift`, `Q4KBlock.swift`, ...

extension GGMLType {
    /// The block layout type for this ggml type; nil for the types we do not decode (Q8_1, Q8_K are
    /// only ever intermediate dot-product operands in ggml, never stored in model files).
    public var blockFormat: (any GGMLBlockFormat.Type)? {
        switch self {
        case .f32: return F32Block.self
        case .f16: return F16Block.self
        case .bf16: return BF16Block.self
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
        case .q8_1, .q8_K: return nil
        }
    }
}

/// Dequantizes `out.count` weights stored as `type` in `src` (`type.byteCount(elements: out.count)`
/// bytes, any alignment) into `out`, bit-exact with ggml's `dequantize_row_*`.
/// Throws `QuantFormatError` when `out.count` is not a whole number of blocks, when `src` has the
/// wrong size, or for Q8_1/Q8_K. Rows of a tensor are contiguous, so one call can cover many rows.
public func dequantizeRow(_ type: GGMLType, from src: UnsafeRawBufferPointer,
                          into out: UnsafeMutableBufferPointer<Float>) throws {
    guard type.blockFormat != nil else {
        throw QuantFormatError(type: type, field: "type", expected: "a storage type with a dequantizer",
                               found: "\(type)", hint: "\(type) is a dot-product intermediate, not a storage format")
    }
    guard out.count % type.blockSize == 0 else {
        throw QuantFormatError(type: type, field: "element count",
                               expected: "a multiple of the block size \(type.blockSize)", found: "\(out.count)",
                               hint: "a tensor row must be a whole number of blocks")
    }
    guard let bytes = type.byteCount(elements: out.count), bytes == src.count else {
        throw QuantFormatError(type: type, field: "source bytes",
                               expected: "\(type.byteCount(elements: out.count).map(String.init) ?? "?") bytes for \(out.count) weights",
                               found: "\(src.count)")
    }
    guard let dst = out.baseAddress, let base = src.baseAddress else { return }  // zero weights
    // One concrete call per format so each block loop is specialized and the block function inlines.
    let n = out.count / type.blockSize
    switch type {
    case .f32:  // little-endian hosts only (as every reader here): already the output layout
        UnsafeMutableRawPointer(dst).copyMemory(from: base, byteCount: bytes)
    case .f16: dequantizeBlocks(F16Block.self, from: base, into: dst, blocks: n)
    case .bf16: dequantizeBlocks(BF16Block.self, from: base, into: dst, blocks: n)
    case .q4_0: dequantizeBlocks(Q4_0Block.self, from: base, into: dst, blocks: n)
    case .q4_1: dequantizeBlocks(Q4_1Block.self, from: base, into: dst, blocks: n)
    case .q5_0: dequantizeBlocks(Q5_0Block.self, from: base, into: dst, blocks: n)
    case .q5_1: dequantizeBlocks(Q5_1Block.self, from: base, into: dst, blocks: n)
    case .q8_0: dequantizeBlocks(Q8_0Block.self, from: base, into: dst, blocks: n)
    case .q2_K: dequantizeBlocks(Q2KBlock.self, from: base, into: dst, blocks: n)
    case .q3_K: dequantizeBlocks(Q3KBlock.self, from: base, into: dst, blocks: n)
    case .q4_K: dequantizeBlocks(Q4KBlock.self, from: base, into: dst, blocks: n)
    case .q5_K: dequantizeBlocks(Q5KBlock.self, from: base, into: dst, blocks: n)
    case .q6_K: dequantizeBlocks(Q6KBlock.self, from: base, into: dst, blocks: n)
    case .iq4_nl: dequantizeBlocks(IQ4NLBlock.self, from: base, into: dst, blocks: n)
    case .iq4_xs: dequantizeBlocks(IQ4XSBlock.self, from: base, into: dst, blocks: n)
    case .mxfp4: dequantizeBlocks(MXFP4Block.self, from: base, into: dst, blocks: n)
    case .q8_1, .q8_K: break  // rejected above
    }
}

/// The block loop over `blocks` consecutive blocks.
@inline(__always)
private func dequantizeBlocks<B: GGMLBlockFormat>(_: B.Type, from src: UnsafeRawPointer,
                                                  into out: UnsafeMutablePointer<Float>, blocks: Int) {
    var p = src, y = out
    for _ in 0..<blocks {
        B.dequantize(block: p, into: y)
        p += B.byteSize
        y += B.blockSize
    }
}
