import Foundation
import Testing
@testable import HessianDist

/// Each fast kernel against its naive twin on odd shapes.
@Suite struct KernelTests {
    struct LCG {
        var s: UInt64
        mutating func next() -> Float {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: s >> 11) % 2_000_001 - 1_000_000) / 1_000_000
        }
        mutating func array(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
    }

    @Test(arguments: [(1, 1, 1), (7, 13, 5), (33, 64, 17), (5, 576, 192)])
    func matmulMatchesNaive(_ shape: (Int, Int, Int)) {
        let (N, C, OC) = shape
        var r = LCG(s: UInt64(N * 1000 + C))
        let x = r.array(N * C), w = r.array(OC * C)
        var fast = [Float](repeating: 0, count: N * OC), slow = fast
        matmulForward(out: &fast, inp: x, weight: w, N: N, C: C, OC: OC)
        matmulForwardNaive(out: &slow, inp: x, weight: w, N: N, C: C, OC: OC)
        for i in 0..<fast.count { #expect(abs(fast[i] - slow[i]) <= 1e-5 * Float(C)) }
    }

    @Test(arguments: [(1, 1, 1, 1, 2), (2, 7, 4, 2, 6), (1, 19, 9, 3, 8)])
    func attentionMatchesNaive(_ s: (Int, Int, Int, Int, Int)) {
        let (B, T, NH, NKV, hs) = s
        var r = LCG(s: UInt64(T * 31 + NH))
        let q = r.array(B * T * NH * hs).map { $0 * 3 }, k = r.array(B * T * NKV * hs).map { $0 * 3 }
        let v = r.array(B * T * NKV * hs)
        var fast = [Float](repeating: 0, count: B * T * NH * hs), slow = fast
        var att = [Float](repeating: 0, count: T * T)
        attentionForward(out: &fast, att: &att, q: q, k: k, v: v, B: B, T: T, NH: NH, NKV: NKV, hs: hs)
        attentionForwardNaive(out: &slow, q: q, k: k, v: v, B: B, T: T, NH: NH, NKV: NKV, hs: hs)
        for i in 0..<fast.count { #expect(abs(fast[i] - slow[i]) < 1e-5, "index \(i)") }
    }

    @Test func vectorExpIsAccurate() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let e = vexp(SIMD8(repeating: x))[0], ref = Float(exp(Double(x)))
            worst = max(worst, abs(e - ref) / ref)
            x += 0.0137
        }
        #expect(worst < 5e-7, "worst relative error \(worst)")
        #expect(vexp(SIMD8(repeating: -Float.infinity))[0] == 0)
        #expect(vexp(SIMD8(repeating: 0))[0] == 1)
    }

    @Test func rmsnormAndSoftmaxSmallCases() {
        var out = [Float](repeating: 0, count: 3)
        rmsnormForward(out: &out, rstd: nil, inp: [3, 4, 0], weight: [1, 2, 1], N: 1, C: 3, eps: 0)
        let r = 1 / (25.0 / 3).squareRoot()
        #expect(abs(out[0] - Float(3 * r)) < 1e-6 && abs(out[1] - Float(8 * r)) < 1e-6 && out[2] == 0)
        var s: [Float] = [0, log(3)]
        let lse = softmaxInPlace(&s, 2)
        #expect(abs(s[0] - 0.25) < 1e-6 && abs(s[1] - 0.75) < 1e-6 && abs(lse - log(4)) < 1e-6)
        #expect(abs(logSumExp([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17], 17) - 17.458675104) < 1e-5)
    }
}
