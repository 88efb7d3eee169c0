// Writing one safetensors file as a small state machine: tensors are declared first (names, dtypes,
// shapes: the header is small), then their data is streamed one tensor at a time in declared order. The
// header is what the reference library (huggingface/safetensors `serialize`) writes: compact JSON,
// `__metadata__` first, tensors in data order, each as {"dtype","shape","data_offsets"}, padded with spaces
// to a multiple of 8; the data section is packed without holes. Declaring tensors in `referenceOrder`
// makes the file byte-identical to `safetensors.numpy.save_file`. The file appears at its path only when
// `finish()` succeeds (`PartialFile`). Not the reader (`SafetensorsFile`) and not a checkpoint layout.
import HessianDist

/// A tensor to write, declared before any data.
public struct SafetensorsTensorSpec: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    /// Row-major, outermost first (PyTorch order).
    public let shape: [Int]

    public init(name: String, dtype: SafetensorsDType, shape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { elementCount * dtype.byteSize }
}

/// A writer call that the state, the declarations or the arguments do not allow. The writer has failed
/// (and removed its partial file) when this is thrown.
public struct SafetensorsWriterError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let field: String
    public let expected: String
    public let found: String
    public let hint: String?

    public var description: String {
        var s = "\(file): \(field): expected \(expected), found \(found)"
        if let hint { s += " (hint: \(hint))" }
        return s
    }
}

/// Writes one safetensors file:
///
///     let w = try SafetensorsWriter(path: out)            // creates out.partial-<pid>
///     for t in SafetensorsWriter.referenceOrder(specs) { try w.addTensor(t) }
///     for t in w.declared { try w.writeTensorData(t.name, bytes(t)) }   // declared order
///     try w.finish()                                       // fsync + rename to `out`
///
/// Any error fails the writer for good and removes the partial file, as does dropping it before `finish()`.
public final class SafetensorsWriter {
    public enum State: String, Sendable {
        /// Tensors being declared.
        case declaring
        /// The header is on disk; data is streaming in declared order.
        case data
        case finished
        case failed
    }

    /// The alignment of the header length (the reference's `N_ALIGN`).
    public static let headerAlignment = 8

    public let path: String
    public let metadata: [String: String]
    public private(set) var state: State = .declaring
    /// Declared tensors in data order.
    public private(set) var declared: [SafetensorsTensorSpec] = []
    /// Bytes of the data section declared so far.
    public private(set) var dataSize = 0

    private var file: PartialFile?
    private var names = Set<String>()
    private var written = 0

    /// Creates `<path>.partial-<pid>`. `metadata` becomes `__metadata__` (PyTorch checkpoints carry
    /// {"format": "pt"}, which transformers checks for).
    public init(path: String, metadata: [String: String] = ["format": "pt"]) throws {
        self.path = path
        self.metadata = metadata
        file = try PartialFile(path: path)
    }

    deinit { file?.discard() }

    /// The order `safetensors` writes a dict of tensors in: dtype descending (its `Dtype` enum order,
    /// which `SafetensorsDType.allCases` follows), then name ascending.
    public static func referenceOrder(_ specs: [SafetensorsTensorSpec]) -> [SafetensorsTensorSpec] {
        let rank = Dictionary(uniqueKeysWithValues: SafetensorsDType.allCases.enumerated().map { ($1, $0) })
        return specs.sorted { (-rank[$0.dtype]!, $0.name) < (-rank[$1.dtype]!, $1.name) }
    }

    /// Declares the next tensor; its data follows the previously declared ones.
    public func addTensor(_ spec: SafetensorsTensorSpec) throws {
        try step("addTensor(\(spec.name))", allowed: [.declaring], hint: "declare every tensor before writing data") {
            guard !spec.name.isEmpty, spec.name != "__metadata__" else {
                throw error("name", expected: "a non-empty name other than __metadata__", found: "\"\(spec.name)\"")
            }
            guard !names.contains(spec.name) else {
                throw error("name", expected: "a tensor name not declared yet", found: "a second \(spec.name)")
            }
            guard spec.shape.allSatisfy({ $0 >= 0 }) else {
                throw error("shape", expected: "non-negative dimensions", found: "\(spec.shape)")
            }
            var n = spec.dtype.byteSize
            for d in spec.shape {
                let (p, o) = n.multipliedReportingOverflow(by: d)
                guard !o else { throw error("shape", expected: "a byte count that fits in Int", found: "\(spec.shape)") }
                n = p
            }
            names.insert(spec.name)
            declared.append(spec)
            dataSize += n
        }
    }

