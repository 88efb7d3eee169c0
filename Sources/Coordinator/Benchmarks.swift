// Measurements behind scripts/bench-*.sh: the sgemm ceiling on this machine and the forward pass
// split by kernel family. Numbers only; the scripts record them in BENCHMARKS.md.
import Foundation
import HessianDist
import Node

public struct GemmMeasurement: Codable, Sendable {
    public var m: Int, n: Int, k: Int
    public var gflops: Double
}

/// Best-of-`repeats` GFLOP/s of out (M,N) = a (M,K) · b (N,K)ᵀ, the shape our linear layers use.
public func measureSgemm(M: Int, N: Int, K: Int, repeats: Int = 5) -> GemmMeasurement {
    let a = FloatBuffer(count: M * K), b = FloatBuffer(count: N * K), c = FloatBuffer(count: M * N)
    for i in 0..<a.count { a.base[i] = Float(i % 7) * 0.01 }
    for i in 0..<b.count { b.base[i] = Float(i % 5) * 0.01 }
    matmulForward(out: c.base, inp: a.base, weight: b.base, N: M, C: K, OC: N) // warm up
    var best = Double.infinity
    for _ in 0..<repeats {
        let t0 = DispatchTime.now().uptimeNanoseconds
        var iters = 0
        var elapsed = 0.0
        repeat {
            matmulForward(out: c.base, inp: a.base, weight: b.base, N: M, C: K, OC: N)
            iters += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        } while elapsed < 0.2
        best = min(best, elapsed / Double(iters))
    }
    return GemmMeasurement(m: M, n: N, k: K, gflops: 2 * Double(M * N * K) / best / 1e9)
}

public struct ForwardBenchmark: Codable, Sendable {
    public var batch: Int
    public var context: Int
    public var passes: Int
    public var secondsPerPass: Double
    public var tokensPerSecond: Double
    /// Per kernel family: seconds per pass and GFLOP/s.
    public var seconds: [String: Double]
    public var gflops: [String: Double]
}

/// Runs `passes` full forward passes (B,T) with logits for the second half, as perplexity does.
public func benchmarkForward(model: LlamaModel, B: Int, T: Int, passes: Int) throws -> ForwardBenchmark {
    let V = model.config.vocabSize
    let a = Activations(config: model.config, B: B, T: T)
    var tokens = [Int32](repeating: 0, count: B * T)
    for i in tokens.indices { tokens[i] = Int32((i * 7919) % V) }
    var logits = [Float](repeating: 0, count: B * (T - T / 2) * V)
    func pass() throws {
        try model.embed(a, tokens: tokens)
        model.blocks(a)
        logits.withUnsafeMutableBufferPointer { model.head(a, from: T / 2, into: $0.baseAddress!) }
    }
    try pass() // warm up (page faults, BLAS threads)
    a.profile.enabled = true
    let t0 = Date()
    for _ in 0..<passes { try pass() }
    let total = Date().timeIntervalSince(t0) / Double(passes)
    var secs: [String: Double] = [:], gf: [String: Double] = [:]
    for part in ForwardProfile.Part.allCases {
        let s = (a.profile.seconds[part] ?? 0) / Double(passes)
        secs[part.rawValue] = s
        if let f = a.profile.flops[part], f > 0 { gf[part.rawValue] = f / Double(passes) / s / 1e9 }
    }
    return ForwardBenchmark(batch: B, context: T, passes: passes, secondsPerPass: total,
                            tokensPerSecond: Double(B * T) / total, seconds: secs, gflops: gf)
}
