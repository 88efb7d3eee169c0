// The wire message: a fixed 88-byte little-endian header, then the codec-encoded payload.
// Encoding and strict decoding only; sending is the communicator's job (Node/Cluster).
//
// Header layout (all little-endian):
//   0 magic u32 "HDWM"   4 version u16   6 kind u8   7 dtype u8   8 codec u8   9 zstd level i8
//  10 ndim u8  11 reserved u8 (0)   12 layer u32   16 module u32   20 shard u32   24 sender u32
//  28 reserved u32 (0)   32 shape 4 x u64 (unused dims 0)   64 raw size u64   72 encoded size u64
//  80 payload CRC32C u32 (of the encoded payload)   84 header CRC32C u32 (of bytes 0..<84)
//  88 payload (encoded size bytes), nothing after.

/// What a message carries.
public enum MessageKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case hessian = 1, vector, scalars, tensorBytes, manifest, control
    /// One part of a quantized linear (codes, grid parameters, ggml bytes, …) on its way to rank 0.
    case quantizedLinear
    /// A residual stream (forward) or its gradient (backward) between pipeline stages.
    case activations
    public var description: String {
        switch self {
        case .hessian: "hessian"
        case .vector: "vector"
        case .scalars: "scalars"
        case .tensorBytes: "tensorBytes"
        case .manifest: "manifest"
        case .control: "control"
        case .quantizedLinear: "quantizedLinear"
        case .activations: "activations"
        }
    }
}

/// Element type of the payload (little-endian, row-major).
public enum DType: UInt8, Sendable, CaseIterable {
    case f32 = 1, f64, f16, u8, i32, i64
    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f32, .i32: 4
        case .f64, .i64: 8
        case .f16: 2
        case .u8: 1
        }
    }
}

/// Who sent what: layer/module ids, micro-shard id and sender rank.
public struct MessageIDs: Sendable, Hashable {
    public var layer: UInt32
    public var module: UInt32
    public var shard: UInt32
    public var sender: UInt32
    public init(layer: UInt32 = 0, module: UInt32 = 0, shard: UInt32 = 0, sender: UInt32 = 0) {
        self.layer = layer
        self.module = module
        self.shard = shard
        self.sender = sender
    }
}

/// One typed, checksummed message. `payload` holds the decoded (raw) element bytes, row-major,
/// little-endian; `codec` says how `encode()` compresses it on the wire.
public struct WireMessage: Sendable, Equatable {
    public static let magic: UInt32 = 0x4D57_4448 // "HDWM" in file order
    public static let version: UInt16 = 1
    public static let headerSize = 88
    public static let maxRank = 4
    /// Decoding refuses raw payloads larger than this unless told otherwise: MPI counts are Int32,
    /// and a corrupt header must not make us allocate more.
    public static let defaultMaxRawBytes = Int(Int32.max)

    public let kind: MessageKind
    public let dtype: DType
    public let codec: Codec
    public var ids: MessageIDs
    /// Up to 4 dims; [] is a scalar (one element).
    public let shape: [Int]
    /// Raw payload bytes: `shape.product * dtype.size`.
    public let payload: [UInt8]

    /// Element count (product of `shape`).
    public var count: Int { shape.reduce(1, *) }

