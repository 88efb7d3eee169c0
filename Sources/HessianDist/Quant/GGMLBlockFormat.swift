// The shape every ggml block type shares (sizes, type id, scalar reference dequantizer) and the
// little-endian field loads the block files use. Not the dispatcher: see `GGMLType+Dequantize.swift`.

/// One ggml storage format: `blockSize` weights packed into `byteSize` bytes.
public protocol GGMLBlockFormat {
    /// The GGUF tensor type this layout belongs to.
    static var type: GGMLType { get }
    /// Weights per block.
    static var blockSize: Int { get }
    /// Bytes per block (ggml's `type_size`).
    static var byteSize: Int { get }
    /// Reference dequantizer, bit-exact with ggml-quants.c `dequantize_row_*` for one block:
    /// reads `byteSize` bytes at `block` (any alignment) and writes `blockSize` floats to `out`.
    static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>)
}

extension UnsafeRawPointer {
    /// A little-endian IEEE half at `offset` (any alignment), widened exactly like `GGML_FP16_TO_FP32`.
    @inline(__always)
    func loadF16(at offset: Int) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
    }

    @inline(__always)
    func loadU8(at offset: Int) -> UInt8 { load(fromByteOffset: offset, as: UInt8.self) }

    @inline(__always)
    func loadI8(at offset: Int) -> Int8 { load(fromByteOffset: offset, as: Int8.self) }

    @inline(__always)
    func loadU32LE(at offset: Int) -> UInt32 {
        UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}
