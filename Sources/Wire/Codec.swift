// Payload codecs: raw, zstd, byte-shuffle + zstd, symmetric upper-triangle packing (optionally then
// shuffle + zstd). One protocol, chosen by the `Codec` enum. Lossless only; no framing here (that is
// WireMessage's job).
import CZstd

/// What a codec needs to know about the raw payload: its byte size, element size and shape.
public struct PayloadLayout: Sendable, Equatable {
    public let rawSize: Int
    public let elementSize: Int
    public let shape: [Int]
    public init(rawSize: Int, elementSize: Int, shape: [Int]) {
        self.rawSize = rawSize
        self.elementSize = elementSize
        self.shape = shape
    }
}

/// A lossless transform of a payload. `decode` is strict: it returns exactly `layout.rawSize`
/// bytes or throws `WireError` (never traps on hostile input).
public protocol PayloadCodec: Sendable {
    func encode(_ raw: UnsafeRawBufferPointer, layout: PayloadLayout) -> [UInt8]
    func decode(_ encoded: UnsafeRawBufferPointer, layout: PayloadLayout) throws -> [UInt8]
    /// The largest encoded size this codec can produce for `layout` (checked before decoding).
    func maxEncodedSize(_ layout: PayloadLayout) -> Int
    /// The smallest encoded size (e.g. exact sizes for raw and triangle packing).
    func minEncodedSize(_ layout: PayloadLayout) -> Int
}

/// The codec of a message, as stored in its header (id byte + zstd level byte).
///
/// Default zstd level 1: on float32 Hessians, level 9 costs about 10x the time for at most 3 % more
/// ratio (PLATFORM.md). Shuffle groups byte k of every element together (exponents with exponents),
/// which is what lets zstd find structure in floats. Triangle codecs require a square, bit-exactly
/// symmetric 2-D payload and send n(n+1)/2 elements.
public enum Codec: Sendable, Hashable, CustomStringConvertible {
    case raw
    case zstd(level: Int = 1)
    case shuffleZstd(level: Int = 1)
    case triangle
    case triangleShuffleZstd(level: Int = 1)

    /// zstd levels accepted (negative levels are zstd's fast modes). Stored in one signed byte.
    public static let levels: ClosedRange<Int> = -7...22

    /// The header byte.
    public var id: UInt8 {
        switch self {
        case .raw: 0
        case .zstd: 1
        case .shuffleZstd: 2
        case .triangle: 3
        case .triangleShuffleZstd: 4
        }
    }

    /// The zstd level (0 for codecs without zstd).
    public var level: Int {
        switch self {
        case .raw, .triangle: 0
        case .zstd(let l), .shuffleZstd(let l), .triangleShuffleZstd(let l): l
        }
    }

    public var isTriangle: Bool {
        switch self {
        case .triangle, .triangleShuffleZstd: true
        default: false
        }
    }

    /// From the header bytes; throws for an unknown id or an out-of-range level.
    public init(id: UInt8, level: Int8) throws {
        let l = Int(level)
        func zstdLevel() throws -> Int {
            guard Codec.levels.contains(l), l != 0 else {
                throw WireError(.unknownValue, field: "codec level", expected: "a zstd level in \(Codec.levels) other than 0", found: "\(l)")
            }
            return l
        }
        func noLevel() throws {
            guard l == 0 else { throw WireError(.sizeMismatch, field: "codec level", expected: "0 for codec \(id)", found: "\(l)") }
        }
        switch id {
        case 0: try noLevel(); self = .raw
        case 1: self = .zstd(level: try zstdLevel())
        case 2: self = .shuffleZstd(level: try zstdLevel())
        case 3: try noLevel(); self = .triangle
        case 4: self = .triangleShuffleZstd(level: try zstdLevel())
        default: throw WireError(.unknownValue, field: "codec", expected: "0...4", found: "\(id)")
        }
    }

