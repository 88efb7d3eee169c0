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

/// dout (N,OC), inp (N,C), weight (OC,C) -> dinp (N,C) += dout · weight, dweight (OC,C) += doutᵀ · inp.
/// Either output may be nil (no gradient wanted: token ids upstream, or a frozen weight).
public func matmulBackward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                           dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                           N: Int, C: Int, OC: Int) {
    if let dinp {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(C), Int32(OC),
                    1, dout, Int32(OC), weight, Int32(C), 1, dinp, Int32(C))
    }
    if let dweight {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(OC), Int32(C), Int32(N),
                    1, dout, Int32(OC), inp, Int32(C), 1, dweight, Int32(C))
    }
}

/// The naive twin of `matmulBackward`, accumulating in Double.
public func matmulBackwardNaive(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                                dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                N: Int, C: Int, OC: Int) {
    if let dinp {
        for n in 0..<N {
            for c in 0..<C {
                var s = 0.0
                for o in 0..<OC { s += Double(dout[n * OC + o]) * Double(weight[o * C + c]) }
                dinp[n * C + c] += Float(s)
            }
        }
    }
    if let dweight {
        for o in 0..<OC {
            for c in 0..<C {
                var s = 0.0
                for n in 0..<N { s += Double(dout[n * OC + o]) * Double(inp[n * C + c]) }
                dweight[o * C + c] += Float(s)
            }
        }
    }
}