    public func addTensor(name: String, dtype: SafetensorsDType, shape: [Int]) throws {
        try addTensor(SafetensorsTensorSpec(name: name, dtype: dtype, shape: shape))
    }

    /// The header JSON of the declared tensors, padded with spaces to a multiple of 8 bytes.
    public func headerBytes() -> [UInt8] { Self.headerBytes(metadata: metadata, tensors: declared) }

    /// The header JSON a writer with `metadata` writes after declaring `tensors` in this order (padded to
    /// a multiple of 8; the file adds its 8-byte length before it). Exposed so a checkpoint layout can
    /// count a file's bytes exactly without writing it.
    public static func headerBytes(metadata: [String: String], tensors declared: [SafetensorsTensorSpec]) -> [UInt8] {
        var s = "{"
        if !metadata.isEmpty {
            s += "\"__metadata__\":{"
            s += metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
            s += "}"
        }
        var at = 0
        for t in declared {
            if s.count > 1 { s += "," }
            let end = at + t.byteCount
            s += "\(jsonString(t.name)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":["
            s += t.shape.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(at),\(end)]}"
            at = end
        }
        s += "}"
        var bytes = Array(s.utf8)
        let pad = (Self.headerAlignment - bytes.count % Self.headerAlignment) % Self.headerAlignment
        bytes += [UInt8](repeating: UInt8(ascii: " "), count: pad)
        return bytes
    }

    /// Writes the next declared tensor's little-endian bytes (`name` must be it). The first call writes
    /// the header.
    public func writeTensorData(_ name: String, _ bytes: UnsafeRawBufferPointer) throws {
        try step("writeTensorData(\(name))", allowed: [.declaring, .data],
                 hint: "write data in the order the tensors were declared") {
            guard written < declared.count else {
                throw error("name", expected: "no more data (all \(declared.count) tensors are written)", found: name)
            }
            let t = declared[written]
            guard t.name == name else {
                throw error("name", expected: "\(t.name) (tensor \(written) in declared order)", found: name,
                            hint: names.contains(name) ? "write data in declared order" : "\(name) was never declared")
            }
            guard bytes.count == t.byteCount else {
                throw error("byte count", expected: "\(t.byteCount) bytes for \(t.dtype.rawValue) \(t.shape)",
                            found: "\(bytes.count) bytes")
            }
            let f = try openFile()
            if state == .declaring { try writeHeader(f) }
            try f.write(bytes)
            written += 1
        }
    }

    public func writeTensorData(_ name: String, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeTensorData(name, $0) }
    }

    /// Converts fp32 `values` to the declared dtype (F32, F16 or BF16, round to nearest even, as torch's
    /// `.to()`) and writes them.
    public func writeTensorData(_ name: String, floats values: [Float]) throws {
        let dtype = declared.first { $0.name == name }?.dtype ?? .f32
        try writeTensorData(name, try encodeFloats(values, as: dtype, name: name))
    }

    /// int32 values, little-endian.
    public func writeTensorData(_ name: String, int32 values: [Int32]) throws {
        try values.map(\.littleEndian).withUnsafeBytes { try writeTensorData(name, $0) }
    }

    /// Checks every declared tensor was written (writes the header if none was declared), then fsyncs and
    /// renames the file into place.
    public func finish() throws {
        try step("finish()", allowed: [.declaring, .data], hint: nil) {
            guard written == declared.count else {
                throw error("tensor data", expected: "all \(declared.count) declared tensors written",
                            found: "\(written); next is \(declared[written].name)")
            }
            let f = try openFile()
            if state == .declaring { try writeHeader(f) }
            try f.commit()
            file = nil
            state = .finished
        }
    }

    /// Gives up: removes the partial file; later calls throw.
    public func abandon() {
        file?.discard()
        file = nil
        if state != .finished { state = .failed }
    }

    // MARK: internals

    private func writeHeader(_ f: PartialFile) throws {
        let h = headerBytes()
        guard h.count <= SafetensorsFile.maxHeaderBytes else {
            throw error("header", expected: "at most \(SafetensorsFile.maxHeaderBytes) bytes", found: "\(h.count)",
                        hint: "split the tensors over several files")
        }
        var len = UInt64(h.count).littleEndian
        try withUnsafeBytes(of: &len) { try f.write($0) }
        try f.write(h)
        state = .data
    }

    private func encodeFloats(_ v: [Float], as dtype: SafetensorsDType, name: String) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: v.count * dtype.byteSize)
        switch dtype {
        case .f32:
            out.withUnsafeMutableBytes { o in
                for (i, x) in v.enumerated() { o.storeBytes(of: x.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            }
        case .f16:
            out.withUnsafeMutableBytes { o in
                for (i, x) in v.enumerated() { o.storeBytes(of: floatToHalfBits(x).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            }
        case .bf16:
            out.withUnsafeMutableBytes { o in
                for (i, x) in v.enumerated() { o.storeBytes(of: floatToBF16Bits(x).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            }
        default:
            abandon()
            throw error("tensor \(name) dtype", expected: "F32, F16 or BF16 for float data", found: dtype.rawValue)
        }
        return out
    }

    private func openFile() throws -> PartialFile {
        guard let f = file else {
            throw error("file", expected: "an open partial file", found: "none", hint: "the writer was abandoned")
        }
        return f
    }

    private func error(_ field: String, expected: String, found: String, hint: String? = nil) -> SafetensorsWriterError {
        SafetensorsWriterError(file: path, field: field, expected: expected, found: found, hint: hint)
    }

    /// Runs one call: checks the state, and on any error fails the writer and removes the partial file.
    private func step(_ call: String, allowed: Set<State>, hint: String?, _ body: () throws -> Void) throws {
        guard allowed.contains(state) else {
            let e = error(call, expected: "state \(allowed.map(\.rawValue).sorted().joined(separator: " or "))",
                          found: "state \(state.rawValue)",
                          hint: state == .failed ? "the writer failed or was abandoned; start a new one"
                              : state == .finished ? "the file is already finished" : hint)
            abandon()
            throw e
        }
        do {
            try body()
        } catch let e as SafetensorsWriterError {
            abandon()
            throw SafetensorsWriterError(file: e.file, field: e.field.hasPrefix(call) ? e.field : "\(call): \(e.field)",
                                         expected: e.expected, found: e.found, hint: e.hint)
        } catch {
            abandon()
            throw error
        }
    }
}

/// A JSON string literal: quotes, backslash, control characters escaped (as serde_json does).
func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        default:
            if u.value < 0x20 {
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}

/// fp32 -> IEEE half bits, round to nearest even; overflow to ±inf, NaN stays NaN.
func floatToHalfBits(_ x: Float) -> UInt16 {
    #if os(macOS) && arch(x86_64)
    return floatToHalfBitsPortable(x)
    #else
    return Float16(x).bitPattern
    #endif
}

/// The same conversion with integer ops only (Intel macOS lacks `Float16`).
func floatToHalfBitsPortable(_ x: Float) -> UInt16 {
    let b = x.bitPattern
    let sign = UInt16((b >> 16) & 0x8000)
    let exp = Int((b >> 23) & 0xff), man = b & 0x7f_ffff
    if exp == 0xff { return sign | 0x7c00 | (man != 0 ? 0x200 | UInt16(man >> 13) : 0) }
    let e = exp - 127 + 15
    if e >= 0x1f { return sign | 0x7c00 }
    if e <= 0 {
        // Subnormal half (or zero): shift the full mantissa, round to nearest even.
        if e < -10 { return sign }
        let m = man | 0x80_0000
        let shift = UInt32(14 - e)
        var h = m >> shift
        let rem = m & ((1 << shift) - 1), halfway = UInt32(1) << (shift - 1)
        if rem > halfway || (rem == halfway && h & 1 == 1) { h += 1 }
        return sign | UInt16(h)
    }
    var h = UInt32(e) << 10 | man >> 13
    let rem = man & 0x1fff
    if rem > 0x1000 || (rem == 0x1000 && h & 1 == 1) { h += 1 }   // may carry into the exponent: correct
    return sign | UInt16(h)
}

/// fp32 -> bfloat16 bits, round to nearest even (NaN kept quiet).
func floatToBF16Bits(_ x: Float) -> UInt16 {
    let u = x.bitPattern
    if x.isNaN { return UInt16(u >> 16) | 0x40 }
    return UInt16((u + 0x7fff + ((u >> 16) & 1)) >> 16)
}
