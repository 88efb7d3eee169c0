// Several encoded messages as one byte string (one MPI message, one checkpoint file): each frame is a
// little-endian u64 length and that many bytes. Splitting checks every length before it is used.
public enum Framing {
    /// Appends `frame`, length first.
    public static func append(_ frame: [UInt8], to bytes: inout [UInt8]) {
        var w = ByteWriter(capacity: 8)
        w.write(UInt64(frame.count))
        bytes += w.bytes
        bytes += frame
    }

    /// The frames of `bytes`, in order; a length that runs past the end is a `WireError`.
    public static func split(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var off = 0
        while off < bytes.count {
            guard off + 8 <= bytes.count else {
                throw WireError(.truncated, field: "frame length at byte \(off)", expected: "8 bytes", found: "\(bytes.count - off)")
            }
            var len: UInt64 = 0
            for i in 0..<8 { len |= UInt64(bytes[off + i]) << (8 * UInt64(i)) }
            off += 8
            guard len <= UInt64(bytes.count - off) else {
                throw WireError(.truncated, field: "frame at byte \(off)", expected: "\(len) bytes", found: "\(bytes.count - off) left")
            }
            frames.append(Array(bytes[off..<(off + Int(len))]))
            off += Int(len)
        }
        return frames
    }
}
