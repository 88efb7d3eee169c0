// Writing GGUF v3 (little-endian) as a small state machine, like gguf-py's GGUFWriter without its exit():
// header -> kv -> tensor infos -> data. Metadata and tensor infos are declared first (they are small and
// buffered); tensor data is then streamed one tensor at a time in declared order, so a model never has
// to be in memory at once. The file appears at its path only when `finish()` succeeds (`PartialFile`).
// Not the reader (`GGUFFile`) and not the choice of metadata (`GGUFWriter+Metadata.swift`).
import HessianDist
import Wire

/// A tensor to write, declared before any data.
public struct GGUFTensorSpec: Sendable, Equatable {
    public let name: String
    /// Row-major shape, outermost first (a Linear weight is `[out, in]`); written as ggml `ne`, reversed.
    public let shape: [Int]
    public let type: GGMLType

    public init(name: String, shape: [Int], type: GGMLType) {
        self.name = name
        self.shape = shape
        self.type = type
    }

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A writer call that the state, the declarations or the arguments do not allow. The writer has failed
/// (and removed its partial file) when this is thrown.
public struct GGUFWriterError: Error, CustomStringConvertible, Sendable {
    public let file: String
    /// The call or field: "addKeyValue(general.name)", "tensor blk.0.attn_q.weight data".
    public let field: String
    public let expected: String
    public let found: String
    public let hint: String?

    public init(file: String, field: String, expected: String, found: String, hint: String? = nil) {
        self.file = file
        self.field = field
        self.expected = expected
        self.found = found
        self.hint = hint
    }

    public var description: String {
        var s = "\(file): \(field): expected \(expected), found \(found)"
        if let hint { s += " (hint: \(hint))" }
        return s
    }
}

/// Writes one GGUF file. Typical use (see also `writeGGUF`):
///
///     let w = try GGUFWriter(path: out)                  // creates out.partial-<pid>
///     try w.addKeyValues(ggufMetadata(copying: src.metadata, fileType: 15))
///     for t in plan { try w.addTensorInfo(name: t.name, shape: t.shape, type: t.type) }
///     for t in plan { try w.writeTensorData(t.name, quantize(t)) }   // declared order, one at a time
///     try w.finish()                                     // fsync + rename to `out`
///
/// Every call checks the state and its arguments; any error fails the writer for good and removes the
/// partial file, as does dropping the writer before `finish()`. Not thread-safe: one writer, one caller.
public final class GGUFWriter {
    /// Where the writer is. Calls move it forward only; any thrown error moves it to `.failed`.
    public enum State: String, Sendable {
        /// Nothing declared yet.
        case header
        /// Metadata being declared (`addKeyValue`).
        case kv
        /// Tensor infos being declared (`addTensorInfo`); no more metadata.
        case tensorInfos
        /// Header, metadata and tensor infos are on disk; tensor data is streaming in declared order.
        case data
        /// `finish()` renamed the file into place.
        case finished
        /// An error occurred or the writer was abandoned; the partial file is gone.
        case failed
    }

    public static let version: UInt32 = 3
    /// ggml's `GGML_MAX_NAME` is 64 bytes including the terminating NUL.
    public static let maxNameBytes = 63
    /// ggml's `GGML_MAX_DIMS`.
    public static let maxDims = 4

    public let path: String
    public private(set) var state: State = .header
    /// `general.alignment` when declared, else 32: the data section and every tensor offset are multiples of it.
    public private(set) var alignment = GGUFFile.defaultAlignment

    private var file: PartialFile?
    private var kv = ByteWriter()
    private var keys: [String] = []
    private var keySet = Set<String>()
    private struct Declared {
        var spec: GGUFTensorSpec
        var byteCount: Int
        /// Offset from the start of the data section.
        var offset: Int
    }
    private var tensors: [Declared] = []
    private var tensorIndex: [String: Int] = [:]
    /// Next free (unaligned) offset in the data section.
    private var dataEnd = 0
    /// Tensors whose data is written.
    private var writtenCount = 0

    /// Creates `<path>.partial-<pid>`; nothing appears at `path` before `finish()`.
    public init(path: String) throws {
        self.path = path
        file = try PartialFile(path: path)
    }

    deinit { file?.discard() }

