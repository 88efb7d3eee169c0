// Deterministic random data for the wire tests: bytes, symmetric matrices, XᵀX Hessians.
@testable import Wire

/// SplitMix64: small, deterministic, good enough for test data.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Standard normal (Box-Muller).
    mutating func normal() -> Float {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self), u2 = Double.random(in: 0..<1, using: &self)
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

func randomBytes(_ n: Int, _ rng: inout SplitMix64) -> [UInt8] {
    (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
}

/// A bit-exactly symmetric n x n matrix of random `es`-byte elements.
func randomSymmetricBytes(n: Int, elementSize es: Int, _ rng: inout SplitMix64) -> [UInt8] {
    var m = [UInt8](repeating: 0, count: n * n * es)
    for i in 0..<n {
        for j in i..<n {
            for b in 0..<es {
                let v = UInt8.random(in: 0...255, using: &rng)
                m[(i * n + j) * es + b] = v
                m[(j * n + i) * es + b] = v
            }
        }
    }
    return m
}

/// H = XᵀX for X (T, n) with normal entries and per-column scales spread over ~3 decades (LLM
/// activations have outlier channels). Float accumulation; upper triangle computed, then mirrored,
/// so H is bit-exactly symmetric (and PSD up to rounding).
func gramHessian(n: Int, T: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    let scale = (0..<n).map { _ in Float(exp(Double.random(in: -3...3, using: &rng))) }
    var X = [Float](repeating: 0, count: T * n)
    for t in 0..<T { for j in 0..<n { X[t * n + j] = rng.normal() * scale[j] } }
    var H = [Float](repeating: 0, count: n * n)
    X.withUnsafeBufferPointer { x in
        H.withUnsafeMutableBufferPointer { h in
            for t in 0..<T {
                let row = x.baseAddress! + t * n
                for i in 0..<n {
                    let xi = row[i]
                    let hr = h.baseAddress! + i * n
                    for j in i..<n { hr[j] += xi * row[j] }
                }
            }
            for i in 0..<n { for j in (i + 1)..<n { h[j * n + i] = h[i * n + j] } }
        }
    }
    return H
}

/// Patches a little-endian field of an encoded message and re-computes the header checksum, so the
/// decoder gets past the CRC and must catch the inconsistency itself.
func patched(_ bytes: [UInt8], at offset: Int, _ value: some FixedWidthInteger, fixPayloadCRC: Bool = false) -> [UInt8] {
    var b = bytes
    withUnsafeBytes(of: value.littleEndian) { v in for (k, x) in v.enumerated() { b[offset + k] = x } }
    return rechecksummed(b, fixPayloadCRC: fixPayloadCRC)
}

/// Re-computes the payload CRC (optionally) and the header CRC of `b`.
func rechecksummed(_ bytes: [UInt8], fixPayloadCRC: Bool = false) -> [UInt8] {
    var b = bytes
    let h = WireMessage.headerSize
    if fixPayloadCRC {
        let c = crc32c(Array(b[h...]))
        withUnsafeBytes(of: c.littleEndian) { v in for (k, x) in v.enumerated() { b[80 + k] = x } }
    }
    let c = crc32c(Array(b[0..<(h - 4)]))
    withUnsafeBytes(of: c.littleEndian) { v in for (k, x) in v.enumerated() { b[h - 4 + k] = x } }
    return b
}

/// Decoding `bytes` throws a WireError (the test fails on success or on any other error type).
func decodeError(_ bytes: [UInt8]) -> WireError? {
    do {
        _ = try WireMessage.decode(bytes)
        return nil
    } catch let e as WireError {
        return e
    } catch {
        return nil
    }
}
