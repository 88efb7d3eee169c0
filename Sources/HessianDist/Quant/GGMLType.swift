// The ggml tensor types we read or write: numeric ids, block sizes and byte sizes in one table.
// Not the quantizers themselves: each format has its own file (`Q4_0Block`, `Q4KBlock`, ...).

/// A ggml tensor type. Raw values are ggml's `enum ggml_type` ids as written in GGUF tensor infos.
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q8_1 = 9
    case q2_K = 10
    case q3_K = 11
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case q8_K = 15
    case iq4_nl = 20
    case iq4_xs = 23
    case bf16 = 30
    case mxfp4 = 39

    /// Elements per block (1 for plain floats).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl, .mxfp4: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq4_xs: return 256
        }
    }

    /// Bytes per block, as ggml's `type_size`.
    public var typeSize: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 2 + 16            // d, 32 nibbles
        case .q4_1: return 2 + 2 + 16        // d, m, 32 nibbles
        case .q5_0: return 2 + 4 + 16        // d, qh, qs
        case .q5_1: return 2 + 2 + 4 + 16    // d, m, qh, qs
        case .q8_0: return 2 + 32            // d, 32 int8
        case .q8_1: return 2 + 2 + 32        // d, s, 32 int8
        case .q2_K: return 16 + 64 + 2 + 2   // scales, qs, d, dmin = 84
        case .q3_K: return 32 + 64 + 12 + 2  // hmask, qs, scales, d = 110
        case .q4_K: return 2 + 2 + 12 + 128  // d, dmin, scales, qs = 144
        case .q5_K: return 2 + 2 + 12 + 32 + 128 // d, dmin, scales, qh, qs = 176
        case .q6_K: return 128 + 64 + 16 + 2 // ql, qh, scales, d = 210
        case .q8_K: return 4 + 256 + 32      // d (f32), qs, bsums (int16 x16) = 292
        case .iq4_nl: return 2 + 16          // d, 32 nibbles
        case .iq4_xs: return 2 + 2 + 4 + 128 // d, scales_h, scales_l, qs = 136
        case .mxfp4: return 1 + 16           // e (E8M0), 32 nibbles
        }
    }

    /// The name llama.cpp prints (`Q4_K`, `F16`, ...).
    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q8_1: return "Q8_1"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .q8_K: return "Q8_K"
        case .iq4_nl: return "IQ4_NL"
        case .iq4_xs: return "IQ4_XS"
        case .mxfp4: return "MXFP4"
        }
    }

    /// Bits per weight of the stored representation (scales included).
    public var bitsPerWeight: Double { Double(typeSize * 8) / Double(blockSize) }

    /// Bytes taken by `count` elements; nil when `count` is not a whole number of blocks.
    public func byteCount(elements count: Int) -> Int? {
        guard count >= 0, count % blockSize == 0 else { return nil }
        let (bytes, overflow) = (count / blockSize).multipliedReportingOverflow(by: typeSize)
        return overflow ? nil : bytes
    }

    public init?(name: String) {
        guard let t = GGMLType.allCases.first(where: { $0.description.lowercased() == name.lowercased() }) else { return nil }
        self = t
    }
}
