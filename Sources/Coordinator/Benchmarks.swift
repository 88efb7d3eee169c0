// Measurements behind scripts/bench-*.sh: the sgemm ceiling on this machine and the forward pass
// split by kernel family. Numbers only; the scripts record them in BENCHMARKS.md.
import Foundation
import HessianDist
import Node

public struct GemmMeasurement: Codable, Sendable {
    public var m: Int, n: Int, k: Int
    public var gflops: Double
    /// OpenBLAS's kernel family in this process (the number depends on it; see BLASCore).
    public var core: String
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
    return GemmMeasurement(m: M, n: N, k: K, gflops: 2 * Double(M * N * K) / best / 1e9, core: BLASCore.name)
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

/// One GPTQ module shape timed by phase, beside the cost model (`GPTQ.flops`).
public struct GPTQBenchmark: Codable, Sendable {
    public var rows: Int, cols: Int, tokens: Int
    public var grid: String
    /// Seconds per phase: accumulate XᵀX over `tokens` rows (in micro-batches of 2048), then `GPTQ.solve`'s
    /// prepare, invert (damping + three factorizations), sweep, metrics (RTN baseline and both errors).
    public var seconds: [String: Double]
    /// Cost-model FLOPs / measured seconds, for accumulate, invert and sweep.
    public var gflops: [String: Double]
}

/// Times accumulation and a GPTQ solve for a (rows, cols) layer over `tokens` synthetic calibration rows
/// (correlated Gaussian inputs, so H is dense and well conditioned like a real one).
public func benchmarkGPTQ(rows: Int, cols: Int, tokens: Int, grid: any QuantGrid, gridName: String,
                          blockSize: Int = 128, refitScales: Bool = false) throws -> GPTQBenchmark {
    var state: UInt64 = 0x5EED
    func uniform() -> Float {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Float((z ^ (z >> 31)) >> 40) * 0x1p-24 - 0.5
    }
    let chunk = 2048
    // Inputs: a shared component plus noise per column, scaled per column (like activations' channel scales).
    let colScale = (0..<cols).map { _ in 0.2 + 2 * abs(uniform()) }
    let x = FloatBuffer(count: chunk * cols)
    let h = LayerHessian(columns: cols)
    var accumulate = 0.0
    var done = 0
    while done < tokens {
        let n = min(chunk, tokens - done)
        for r in 0..<n {
            let shared = uniform()
            for c in 0..<cols { x.base[r * cols + c] = colScale[c] * (shared + uniform()) }
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        h.accumulate(x.base, rows: n)
        accumulate += Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        done += n
    }
    let W = (0..<(rows * cols)).map { _ in uniform() * 0.1 }
    let r = try GPTQ(blockSize: blockSize, refitScales: refitScales).solve(W: W, rows: rows, cols: cols, H: h, grid: grid)
    let f = GPTQ.flops(rows: rows, cols: cols, tokens: tokens)
    let s = r.seconds
    return GPTQBenchmark(rows: rows, cols: cols, tokens: tokens, grid: gridName,
                         seconds: ["accumulate": accumulate, "prepare": s.prepare, "invert": s.invert,
                                   "sweep": s.sweep, "refit": s.refit, "metrics": s.metrics],
                         gflops: ["accumulate": f.accumulate / accumulate / 1e9, "invert": f.invert / s.invert / 1e9,
                                  "sweep": f.sweep / s.sweep / 1e9])
}
