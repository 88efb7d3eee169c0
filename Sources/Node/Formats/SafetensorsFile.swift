// One safetensors file, memory-mapped and validated like the reference implementation
// (huggingface/safetensors `Metadata::validate`): 8-byte LE header length (at most 100 MB), a JSON header
// starting with `{`, then a data section that the tensors tile exactly: sorted by offset, no overlap,
// no hole, the last tensor ending at end of file. Reads F32/F16/BF16 as fp32; other dtypes parse but
// refuse to dequantize. Not the model mapping (`SafetensorsModel`) and not a writer.
import Foundation
import HessianDist

/// Element types a safetensors header may name (the reference library's `Dtype`, byte-sized ones).
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3"
    case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32"
    case f64 = "F64", i64 = "I64", u64 = "U64"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64: return 8
        }
    }

    /// The ggml storage type for the float types we dequantize; nil for the others.
    public var ggmlType: GGMLType? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        default: return nil
        }
    }
}

/// One tensor of a safetensors header.
public struct SafetensorsTensor: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    /// Row-major, outermost first (PyTorch order).
    public let shape: [Int]
    /// Byte range relative to the start of the data section (`data_offsets` [begin, end)).
    public let dataOffsets: Range<Int>
    public var elementCount: Int { shape.reduce(1, *) }
}

public final class SafetensorsFile: Sendable {
    public let path: String
    /// The optional `__metadata__` string map.
    public let metadata: [String: String]
    /// Every tensor, sorted by data offset.
    public let tensors: [SafetensorsTensor]
    /// Absolute byte offset of the data section: 8 + header length.
    public let dataStart: Int
    private let file: MappedFile
    private let byName: [String: Int]

    /// The reference implementation's limit, checked before the header is read (guards against absurd lengths).
    public static let maxHeaderBytes = 100_000_000

