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
        halfToFloat(UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
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

/// IEEE half bits widened to Float exactly (every half is a Float). NaN payloads are kept but a
/// signaling NaN comes back quiet, as with F16C's `vcvtph2ps`; gguf-py keeps it signaling, so tests
/// compare NaNs by NaN-ness only.
@inline(__always)
func halfToFloat(_ bits: UInt16) -> Float {
    #if os(macOS) && arch(x86_64)
    return softwareHalfToFloat(bits)  // Float16 is unavailable on Intel Macs
    #else
    return Float(Float16(bitPattern: bits))
    #endif
}

/// Half -> Float by moving the fields: exponent rebias 15 -> 127, mantissa shifted up 13 bits.
/// Tested against `Float16` for all 65536 patterns.
@inline(__always)
func softwareHalfToFloat(_ bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = UInt32(bits >> 10) & 0x1F
    let mantissa = UInt32(bits & 0x03FF)
    switch exponent {
    case 0x1F where mantissa == 0: return Float(bitPattern: sign | 0x7F80_0000)  // inf
    case 0x1F: return Float(bitPattern: sign | 0x7FC0_0000 | mantissa << 13)  // NaN, quieted like Float16's
    case 0:  // zero and subnormals: mantissa * 2^-24, exact in Float
        return Float(bitPattern: sign | (Float(mantissa) * 0x1p-24).bitPattern)
    default: return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
    }
}
