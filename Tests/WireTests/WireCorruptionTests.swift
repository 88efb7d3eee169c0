import Testing
@testable import Wire

/// Every damaged message must throw WireError: no crash, no hang, no silent success.
@Suite struct WireCorruptionTests {
    static let codecs: [Codec] = [.raw, .zstd(), .shuffleZstd(), .triangle, .triangleShuffleZstd()]

    func sample(_ codec: Codec) throws -> WireMessage {
        let H = gramHessian(n: 6, T: 10, seed: 5)
        return try WireMessage(kind: .hessian, shape: [6, 6], floats: H, codec: codec,
                               ids: MessageIDs(layer: 1, module: 2, shard: 3, sender: 4))
    }

    @Test(arguments: codecs)
    func everyHeaderBitFlipThrows(codec: Codec) throws {
        let enc = try sample(codec).encode()
        for bit in 0..<(WireMessage.headerSize * 8) {
            var b = enc
            b[bit / 8] ^= UInt8(1 << (bit % 8))
            let e = decodeError(b)
            #expect(e != nil, "\(codec): header bit \(bit) flipped was accepted")
            if bit < 32 { #expect(e?.reason == .badMagic) }
            else if bit < 48 { #expect(e?.reason == .unsupportedVersion) }
            else { #expect(e?.reason == .checksumMismatch && e?.field == "header checksum", "bit \(bit): \(String(describing: e))") }
        }
    }

    @Test(arguments: codecs)
    func payloadBitFlipsThrow(codec: Codec) throws {
        let enc = try sample(codec).encode()
        let payloadBits = (enc.count - WireMessage.headerSize) * 8
        for bit in stride(from: 0, to: payloadBits, by: max(1, payloadBits / 200)) {
            var b = enc
            b[WireMessage.headerSize + bit / 8] ^= UInt8(1 << (bit % 8))
            let e = decodeError(b)
            #expect(e?.reason == .checksumMismatch && e?.field == "payload checksum", "\(codec): payload bit \(bit): \(String(describing: e))")
            // With the payload CRC patched to match, the codec itself must still refuse or decode to
            // a payload of the right size (raw and triangle bytes are all valid data).
            let fixed = rechecksummed(b, fixPayloadCRC: true)
            do {
                let m = try WireMessage.decode(fixed)
                #expect(m.payload.count == 6 * 6 * 4)
            } catch {
                #expect(error is WireError, "\(codec): \(error)")
            }
        }
    }

    @Test(arguments: codecs)
    func everyTruncationAndTrailingByteThrows(codec: Codec) throws {
        let enc = try sample(codec).encode()
        for n in 0..<enc.count {
            let e = decodeError(Array(enc[..<n]))
            #expect(e != nil, "\(codec): truncated to \(n) of \(enc.count) was accepted")
            if n < WireMessage.headerSize { #expect(e?.reason == .truncated && e?.field == "header") }
            else { #expect(e?.reason == .truncated && e?.field == "payload", "\(n): \(String(describing: e))") }
        }
        #expect(decodeError(enc + [0])?.reason == .trailingBytes)
        #expect(decodeError(enc + enc)?.reason == .trailingBytes)
    }

    @Test func namedFieldErrors() throws {
        let m = try sample(.shuffleZstd())
        let enc = m.encode()
        func check(_ b: [UInt8], _ reason: WireError.Reason, _ field: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let e = decodeError(b)
            #expect(e?.reason == reason && e?.field == field, "got \(String(describing: e))", sourceLocation: sourceLocation)
        }
        check(patched(enc, at: 0, UInt32(0x4655_4747)), .badMagic, "magic")
        check(patched(enc, at: 4, UInt16(2)), .unsupportedVersion, "version")
        check(patched(enc, at: 6, UInt8(0)), .unknownValue, "kind")
        check(patched(enc, at: 6, UInt8(200)), .unknownValue, "kind")
        check(patched(enc, at: 7, UInt8(9)), .unknownValue, "dtype")
        check(patched(enc, at: 8, UInt8(5)), .unknownValue, "codec")
        check(patched(enc, at: 9, Int8(0)), .unknownValue, "codec level")
        check(patched(enc, at: 9, Int8(100)), .unknownValue, "codec level")
        check(patched(enc, at: 10, UInt8(5)), .unknownValue, "ndim")
        check(patched(enc, at: 10, UInt8(1)), .sizeMismatch, "shape[1]") // dim 1 present but ndim 1
        check(patched(enc, at: 11, UInt8(1)), .unknownValue, "reserved byte 11")
        check(patched(enc, at: 28, UInt32(1)), .unknownValue, "reserved bytes 28..<32")
        check(patched(enc, at: 32, UInt64(7)), .sizeMismatch, "raw size")
        check(patched(enc, at: 32, UInt64.max), .tooLarge, "shape[0]")
        check(patched(patched(enc, at: 32, UInt64(1 << 20)), at: 40, UInt64(1 << 20)), .tooLarge, "shape")
        check(patched(enc, at: 64, UInt64(6 * 6 * 4 + 4)), .sizeMismatch, "raw size")
        check(patched(enc, at: 64, UInt64.max), .sizeMismatch, "raw size")
        check(patched(enc, at: 72, UInt64(1)), .sizeMismatch, "encoded size")
        check(patched(enc, at: 72, UInt64.max), .sizeMismatch, "encoded size")
        check(patched(enc, at: 72, UInt64(enc.count - WireMessage.headerSize - 1)), .trailingBytes, "payload")
        check(patched(enc, at: 72, UInt64(enc.count - WireMessage.headerSize + 1)), .truncated, "payload")
        check(patched(enc, at: 80, UInt32(0)), .checksumMismatch, "payload checksum")
        // dtype f64 with the same shape: raw size no longer matches.
        check(patched(enc, at: 7, DType.f64.rawValue), .sizeMismatch, "raw size")
        // A triangle codec on a non-square shape.
        let v = try WireMessage(kind: .vector, shape: [4, 2], floats: Array(repeating: 1, count: 8)).encode()
        check(patched(v, at: 8, UInt8(3)), .sizeMismatch, "shape")
        // raw -> triangle on a square matrix: the encoded size is now wrong.
        let sq = try WireMessage(kind: .hessian, shape: [3, 3], floats: Array(repeating: 1, count: 9)).encode()
        check(patched(sq, at: 8, UInt8(3)), .sizeMismatch, "encoded size")
    }

    @Test func badZstdFramesThrow() throws {
        let m = try WireMessage(kind: .vector, shape: [64], floats: (0..<64).map { Float($0) }, codec: .zstd())
        let enc = m.encode()
        let h = WireMessage.headerSize
        func withPayload(_ p: [UInt8]) -> [UInt8] {
            var b = Array(enc[..<h]) + p
            b = patched(b, at: 72, UInt64(p.count))
            return rechecksummed(b, fixPayloadCRC: true)
        }
        let frame = Array(enc[h...])
        // Garbage of plausible sizes.
        var rng = SplitMix64(seed: 9)
        for n in [6, 7, 20, frame.count, 200] {
            #expect(decodeError(withPayload(randomBytes(n, &rng))) != nil, "garbage of \(n) bytes")
        }
        // A valid frame of a different content size.
        let other = try WireMessage(kind: .vector, shape: [63], floats: (0..<63).map { Float($0) }, codec: .zstd()).encode()
        let e1 = decodeError(withPayload(Array(other[h...])))
        #expect(e1?.reason == .sizeMismatch && e1?.field == "zstd frame content size", "\(String(describing: e1))")
        // Two frames back to back (second one is trailing).
        let e2 = decodeError(withPayload(frame + frame))
        #expect(e2 != nil, "two frames accepted")
        // Every truncation of the frame with consistent header sizes and checksums.
        for n in 6..<frame.count {
            #expect(decodeError(withPayload(Array(frame[..<n]))) != nil, "frame truncated to \(n) accepted")
        }
        // Every byte of the frame corrupted (with checksums patched): throws or decodes the right size.
        for i in 0..<frame.count {
            var f = frame
            f[i] ^= 0x5A
            do { #expect(try WireMessage.decode(withPayload(f)).payload.count == 256) }
            catch { #expect(error is WireError, "\(error)") }
        }
    }

    @Test func randomBytesNeverCrash() throws {
        var rng = SplitMix64(seed: 2024)
        let valid = try sample(.triangleShuffleZstd()).encode()
        for i in 0..<3000 {
            let n = Int.random(in: 0...300, using: &rng)
            var b = randomBytes(n, &rng)
            // A third with a valid magic + version, a third of those with a valid header checksum too,
            // so the field checks behind them are exercised.
            if i % 3 != 0, b.count >= WireMessage.headerSize {
                for k in 0..<6 { b[k] = valid[k] }
                if i % 3 == 2 { b = rechecksummed(b) }
            }
            do { _ = try WireMessage.decode(b) } catch { #expect(error is WireError) }
        }
        // And random mutations of a valid message, checksums patched.
        for _ in 0..<2000 {
            var b = valid
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                b[Int.random(in: 6..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            b = rechecksummed(b, fixPayloadCRC: true)
            do { _ = try WireMessage.decode(b) } catch { #expect(error is WireError) }
        }
    }
}

@Suite struct WireLimitTests {
    @Test func capsAreEnforcedBeforeAllocating() throws {
        let m = try WireMessage(kind: .vector, shape: [1000], floats: Array(repeating: 1, count: 1000), codec: .zstd())
        let enc = m.encode()
        #expect(try WireMessage.decode(enc, maxRawBytes: 4000).count == 1000)
        #expect(throws: WireError.self) { try WireMessage.decode(enc, maxRawBytes: 3999) }
        #expect(throws: WireError.self) { try WireMessage.decode(enc, maxRawBytes: -5) }
        // A tiny zstd payload claiming 1 GiB: refused by the size check, nothing allocated.
        let big = patched(patched(enc, at: 32, UInt64(1 << 28)), at: 64, UInt64(1 << 30))
        let e = decodeError(big)
        #expect(e?.reason == .sizeMismatch && e?.field == "encoded size", "\(String(describing: e))")
    }
}

/// Length-prefixed frames: a round trip keeps every frame (empty ones too), and a cut anywhere inside
/// the lengths or the bodies is an error, never a crash or a short read.
@Suite struct FramingTests {
    @Test func roundTripAndEveryTruncation() throws {
        let frames: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 7, count: 300)]
        var bytes: [UInt8] = []
        for f in frames { Framing.append(f, to: &bytes) }
        #expect(bytes.count == 3 * 8 + 303)
        #expect(try Framing.split(bytes) == frames)
        #expect(try Framing.split([]) == [])
        // Cutting at a frame boundary leaves fewer whole frames; anywhere else is an error.
        let boundaries: Set<Int> = [0, 11, 19, bytes.count]
        for cut in 0..<bytes.count where !boundaries.contains(cut) {
            #expect(throws: WireError.self) { try Framing.split(Array(bytes[..<cut])) }
        }
        // A first length larger than everything that follows.
        var huge = bytes
        huge[1] = 0xff
        #expect { try Framing.split(huge) } throws: { "\($0)".contains("frame at byte 8") }
    }
}