    /// Keys declared so far, in order.
    public var declaredKeys: [String] { keys }
    /// Tensors declared so far with their byte counts and offsets relative to the data section.
    public var declaredTensors: [(spec: GGUFTensorSpec, byteCount: Int, offset: Int)] {
        tensors.map { ($0.spec, $0.byteCount, $0.offset) }
    }

    // MARK: kv

    /// Declares one metadata pair. Allowed before any tensor info; keys are unique; arrays hold one
    /// element type (nested arrays may differ inside); `general.alignment` must be a power-of-two uint32.
    public func addKeyValue(_ key: String, _ value: GGUFValue) throws {
        try step("addKeyValue(\(key))", allowed: [.header, .kv],
                 hint: "declare every metadata pair before the first tensor info") {
            guard !key.isEmpty else { throw error("key", expected: "a non-empty key", found: "\"\"") }
            guard !keySet.contains(key) else {
                throw error("key", expected: "a key not declared yet", found: "a second \(key)",
                            hint: "each key may appear once; drop or rename the duplicate")
            }
            try checkArrays(value, key: key)
            if key == "general.alignment" {
                guard case .uint32(let a) = value, a > 0, a & (a - 1) == 0 else {
                    throw error("general.alignment", expected: "a power of two as uint32", found: "\(value)")
                }
                alignment = Int(a)
            }
            kv.writeGGUFString(key)
            kv.write(value.typeID.rawValue)
            kv.writeGGUFPayload(value)
            keys.append(key)
            keySet.insert(key)
            state = .kv
        }
    }

    public func addKeyValues(_ pairs: [(String, GGUFValue)]) throws {
        for (k, v) in pairs { try addKeyValue(k, v) }
    }

    // MARK: tensor infos

    /// Declares a tensor; its data must later be written with `writeTensorData` in declaration order.
    /// Returns its byte count (`type.byteCount(elements:)`).
    @discardableResult
    public func addTensorInfo(_ spec: GGUFTensorSpec) throws -> Int {
        try step("addTensorInfo(\(spec.name))", allowed: [.header, .kv, .tensorInfos],
                 hint: "declare every tensor before writing any tensor data") {
            let name = spec.name
            guard !name.isEmpty, name.utf8.count <= Self.maxNameBytes else {
                throw error("name", expected: "1...\(Self.maxNameBytes) UTF-8 bytes (ggml's GGML_MAX_NAME)",
                            found: "\(name.utf8.count) bytes")
            }
            guard tensorIndex[name] == nil else {
                throw error("name", expected: "a tensor name not declared yet", found: "a second \(name)")
            }
            guard (1...Self.maxDims).contains(spec.shape.count) else {
                throw error("shape", expected: "1...\(Self.maxDims) dimensions", found: "\(spec.shape)")
            }
            guard spec.shape.allSatisfy({ $0 >= 0 }) else {
                throw error("shape", expected: "non-negative dimensions", found: "\(spec.shape)")
            }
            let rowLength = spec.shape.last!
            guard rowLength % spec.type.blockSize == 0 else {
                throw error("shape", expected: "a row length (innermost dimension) that is a multiple of the \(spec.type) block size \(spec.type.blockSize)",
                            found: "\(spec.shape)", hint: "keep such tensors in F32/F16 or pad the rows")
            }
            var elements = 1
            for d in spec.shape {
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw error("shape", expected: "an element count that fits in Int", found: "\(spec.shape)") }
                elements = p
            }
            guard let bytes = spec.type.byteCount(elements: elements) else {
                throw error("shape", expected: "a byte count that fits in Int", found: "\(elements) \(spec.type) elements")
            }
            let offset = alignUp(dataEnd)
            tensors.append(Declared(spec: spec, byteCount: bytes, offset: offset))
            tensorIndex[name] = tensors.count - 1
            dataEnd = offset + bytes
            state = .tensorInfos
            return bytes
        }
    }

    @discardableResult
    public func addTensorInfo(name: String, shape: [Int], type: GGMLType) throws -> Int {
        try addTensorInfo(GGUFTensorSpec(name: name, shape: shape, type: type))
    }

    // MARK: data

