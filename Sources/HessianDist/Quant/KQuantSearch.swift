// The scale searches of ggml's K-quants (ggml-quants.c `make_qkx2_quants`, `make_qx_quants` with
// rmse_type 1, `make_q3_quants` with do_rmse), rewritten in Swift operation for operation: same loop
// order, same float expression order, int -> float conversions where C promotes, no FMA. Not the block
// layouts: `Q2KBlock`, `Q3KBlock`, `Q4KBlock`, `Q5KBlock`, `Q6KBlock` call these.

/// ggml's `GROUP_MAX_EPS`: a group whose largest magnitude is below this quantizes to all zeros.
let groupMaxEps: Float = 1e-15

/// `make_qkx2_quants`: the affine fit `x ≈ scale·L − min` (L in 0...nmax) of `n` weights, minimising
/// the `weights`-weighted squared (or, `useMAD`, absolute) error over `nstep + 1` candidate inverse
/// scales `(rmin + rdelta·is + nmax) / (max − min)`, each refined by weighted least squares; the
/// minimum is clamped to ≤ 0. Returns (scale, the_min = −min) and writes the codes to `L`.
func makeQKX2Quants(n: Int, nmax: Int32, x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                    L: UnsafeMutablePointer<UInt8>, Laux: UnsafeMutablePointer<UInt8>,
                    rmin: Float, rdelta: Float, nstep: Int, useMAD: Bool) -> (scale: Float, min: Float) {
    var mn = x[0], mx = x[0]
    var sumW = weights[0]
    var sumX = sumW * x[0]
    for i in 1..<n {
        if x[i] < mn { mn = x[i] }
        if x[i] > mx { mx = x[i] }
        let w = weights[i]
        sumW += w
        sumX += w * x[i]
    }
    if mn > 0 { mn = 0 }
    if mx == mn {
        for i in 0..<n { L[i] = 0 }
        return (0, -mn)
    }
    var iscale = Float(nmax) / (mx - mn)
    var scale = 1 / iscale
    var bestError: Float = 0
    for i in 0..<n {
        let l = max(0, min(nmax, nearestInt(iscale * (x[i] - mn))))
        L[i] = UInt8(l)
        var diff = scale * Float(l) + mn - x[i]
        diff = useMAD ? abs(diff) : diff * diff
        bestError += weights[i] * diff
    }
    if nstep < 1 { return (scale, -mn) }
    for step in 0...nstep {
        iscale = (rmin + rdelta * Float(step) + Float(nmax)) / (mx - mn)
        var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
        for i in 0..<n {
            let l = max(0, min(nmax, nearestInt(iscale * (x[i] - mn))))
            Laux[i] = UInt8(l)
            let w = weights[i], lf = Float(l)
            sumL += w * lf
            sumL2 += w * lf * lf
            sumXL += w * lf * x[i]
        }
        let D = sumW * sumL2 - sumL * sumL
        guard D > 0 else { continue }
        var thisScale = (sumW * sumXL - sumX * sumL) / D
        var thisMin = (sumL2 * sumX - sumL * sumXL) / D
        if thisMin > 0 {
            thisMin = 0
            thisScale = sumXL / sumL2
        }
        var curError: Float = 0
        for i in 0..<n {
            var diff = thisScale * Float(Laux[i]) + thisMin - x[i]
            diff = useMAD ? abs(diff) : diff * diff
            curError += weights[i] * diff
        }
        if curError < bestError {
            for i in 0..<n { L[i] = Laux[i] }
            bestError = curError
            scale = thisScale
            mn = thisMin
        }
    }
    return (scale, -mn)
}

/// The first value of largest magnitude (sign kept) and that magnitude: `if (ax > amax) {...}` from 0.
@inline(__always)
private func signedAbsMax(_ x: UnsafePointer<Float>, _ n: Int) -> (max: Float, amax: Float) {
    var amax: Float = 0, mx: Float = 0
    for i in 0..<n {
        let ax = abs(x[i])
        if ax > amax { amax = ax; mx = x[i] }
    }
    return (mx, amax)
}