    public init(path: String) throws {
        self.path = path
        let file = try MappedFile(path: path)
        self.file = file
        func fail(_ field: String, _ expected: String, _ found: String, hint: String? = nil) -> ModelFormatError {
            ModelFormatError(file: path, field: field, expected: expected, found: found, hint: hint)
        }

        // Header length: checked against the limit and the file size before anything is sized from it.
        guard file.count >= 8 else {
            throw fail("header length", "an 8-byte little-endian length", "a \(file.count)-byte file",
                       hint: "not a safetensors file, or truncated")
        }
        let n = try file.withBytes(offset: 0, length: 8, field: "header length") {
            UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))
        }
        guard n <= UInt64(Self.maxHeaderBytes) else {
            throw fail("header length", "at most \(Self.maxHeaderBytes) bytes (the safetensors limit)", "\(n)",
                       hint: "not a safetensors file, or a corrupt header")
        }
        let headerBytes = Int(n)
        guard headerBytes >= 2, 8 + headerBytes <= file.count else {
            throw fail("header length", "a JSON header of 2...\(file.count - 8) bytes inside the file",
                       "\(headerBytes) bytes in a \(file.count)-byte file", hint: "the file is truncated or corrupt")
        }
        dataStart = 8 + headerBytes
        let dataSize = file.count - dataStart

        let json = try file.withBytes(offset: 8, length: headerBytes, field: "header") { raw -> Data in
            guard raw.first == UInt8(ascii: "{") else {
                throw fail("header", "JSON starting with '{'", "byte 0x\(String(raw.first ?? 0, radix: 16))",
                           hint: "not a safetensors file")
            }
            return Data(raw)
        }
        let top = try JSONFields(try JSONValue.parse(json, file: path, field: "header JSON"),
                                 file: path, context: "header")
        // The spec disallows duplicate keys; JSON decoders silently keep one, so count the raw keys.
        let rawKeys = json.withUnsafeBytes { Self.topLevelKeys($0) }
        if rawKeys.count != top.fields.count {
            var seen = Set<String>()
            let dup = rawKeys.first { !seen.insert($0).inserted } ?? "?"
            throw fail("header", "unique tensor names (duplicate keys are disallowed)", "\"\(dup)\" more than once",
                       hint: "the header is corrupt or crafted")
        }

        var metadata: [String: String] = [:]
        var parsed: [SafetensorsTensor] = []
        parsed.reserveCapacity(top.fields.count)
        for (name, value) in top.fields {
            if name == "__metadata__" {
                let m = try JSONFields(value, file: path, context: "__metadata__")
                for key in m.fields.keys { metadata[key] = try m.string(key) }
                continue
            }
            parsed.append(try Self.parseTensor(name, value, path: path, dataSize: dataSize))
        }

        // The tensors must tile [0, dataSize) exactly, as the reference `validate` requires.
        parsed.sort { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name)
                    < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name) }
        var cursor = 0
        var previous: String? = nil
        for t in parsed {
            let b = t.dataOffsets.lowerBound
            if b < cursor {
                throw fail("tensor \(t.name) data_offsets",
                           "to start at \(cursor), after \(previous ?? "the previous tensor")",
                           "[\(b), \(t.dataOffsets.upperBound)) overlapping \(previous ?? "it")",
                           hint: "overlapping tensors: the header is corrupt")
            }
            if b > cursor {
                throw fail("tensor \(t.name) data_offsets",
                           "to start at \(cursor)" + (previous.map { ", where \($0) ends" } ?? ""),
                           "[\(b), \(t.dataOffsets.upperBound)): a hole of \(b - cursor) bytes",
                           hint: "safetensors data must be packed without holes")
            }
            cursor = t.dataOffsets.upperBound
            previous = t.name
        }
        guard cursor == dataSize else {
            throw fail("data section", "\(cursor) bytes, exactly covered by the tensors",
                       "\(dataSize) bytes", hint: "trailing bytes after the last tensor\(previous.map { " (\($0))" } ?? "")")
        }
        self.metadata = metadata
        self.tensors = parsed
        self.byName = Dictionary(uniqueKeysWithValues: parsed.enumerated().map { ($1.name, $0) })
    }

    private static func parseTensor(_ name: String, _ value: JSONValue, path: String,
                                    dataSize: Int) throws -> SafetensorsTensor {
        let f = try JSONFields(value, file: path, context: "tensor \(name)")
        let dtypeName = try f.string("dtype")
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw f.fail("dtype", "one of \(SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", "))",
                         "\"\(dtypeName)\"", hint: "an unknown element type")
        }
        var shape: [Int] = []
        var count = 1
        for (i, d) in try f.array("shape").enumerated() {
            let dim = try JSONFields.int(d, f, "shape[\(i)]")
            guard dim >= 0 else { throw f.fail("shape[\(i)]", "a dimension >= 0", "\(dim)") }
            let (c, o) = count.multipliedReportingOverflow(by: dim)
            guard !o else { throw f.fail("shape", "an element count that fits in Int", "overflow at dimension \(i)") }
            count = c
            shape.append(dim)
        }
        let (nbytes, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !o else { throw f.fail("shape", "a byte size that fits in Int", "overflow") }
        let offs = try f.array("data_offsets")
        guard offs.count == 2 else {
            throw f.fail("data_offsets", "[begin, end]", "\(offs.count) entries")
        }
        let b = try JSONFields.int(offs[0], f, "data_offsets[0]"), e = try JSONFields.int(offs[1], f, "data_offsets[1]")
        guard b >= 0, e >= b else {
            throw f.fail("data_offsets", "0 <= begin <= end", "[\(b), \(e)]")
        }
        guard e - b == nbytes else {
            throw f.fail("data_offsets", "a span of \(nbytes) bytes (shape \(shape) x \(dtype.rawValue))",
                         "[\(b), \(e)) = \(e - b) bytes", hint: "the shape, dtype and offsets disagree")
        }
        guard e <= dataSize else {
            throw f.fail("data_offsets", "inside the \(dataSize)-byte data section", "[\(b), \(e))",
                         hint: "the file is truncated")
        }
        return SafetensorsTensor(name: name, dtype: dtype, shape: shape, dataOffsets: b..<e)
    }

    /// The keys of the top-level object of valid JSON `raw`, as written (escapes not decoded).
    static func topLevelKeys(_ raw: UnsafeRawBufferPointer) -> [String] {
        var keys: [String] = []
        var depth = 0, inString = false, escaped = false, expectKey = false, keyStart = -1
        for (i, b) in raw.enumerated() {
            if inString {
                if escaped { escaped = false }
                else if b == UInt8(ascii: "\\") { escaped = true }
                else if b == UInt8(ascii: "\"") {
                    inString = false
                    if keyStart >= 0 {
                        keys.append(String(decoding: UnsafeRawBufferPointer(rebasing: raw[keyStart..<i]), as: UTF8.self))
                        keyStart = -1
                    }
                }
                continue
            }
            switch b {
            case UInt8(ascii: "\""):
                inString = true
                if depth == 1 && expectKey { keyStart = i + 1; expectKey = false }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth == 1 { expectKey = true }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
            case UInt8(ascii: ","):
                if depth == 1 { expectKey = true }
            default:
                break
            }
        }
        return keys
    }

    public func tensor(_ name: String) -> SafetensorsTensor? { byName[name].map { tensors[$0] } }

    private func require(_ name: String) throws -> SafetensorsTensor {
        guard let t = tensor(name) else {
            throw ModelFormatError(file: path, field: "tensor \(name)", expected: "present", found: "missing")
        }
        return t
    }

    /// Borrow a tensor's raw little-endian bytes.
    public func withTensorBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let t = try require(name)
        return try file.withBytes(offset: dataStart + t.dataOffsets.lowerBound, length: t.dataOffsets.count,
                                  field: "tensor \(name) data", body)
    }

    /// Converts a F32, F16 or BF16 tensor to fp32 into `out` (count = element count); other dtypes throw.
    public func dequantize(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws {
        let t = try require(name)
        guard t.dtype.ggmlType != nil else {
            throw ModelFormatError(file: path, field: "tensor \(name) dtype", expected: "F32, F16 or BF16",
                                   found: t.dtype.rawValue, hint: "only float tensors can be read as weights")
        }
        guard out.count == t.elementCount else {
            throw ModelFormatError(file: path, field: "tensor \(name)", expected: "\(t.elementCount) floats",
                                   found: "a buffer of \(out.count)")
        }
        try withTensorBytes(name) { raw in
            switch t.dtype {
            case .f32:
                // Little-endian hosts only, like the rest of the readers.
                UnsafeMutableRawBufferPointer(out).copyMemory(from: raw)
            case .f16:
                for i in 0..<out.count {
                    let bits = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    out[i] = halfBitsToFloat(bits)
                }
            case .bf16:
                // bfloat16 is the upper half of an fp32: widening is exact.
                for i in 0..<out.count {
                    let bits = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    out[i] = Float(bitPattern: UInt32(bits) << 16)
                }
            default:
                break
            }
        }
    }

    public func dequantize(_ name: String) throws -> [Float] {
        let n = try require(name).elementCount
        return try [Float](unsafeUninitializedCapacity: n) { buf, count in
            try dequantize(name, into: buf)
            count = n
        }
    }
}

/// IEEE half bits -> fp32 (exact). Swift's `Float16` where it exists; Intel macOS lacks it.
@inline(__always)
func halfBitsToFloat(_ h: UInt16) -> Float {
    #if os(macOS) && arch(x86_64)
    return halfBitsToFloatPortable(h)
    #else
    return Float(Float16(bitPattern: h))
    #endif
}

/// The same conversion with integer ops only: sign, 5-bit exponent (bias 15), 10-bit mantissa.
func halfBitsToFloatPortable(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = UInt32(h >> 10) & 0x1f, man = UInt32(h & 0x3ff)
    switch exp {
    case 0x1f: return Float(bitPattern: sign | 0x7f80_0000 | man << 13)        // inf, NaN
    case 0:                                                                    // zero, subnormal: man * 2^-24
        let v = Float(man) * 0x1p-24
        return sign != 0 ? -v : v
    default: return Float(bitPattern: sign | (exp + 112) << 23 | man << 13)    // rebias 15 -> 127
    }
}
