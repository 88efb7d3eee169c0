import Foundation
import Testing
@testable import Wire

/// Prints compression ratios of each codec on XᵀX Hessians of SmolLM2 widths (576, 1536).
/// Measurement only: no speed is asserted; bit-exactness is.
@Suite struct WireCompressionReport {
    @Test(arguments: [576, 1536])
    func hessianRatios(n: Int) throws {
        let H = gramHessian(n: n, T: 256, seed: UInt64(n))
        let dense = n * n * 4
        var lines: [String] = []
        for codec: Codec in [.raw, .zstd(), .shuffleZstd(), .triangle, .triangleShuffleZstd(), .triangleShuffleZstd(level: 3)] {
            let m = try WireMessage(kind: .hessian, shape: [n, n], floats: H, codec: codec)
            let t0 = Date()
            let enc = m.encode()
            let te = Date().timeIntervalSince(t0)
            let t1 = Date()
            let back = try WireMessage.decode(enc)
            let td = Date().timeIntervalSince(t1)
            #expect(back.payload == m.payload)
            lines.append("  " + codec.description.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "%10d bytes  ratio vs dense raw %.3f  encode %.1f ms  decode %.1f ms",
                                enc.count, Double(dense) / Double(enc.count), te * 1e3, td * 1e3))
        }
        print("XᵀX Hessian \(n)x\(n) float32 (T=256, column scales e^U(-3,3)), dense raw \(dense) bytes:\n" + lines.joined(separator: "\n"))
        let best = try WireMessage(kind: .hessian, shape: [n, n], floats: H, codec: .triangleShuffleZstd()).encode()
        #expect(Double(dense) / Double(best.count) > 2, "triangle+shuffle+zstd must beat the triangle alone")
    }
}