/// `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw)`: symmetric codes `L − nmax` in
/// `−nmax...nmax−1` (L written in 0...2·nmax−1); weights `qw` (x² when nil), 19 candidate inverse
/// scales `−(nmax + 0.1·is) / max`, the best weighted least-squares scale kept. Returns the scale
/// (0 for a zero group).
func makeQXQuants(n: Int, nmax: Int32, x: UnsafePointer<Float>, L: UnsafeMutablePointer<UInt8>,
                  weights qw: UnsafePointer<Float>? = nil) -> Float {
    let (mx, amax) = signedAbsMax(x, n)
    if amax < groupMaxEps {
        for i in 0..<n { L[i] = 0 }
        return 0
    }
    var iscale = Float(-nmax) / mx
    var sumlx: Float = 0, suml2: Float = 0
    for i in 0..<n {
        let l = max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))
        L[i] = UInt8(l + nmax)
        let w = qw?[i] ?? x[i] * x[i], lf = Float(l)
        sumlx += w * x[i] * lf
        suml2 += w * lf * lf
    }
    var scale: Float = suml2 != 0 ? sumlx / suml2 : 0
    var best = scale * sumlx
    for step in -9...9 where step != 0 {
        iscale = -(Float(nmax) + 0.1 * Float(step)) / mx
        sumlx = 0
        suml2 = 0
        for i in 0..<n {
            let l = max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))
            let w = qw?[i] ?? x[i] * x[i], lf = Float(l)
            sumlx += w * x[i] * lf
            suml2 += w * lf * lf
        }
        if suml2 > 0 && sumlx * sumlx > best * suml2 {
            for i in 0..<n { L[i] = UInt8(nmax + max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))) }
            scale = sumlx / suml2
            best = scale * sumlx
        }
    }
    return scale
}

/// `make_q3_quants(n, nmax, x, L, do_rmse = true)`: symmetric codes from −nmax/max, then up to five
/// coordinate-descent sweeps moving one code at a time to its least-squares optimum (weights x²) when
/// that raises sumlx²/suml2. Writes L in 0...2·nmax−1 (all 0 for a zero group — ggml's quirk, not
/// nmax) and returns the scale.
func makeQ3Quants(n: Int, nmax: Int32, x: UnsafePointer<Float>, L: UnsafeMutablePointer<Int8>) -> Float {
    let (mx, amax) = signedAbsMax(x, n)
    if amax < groupMaxEps {
        for i in 0..<n { L[i] = 0 }
        return 0
    }
    let iscale = Float(-nmax) / mx
    var sumlx: Float = 0, suml2: Float = 0
    for i in 0..<n {
        let l = max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))
        L[i] = Int8(l)
        let w = x[i] * x[i], lf = Float(l)
        sumlx += w * x[i] * lf
        suml2 += w * lf * lf
    }
    for _ in 0..<5 {
        var changed = 0
        for i in 0..<n {
            let w = x[i] * x[i]
            var slx = sumlx - w * x[i] * Float(L[i])
            guard slx > 0 else { continue }
            var sl2 = suml2 - w * Float(L[i]) * Float(L[i])
            let newL = max(-nmax, min(nmax - 1, nearestInt(x[i] * sl2 / slx)))
            guard newL != Int32(L[i]) else { continue }
            slx += w * x[i] * Float(newL)
            sl2 += w * Float(newL) * Float(newL)
            if sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                L[i] = Int8(newL)
                sumlx = slx
                suml2 = sl2
                changed += 1
            }
        }
        if changed == 0 { break }
    }
    for i in 0..<n { L[i] += Int8(nmax) }
    return suml2 > 0 ? sumlx / suml2 : 0
}

