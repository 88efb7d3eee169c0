// Typed little-endian reads over borrowed bytes that throw on short input, and the matching writer.
// Used by every binary format we parse (GGUF, safetensors headers, llama2.c, wire messages).

public struct ShortInput: Error, CustomStringConvertible, Sendable {
    public let offset: Int
    public let needed: Int
    public let available: Int
    public let what: String
    public var description: String {
        "\(what): needed \(needed) bytes at offset \(offset), only \(available) left"
    }
}

/// A cursor over bytes. Every read checks the remaining length first.
public struct ByteReader {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset: Int

    public init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }

    public mutating func require(_ n: Int, _ what: String) throws {
        guard n >= 0, n <= remaining else {
            throw ShortInput(offset: offset, needed: n, available: remaining, what: what)
        }
    }

    public mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: String = "integer") throws -> T {
        try require(MemoryLayout<T>.size, what)
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    public mutating func readFloat(_ what: String = "float32") throws -> Float {
        Float(bitPattern: try read(UInt32.self, what))
    }

    public mutating func readDouble(_ what: String = "float64") throws -> Double {
        Double(bitPattern: try read(UInt64.self, what))
    }

    /// `n` raw bytes, borrowed.
    public mutating func readBytes(_ n: Int, _ what: String = "bytes") throws -> UnsafeRawBufferPointer {
        try require(n, what)
        let s = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
        offset += n
        return s
    }

    public mutating func skip(_ n: Int, _ what: String = "padding") throws {
        try require(n, what)
        offset += n
    }

    public mutating func seek(to o: Int, _ what: String = "offset") throws {
        guard o >= 0, o <= bytes.count else {
            throw ShortInput(offset: o, needed: 0, available: bytes.count - o, what: what)
        }
        offset = o
    }
}

/// Appends little-endian values to a growing byte array.
public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []
    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    public mutating func write<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    public mutating func write(_ f: Float) { write(f.bitPattern) }
    public mutating func write(_ d: Double) { write(d.bitPattern) }
    public mutating func write<C: Collection>(bytes b: C) where C.Element == UInt8 { bytes.append(contentsOf: b) }
    public mutating func pad(toMultipleOf a: Int, with byte: UInt8 = 0) {
        let r = bytes.count % a
        if r != 0 { bytes.append(contentsOf: repeatElement(byte, count: a - r)) }
    }
}