    /// The implementation.
    public var implementation: any PayloadCodec {
        switch self {
        case .raw: RawCodec()
        case .zstd(let l): ZstdCodec(level: l, shuffle: false)
        case .shuffleZstd(let l): ZstdCodec(level: l, shuffle: true)
        case .triangle: TriangleCodec(inner: nil)
        case .triangleShuffleZstd(let l): TriangleCodec(inner: ZstdCodec(level: l, shuffle: true))
        }
    }

    public var description: String {
        switch self {
        case .raw: "raw"
        case .zstd(let l): "zstd(\(l))"
        case .shuffleZstd(let l): "shuffle+zstd(\(l))"
        case .triangle: "triangle"
        case .triangleShuffleZstd(let l): "triangle+shuffle+zstd(\(l))"
        }
    }
}

/// The payload as is.
public struct RawCodec: PayloadCodec {
    public init() {}
    public func encode(_ raw: UnsafeRawBufferPointer, layout: PayloadLayout) -> [UInt8] { Array(raw) }
    public func decode(_ encoded: UnsafeRawBufferPointer, layout: PayloadLayout) throws -> [UInt8] {
        guard encoded.count == layout.rawSize else {
            throw WireError(.sizeMismatch, field: "raw payload", expected: "\(layout.rawSize) bytes", found: "\(encoded.count)")
        }
        return Array(encoded)
    }
    public func maxEncodedSize(_ layout: PayloadLayout) -> Int { layout.rawSize }
    public func minEncodedSize(_ layout: PayloadLayout) -> Int { layout.rawSize }
}

/// zstd one-shot compression, optionally after a byte shuffle (byte k of every element together).
public struct ZstdCodec: PayloadCodec {
    public let level: Int
    public let shuffle: Bool
    public init(level: Int = 1, shuffle: Bool) {
        self.level = level
        self.shuffle = shuffle
    }

    public func encode(_ raw: UnsafeRawBufferPointer, layout: PayloadLayout) -> [UInt8] {
        if shuffle && layout.elementSize > 1 {
            let s = byteShuffle(raw, elementSize: layout.elementSize)
            return s.withUnsafeBytes { zstdCompress($0, level: level) }
        }
        return zstdCompress(raw, level: level)
    }

    public func decode(_ encoded: UnsafeRawBufferPointer, layout: PayloadLayout) throws -> [UInt8] {
        let out = try zstdDecompress(encoded, exactSize: layout.rawSize)
        if shuffle && layout.elementSize > 1 {
            return out.withUnsafeBytes { byteUnshuffle($0, elementSize: layout.elementSize) }
        }
        return out
    }

    public func maxEncodedSize(_ layout: PayloadLayout) -> Int { ZSTD_compressBound(layout.rawSize) }
    /// A zstd frame is at least a magic number and a frame header (6 bytes), and every block
    /// (at most 128 KiB of content, ZSTD_BLOCKSIZE_MAX) costs at least a 3-byte block header. This
    /// bounds the allocation a small hostile frame can cause to about 43 000 x its size.
    public func minEncodedSize(_ layout: PayloadLayout) -> Int { 6 + 3 * (layout.rawSize / (128 * 1024)) }
}

/// Symmetric n x n matrix -> its upper triangle, row by row (n(n+1)/2 elements), then `inner`.
/// The encoder requires a bit-exactly symmetric matrix (WireMessage checks); the decoder mirrors.
public struct TriangleCodec: PayloadCodec {
    public let inner: ZstdCodec?
    public init(inner: ZstdCodec?) { self.inner = inner }

    func packedLayout(_ layout: PayloadLayout) -> PayloadLayout {
        let n = layout.shape.first ?? 0
        let count = n * (n + 1) / 2
        return PayloadLayout(rawSize: count * layout.elementSize, elementSize: layout.elementSize, shape: [count])
    }

