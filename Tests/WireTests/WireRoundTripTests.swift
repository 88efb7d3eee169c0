import Testing
@testable import Wire

@Suite struct CRC32CTests {
    @Test func rfc3720Vectors() {
        #expect(crc32c(Array("123456789".utf8)) == 0xE306_9283)
        // RFC 3720 B.4.
        #expect(crc32c([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(crc32c([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(crc32c((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(crc32c((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
        #expect(crc32c([]) == 0)
    }

    @Test func slicingBy8MatchesBitwiseAndContinues() {
        var rng = SplitMix64(seed: 7)
        for n in 0..<70 {
            let b = randomBytes(n, &rng)
            #expect(crc32c(b) == crc32cBitwise(b), "length \(n)")
            let k = n / 3
            #expect(crc32c(Array(b[k...]), continuing: crc32c(Array(b[..<k]))) == crc32c(b), "split \(k) of \(n)")
        }
    }
}

@Suite struct WireRoundTripTests {
    static let allCodecs: [Codec] = [.raw, .zstd(), .shuffleZstd(), .triangle, .triangleShuffleZstd(),
                                     .zstd(level: 3), .shuffleZstd(level: -1), .triangleShuffleZstd(level: 9)]

    func roundTrip(_ m: WireMessage, _ note: String) throws -> [UInt8] {
        let enc = m.encode()
        let back = try WireMessage.decode(enc)
        #expect(back == m, "\(note): decoded message differs")
        #expect(back.payload == m.payload, "\(note): payload not bit-exact")
        return enc
    }