    /// Checks shape (≤ 4 dims, non-negative), payload size, codec level, and for triangle codecs a
    /// square, bit-exactly symmetric matrix (the packing would otherwise lose the lower triangle).
    public init(kind: MessageKind, dtype: DType, shape: [Int], payload: [UInt8], codec: Codec = .raw,
                ids: MessageIDs = MessageIDs()) throws {
        guard shape.count <= Self.maxRank else {
            throw WireError(.invalidArgument, field: "shape", expected: "at most \(Self.maxRank) dims", found: "\(shape)")
        }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw WireError(.invalidArgument, field: "shape", expected: "non-negative dims", found: "\(shape)")
        }
        let expected = try Self.byteCount(shape: shape, dtype: dtype, limit: Int.max / 2)
        guard payload.count == expected else {
            throw WireError(.invalidArgument, field: "payload", expected: "\(expected) bytes for \(shape) \(dtype)", found: "\(payload.count)")
        }
        if codec.level != 0 || codec.id == 1 || codec.id == 2 || codec.id == 4 {
            guard Codec.levels.contains(codec.level), codec.level != 0 else {
                throw WireError(.invalidArgument, field: "codec level", expected: "\(Codec.levels), not 0", found: "\(codec.level)")
            }
        }
        if codec.isTriangle {
            guard shape.count == 2, shape[0] == shape[1] else {
                throw WireError(.invalidArgument, field: "shape", expected: "square n x n for \(codec)", found: "\(shape)")
            }
            let symmetric = payload.withUnsafeBytes { isBitSymmetric($0, n: shape[0], elementSize: dtype.size) }
            guard symmetric else {
                throw WireError(.invalidArgument, field: "payload", expected: "a bit-exactly symmetric matrix for \(codec)", found: "an asymmetric one")
            }
        }
        self.kind = kind
        self.dtype = dtype
        self.shape = shape
        self.payload = payload
        self.codec = codec
        self.ids = ids
    }

    /// A float32 message.
    public init(kind: MessageKind, shape: [Int], floats: [Float], codec: Codec = .raw, ids: MessageIDs = MessageIDs()) throws {
        try self.init(kind: kind, dtype: .f32, shape: shape, payload: Self.littleEndianBytes(floats), codec: codec, ids: ids)
    }

    /// A float64 message.
    public init(kind: MessageKind, shape: [Int], doubles: [Double], codec: Codec = .raw, ids: MessageIDs = MessageIDs()) throws {
        try self.init(kind: kind, dtype: .f64, shape: shape, payload: Self.littleEndianBytes(doubles), codec: codec, ids: ids)
    }

    /// The values' little-endian bytes: one copy on a little-endian host (a Hessian of 1536² doubles
    /// element by element took 30 ms), value by value elsewhere.
    static func littleEndianBytes<T: BinaryFloatingPoint>(_ values: [T]) -> [UInt8] where T.RawSignificand: FixedWidthInteger {
        #if _endian(little)
        return values.withUnsafeBytes { Array($0) }
        #else
        var w = ByteWriter(capacity: values.count * MemoryLayout<T>.size)
        for v in values {
            if let f = v as? Float { w.write(f) } else if let d = v as? Double { w.write(d) }
        }
        return w.bytes
        #endif
    }

    /// The payload as float32 values; throws if the dtype is not f32.
    public func floats() throws -> [Float] {
        guard dtype == .f32 else { throw WireError(.invalidArgument, field: "dtype", expected: "f32", found: "\(dtype)") }
        return payload.withUnsafeBytes { raw in
            (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    /// The payload as float64 values; throws if the dtype is not f64.
    public func doubles() throws -> [Double] {
        guard dtype == .f64 else { throw WireError(.invalidArgument, field: "dtype", expected: "f64", found: "\(dtype)") }
        return payload.withUnsafeBytes { raw in
            (0..<count).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
    }

    var layout: PayloadLayout { PayloadLayout(rawSize: payload.count, elementSize: dtype.size, shape: shape) }

    /// Header + encoded payload.
    public func encode() -> [UInt8] {
        let body = payload.withUnsafeBytes { codec.implementation.encode($0, layout: layout) }
        var w = ByteWriter(capacity: Self.headerSize + body.count)
        w.write(Self.magic)
        w.write(Self.version)
        w.write(kind.rawValue)
        w.write(dtype.rawValue)
        w.write(codec.id)
        w.write(Int8(codec.level))
        w.write(UInt8(shape.count))
        w.write(UInt8(0))
        w.write(ids.layer)
        w.write(ids.module)
        w.write(ids.shard)
        w.write(ids.sender)
        w.write(UInt32(0))
        for d in 0..<Self.maxRank { w.write(UInt64(d < shape.count ? shape[d] : 0)) }
        w.write(UInt64(payload.count))
        w.write(UInt64(body.count))
        w.write(crc32c(body))
        w.write(w.bytes.withUnsafeBytes { crc32c($0) })
        w.write(bytes: body)
        return w.bytes
    }

    /// Strict decoding: every length is checked before use, and any disagreement (magic, version,
    /// enums, reserved bytes, shape vs sizes, checksums, codec output, trailing bytes) throws
    /// `WireError`. The largest allocation is `maxRawBytes` and only after the header checksum passed
    /// and the raw size matched the shape.
    public static func decode(_ bytes: UnsafeRawBufferPointer, maxRawBytes: Int = defaultMaxRawBytes) throws -> WireMessage {
        let maxRawBytes = max(0, maxRawBytes)
        guard bytes.count >= headerSize else {
            throw WireError(.truncated, field: "header", expected: "\(headerSize) bytes", found: "\(bytes.count)")
        }
        var r = ByteReader(bytes)
        let magic = try r.read(UInt32.self)
        guard magic == Self.magic else {
            throw WireError(.badMagic, field: "magic", expected: hex(Self.magic), found: hex(magic))
        }
        let version = try r.read(UInt16.self)
        guard version == Self.version else {
            throw WireError(.unsupportedVersion, field: "version", expected: "\(Self.version)", found: "\(version)")
        }
        let storedHeaderCRC = bytes.loadUnaligned(fromByteOffset: headerSize - 4, as: UInt32.self).littleEndian
        let headerCRC = crc32c(UnsafeRawBufferPointer(rebasing: bytes[0..<(headerSize - 4)]))
        guard headerCRC == storedHeaderCRC else {
            throw WireError(.checksumMismatch, field: "header checksum", expected: hex(storedHeaderCRC), found: hex(headerCRC))
        }
        let kindByte = try r.read(UInt8.self), dtypeByte = try r.read(UInt8.self)
        let codecByte = try r.read(UInt8.self), level = try r.read(Int8.self)
        let ndim = Int(try r.read(UInt8.self))
        let reserved1 = try r.read(UInt8.self)
        guard let kind = MessageKind(rawValue: kindByte) else {
            throw WireError(.unknownValue, field: "kind", expected: "1...\(MessageKind.allCases.count)", found: "\(kindByte)")
        }
        guard let dtype = DType(rawValue: dtypeByte) else {
            throw WireError(.unknownValue, field: "dtype", expected: "1...\(DType.allCases.count)", found: "\(dtypeByte)")
        }
        let codec = try Codec(id: codecByte, level: level)
        guard ndim <= maxRank else {
            throw WireError(.unknownValue, field: "ndim", expected: "0...\(maxRank)", found: "\(ndim)")
        }
        guard reserved1 == 0 else { throw WireError(.unknownValue, field: "reserved byte 11", expected: "0", found: "\(reserved1)") }
        let ids = MessageIDs(layer: try r.read(UInt32.self), module: try r.read(UInt32.self),
                             shard: try r.read(UInt32.self), sender: try r.read(UInt32.self))
        let reserved2 = try r.read(UInt32.self)
        guard reserved2 == 0 else { throw WireError(.unknownValue, field: "reserved bytes 28..<32", expected: "0", found: "\(reserved2)") }
        var shape: [Int] = []
        for d in 0..<maxRank {
            let v = try r.read(UInt64.self)
            if d < ndim {
                guard v <= UInt64(maxRawBytes) else {
                    throw WireError(.tooLarge, field: "shape[\(d)]", expected: "at most \(maxRawBytes)", found: "\(v)")
                }
                shape.append(Int(v))
            } else {
                guard v == 0 else { throw WireError(.sizeMismatch, field: "shape[\(d)]", expected: "0 (ndim \(ndim))", found: "\(v)") }
            }
        }
        let rawSize = try r.read(UInt64.self), encodedSize = try r.read(UInt64.self)
        let payloadCRC = try r.read(UInt32.self)
        _ = try r.read(UInt32.self) // header CRC, checked above
        let expectedRaw = try byteCount(shape: shape, dtype: dtype, limit: maxRawBytes)
        guard rawSize == UInt64(expectedRaw) else {
            throw WireError(.sizeMismatch, field: "raw size", expected: "\(expectedRaw) (shape \(shape) x \(dtype.size))", found: "\(rawSize)")
        }
        let layout = PayloadLayout(rawSize: expectedRaw, elementSize: dtype.size, shape: shape)
        if codec.isTriangle {
            guard shape.count == 2, shape[0] == shape[1] else {
                throw WireError(.sizeMismatch, field: "shape", expected: "square n x n for \(codec)", found: "\(shape)")
            }
        }
        let impl = codec.implementation
        let lo = impl.minEncodedSize(layout), hi = impl.maxEncodedSize(layout)
        guard encodedSize >= UInt64(lo), encodedSize <= UInt64(hi) else {
            throw WireError(.sizeMismatch, field: "encoded size", expected: lo == hi ? "\(lo)" : "\(lo)...\(hi) for \(codec)", found: "\(encodedSize)")
        }
        let enc = Int(encodedSize)
        guard r.remaining >= enc else {
            throw WireError(.truncated, field: "payload", expected: "\(enc) bytes", found: "\(r.remaining)")
        }
        guard r.remaining == enc else {
            throw WireError(.trailingBytes, field: "payload", expected: "\(enc) bytes", found: "\(r.remaining)")
        }
        let body = try r.readBytes(enc, "payload")
        let crc = crc32c(body)
        guard crc == payloadCRC else {
            throw WireError(.checksumMismatch, field: "payload checksum", expected: hex(payloadCRC), found: hex(crc))
        }
        let payload = try impl.decode(body, layout: layout)
        guard payload.count == expectedRaw else {
            throw WireError(.sizeMismatch, field: "decoded payload", expected: "\(expectedRaw)", found: "\(payload.count)")
        }
        return WireMessage(kind: kind, dtype: dtype, codec: codec, ids: ids, shape: shape, payload: payload)
    }

    /// Decodes a whole byte array.
    public static func decode(_ bytes: [UInt8], maxRawBytes: Int = defaultMaxRawBytes) throws -> WireMessage {
        try bytes.withUnsafeBytes { try decode($0, maxRawBytes: maxRawBytes) }
    }

    /// Memberwise, for decoded messages (already validated; a decoded triangle payload is symmetric).
    private init(kind: MessageKind, dtype: DType, codec: Codec, ids: MessageIDs, shape: [Int], payload: [UInt8]) {
        self.kind = kind
        self.dtype = dtype
        self.codec = codec
        self.ids = ids
        self.shape = shape
        self.payload = payload
    }

    /// shape product x dtype size, with overflow and the cap checked.
    static func byteCount(shape: [Int], dtype: DType, limit: Int) throws -> Int {
        var n = dtype.size
        for d in shape {
            let (p, o) = n.multipliedReportingOverflow(by: d)
            guard !o, p <= limit else {
                throw WireError(.tooLarge, field: "shape", expected: "at most \(limit) bytes", found: "\(shape) x \(dtype.size)")
            }
            n = p
        }
        return n
    }
}

func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16, uppercase: true) }
