import Testing
@testable import Wire

@Suite struct ByteReaderTests {
    @Test func roundTripAndShortInput() throws {
        var w = ByteWriter()
        w.write(UInt32(0x4655_4747))
        w.write(Int64(-5))
        w.write(Float(1.5))
        w.write(bytes: [1, 2, 3])
        w.pad(toMultipleOf: 8)
        #expect(w.bytes.count == 24)
        let bytes = w.bytes
        try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws -> Void in
            var r = ByteReader(raw)
            #expect(try r.read(UInt32.self) == 0x4655_4747)
            #expect(try r.read(Int64.self) == -5)
            #expect(try r.readFloat() == 1.5)
            #expect(Array(try r.readBytes(3)) == [1, 2, 3])
            #expect(r.remaining == 5)
            #expect(throws: ShortInput.self) { try r.read(UInt64.self, "tail") }
            #expect(r.remaining == 5, "a failed read must not move the cursor")
            #expect(throws: ShortInput.self) { try r.readBytes(-1) }
        }
    }
}
