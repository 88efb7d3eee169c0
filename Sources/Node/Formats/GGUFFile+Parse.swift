// Parsing and validating GGUF bytes: header, metadata KVs (nested arrays included), tensor infos,
// data layout. Every count is checked against the bytes left before anything is allocated from it.
// Not the public API (`GGUFFile.swift`).
import HessianDist
import Wire

struct GGUFParser {
    struct Parsed {
        var version: Int
        var alignment: Int
        var dataOffset: Int
        var metadata: GGUFMetadata
        var tensors: [GGUFTensorInfo]
    }

    /// Deepest array nesting we read; real files use one level (gguf-py can write two).
    static let maxArrayDepth = 8
    static let maxDims = 4
    /// Smallest encoding of one tensor info: name length u64, n_dims u32, one ne u64, type u32, offset u64.
    static let minTensorInfoBytes = 8 + 4 + 8 + 4 + 8
    /// Smallest encoding of one KV: key length u64, type u32, a one-byte value.
    static let minKVBytes = 8 + 4 + 1

    let path: String
    var r: ByteReader
    /// What is being read, for errors: "header", "metadata key general.name", "tensor info 3 (blk.0...)".
    var context = "header"

    static func parse(_ raw: UnsafeRawBufferPointer, path: String) throws -> Parsed {
        var p = GGUFParser(path: path, r: ByteReader(raw))
        do {
            return try p.parseAll()
        } catch let e as ShortInput {
            throw p.fail(e.what, expected: "\(e.needed) bytes at offset \(e.offset)", found: "\(max(e.available, 0)) left",
                         hint: "the file is truncated")
        }
    }

    func fail(_ field: String, expected: String, found: String, hint: String? = nil) -> ModelFormatError {
        ModelFormatError(file: path, field: context.isEmpty ? field : "\(context): \(field)",
                         expected: expected, found: found, hint: hint)
    }

    mutating func parseAll() throws -> Parsed {
        let magic = try r.read(UInt32.self, "magic")
        guard magic == GGUFFile.magic else {
            throw fail("magic", expected: "0x46554747 (\"GGUF\")", found: hex(magic), hint: "not a GGUF file")
        }
        let version = try r.read(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            let hint = version == 1 ? "GGUF v1 (32-bit counts) is obsolete: re-convert with a current llama.cpp"
                : version.byteSwapped == 2 || version.byteSwapped == 3 ? "a big-endian GGUF: convert it on a little-endian host"
                : "not a GGUF version this reader knows"
            throw fail("version", expected: "2 or 3", found: "\(version)", hint: hint)
        }
        let rawTensorCount = try r.read(UInt64.self, "tensor_count")
        let rawKVCount = try r.read(UInt64.self, "kv_count")
        let tensorCount = try count(rawTensorCount, "tensor_count", minBytes: Self.minTensorInfoBytes)
        let kvCount = try count(rawKVCount, "kv_count", minBytes: Self.minKVBytes)

        let metadata = try parseMetadata(kvCount)
        let alignment = try parseAlignment(metadata)
        let infos = try parseTensorInfos(tensorCount, alignment: alignment)

        context = "data section"
        let (aligned, overflow) = r.offset.addingReportingOverflow(alignment - 1)
        guard !overflow else { throw fail("start", expected: "an offset inside the file", found: "overflow") }
        let dataOffset = aligned / alignment * alignment
        let tensors = try resolve(infos, dataOffset: dataOffset, fileSize: r.bytes.count)
        return Parsed(version: Int(version), alignment: alignment, dataOffset: dataOffset,
                      metadata: metadata, tensors: tensors)
    }

    /// A u64 count just read, refused when even `minBytes` per item could not fit in the bytes left.
    func count(_ n: UInt64, _ field: String, minBytes: Int) throws -> Int {
        let limit = r.remaining / minBytes
        guard n <= UInt64(limit) else {
            throw fail(field, expected: "at most \(limit) (bytes left / \(minBytes) bytes per item)", found: "\(n)",
                       hint: "the count is corrupt or the file is truncated")
        }
        return Int(n)
    }

    // MARK: metadata