    public func encode(_ raw: UnsafeRawBufferPointer, layout: PayloadLayout) -> [UInt8] {
        precondition(layout.shape.count == 2 && layout.shape[0] == layout.shape[1]
                     && raw.count == layout.shape[0] * layout.shape[0] * layout.elementSize,
                     "TriangleCodec.encode: expected a square n x n payload, got \(layout)")
        let n = layout.shape[0], es = layout.elementSize
        let p = packedLayout(layout)
        var packed = [UInt8](repeating: 0, count: p.rawSize)
        packed.withUnsafeMutableBytes { dst in
            var o = 0
            for i in 0..<n {
                let len = (n - i) * es
                if len > 0 {
                    dst.baseAddress!.advanced(by: o).copyMemory(from: raw.baseAddress!.advanced(by: (i * n + i) * es), byteCount: len)
                }
                o += len
            }
        }
        guard let inner else { return packed }
        return packed.withUnsafeBytes { inner.encode($0, layout: p) }
    }

    public func decode(_ encoded: UnsafeRawBufferPointer, layout: PayloadLayout) throws -> [UInt8] {
        let n = layout.shape.first ?? 0, es = layout.elementSize
        guard layout.shape.count == 2, layout.shape[1] == n, layout.rawSize == n * n * es else {
            throw WireError(.sizeMismatch, field: "triangle shape", expected: "square 2-D of \(layout.rawSize) bytes", found: "\(layout.shape)")
        }
        let p = packedLayout(layout)
        let packed: [UInt8]
        if let inner {
            packed = try inner.decode(encoded, layout: p)
        } else {
            guard encoded.count == p.rawSize else {
                throw WireError(.sizeMismatch, field: "triangle payload", expected: "\(p.rawSize) bytes", found: "\(encoded.count)")
            }
            packed = Array(encoded)
        }
        guard packed.count == p.rawSize else {
            throw WireError(.sizeMismatch, field: "triangle payload", expected: "\(p.rawSize) bytes", found: "\(packed.count)")
        }
        var out = [UInt8](repeating: 0, count: layout.rawSize)
        out.withUnsafeMutableBytes { dst in
            packed.withUnsafeBytes { src in
                let d = dst.baseAddress!
                var o = 0
                for i in 0..<n {
                    let len = (n - i) * es
                    if len > 0 { d.advanced(by: (i * n + i) * es).copyMemory(from: src.baseAddress!.advanced(by: o), byteCount: len) }
                    o += len
                }
                // Mirror: (j, i) = (i, j) for j > i.
                for i in 0..<n {
                    for j in (i + 1)..<max(n, i + 1) {
                        d.advanced(by: (j * n + i) * es).copyMemory(from: d.advanced(by: (i * n + j) * es), byteCount: es)
                    }
                }
            }
        }
        return out
    }

    public func maxEncodedSize(_ layout: PayloadLayout) -> Int {
        let p = packedLayout(layout)
        return inner?.maxEncodedSize(p) ?? p.rawSize
    }
    public func minEncodedSize(_ layout: PayloadLayout) -> Int {
        let p = packedLayout(layout)
        return inner?.minEncodedSize(p) ?? p.rawSize
    }
}

// MARK: - Helpers

/// Whether an n x n matrix of `es`-byte elements is bit-exactly symmetric.
func isBitSymmetric(_ raw: UnsafeRawBufferPointer, n: Int, elementSize es: Int) -> Bool {
    guard n > 1, let b = raw.baseAddress else { return true }
    for i in 0..<n {
        for j in (i + 1)..<n where memcmpBytes(b + (i * n + j) * es, b + (j * n + i) * es, es) != 0 {
            return false
        }
    }
    return true
}

