// The unquantized ggml types as one-element "blocks": F32, F16 and BF16.
// Not quantizers: converting to these types belongs with the writers.

/// ggml `F32`: one little-endian IEEE single per weight. 32 bits/weight.
public enum F32Block: GGMLBlockFormat {
    public static let type = GGMLType.f32
    public static let blockSize = 1
    public static let byteSize = 4

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        out[0] = Float(bitPattern: block.loadU32LE(at: 0))
    }
}

/// ggml `F16`: one little-endian IEEE half per weight, widened exactly. 16 bits/weight.
public enum F16Block: GGMLBlockFormat {
    public static let type = GGMLType.f16
    public static let blockSize = 1
    public static let byteSize = 2

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        out[0] = block.loadF16(at: 0)
    }
}

/// ggml `BF16`: the top 16 bits of an IEEE single (`ggml_compute_bf16_to_fp32`: bits << 16, NaNs
/// kept as they are). 16 bits/weight.
public enum BF16Block: GGMLBlockFormat {
    public static let type = GGMLType.bf16
    public static let blockSize = 1
    public static let byteSize = 2

    @inline(__always)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let bits = UInt16(littleEndian: block.loadUnaligned(fromByteOffset: 0, as: UInt16.self))
        out[0] = Float(bitPattern: UInt32(bits) << 16)
    }
}