    mutating func parseMetadata(_ kvCount: Int) throws -> GGUFMetadata {
        var values: [String: GGUFValue] = [:]
        var keys: [String] = []
        keys.reserveCapacity(kvCount)
        for i in 0..<kvCount {
            context = "metadata KV \(i)"
            let key = try name("key")
            context = "metadata key \(key)"
            guard values[key] == nil else {
                throw fail("key", expected: "unique keys", found: "a duplicate of \(key)")
            }
            let type = try r.read(UInt32.self, "value type")
            values[key] = try value(type, depth: 0)
            keys.append(key)
        }
        context = ""
        return GGUFMetadata(file: path, values: values, keys: keys)
    }

    func parseAlignment(_ md: GGUFMetadata) throws -> Int {
        guard let v = md["general.alignment"] else { return GGUFFile.defaultAlignment }
        guard case .uint32(let a) = v, a > 0, a & (a - 1) == 0 else {
            throw fail("metadata general.alignment", expected: "a power of two as uint32", found: "\(v)")
        }
        return Int(a)
    }

    /// A GGUF string (u64 length + UTF-8 bytes); the length is checked before anything is read.
    /// Values are decoded leniently (invalid UTF-8 becomes U+FFFD), as llama.cpp does not validate them.
    mutating func string(_ what: String) throws -> String {
        let bytes = try stringBytes(what)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A key or tensor name: must be valid UTF-8, since it is looked up by name.
    mutating func name(_ what: String) throws -> String {
        let bytes = try stringBytes(what)
        let s = String(decoding: bytes, as: UTF8.self)
        guard s.utf8.elementsEqual(bytes) else {
            throw fail(what, expected: "valid UTF-8", found: "\(bytes.count) bytes that are not")
        }
        return s
    }

    mutating func stringBytes(_ what: String) throws -> UnsafeRawBufferPointer {
        let n = try r.read(UInt64.self, "\(what) length")
        guard n <= UInt64(r.remaining) else {
            throw fail("\(what) length", expected: "at most the \(r.remaining) bytes left", found: "\(n)",
                       hint: "the length is corrupt or the file is truncated")
        }
        return try r.readBytes(Int(n), what)
    }

    mutating func value(_ rawType: UInt32, depth: Int) throws -> GGUFValue {
        guard let type = GGUFValue.TypeID(rawValue: rawType) else {
            throw fail("value type", expected: "a GGUF value type id 0...12", found: "\(rawType)")
        }
        switch type {
        case .uint8: return .uint8(try r.read(UInt8.self, "uint8 value"))
        case .int8: return .int8(try r.read(Int8.self, "int8 value"))
        case .uint16: return .uint16(try r.read(UInt16.self, "uint16 value"))
        case .int16: return .int16(try r.read(Int16.self, "int16 value"))
        case .uint32: return .uint32(try r.read(UInt32.self, "uint32 value"))
        case .int32: return .int32(try r.read(Int32.self, "int32 value"))
        case .uint64: return .uint64(try r.read(UInt64.self, "uint64 value"))
        case .int64: return .int64(try r.read(Int64.self, "int64 value"))
        case .float32: return .float32(try r.readFloat("float32 value"))
        case .float64: return .float64(try r.readDouble("float64 value"))
        case .bool:
            let b = try r.read(UInt8.self, "bool value")
            guard b <= 1 else { throw fail("bool value", expected: "0 or 1", found: "\(b)") }
            return .bool(b == 1)
        case .string: return .string(try string("string value"))
        case .array:
            guard depth < Self.maxArrayDepth else {
                throw fail("array", expected: "at most \(Self.maxArrayDepth) levels of nesting", found: "deeper")
            }
            let elementRaw = try r.read(UInt32.self, "array element type")
            guard let element = GGUFValue.TypeID(rawValue: elementRaw) else {
                throw fail("array element type", expected: "a GGUF value type id 0...12", found: "\(elementRaw)")
            }
            let rawCount = try r.read(UInt64.self, "array count")  // read before `count` sees `remaining`
            let n = try count(rawCount, "array count", minBytes: element.minEncodedBytes)
            var a: [GGUFValue] = []
            a.reserveCapacity(n)
            for _ in 0..<n { a.append(try value(elementRaw, depth: depth + 1)) }
            return .array(a)
        }
    }

    // MARK: tensor infos

    struct RawInfo {
        var name: String
        var ne: [Int]
        var type: GGMLType
        var relativeOffset: Int
        var byteCount: Int
    }

    mutating func parseTensorInfos(_ n: Int, alignment: Int) throws -> [RawInfo] {
        var infos: [RawInfo] = []
        infos.reserveCapacity(n)
        var seen = Set<String>()
        for i in 0..<n {
            context = "tensor info \(i)"
            let name = try name("name")
            context = "tensor info \(i) (\(name))"
            guard seen.insert(name).inserted else {
                throw fail("name", expected: "unique tensor names", found: "a second \(name)")
            }
            let nDims = try r.read(UInt32.self, "n_dims")
            guard nDims >= 1, nDims <= Self.maxDims else {
                throw fail("n_dims", expected: "1...\(Self.maxDims)", found: "\(nDims)")
            }
            var ne: [Int] = []
            var elements = 1
            for d in 0..<Int(nDims) {
                let v = try r.read(UInt64.self, "ne[\(d)]")
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(clamping: v))
                guard v <= UInt64(Int.max), !overflow else {
                    throw fail("ne", expected: "an element count that fits in 63 bits", found: "ne[\(d)] = \(v)")
                }
                ne.append(Int(v))
                elements = product
            }
            let typeRaw = try r.read(UInt32.self, "type")
            guard let type = GGMLType(rawValue: typeRaw) else {
                let known = GGMLType.allCases.map { "\($0.rawValue) (\($0))" }.joined(separator: ", ")
                throw fail("type", expected: "a ggml type id we read: \(known)", found: "\(typeRaw)",
                           hint: "IQ and other newer formats are not supported; requantize to a K-quant")
            }
            guard ne[0] % type.blockSize == 0 else {
                throw fail("ne[0]", expected: "a multiple of the \(type) block size \(type.blockSize)", found: "\(ne[0])")
            }
            guard let bytes = type.byteCount(elements: elements) else {
                throw fail("size", expected: "a byte count that fits in 63 bits", found: "\(elements) \(type) weights")
            }
            let offset = try r.read(UInt64.self, "offset")
            guard offset <= UInt64(Int.max), Int(offset) % alignment == 0 else {
                throw fail("offset", expected: "a multiple of the alignment \(alignment)", found: "\(offset)")
            }
            infos.append(RawInfo(name: name, ne: ne, type: type, relativeOffset: Int(offset), byteCount: bytes))
        }
        return infos
    }

