// RoPE and grouped-query causal self-attention over BLAS. Not the KV cache (generation recomputes).
import CBLAS
#if canImport(Glibc)
import Glibc
#endif

/// cos/sin of position p times frequency i: tables (T, hs/2), freq_i = theta^(-2i/hs).
public struct RopeTable: Sendable {
    public let T: Int
    public let half: Int
    public let cos: [Float]
    public let sin: [Float]

    public init(T: Int, headDim: Int, theta: Float) {
        self.T = T
        half = headDim / 2
        var c = [Float](repeating: 0, count: T * half), s = c
        for i in 0..<half {
            // In Double, then rounded once: matches ggml's float recurrence to ~1e-6 over 8k positions.
            let f = pow(Double(theta), -2.0 * Double(i) / Double(headDim))
            for p in 0..<T {
                let a = Double(p) * f
                c[p * half + i] = Float(Foundation_cos(a))
                s[p * half + i] = Float(Foundation_sin(a))
            }
        }
        cos = c
        sin = s
    }
}

@inline(__always) private func Foundation_cos(_ x: Double) -> Double { Glibc.cos(x) }
@inline(__always) private func Foundation_sin(_ x: Double) -> Double { Glibc.sin(x) }

/// x (B,T,nh,hs) rotated in place at positions offset..<offset+T; `interleaved` pairs (2i,2i+1), else (i, i+hs/2).
public func ropeForward(x: UnsafeMutablePointer<Float>, table: RopeTable, B: Int, T: Int, nh: Int, hs: Int,
                        interleaved: Bool, positionOffset: Int = 0) {
    precondition(positionOffset + T <= table.T && hs / 2 == table.half)
    let half = hs / 2
    table.cos.withUnsafeBufferPointer { cosT in
        table.sin.withUnsafeBufferPointer { sinT in
            for b in 0..<B {
                for t in 0..<T {
                    let p = positionOffset + t
                    let cs = cosT.baseAddress! + p * half, sn = sinT.baseAddress! + p * half
                    for h in 0..<nh {
                        let v = x + ((b * T + t) * nh + h) * hs
                        for i in 0..<half {
                            let (i0, i1) = interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                            let a = v[i0], c = v[i1]
                            v[i0] = a * cs[i] - c * sn[i]
                            v[i1] = a * sn[i] + c * cs[i]
                        }
                    }
                }
            }
        }
    }
}

/// Causal GQA attention.
/// q (B,T,NH,hs), k (B,T,NKV,hs), v (B,T,NKV,hs) -> out (B,T,NH,hs); att (T,T) scratch per head.
/// Query head h reads kv head h / (NH/NKV), as llama.cpp and HF's repeat_kv.
public func attentionForward(out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
                             q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                             B: Int, T: Int, NH: Int, NKV: Int, hs: Int) {
    let scale = 1 / Float(hs).squareRoot()
    let group = NH / NKV
    let qStride = Int32(NH * hs), kvStride = Int32(NKV * hs)
    for b in 0..<B {
        for h in 0..<NH {
            let qh = q + b * T * NH * hs + h * hs
            let kh = k + b * T * NKV * hs + (h / group) * hs
            let vh = v + b * T * NKV * hs + (h / group) * hs
            let oh = out + b * T * NH * hs + h * hs
            // att = scale · q kᵀ (T,T); only the lower triangle is used.
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(hs),
                        scale, qh, qStride, kh, kvStride, 0, att, Int32(T))
            for t in 0..<T {
                let row = att + t * T
                softmaxInPlace(row, t + 1)
                (row + t + 1).update(repeating: 0, count: T - t - 1)
            }
            // out = att · v (T,hs)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                        1, att, Int32(T), vh, kvStride, 0, oh, qStride)
        }
    }
}

/// The naive twin of `attentionForward` (Double accumulation, explicit loops).
public func attentionForwardNaive(out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                                  v: UnsafePointer<Float>, B: Int, T: Int, NH: Int, NKV: Int, hs: Int) {
    let group = NH / NKV
    var w = [Double](repeating: 0, count: T)
    for b in 0..<B {
        for t in 0..<T {
            for h in 0..<NH {
                let qv = q + ((b * T + t) * NH + h) * hs
                var m = -Double.infinity
                for u in 0...t {
                    let kv = k + ((b * T + u) * NKV + h / group) * hs
                    var s = 0.0
                    for i in 0..<hs { s += Double(qv[i]) * Double(kv[i]) }
                    w[u] = s / Double(hs).squareRoot()
                    m = max(m, w[u])
                }
                var z = 0.0
                for u in 0...t { w[u] = Glibc.exp(w[u] - m); z += w[u] }
                let o = out + ((b * T + t) * NH + h) * hs
                for i in 0..<hs {
                    var s = 0.0
                    for u in 0...t { s += w[u] / z * Double(v[((b * T + u) * NKV + h / group) * hs + i]) }
                    o[i] = Float(s)
                }
            }
        }
    }
}
