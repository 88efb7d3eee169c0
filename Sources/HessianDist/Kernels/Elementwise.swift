// Row-wise and elementwise kernels of the LLaMA block and their backward passes: RMSNorm, SwiGLU,
// residual add, softmax.
// Vectorised with SIMD8 and several accumulators: Swift will not reassociate scalar float sums.
#if canImport(Glibc)
import Glibc
#endif

/// Σ a·b over n floats, vectorised.
@inline(__always)
public func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0 = SIMD8<Float>(), s1 = SIMD8<Float>()
    var i = 0
    while i + 16 <= n {
        s0 += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
        s1 += UnsafeRawPointer(a + i + 8).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(b + i + 8).loadUnaligned(as: SIMD8<Float>.self)
        i += 16
    }
    var s = (s0 + s1).sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// inp (N,C), weight (C) -> out (N,C) = inp / sqrt(mean(inp²) + eps) * weight; rstd (N) saved for backward.
public func rmsnormForward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>?, inp: UnsafePointer<Float>,
                           weight: UnsafePointer<Float>, N: Int, C: Int, eps: Float) {
    for n in 0..<N {
        let x = inp + n * C, o = out + n * C
        let ms = dot(x, x, C) / Float(C)
        let r = 1 / (ms + eps).squareRoot()
        rstd?[n] = r
        for c in 0..<C { o[c] = x[c] * r * weight[c] }
    }
}

/// dout (N,C), inp (N,C), weight (C), rstd (N) -> dinp (N,C) +=, dweight (C) +=.
/// With y = x·r·w and r = (mean(x²) + eps)^(-1/2): dx = r·(dy⊙w) − x·r³·⟨dy⊙w, x⟩/C, dw += Σₙ dy⊙x·r.
public func rmsnormBackward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>?,
                            dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            rstd: UnsafePointer<Float>, N: Int, C: Int) {
    for n in 0..<N {
        let x = inp + n * C, dy = dout + n * C, dx = dinp + n * C
        let r = rstd[n]
        // ⟨dy⊙w, x⟩ in Double: it is a difference of terms of either sign.
        var proj = 0.0
        for c in 0..<C { proj += Double(dy[c] * weight[c]) * Double(x[c]) }
        let k = Float(proj / Double(C)) * r * r
        for c in 0..<C { dx[c] += r * (dy[c] * weight[c] - x[c] * k) }
        if let dweight { for c in 0..<C { dweight[c] += dy[c] * x[c] * r } }
    }
}

/// gate (N,H), up (N,H) -> out (N,H) = silu(gate) * up.
public func swigluForward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count {
        let g = UnsafeRawPointer(gate + i).loadUnaligned(as: SIMD8<Float>.self)
        let u = UnsafeRawPointer(up + i).loadUnaligned(as: SIMD8<Float>.self)
        let s = g / (1 + vexp(-g))
        UnsafeMutableRawPointer(out + i).storeBytes(of: s * u, as: SIMD8<Float>.self)
        i += 8
    }
    while i < count {
        let g = gate[i]
        out[i] = g / (1 + expf(-g)) * up[i]
        i += 1
    }
}