    /// Absolute data ranges: inside the file and pairwise disjoint.
    mutating func resolve(_ infos: [RawInfo], dataOffset: Int, fileSize: Int) throws -> [GGUFTensorInfo] {
        var out: [GGUFTensorInfo] = []
        out.reserveCapacity(infos.count)
        for t in infos {
            context = "tensor \(t.name)"
            let (start, o1) = dataOffset.addingReportingOverflow(t.relativeOffset)
            let (end, o2) = start.addingReportingOverflow(t.byteCount)
            guard !o1, !o2, end <= fileSize else {
                throw fail("data", expected: "bytes [\(o1 ? "?" : "\(start)"), \(o1 || o2 ? "?" : "\(end)")) inside the file",
                           found: "file size \(fileSize)", hint: "the file is truncated or the offset is corrupt")
            }
            out.append(GGUFTensorInfo(name: t.name, ne: t.ne, type: t.type, offset: start, byteCount: t.byteCount))
        }
        let byStart = out.filter { $0.byteCount > 0 }.sorted { $0.offset < $1.offset }
        for (a, b) in zip(byStart, byStart.dropFirst()) where b.offset < a.offset + a.byteCount {
            context = "tensor \(b.name)"
            throw fail("data", expected: "to start at or after byte \(a.offset + a.byteCount), where \(a.name) ends",
                       found: "start \(b.offset)", hint: "tensor data overlaps: the offsets are corrupt")
        }
        context = ""
        return out
    }
}

extension GGUFValue.TypeID {
    /// Fewest bytes one value of this type takes (strings: the length; arrays: element type + count).
    var minEncodedBytes: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64, .string: return 8
        case .array: return 12
        }
    }
}

private func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16, uppercase: true) }