    /// Writes the data of the next declared tensor (`name` must be it) and the zero padding after it.
    /// The first call writes the header, metadata and tensor infos.
    public func writeTensorData(_ name: String, _ bytes: UnsafeRawBufferPointer) throws {
        try step("writeTensorData(\(name))", allowed: [.tensorInfos, .data],
                 hint: "declare tensor infos with addTensorInfo first, then write data in the same order") {
            guard writtenCount < tensors.count else {
                throw error("name", expected: "no more data (all \(tensors.count) declared tensors are written)",
                            found: name, hint: "declare every tensor before writing data")
            }
            let t = tensors[writtenCount]
            guard t.spec.name == name else {
                let declared = tensorIndex[name] != nil
                throw error("name", expected: "\(t.spec.name) (tensor \(writtenCount) in declaration order)", found: name,
                            hint: declared ? "write tensor data in the order the tensor infos were declared"
                                           : "\(name) was never declared")
            }
            guard bytes.count == t.byteCount else {
                throw error("byte count", expected: "\(t.byteCount) bytes for \(t.spec.type) \(t.spec.shape)",
                            found: "\(bytes.count) bytes")
            }
            let f = try openFile()
            if state != .data { try writeHeader(f) }
            guard f.count == dataSectionStart + t.offset else {
                throw error("offset", expected: "file position \(dataSectionStart + t.offset)", found: "\(f.count)",
                            hint: "internal error: the writer lost track of its position")
            }
            try f.write(bytes)
            try f.writeZeros(alignUp(f.count - dataSectionStart) - (f.count - dataSectionStart))
            writtenCount += 1
            state = .data
        }
    }

    public func writeTensorData(_ name: String, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeTensorData(name, $0) }
    }

    /// Checks every declared tensor was written (writes the header if no tensor was declared), then
    /// fsyncs and renames the file into place.
    public func finish() throws {
        try step("finish()", allowed: [.header, .kv, .tensorInfos, .data], hint: nil) {
            guard writtenCount == tensors.count else {
                throw error("tensor data", expected: "all \(tensors.count) declared tensors written",
                            found: "\(writtenCount); next is \(tensors[writtenCount].spec.name)",
                            hint: "call writeTensorData for every declared tensor")
            }
            let f = try openFile()
            if state != .data { try writeHeader(f) }
            try f.commit()
            file = nil
            state = .finished
        }
    }

    /// Gives up: removes the partial file; later calls throw. (Dropping the writer does the same.)
    public func abandon() {
        file?.discard()
        file = nil
        if state != .finished { state = .failed }
    }

    // MARK: internals

    private var dataSectionStart = 0

    private func alignUp(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    private func openFile() throws -> PartialFile {
        guard let f = file else {
            throw error("file", expected: "an open partial file", found: "none", hint: "the writer was abandoned")
        }
        return f
    }

    /// magic, version, counts, the buffered metadata, tensor infos, zero padding to the data section.
    private func writeHeader(_ f: PartialFile) throws {
        var w = ByteWriter(capacity: 24 + kv.bytes.count + tensors.count * 96)
        w.write(GGUFFile.magic)
        w.write(Self.version)
        w.write(UInt64(tensors.count))
        w.write(UInt64(keys.count))
        w.write(bytes: kv.bytes)
        for t in tensors {
            w.writeGGUFString(t.spec.name)
            w.write(UInt32(t.spec.shape.count))
            for d in t.spec.shape.reversed() { w.write(UInt64(d)) }
            w.write(t.spec.type.rawValue)
            w.write(UInt64(t.offset))
        }
        w.pad(toMultipleOf: alignment)
        dataSectionStart = w.bytes.count
        try f.write(w.bytes)
        kv = ByteWriter()
    }

    private func checkArrays(_ v: GGUFValue, key: String) throws {
        guard case .array(let a) = v else { return }
        if let first = a.first {
            let t = first.typeID
            if let bad = a.firstIndex(where: { $0.typeID != t }) {
                throw error("value", expected: "array elements of one type (\(t))",
                            found: "element \(bad) of type \(a[bad].typeID)", hint: "GGUF arrays are homogeneous")
            }
        }
        for e in a { try checkArrays(e, key: key) }
    }

    private func error(_ field: String, expected: String, found: String, hint: String? = nil) -> GGUFWriterError {
        GGUFWriterError(file: path, field: field, expected: expected, found: found, hint: hint)
    }

    /// Runs one call: checks the state, and on any error fails the writer and removes the partial file.
    private func step<R>(_ call: String, allowed: Set<State>, hint: String?, _ body: () throws -> R) throws -> R {
        guard allowed.contains(state) else {
            let e = GGUFWriterError(file: path, field: call,
                                    expected: "state \(allowed.map(\.rawValue).sorted().joined(separator: " or "))",
                                    found: "state \(state.rawValue)",
                                    hint: state == .failed ? "the writer failed or was abandoned; start a new one"
                                        : state == .finished ? "the file is already finished" : hint)
            abandon()
            throw e
        }
        do {
            return try body()
        } catch let e as GGUFWriterError {
            abandon()
            throw GGUFWriterError(file: e.file, field: "\(call): \(e.field)", expected: e.expected, found: e.found,
                                  hint: e.hint)
        } catch {
            abandon()
            throw error
        }
    }
}