/// dout (N,H), gate (N,H), up (N,H) -> dgate (N,H) +=, dup (N,H) +=.
/// silu(g) = g·σ(g), silu'(g) = σ(g)·(1 + g·(1 − σ(g))).
public func swigluBackward(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                           gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count {
        let g = UnsafeRawPointer(gate + i).loadUnaligned(as: SIMD8<Float>.self)
        let u = UnsafeRawPointer(up + i).loadUnaligned(as: SIMD8<Float>.self)
        let d = UnsafeRawPointer(dout + i).loadUnaligned(as: SIMD8<Float>.self)
        let s = 1 / (1 + vexp(-g))
        let dg = UnsafeRawPointer(dgate + i).loadUnaligned(as: SIMD8<Float>.self) + d * u * s * (1 + g * (1 - s))
        let du = UnsafeRawPointer(dup + i).loadUnaligned(as: SIMD8<Float>.self) + d * g * s
        UnsafeMutableRawPointer(dgate + i).storeBytes(of: dg, as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(dup + i).storeBytes(of: du, as: SIMD8<Float>.self)
        i += 8
    }
    while i < count {
        let g = gate[i], s = 1 / (1 + expf(-g))
        dgate[i] += dout[i] * up[i] * s * (1 + g * (1 - s))
        dup[i] += dout[i] * g * s
        i += 1
    }
}

/// x (count) += y (count): the residual connection.
public func residualAdd(x: UnsafeMutablePointer<Float>, y: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count {
        let a = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
        let b = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(x + i).storeBytes(of: a + b, as: SIMD8<Float>.self)
        i += 8
    }
    while i < count { x[i] += y[i]; i += 1 }
}

/// In place over `n` values: x = exp(x - max) / Σ; returns log Σ exp(x - max) + max (the log-partition).
@discardableResult
public func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int) -> Double {
    let m = vmax(x, n)
    var s0 = SIMD8<Float>(), i = 0
    let mv = SIMD8<Float>(repeating: m)
    while i + 8 <= n {
        let e = vexp(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) - mv)
        UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: SIMD8<Float>.self)
        s0 += e
        i += 8
    }
    var s = Double(s0.sum())
    while i < n { let e = expf(x[i] - m); x[i] = e; s += Double(e); i += 1 }
    let inv = Float(1 / s)
    i = 0
    while i + 8 <= n {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) * inv
        UnsafeMutableRawPointer(x + i).storeBytes(of: v, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { x[i] *= inv; i += 1 }
    return log(s) + Double(m)
}

/// log Σ exp(x) over `n` values without writing (for cross-entropy over a vocabulary).
public func logSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
    let m = vmax(x, n)
    var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), i = 0
    let mv = SIMD8<Float>(repeating: m)
    while i + 16 <= n {
        s0 += vexp(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) - mv)
        s1 += vexp(UnsafeRawPointer(x + i + 8).loadUnaligned(as: SIMD8<Float>.self) - mv)
        i += 16
    }
    var s = Double((s0 + s1).sum())
    while i < n { s += Double(expf(x[i] - m)); i += 1 }
    return log(s) + Double(m)
}

/// exp on 8 lanes: Cody–Waite range reduction and a degree-6 polynomial (max relative error ≈ 2e-7),
/// because expf per element dominates attention softmax otherwise. Rounding and float→int go through
/// the 1.5·2²³ trick: Swift's generic SIMD conversions and `.rounded` become per-lane library calls.
@inline(__always)
public func vexp(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let xc = x.clamped(lowerBound: SIMD8(repeating: -87.3), upperBound: SIMD8(repeating: 88.7))
    let log2e: Float = 1.44269504088896341
    let magic = SIMD8<Float>(repeating: 12582912) // 1.5 · 2²³: adding it rounds to an integer in the low bits
    let t = xc * log2e + magic
    let n = t - magic
    // ln2 split into a part exact in float and the rest.
    let r = xc - n * 0.693359375 + n * 2.12194440e-4
    var p = SIMD8<Float>(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * r * r + r + 1
    let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000
    let scale = unsafeBitCast((ni &+ 127) &<< 23, to: SIMD8<Float>.self)
    // Below the clamp the true value underflows: give exact zeros (masked softmax entries are -inf).
    return (p * scale).replacing(with: 0, where: x .< -87.3)
}

/// max over `n` values, 8 lanes at a time.
@inline(__always)
func vmax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var m8 = SIMD8<Float>(repeating: -.infinity), i = 0
    while i + 8 <= n {
        m8 = pointwiseMax(m8, UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self))
        i += 8
    }
    var m = m8.max()
    while i < n { m = Swift.max(m, x[i]); i += 1 }
    return m
}