@inline(__always)
private func memcmpBytes(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Int {
    for k in 0..<n {
        let x = a.load(fromByteOffset: k, as: UInt8.self), y = b.load(fromByteOffset: k, as: UInt8.self)
        if x != y { return Int(x) - Int(y) }
    }
    return 0
}

/// [e0b0 e0b1 .. e1b0 e1b1 ..] -> [e0b0 e1b0 .. e0b1 e1b1 ..]. A tail shorter than an element is kept as is.
func byteShuffle(_ raw: UnsafeRawBufferPointer, elementSize es: Int) -> [UInt8] {
    let n = raw.count / es
    var out = [UInt8](repeating: 0, count: raw.count)
    guard raw.count > 0 else { return out }
    out.withUnsafeMutableBytes { dst in
        let s = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let d = dst.baseAddress!.assumingMemoryBound(to: UInt8.self)
        for b in 0..<es {
            let row = d + b * n
            for i in 0..<n { row[i] = s[i * es + b] }
        }
        for k in (n * es)..<raw.count { d[k] = s[k] }
    }
    return out
}

/// The inverse of `byteShuffle`.
func byteUnshuffle(_ raw: UnsafeRawBufferPointer, elementSize es: Int) -> [UInt8] {
    let n = raw.count / es
    var out = [UInt8](repeating: 0, count: raw.count)
    guard raw.count > 0 else { return out }
    out.withUnsafeMutableBytes { dst in
        let s = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let d = dst.baseAddress!.assumingMemoryBound(to: UInt8.self)
        for b in 0..<es {
            let row = s + b * n
            for i in 0..<n { d[i * es + b] = row[i] }
        }
        for k in (n * es)..<raw.count { d[k] = s[k] }
    }
    return out
}

/// One zstd frame with the content size recorded. Compressing into a ZSTD_compressBound buffer
/// cannot fail for lack of room; any other failure is an allocation failure inside zstd.
func zstdCompress(_ src: UnsafeRawBufferPointer, level: Int) -> [UInt8] {
    let bound = ZSTD_compressBound(src.count)
    var out = [UInt8](repeating: 0, count: bound)
    var dummy: UInt8 = 0
    let written: Int = withUnsafeMutablePointer(to: &dummy) { dp in
        out.withUnsafeMutableBytes { dst in
            ZSTD_compress(dst.baseAddress!, bound, src.baseAddress ?? UnsafeRawPointer(dp), src.count, Int32(level))
        }
    }
    precondition(ZSTD_isError(written) == 0,
                 "ZSTD_compress(\(src.count) bytes, level \(level)): \(String(cString: ZSTD_getErrorName(written)))")
    out.removeSubrange(written...)
    return out
}

/// Exactly one zstd frame that must declare and produce exactly `exactSize` bytes.
func zstdDecompress(_ src: UnsafeRawBufferPointer, exactSize: Int) throws -> [UInt8] {
    guard let base = src.baseAddress, src.count > 0 else {
        throw WireError(.corruptPayload, field: "zstd frame", expected: "a zstd frame", found: "0 bytes")
    }
    let declared = ZSTD_getFrameContentSize(base, src.count)
    // ZSTD_CONTENTSIZE_ERROR = 0ULL - 2, ZSTD_CONTENTSIZE_UNKNOWN = 0ULL - 1 (macros do not import).
    guard declared != UInt64.max - 1 else {
        throw WireError(.corruptPayload, field: "zstd frame header", expected: "a valid zstd frame", found: "not a zstd frame")
    }
    guard declared == UInt64(exactSize) else {
        throw WireError(.sizeMismatch, field: "zstd frame content size", expected: "\(exactSize)",
                        found: declared == UInt64.max ? "unknown" : "\(declared)")
    }
    let frameSize = ZSTD_findFrameCompressedSize(base, src.count)
    guard ZSTD_isError(frameSize) == 0 else {
        throw WireError(.corruptPayload, field: "zstd frame", expected: "a complete frame",
                        found: String(cString: ZSTD_getErrorName(frameSize)))
    }
    guard frameSize == src.count else {
        throw WireError(.trailingBytes, field: "zstd frame", expected: "\(src.count) bytes in one frame", found: "frame of \(frameSize)")
    }
    var out = [UInt8](repeating: 0, count: exactSize)
    var dummy: UInt8 = 0
    let got: Int = withUnsafeMutablePointer(to: &dummy) { dp in
        out.withUnsafeMutableBytes { dst in
            ZSTD_decompress(dst.baseAddress ?? UnsafeMutableRawPointer(dp), exactSize, base, src.count)
        }
    }
    guard ZSTD_isError(got) == 0 else {
        throw WireError(.corruptPayload, field: "zstd frame", expected: "a decodable frame", found: String(cString: ZSTD_getErrorName(got)))
    }
    guard got == exactSize else {
        throw WireError(.sizeMismatch, field: "zstd decompressed size", expected: "\(exactSize)", found: "\(got)")
    }
    return out
}