/// `make_qkx3_quants(n, nmax, x, weights, L, &the_min, Laux, rmin, rdelta, nstep, use_mad)`: as
/// `make_qkx2_quants` (affine `scale·L + min`, min clamped to ≤ 0, weighted least squares over
/// `nstep + 1` candidate inverse scales) with ggml's later guards: `max <= min` gives all-zero codes,
/// and a candidate code is `nearest_int(min(v, nmax))` only for v > 0 (else 0), so a best minimum near
/// the maximum cannot overflow. Weights x² when nil. Returns (scale, the_min = −min).
func makeQKX3Quants(n: Int, nmax: Int32, x: UnsafePointer<Float>, weights: UnsafePointer<Float>?,
                    L: UnsafeMutablePointer<UInt8>, Laux: UnsafeMutablePointer<UInt8>,
                    rmin: Float, rdelta: Float, nstep: Int, useMAD: Bool) -> (scale: Float, min: Float) {
    @inline(__always) func weight(_ i: Int) -> Float { weights?[i] ?? x[i] * x[i] }
    var mn = x[0], mx = x[0]
    var sumW = weight(0)
    var sumX = sumW * x[0]
    for i in 1..<n {
        if x[i] < mn { mn = x[i] }
        if x[i] > mx { mx = x[i] }
        let w = weight(i)
        sumW += w
        sumX += w * x[i]
    }
    if mn > 0 { mn = 0 }
    if mx <= mn {
        for i in 0..<n { L[i] = 0 }
        return (0, -mn)
    }
    var iscale = Float(nmax) / (mx - mn)
    var scale = 1 / iscale
    var bestError: Float = 0
    for i in 0..<n {
        let l = max(0, min(nmax, nearestInt(iscale * (x[i] - mn))))
        L[i] = UInt8(l)
        var diff = scale * Float(l) + mn - x[i]
        diff = useMAD ? abs(diff) : diff * diff
        bestError += weight(i) * diff
    }
    if nstep < 1 { return (scale, -mn) }
    for step in 0...nstep {
        iscale = (rmin + rdelta * Float(step) + Float(nmax)) / (mx - mn)
        var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
        for i in 0..<n {
            let v = iscale * (x[i] - mn)
            let l: Int32 = v > 0 ? nearestInt(min(v, Float(nmax))) : 0
            Laux[i] = UInt8(l)
            let w = weight(i), lf = Float(l)
            sumL += w * lf
            sumL2 += w * lf * lf
            sumXL += w * lf * x[i]
        }
        let D = sumW * sumL2 - sumL * sumL
        guard D > 0 else { continue }
        var thisScale = (sumW * sumXL - sumX * sumL) / D
        var thisMin = (sumL2 * sumX - sumL * sumXL) / D
        if thisMin > 0 {
            thisMin = 0
            thisScale = sumXL / sumL2
        }
        var curError: Float = 0
        for i in 0..<n {
            var diff = thisScale * Float(Laux[i]) + thisMin - x[i]
            diff = useMAD ? abs(diff) : diff * diff
            curError += weight(i) * diff
        }
        if curError < bestError {
            for i in 0..<n { L[i] = Laux[i] }
            bestError = curError
            scale = thisScale
            mn = thisMin
        }
    }
    return (scale, -mn)
}

/// `make_qp_quants(n, nmax, x, L, quant_weights)`: a non-negative scale for non-negative `x` (the
/// sub-block scales or mins of a K-quant super-block) with codes `L` in 0...nmax, minimising the
/// `weights`-weighted squared error: max/nmax and 8 neighbouring inverse scales `(nmax + 0.1·is)/max`,
/// then up to five coordinate-descent sweeps on the codes; returns the least-squares scale of the final
/// codes. Codes are stored as ggml's `uint8_t` (a negative `nearest_int` wraps, as in C).
func makeQPQuants(n: Int, nmax: Int32, x: UnsafePointer<Float>, L: UnsafeMutablePointer<UInt8>,
                  weights qw: UnsafePointer<Float>) -> Float {
    var mx: Float = 0
    for i in 0..<n { mx = mx > x[i] ? mx : x[i] }
    if mx < groupMaxEps {
        for i in 0..<n { L[i] = 0 }
        return 0
    }
    var iscale = Float(nmax) / mx
    for i in 0..<n { L[i] = UInt8(truncatingIfNeeded: nearestInt(iscale * x[i])) }
    let scale = 1 / iscale
    var bestMSE: Float = 0
    for i in 0..<n {
        let diff = x[i] - scale * Float(L[i])
        bestMSE += qw[i] * diff * diff
    }
    for step in -4...4 where step != 0 {
        let iscaleStep = (0.1 * Float(step) + Float(nmax)) / mx
        let scaleStep = 1 / iscaleStep
        var mse: Float = 0
        for i in 0..<n {
            let l = min(nmax, nearestInt(iscaleStep * x[i]))
            let diff = x[i] - scaleStep * Float(l)
            mse += qw[i] * diff * diff
        }
        if mse < bestMSE {
            bestMSE = mse
            iscale = iscaleStep
        }
    }
    var sumlx: Float = 0, suml2: Float = 0
    for i in 0..<n {
        let l = min(nmax, nearestInt(iscale * x[i]))
        L[i] = UInt8(truncatingIfNeeded: l)
        let w = qw[i]
        sumlx += w * x[i] * Float(l)
        suml2 += w * Float(l) * Float(l)
    }
    for _ in 0..<5 {
        var changed = 0
        for i in 0..<n {
            let w = qw[i], li = Float(L[i])
            var slx = sumlx - w * x[i] * li
            var sl2 = suml2 - w * li * li
            guard slx > 0 && sl2 > 0 else { continue }
            let newL = min(nmax, nearestInt(x[i] * sl2 / slx))
            guard newL != Int32(L[i]) else { continue }
            slx += w * x[i] * Float(newL)
            sl2 += w * Float(newL) * Float(newL)
            if slx * slx * suml2 > sumlx * sumlx * sl2 {
                L[i] = UInt8(truncatingIfNeeded: newL)
                sumlx = slx
                suml2 = sl2
                changed += 1
            }
        }
        if changed == 0 { break }
    }
    return suml2 > 0 ? sumlx / suml2 : 0
}
