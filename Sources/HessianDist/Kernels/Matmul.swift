// Linear layers over OpenBLAS: the fast kernel and its naive twin (a test oracle).
import CBLAS

/// inp (N,C), weight (OC,C) -> out (N,OC) = inp · weightᵀ  (no bias: LLaMA has none)
public func matmulForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                          N: Int, C: Int, OC: Int) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(N), Int32(OC), Int32(C),
                1, inp, Int32(C), weight, Int32(C), 0, out, Int32(OC))
}

/// The naive twin of `matmulForward`, accumulating in Double.
public func matmulForwardNaive(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               N: Int, C: Int, OC: Int) {
    for n in 0..<N {
        for o in 0..<OC {
            var s = 0.0
            for c in 0..<C { s += Double(inp[n * C + c]) * Double(weight[o * C + c]) }
            out[n * OC + o] = Float(s)
        }
    }
}
