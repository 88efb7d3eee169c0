import Foundation
import Testing
@testable import HessianDist

/// SplitMix64 (the project's generator lives in Node, above this module).
struct SplitMix: RandomNumberGenerator {
    var s: UInt64
    mutating func next() -> UInt64 {
        s &+= 0x9E37_79B9_7F4A_7C15
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The estimator numerics on matrices whose traces are known exactly.
@Suite struct TraceEstimationTests {
    typealias LCG = KernelTests.LCG

    /// A random symmetric (n,n) matrix in Double.
    func symmetric(_ n: Int, seed: UInt64) -> [Double] {
        var r = LCG(s: seed)
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0...i { let x = Double(r.next()); a[i * n + j] = x; a[j * n + i] = x } }
        return a
    }

    @Test func runningMeanMatchesTheDirectFormulas() {
        let xs: [Double] = [3, -1, 4, 1, -5, 9, 2, 6]
        var m = RunningMean()
        #expect(m.standardError == .infinity)
        for x in xs { m.add(x) }
        let mean = xs.reduce(0, +) / 8, v = xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 7
        #expect(abs(m.mean - mean) < 1e-12 && abs(m.variance - v) < 1e-12)
        #expect(abs(m.standardError - (v / 8).squareRoot()) < 1e-12 && m.count == 8)
    }

    @Test func rademacherSignsAreBalancedAndSeeded() {
        var a = [Float](repeating: 0, count: 10_007), b = a
        var r1 = SplitMix(s: 42), r2 = SplitMix(s: 42)
        fillRademacher(&a, count: a.count, using: &r1)
        fillRademacher(&b, count: b.count, using: &r2)
        #expect(a == b)
        #expect(a.allSatisfy { $0 == 1 || $0 == -1 })
        let sum = a.reduce(0, +) // ~ N(0, 10007): |sum| < 4σ ≈ 400
        #expect(abs(sum) < 400, "sum of signs \(sum)")
    }

    /// The construction of the exact traces: on a quadratic ½xᵀAx + bᵀx the central-difference Hessian is
    /// A (the gradient is linear: no truncation); adding Σ xᵢ⁴/12 adds diag(xᵢ²) and the stated truncation
    /// error (ε²/6)·∂³gᵢ/∂xᵢ³ = ε²/3 on the diagonal.
    @Test func centralDifferenceHessianOfKnownFunctions() {
        let n = 12
        let A = symmetric(n, seed: 3)
        var r = LCG(s: 4)
        let b = r.array(n).map(Double.init)
        let x0 = r.array(n)
        // x lives in its own buffer: the gradient reads it while the Hessian builder perturbs it.
        let buf = FloatBuffer(count: n)
        _ = buf.buffer.update(from: x0)
        let x = buf.base
        func quadraticGradient(_ g: UnsafeMutablePointer<Double>) {
            for i in 0..<n {
                var s = b[i]
                for j in 0..<n { s += A[i * n + j] * Double(x[j]) }
                g[i] = s
            }
        }
        let H = centralDifferenceHessian(x: x, n: n, epsilon: 1e-2) { quadraticGradient($0) }
        for i in 0..<(n * n) { #expect(abs(H[i] - A[i]) < 1e-9, "entry \(i)") }
        let eps: Float = 1e-2
        let Hq = centralDifferenceHessian(x: x, n: n, epsilon: eps) { g in
            quadraticGradient(g)
            for i in 0..<n { g[i] += pow(Double(x[i]), 3) / 3 }
        }
        #expect(buf.toArray() == x0, "x restored exactly")
        for i in 0..<n {
            for j in 0..<n where i != j { #expect(abs(Hq[i * n + j] - A[i * n + j]) < 1e-9) }
            let truncation = Hq[i * n + i] - A[i * n + i] - Double(x[i] * x[i])
            #expect(abs(truncation - Double(eps * eps) / 3) < 1e-3 * Double(eps * eps), "diagonal \(i): \(truncation)")
        }
    }

    /// Hutchinson on a block matrix with exact products: each block's estimate is within 3 standard errors
    /// of its exact trace, the standard error is what the variance formula for Rademacher probes predicts,
    /// and a diagonal decoupled block (v_bᵀ(Av)_b = tr A_bb for every probe) is exact and stops at `minProbes`.
    @Test func hutchinsonOnAKnownMatrix() {
        let sizes = [5, 9, 14], n = sizes.reduce(0, +)
        var A = symmetric(n, seed: 8)
        for i in 0..<n { A[i * n + i] += 2 } // a trace well away from zero
        // Block 0: diagonal and decoupled from the others (a coupling would add variance to its samples).
        for i in 0..<5 { for j in 0..<n where i != j { A[i * n + j] = 0; A[j * n + i] = 0 } }
        let starts = [0, 5, 14]
        var est = HutchinsonTrace(names: ["a", "b", "c"], options: .init(maxProbes: 400, relativeTolerance: 1e-12, minProbes: 10))
        var v = [Float](repeating: 0, count: n)
        var gen = SplitMix(s: 1)
        while est.needsProbe {
            fillRademacher(&v, count: n, using: &gen)
            var Av = [Double](repeating: 0, count: n)
            for i in 0..<n { for j in 0..<n { Av[i] += A[i * n + j] * Double(v[j]) } }
            est.add(sizes.indices.map { b in (starts[b]..<(starts[b] + sizes[b])).reduce(0.0) { $0 + Double(v[$1]) * Av[$1] } })
        }
        #expect(est.probes == 400)
        for (b, e) in est.estimates.enumerated() {
            let r = starts[b]..<(starts[b] + sizes[b])
            let exact = r.reduce(0.0) { $0 + A[$1 * n + $1] }
            if b == 0 {
                #expect(abs(e.mean - exact) < 1e-9 && e.standardError < 1e-9, "diagonal block is exact")
                #expect(e.converged && e.samples == 10, "stops at minProbes: \(e.samples)")
            } else {
                #expect(abs(e.mean - exact) < 3 * e.standardError, "\(e.name): \(e.mean) ± \(e.standardError) vs \(exact)")
                // Var(v_bᵀ(Av)_b) = 2 Σ_{i≠j in b} A_ij² + Σ_{i in b, j∉b} A_ij² (Rademacher).
                var variance = 0.0
                for i in r { for j in 0..<n where j != i { variance += (r.contains(j) ? 2 : 1) * A[i * n + j] * A[i * n + j] } }
                let predicted = (variance / 400).squareRoot()
                #expect(abs(e.standardError / predicted - 1) < 0.2, "\(e.name): stderr \(e.standardError) vs predicted \(predicted)")
                #expect(!e.converged && e.samples == 400)
            }
        }
    }

    @Test func pyHessianStopRuleFreezesEachTensor() {
        var est = HutchinsonTrace(names: ["steady", "noisy"], options: .init(maxProbes: 50, relativeTolerance: 1e-3, minProbes: 3))
        let noisy: [Double] = [1, -1, 3, -2, 5, -4, 7]
        for i in 0..<7 { est.add([10, noisy[i]]) }
        let e = est.estimates
        #expect(e[0].converged && e[0].samples == 3 && e[0].mean == 10)
        #expect(!e[1].converged && e[1].samples == 7 && est.needsProbe)
        var capped = HutchinsonTrace(names: ["x"], options: .init(maxProbes: 2, relativeTolerance: 0, minProbes: 1))
        capped.add([1]); capped.add([2])
        #expect(!capped.needsProbe && capped.estimates[0].samples == 2)
    }

    @Test func symmetricEigenvaluesOfAKnownMatrix() throws {
        // Q diag(-3, 1, 2, 7) Qᵀ with Q a Givens rotation pair.
        let c = cos(0.3), s = sin(0.3)
        let Q: [Double] = [c, -s, 0, 0, s, c, 0, 0, 0, 0, c, s, 0, 0, -s, c]
        let d: [Double] = [-3, 1, 2, 7]
        var M = [Double](repeating: 0, count: 16)
        for i in 0..<4 { for j in 0..<4 { for k in 0..<4 { M[i * 4 + j] += Q[i * 4 + k] * d[k] * Q[j * 4 + k] } } }
        let w = try #require(symmetricEigenvalues(M, n: 4))
        for i in 0..<4 { #expect(abs(w[i] - d[i]) < 1e-12) }
    }
}
