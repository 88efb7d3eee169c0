// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), slicing-by-8 in plain Swift.
// Used for wire-message header and payload checksums; not a cryptographic hash.

/// 8 tables of 256 entries, table k at [k*256 ..< (k+1)*256]. Table 0 is the classic byte table;
/// table k advances a byte k positions further, so eight bytes are folded per step.
private let crc32cTables: [UInt32] = {
    var t = [UInt32](repeating: 0, count: 8 * 256)
    for i in 0..<256 {
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        t[i] = c
    }
    for k in 1..<8 {
        for i in 0..<256 {
            let prev = t[(k - 1) * 256 + i]
            t[k * 256 + i] = (prev >> 8) ^ t[Int(prev & 0xFF)]
        }
    }
    return t
}()

/// CRC32C of `bytes`, continuing from `crc` (pass the previous result to checksum in pieces).
/// `crc32c("123456789") == 0xE3069283` (RFC 3720, B.4).
public func crc32c(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
    var c = ~crc
    let n = bytes.count
    guard n > 0, let base = bytes.baseAddress else { return crc }
    crc32cTables.withUnsafeBufferPointer { tp in
        let t = tp.baseAddress!
        var i = 0
        // Eight bytes at a time: two little-endian words, each byte looked up in its own table.
        while i + 8 <= n {
            let lo = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ c
            let hi = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
            c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
            i += 8
        }
        while i < n {
            c = (c >> 8) ^ t[Int((c ^ UInt32(base.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)]
            i += 1
        }
    }
    return ~c
}

/// CRC32C of a byte array.
public func crc32c(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
    bytes.withUnsafeBytes { crc32c($0, continuing: crc) }
}

/// The bit-at-a-time definition, for testing the table version against.
func crc32cBitwise(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
    }
    return ~c
}