    @Test(arguments: allCodecs)
    func everyDTypeOnRandomData(codec: Codec) throws {
        var rng = SplitMix64(seed: UInt64(codec.id) * 31 + UInt64(codec.level + 100))
        for dtype in DType.allCases {
            // Triangle codecs take square symmetric matrices; the others any shape, odd sizes included.
            let shapes: [[Int]] = codec.isTriangle ? [[0, 0], [1, 1], [2, 2], [17, 17], [64, 64]]
                                                   : [[], [0], [1], [7], [3, 5, 7], [2, 3, 4, 5], [1000]]
            for shape in shapes {
                let count = shape.reduce(1, *)
                let payload = codec.isTriangle ? randomSymmetricBytes(n: shape[0], elementSize: dtype.size, &rng)
                                               : randomBytes(count * dtype.size, &rng)
                let ids = MessageIDs(layer: 3, module: 5, shard: UInt32(count), sender: 2)
                let m = try WireMessage(kind: .tensorBytes, dtype: dtype, shape: shape, payload: payload, codec: codec, ids: ids)
                let enc = try roundTrip(m, "\(codec) \(dtype) \(shape)")
                if codec == .raw { #expect(enc.count == WireMessage.headerSize + payload.count) }
                if codec == .triangle {
                    let n = shape[0]
                    #expect(enc.count == WireMessage.headerSize + n * (n + 1) / 2 * dtype.size)
                }
            }
        }
    }

    @Test(arguments: allCodecs)
    func realisticHessianIsBitExact(codec: Codec) throws {
        let n = 96
        let H = gramHessian(n: n, T: 200, seed: 11)
        let m = try WireMessage(kind: .hessian, shape: [n, n], floats: H, codec: codec,
                                ids: MessageIDs(layer: 1, module: 2, shard: 3, sender: 4))
        let enc = try roundTrip(m, "\(codec) XᵀX")
        let back = try WireMessage.decode(enc)
        #expect(try back.floats().map(\.bitPattern) == H.map(\.bitPattern))
        // Also as float64 and as a vector (the diagonal).
        let Hd = H.map(Double.init)
        let md = try WireMessage(kind: .hessian, shape: [n, n], doubles: Hd, codec: codec)
        #expect(try WireMessage.decode(md.encode()).doubles() == Hd)
        if !codec.isTriangle {
            let diag = (0..<n).map { H[$0 * n + $0] }
            let mv = try WireMessage(kind: .vector, shape: [n], floats: diag, codec: codec)
            #expect(try WireMessage.decode(mv.encode()).floats() == diag)
        }
        if codec.level > 0 { // zstd fast levels (negative) may not beat raw on floats
            #expect(enc.count < WireMessage.headerSize + n * n * 4, "\(codec) should compress XᵀX")
        }
    }

    @Test func shuffleIsAPermutationAndInvertible() {
        var rng = SplitMix64(seed: 3)
        for es in [1, 2, 4, 8] {
            for count in [0, 1, 5, 33, 34] { // tails shorter than an element included
                let b = randomBytes(count, &rng)
                let s = b.withUnsafeBytes { byteShuffle($0, elementSize: es) }
                #expect(s.sorted() == b.sorted())
                #expect(s.withUnsafeBytes { byteUnshuffle($0, elementSize: es) } == b, "es \(es) count \(count)")
            }
        }
        // f32 [1, 2]: exponent bytes end up together.
        let f = try! WireMessage(kind: .vector, shape: [2], floats: [1, 2]).payload
        #expect(f.withUnsafeBytes { byteShuffle($0, elementSize: 4) } == [0, 0, 0, 0, 0x80, 0, 0x3F, 0x40])
    }

    @Test func constructionIsValidated() throws {
        let asym: [Float] = [1, 2, 3, 4]
        #expect(throws: WireError.self) { try WireMessage(kind: .hessian, shape: [2, 2], floats: asym, codec: .triangle) }
        #expect(throws: WireError.self) { try WireMessage(kind: .hessian, shape: [2, 3], floats: [1, 2, 3, 4, 5, 6], codec: .triangleShuffleZstd()) }
        #expect(throws: WireError.self) { try WireMessage(kind: .vector, shape: [3], floats: [1, 2]) }
        #expect(throws: WireError.self) { try WireMessage(kind: .vector, shape: [1, 1, 1, 1, 1], floats: [1]) }
        #expect(throws: WireError.self) { try WireMessage(kind: .vector, shape: [-1], floats: []) }
        #expect(throws: WireError.self) { try WireMessage(kind: .vector, shape: [1], floats: [1], codec: .zstd(level: 0)) }
        #expect(throws: WireError.self) { try WireMessage(kind: .vector, shape: [1], floats: [1], codec: .zstd(level: 99)) }
        #expect(throws: WireError.self) { try WireMessage(kind: .vector, shape: [1], floats: [1]).doubles() }
        // -0.0 vs 0.0 is not bit-symmetric: the triangle would lose it.
        #expect(throws: WireError.self) { try WireMessage(kind: .hessian, shape: [2, 2], floats: [1, -0.0, 0.0, 1], codec: .triangle) }
    }

    @Test func statsCountRawAndWireBytesPerKind() throws {
        var s = WireStats()
        let H = gramHessian(n: 32, T: 64, seed: 1)
        let m = try WireMessage(kind: .hessian, shape: [32, 32], floats: H, codec: .triangleShuffleZstd())
        let enc = m.encode()
        s.record(m, wireBytes: enc.count)
        s.record(kind: .control, rawBytes: 0, wireBytes: WireMessage.headerSize)
        #expect(s.byKind[.hessian]?.rawBytes == 32 * 32 * 4)
        #expect(s.byKind[.hessian]?.wireBytes == enc.count)
        #expect(s.total.messages == 2 && s.total.wireBytes == enc.count + WireMessage.headerSize)
        var t = WireStats()
        t += s
        t += s
        #expect(t.byKind[.hessian]?.messages == 2 && t.byKind[.control]?.wireBytes == 2 * WireMessage.headerSize)
        #expect((s.byKind[.hessian]?.ratio ?? 0) > 1.5) // 32x32: the 88-byte header still counts
    }
}

/// Every message kind survives a round trip (activations is the newest), float payloads keep their
/// bits through the bulk little-endian copy, and byte counters add up per kind.
@Suite struct WireKindTests {
    @Test func everyKindRoundTrips() throws {
        for kind in MessageKind.allCases {
            let m = try WireMessage(kind: kind, dtype: .u8, shape: [3], payload: [1, 2, 3], codec: .zstd(), ids: MessageIDs(layer: 1, module: 2, shard: 3, sender: 4))
            let back = try WireMessage.decode(m.encode())
            #expect(back == m && back.kind == kind && "\(kind)" != "")
        }
        #expect(MessageKind(rawValue: 7) == .quantizedLinear && MessageKind(rawValue: 8) == .activations)
    }

    @Test func floatPayloadsAreLittleEndianBitExact() throws {
        let f: [Float] = [1, -0.0, .nan, .infinity, 1e-40, 3.25]
        let m = try WireMessage(kind: .vector, shape: [6], floats: f)
        #expect(Array(m.payload[0..<4]) == [0, 0, 0x80, 0x3F])  // 1.0f little-endian
        #expect(try m.floats().map(\.bitPattern) == f.map(\.bitPattern))
        let d: [Double] = [1, -2.5e300, .leastNonzeroMagnitude]
        let md = try WireMessage(kind: .vector, shape: [3], doubles: d)
        #expect(Array(md.payload[0..<8]) == [0, 0, 0, 0, 0, 0, 0xF0, 0x3F])  // 1.0 little-endian
        #expect(try md.doubles().map(\.bitPattern) == d.map(\.bitPattern))
    }

    @Test func statsCountMessagesInBulk() {
        var s = WireStats()
        s.record(kind: .hessian, messages: 3, rawBytes: 30, wireBytes: 12)
        s.record(kind: .hessian, rawBytes: 5, wireBytes: 2)
        #expect(s.byKind[.hessian] == { var c = WireStats.Counter(); c.messages = 4; c.rawBytes = 35; c.wireBytes = 14; return c }())
    }
}