/// Writes a whole GGUF: `metadata` in order, then every tensor's info, then each tensor's bytes as its
/// provider returns them (called once, in order, so only one tensor's bytes are alive at a time).
/// Nothing is left at `path` (or beside it) if anything throws.
public func writeGGUF(path: String, metadata: [(String, GGUFValue)],
                      tensors: [(info: GGUFTensorSpec, bytes: () throws -> [UInt8])]) throws {
    let w = try GGUFWriter(path: path)
    do {
        try w.addKeyValues(metadata)
        for t in tensors { try w.addTensorInfo(t.info) }
        for t in tensors { try w.writeTensorData(t.info.name, try t.bytes()) }
        try w.finish()
    } catch {
        w.abandon()
        throw error
    }
}

// MARK: value encoding

extension GGUFValue {
    /// The GGUF type id this value is written with.
    public var typeID: TypeID {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }
}

extension GGUFValue {
    /// The value's bytes as written after its type id (for bitwise comparisons: NaN, -0).
    var encodedPayload: [UInt8] {
        var w = ByteWriter()
        w.writeGGUFPayload(self)
        return w.bytes
    }
}

extension ByteWriter {
    /// u64 byte length + UTF-8 bytes.
    mutating func writeGGUFString(_ s: String) {
        write(UInt64(s.utf8.count))
        write(bytes: s.utf8)
    }

    /// The value without its type id. Arrays: element type, u64 count, elements (an empty array is
    /// written with element type uint8: `GGUFValue` does not keep the element type of an empty array).
    mutating func writeGGUFPayload(_ v: GGUFValue) {
        switch v {
        case .uint8(let x): write(x)
        case .int8(let x): write(x)
        case .uint16(let x): write(x)
        case .int16(let x): write(x)
        case .uint32(let x): write(x)
        case .int32(let x): write(x)
        case .uint64(let x): write(x)
        case .int64(let x): write(x)
        case .float32(let x): write(x)
        case .float64(let x): write(x)
        case .bool(let b): write(UInt8(b ? 1 : 0))
        case .string(let s): writeGGUFString(s)
        case .array(let a):
            write((a.first?.typeID ?? .uint8).rawValue)
            write(UInt64(a.count))
            for e in a { writeGGUFPayload(e) }
        }
    }
}

// MARK: sizes before writing

/// The byte layout `writeGGUF` gives a file, known before any tensor is quantized: the header (magic,
/// counts, metadata, tensor infos, padding to the data section) does not depend on the tensor types,
/// and each tensor adds its bytes padded to the alignment. A bit allocator prices every choice with it.
public struct GGUFLayout: Sendable {
    /// Bytes before the data section.
    public let headerBytes: Int
    /// `general.alignment` of the metadata, else 32.
    public let alignment: Int

    /// `metadata` as `writeGGUF` takes it; `tensors` their names and shapes (types do not change the header).
    public init(metadata: [(String, GGUFValue)], tensors: [(name: String, shape: [Int])]) {
        var w = ByteWriter()
        var alignment = GGUFFile.defaultAlignment
        for (k, v) in metadata {
            w.writeGGUFString(k)
            w.write(v.typeID.rawValue)
            w.writeGGUFPayload(v)
            if k == "general.alignment", case .uint32(let a) = v, a > 0, a & (a - 1) == 0 { alignment = Int(a) }
        }
        var n = 24 + w.bytes.count
        for t in tensors { n += 8 + t.name.utf8.count + 4 + 8 * t.shape.count + 4 + 8 }
        headerBytes = (n + alignment - 1) / alignment * alignment
        self.alignment = alignment
    }

    /// The bytes one tensor of `elements` values in `type` takes in the data section (padding included).
    public func dataBytes(_ type: GGMLType, elements: Int) -> Int? {
        type.byteCount(elements: elements).map { ($0 + alignment - 1) / alignment * alignment }
    }
}
