import Foundation
import Testing
@testable import HessianDist

/// Every backward kernel against central finite differences of its forward kernel, and the fast
/// backward kernels against their naive twins. Each check uses the scalar L = Σ out ⊙ R for a random R
/// (summed in Double), so dout = R and ∂L/∂input is what the backward kernel must produce.
@Suite struct KernelBackwardTests {
    typealias LCG = KernelTests.LCG

    /// ∂L/∂x by central differences over every entry of `x`, dividing by the step actually taken in
    /// Float (x ± ε rounds), so only the O(ε²) truncation and the forward's rounding remain.
    func centralDifferences(_ x: [Float], eps: Float, _ L: ([Float]) -> Double) -> [Double] {
        var y = x
        return (0..<x.count).map { i in
            let xp = x[i] + eps, xm = x[i] - eps
            y[i] = xp
            let lp = L(y)
            y[i] = xm
            let lm = L(y)
            y[i] = x[i]
            return (lp - lm) / Double(xp - xm)
        }
    }

    /// max |analytic − fd| / max |fd| must stay under `tol`; reports the worst index.
    func expectClose(_ analytic: [Float], _ fd: [Double], tol: Double, _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(analytic.count == fd.count, sourceLocation: sourceLocation)
        let scale = max(fd.map { abs($0) }.max() ?? 0, 1e-12)
        var worst = 0.0, at = 0
        for i in 0..<fd.count where abs(Double(analytic[i]) - fd[i]) > worst { worst = abs(Double(analytic[i]) - fd[i]); at = i }
        #expect(worst / scale < tol, "\(what): max |Δ| / max |fd| = \(worst / scale) at \(at) (\(analytic[at]) vs \(fd[at]))",
                sourceLocation: sourceLocation)
        #expect(scale > 1e-6, "\(what): a vanishing gradient proves nothing", sourceLocation: sourceLocation)
    }

    func weighted(_ out: [Float], _ r: [Float]) -> Double {
        var s = 0.0
        for i in 0..<out.count { s += Double(out[i]) * Double(r[i]) }
        return s
    }

    @Test(arguments: [(1, 1, 1), (3, 5, 4), (7, 13, 9)])
    func matmulBackwardMatchesFiniteDifferencesAndNaive(_ shape: (Int, Int, Int)) {
        let (N, C, OC) = shape
        var r = LCG(s: UInt64(N * 77 + C * 5 + OC))
        let x = r.array(N * C), w = r.array(OC * C), R = r.array(N * OC)
        // Start from non-zero gradients: the kernels accumulate.
        let dx0 = r.array(N * C), dw0 = r.array(OC * C)
        var dx = dx0, dw = dw0, dxN = dx0, dwN = dw0
        matmulBackward(dinp: &dx, dweight: &dw, dout: R, inp: x, weight: w, N: N, C: C, OC: OC)
        matmulBackwardNaive(dinp: &dxN, dweight: &dwN, dout: R, inp: x, weight: w, N: N, C: C, OC: OC)
        for i in 0..<dx.count { #expect(abs(dx[i] - dxN[i]) < 1e-5) }
        for i in 0..<dw.count { #expect(abs(dw[i] - dwN[i]) < 1e-5) }
        func L(_ x: [Float], _ w: [Float]) -> Double {
            var out = [Float](repeating: 0, count: N * OC)
            matmulForward(out: &out, inp: x, weight: w, N: N, C: C, OC: OC)
            return weighted(out, R)
        }
        // L is linear in each argument: a large step has no truncation error.
        expectClose(zip(dx, dx0).map { $0 - $1 }, centralDifferences(x, eps: 0.25) { L($0, w) }, tol: 1e-5, "dinp")
        expectClose(zip(dw, dw0).map { $0 - $1 }, centralDifferences(w, eps: 0.25) { L(x, $0) }, tol: 1e-5, "dweight")
    }

    // Not C = 1: there y ≈ sign(x)·w and dx ~ eps/|x|³ vanishes under the forward's rounding.
    @Test(arguments: [(1, 2), (3, 7), (4, 24)])
    func rmsnormBackwardMatchesFiniteDifferences(_ shape: (Int, Int)) {
        let (N, C) = shape
        var r = LCG(s: UInt64(N * 31 + C))
        let x = r.array(N * C).map { $0 * 2 }, w = r.array(C).map { 1 + $0 / 2 }, R = r.array(N * C)
        let eps: Float = 1e-5
        var out = [Float](repeating: 0, count: N * C), rstd = [Float](repeating: 0, count: N)
        rmsnormForward(out: &out, rstd: &rstd, inp: x, weight: w, N: N, C: C, eps: eps)
        var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C)
        rmsnormBackward(dinp: &dx, dweight: &dw, dout: R, inp: x, weight: w, rstd: rstd, N: N, C: C)
        func L(_ x: [Float], _ w: [Float]) -> Double {
            var o = [Float](repeating: 0, count: N * C)
            rmsnormForward(out: &o, rstd: nil, inp: x, weight: w, N: N, C: C, eps: eps)
            return weighted(o, R)
        }
        expectClose(dx, centralDifferences(x, eps: 1e-2) { L($0, w) }, tol: 2e-3, "dinp")
        expectClose(dw, centralDifferences(w, eps: 0.25) { L(x, $0) }, tol: 1e-5, "dweight")
    }

    @Test(arguments: [1, 7, 8, 29])
    func swigluBackwardMatchesFiniteDifferences(_ count: Int) {
        var r = LCG(s: UInt64(count))
        // Gates over a wide range: both tails of the sigmoid and the SIMD and scalar paths.
        let g = r.array(count).map { $0 * 6 }, u = r.array(count), R = r.array(count)
        var dg = [Float](repeating: 0, count: count), du = dg
        swigluBackward(dgate: &dg, dup: &du, dout: R, gate: g, up: u, count: count)
        func L(_ g: [Float], _ u: [Float]) -> Double {
            var o = [Float](repeating: 0, count: count)
            swigluForward(out: &o, gate: g, up: u, count: count)
            return weighted(o, R)
        }
        expectClose(dg, centralDifferences(g, eps: 1e-2) { L($0, u) }, tol: 2e-3, "dgate")
        expectClose(du, centralDifferences(u, eps: 0.25) { L(g, $0) }, tol: 1e-5, "dup")
    }

    @Test(arguments: [true, false])
    func ropeBackwardIsTheTransposedRotation(_ interleaved: Bool) {
        let B = 2, T = 5, nh = 3, hs = 6, offset = 3
        let table = RopeTable(T: 16, headDim: hs, theta: 100)
        var r = LCG(s: interleaved ? 1 : 2)
        let x = r.array(B * T * nh * hs), R = r.array(B * T * nh * hs)
        var dx = R
        ropeBackward(dx: &dx, table: table, B: B, T: T, nh: nh, hs: hs, interleaved: interleaved, positionOffset: offset)
        let fd = centralDifferences(x, eps: 0.25) { x in
            var y = x
            ropeForward(x: &y, table: table, B: B, T: T, nh: nh, hs: hs, interleaved: interleaved, positionOffset: offset)
            return weighted(y, R)
        }
        expectClose(dx, fd, tol: 1e-5, "dx")
        // The inverse rotation undoes the rotation.
        var y = x
        ropeForward(x: &y, table: table, B: B, T: T, nh: nh, hs: hs, interleaved: interleaved, positionOffset: offset)
        ropeBackward(dx: &y, table: table, B: B, T: T, nh: nh, hs: hs, interleaved: interleaved, positionOffset: offset)
        for i in 0..<x.count { #expect(abs(y[i] - x[i]) < 1e-6) }
    }

    @Test(arguments: [(1, 1, 1, 1, 2), (2, 5, 4, 2, 4), (1, 7, 3, 1, 6)])
    func attentionBackwardMatchesFiniteDifferencesAndNaive(_ s: (Int, Int, Int, Int, Int)) {
        let (B, T, NH, NKV, hs) = s
        var r = LCG(s: UInt64(T * 13 + NH * 3 + hs))
        let q = r.array(B * T * NH * hs).map { $0 * 2 }, k = r.array(B * T * NKV * hs).map { $0 * 2 }
        let v = r.array(B * T * NKV * hs), R = r.array(B * T * NH * hs)
        var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count), dv = dk
        var scratch = [Float](repeating: 0, count: 2 * T * T)
        attentionBackward(dq: &dq, dk: &dk, dv: &dv, scratch: &scratch, dout: R, q: q, k: k, v: v,
                          B: B, T: T, NH: NH, NKV: NKV, hs: hs)
        var dqN = [Float](repeating: 0, count: q.count), dkN = [Float](repeating: 0, count: k.count), dvN = dkN
        attentionBackwardNaive(dq: &dqN, dk: &dkN, dv: &dvN, dout: R, q: q, k: k, v: v, B: B, T: T, NH: NH, NKV: NKV, hs: hs)
        for (a, b) in [(dq, dqN), (dk, dkN), (dv, dvN)] {
            for i in 0..<a.count { #expect(abs(a[i] - b[i]) < 1e-5, "fast vs naive at \(i)") }
        }
        func L(_ q: [Float], _ k: [Float], _ v: [Float]) -> Double {
            var out = [Float](repeating: 0, count: q.count), att = [Float](repeating: 0, count: T * T)
            attentionForward(out: &out, att: &att, q: q, k: k, v: v, B: B, T: T, NH: NH, NKV: NKV, hs: hs)
            return weighted(out, R)
        }
        // With T = 1 the weights are identically 1: dq and dk vanish (checked against naive above).
        if T > 1 {
            expectClose(dq, centralDifferences(q, eps: 1e-2) { L($0, k, v) }, tol: 2e-3, "dq")
            expectClose(dk, centralDifferences(k, eps: 1e-2) { L(q, $0, v) }, tol: 2e-3, "dk")
        }
        expectClose(dv, centralDifferences(v, eps: 0.25) { L(q, k, $0) }, tol: 1e-5, "dv")
    }

    @Test func crossEntropyBackwardMatchesFiniteDifferences() {
        let N = 5, V = 11
        var r = LCG(s: 99)
        let logits = r.array(N * V).map { $0 * 4 }
        let targets: [Int32] = [3, 0, -1, 10, 7] // position 2 has no label
        let dl = r.array(N)
        func losses(_ z: [Float]) -> [Float] {
            var l = [Float](repeating: 0, count: N), p = [Float](repeating: 0, count: N * V)
            crossEntropyForward(losses: &l, probs: &p, logits: z, targets: targets, N: N, V: V)
            return l
        }
        // In place (probs over logits) gives the same losses and probabilities.
        var inPlace = logits, lIn = [Float](repeating: 0, count: N), probs = [Float](repeating: 0, count: N * V)
        var l = lIn
        crossEntropyForward(losses: &l, probs: &probs, logits: logits, targets: targets, N: N, V: V)
        inPlace.withUnsafeMutableBufferPointer { z in
            crossEntropyForward(losses: &lIn, probs: z.baseAddress!, logits: z.baseAddress!, targets: targets, N: N, V: V)
        }
        #expect(l == lIn && probs == inPlace)
        #expect(l[2] == 0)
        // Against a Double log-sum-exp.
        for n in 0..<N where targets[n] >= 0 {
            let row = logits[(n * V)..<((n + 1) * V)].map(Double.init)
            let m = row.max()!, lse = m + Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +))
            #expect(abs(Double(l[n]) - (lse - row[Int(targets[n])])) < 1e-5)
        }
        var dz = [Float](repeating: 0, count: N * V)
        crossEntropyBackward(dlogits: &dz, dlosses: dl, probs: probs, targets: targets, N: N, V: V)
        expectClose(dz, centralDifferences(logits, eps: 1e-2) { weighted(losses($0), dl) }, tol: 2e-3, "dlogits")
        for i in (2 * V)..<(3 * V) { #expect(dz[i] == 0) }
    }

    @Test func embeddingBackwardScattersIntoTokenRows() {
        let N = 6, C = 3, V = 5
        var r = LCG(s: 5)
        let w = r.array(V * C), R = r.array(N * C)
        let tokens: [Int32] = [4, 1, 4, 0, 2, 4] // repeats accumulate
        var dw = [Float](repeating: 0, count: V * C)
        embeddingBackward(dweight: &dw, dout: R, tokens: tokens, N: N, C: C)
        let fd = centralDifferences(w, eps: 0.25) { w in
            var out = [Float](repeating: 0, count: N * C)
            embeddingForward(out: &out, tokens: tokens, weight: w, N: N, C: C)
            return weighted(out, R)
        }
        expectClose(dw, fd, tol: 1e-5, "dweight")
        for c in 0..<C { #expect(dw[3 * C + c] == 0) }
    }
}
