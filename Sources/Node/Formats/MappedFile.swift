// The one owner of a read-only memory-mapped file. Readers borrow its bytes through closures
// or `RawSpan`-like slices checked against the file size; nothing outlives the mapping.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let count: Int
    private let base: UnsafeRawPointer?

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw ModelFormatError(file: path, field: "file", expected: "a readable file",
                                   found: String(cString: strerror(errno)), hint: "check the path")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw ModelFormatError(file: path, field: "file", expected: "stat to succeed",
                                   found: String(cString: strerror(errno)))
        }
        count = Int(st.st_size)
        if count == 0 {
            base = nil
            return
        }
        let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw ModelFormatError(file: path, field: "file", expected: "mmap to succeed",
                                   found: String(cString: strerror(errno)))
        }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }

    /// Borrow `length` bytes at `offset`; throws (naming `field`) when the range leaves the file.
    public func withBytes<R>(offset: Int, length: Int, field: String,
                             _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try checkRange(offset: offset, length: length, field: field)
        guard length > 0, let base else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeRawBufferPointer(start: base + offset, count: length))
    }

    /// Borrow the whole file.
    public func withAllBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        guard let base else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    public func checkRange(offset: Int, length: Int, field: String) throws {
        guard offset >= 0, length >= 0, offset <= count, length <= count - offset else {
            throw ModelFormatError(file: path, field: field,
                                   expected: "bytes [\(offset), \(offset &+ length)) inside the file",
                                   found: "file size \(count)", hint: "the file is truncated or corrupt")
        }
    }
}
