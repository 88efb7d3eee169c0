// The one owner of a file being written atomically: bytes go to `<path>.partial-<pid>` in the same
// directory; `commit()` fsyncs and renames it over `path`; anything else (an error, `discard()`, deinit)
// removes it. The final path never holds a half-written file. Not a format writer (see `GGUFWriter`).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An I/O failure while writing a file: the path, the operation and `strerror(errno)`.
public struct FileWriteError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let operation: String
    public let reason: String
    public let hint: String?

    public var description: String {
        var s = "\(path): \(operation) failed: \(reason)"
        if let hint { s += " (hint: \(hint))" }
        return s
    }
}

public final class PartialFile {
    /// Where the file ends up after `commit()`.
    public let path: String
    /// Where it is written until then: same directory, so the rename never crosses file systems.
    public let partialPath: String
    /// Bytes written so far.
    public private(set) var count = 0
    private var fd: Int32
    /// Committed or discarded: the partial file no longer exists.
    private var settled = false

    /// Creates (exclusively) the partial file beside `path`.
    public init(path: String) throws {
        self.path = path
        self.partialPath = "\(path).partial-\(getpid())"
        fd = open(partialPath, O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, 0o644)
        guard fd >= 0 else {
            let e = errno
            throw FileWriteError(path: partialPath, operation: "create", reason: String(cString: strerror(e)),
                                 hint: e == EEXIST ? "another writer in this process is writing \(path)"
                                     : "check that the directory exists and is writable")
        }
    }

    deinit { discard() }

    /// Appends `bytes`, retrying short writes and EINTR.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard fd >= 0 else {
            throw FileWriteError(path: partialPath, operation: "write", reason: "the file is already closed", hint: nil)
        }
        var done = 0
        while done < bytes.count {
            let n = posixWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw FileWriteError(path: partialPath, operation: "write", reason: String(cString: strerror(errno)),
                                     hint: errno == ENOSPC ? "the disk is full" : nil)
            }
            done += n
        }
        count += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Appends `n` zero bytes.
    public func writeZeros(_ n: Int) throws {
        guard n > 0 else { return }
        try write([UInt8](repeating: 0, count: n))
    }

    /// fsync, close, rename over `path`, fsync the directory (best effort). Afterwards the object owns nothing.
    public func commit() throws {
        guard fd >= 0 else {
            throw FileWriteError(path: partialPath, operation: "commit", reason: "the file is already closed", hint: nil)
        }
        guard fsync(fd) == 0 else {
            throw FileWriteError(path: partialPath, operation: "fsync", reason: String(cString: strerror(errno)), hint: nil)
        }
        let closed = close(fd)
        fd = -1
        guard closed == 0 else {
            throw FileWriteError(path: partialPath, operation: "close", reason: String(cString: strerror(errno)), hint: nil)
        }
        guard rename(partialPath, path) == 0 else {
            throw FileWriteError(path: path, operation: "rename from \(partialPath)",
                                 reason: String(cString: strerror(errno)), hint: nil)
        }
        settled = true
        let dir = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let dfd = open(dir.isEmpty ? "/" : dir, O_RDONLY)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// Closes and removes the partial file unless it was committed. Idempotent.
    public func discard() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        if !settled {
            unlink(partialPath)
            settled = true
        }
    }
}

#if canImport(Glibc)
private let posixWrite = Glibc.write
#elseif canImport(Darwin)
private let posixWrite = Darwin.write
#endif
