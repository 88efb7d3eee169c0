// RoPE and grouped-query causal self-attention over BLAS, forward and backward. Not the KV cache
// (generation recomputes).
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

/// dx (B,T,nh,hs): the gradient w.r.t. the rotated values, turned in place into the gradient w.r.t. the
/// values before `ropeForward`. A rotation's Jacobian is the rotation, so its transpose is the inverse
/// rotation (by −angle).
public func ropeBackward(dx: UnsafeMutablePointer<Float>, table: RopeTable, B: Int, T: Int, nh: Int, hs: Int,
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
                        let d = dx + ((b * T + t) * nh + h) * hs
                        for i in 0..<half {
                            let (i0, i1) = interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                            let d0 = d[i0], d1 = d[i1]
                            d[i0] = d0 * cs[i] + d1 * sn[i]
                            d[i1] = -d0 * sn[i] + d1 * cs[i]
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
    let group = NH / NKV
    let qStride = Int32(NH * hs), kvStride = Int32(NKV * hs)
    for b in 0..<B {
        for h in 0..<NH {
            let qh = q + b * T * NH * hs + h * hs
            let kh = k + b * T * NKV * hs + (h / group) * hs
            let vh = v + b * T * NKV * hs + (h / group) * hs
            let oh = out + b * T * NH * hs + h * hs
            causalAttentionWeights(att: att, qh: qh, kh: kh, T: T, hs: hs, qStride: qStride, kvStride: kvStride)
            // out = att · v (T,hs)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(hs), Int32(T),
                        1, att, Int32(T), vh, kvStride, 0, oh, qStride)
        }
    }
}

/// att (T,T) = causal softmax(q kᵀ / √hs) of one head, zeros above the diagonal. The backward pass
/// recomputes it with this same function, so forward and backward see the same weights bit for bit.
@inline(__always)
func causalAttentionWeights(att: UnsafeMutablePointer<Float>, qh: UnsafePointer<Float>, kh: UnsafePointer<Float>,
                            T: Int, hs: Int, qStride: Int32, kvStride: Int32) {
    let scale = 1 / Float(hs).squareRoot()
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(hs),
                scale, qh, qStride, kh, kvStride, 0, att, Int32(T))
    for t in 0..<T {
        let row = att + t * T
        softmaxInPlace(row, t + 1)
        (row + t + 1).update(repeating: 0, count: T - t - 1)
    }
}

/// dout (B,T,NH,hs), q (B,T,NH,hs), k,v (B,T,NKV,hs) -> dq (B,T,NH,hs) +=, dk,dv (B,T,NKV,hs) +=.
/// scratch (2·T·T). The attention weights are recomputed per head from q and k instead of being saved
/// (saving them costs B·NH·T² floats per block, more than all the other activations at T = 512).
/// Per head, with P = softmax(S), S = q kᵀ/√hs, O = P v:
///   dP = dO vᵀ, dv += Pᵀ dO, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dq += dS k/√hs, dk += dSᵀ q/√hs.
/// Query heads of one group add into their shared kv head.
public func attentionBackward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                              scratch: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                              q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                              B: Int, T: Int, NH: Int, NKV: Int, hs: Int) {
    let scale = 1 / Float(hs).squareRoot()
    let group = NH / NKV
    let qStride = Int32(NH * hs), kvStride = Int32(NKV * hs), T32 = Int32(T), hs32 = Int32(hs)
    let P = scratch, dP = scratch + T * T
    for b in 0..<B {
        for h in 0..<NH {
            let qOff = b * T * NH * hs + h * hs, kvOff = b * T * NKV * hs + (h / group) * hs
            causalAttentionWeights(att: P, qh: q + qOff, kh: k + kvOff, T: T, hs: hs, qStride: qStride, kvStride: kvStride)
            // dP = dO vᵀ (T,T)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T32, T32, hs32,
                        1, dout + qOff, qStride, v + kvOff, kvStride, 0, dP, T32)
            // dv += Pᵀ dO (T,hs)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T32, hs32, T32,
                        1, P, T32, dout + qOff, qStride, 1, dv + kvOff, kvStride)
            // dS = P ⊙ (dP − ⟨P, dP⟩_row), in place over dP; zero above the diagonal because P is.
            for t in 0..<T {
                let p = P + t * T, d = dP + t * T
                let s = dot(p, d, t + 1)
                for u in 0...t { d[u] = p[u] * (d[u] - s) }
                (d + t + 1).update(repeating: 0, count: T - t - 1)
            }
            // dq += dS k / √hs, dk += dSᵀ q / √hs
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T32, hs32, T32,
                        scale, dP, T32, k + kvOff, kvStride, 1, dq + qOff, qStride)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T32, hs32, T32,
                        scale, dP, T32, q + qOff, qStride, 1, dk + kvOff, kvStride)
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

/// The naive twin of `attentionBackward`: explicit loops in Double, the weights recomputed per query.
public func attentionBackwardNaive(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                   dout: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                                   v: UnsafePointer<Float>, B: Int, T: Int, NH: Int, NKV: Int, hs: Int) {
    let group = NH / NKV, scale = 1 / Double(hs).squareRoot()
    var p = [Double](repeating: 0, count: T), dp = p
    for b in 0..<B {
        for t in 0..<T {
            for h in 0..<NH {
                let qi = ((b * T + t) * NH + h) * hs
                func kv(_ u: Int) -> Int { ((b * T + u) * NKV + h / group) * hs }
                var m = -Double.infinity
                for u in 0...t {
                    var s = 0.0
                    for i in 0..<hs { s += Double(q[qi + i]) * Double(k[kv(u) + i]) }
                    p[u] = s * scale
                    m = max(m, p[u])
                }
                var z = 0.0
                for u in 0...t { p[u] = Glibc.exp(p[u] - m); z += p[u] }
                var rowDot = 0.0
                for u in 0...t {
                    p[u] /= z
                    var s = 0.0
                    for i in 0..<hs { s += Double(dout[qi + i]) * Double(v[kv(u) + i]) }
                    dp[u] = s
                    rowDot += p[u] * s
                }
                for u in 0...t {
                    let ds = p[u] * (dp[u] - rowDot) * scale
                    for i in 0..<hs {
                        dv[kv(u) + i] += Float(p[u] * Double(dout[qi + i]))
                        dq[qi + i] += Float(ds * Double(k[kv(u) + i]))
                        dk[kv(u) + i] += Float(ds * Double(q[qi + i]))
                    }
                }
            }
        }
    }
}
