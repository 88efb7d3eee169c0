// GPTQ (Frantar et al. 2022, IST-DASLab/gptq `fasterquant`): quantize one linear layer column by column,
// pushing each column's rounding error onto the columns not yet quantized through Hinv.
// Not the calibration loop (which runs layers and fills `LayerHessian`s) and not a file writer.
import CBLAS

/// A solver configuration. `solve` takes one layer's weights W (rows = out_features, cols = in_features),
/// its `LayerHessian` and a `QuantGrid`, and returns the quantized Q, the codes and the stored parameters.
public struct GPTQ: Sendable {
    /// Columns per lazy batch: updates inside a block are rank-1, the rest of W is updated once per block
    /// with one sgemm (the paper's "lazy batch updates"; 128 as the reference).
    public var blockSize: Int
    /// λ = dampPercent · mean(diag H) added to diag H before inverting. 0.01 is the reference default: large
    /// enough that float32 Cholesky succeeds on the rank-deficient Hessians of small calibration sets, small
    /// enough not to change the solution measurably (the paper's ablation).
    public var dampPercent: Double
    /// Quantize columns by descending diag(H) (the reference's `--act-order`): the most-used inputs first,
    /// while the most columns are left to absorb their error.
    public var actOrder: Bool
    /// With `actOrder`: fit every group's grid up front from W in natural order (the reference's
    /// `--static-groups`), so groups stay contiguous in the stored file and no g_idx reordering is needed.
    /// Without act-order groups are contiguous anyway and are fitted from the current, error-compensated W.
    public var staticGroups: Bool
    /// β in [0, 1]: the Hessian used for solving is (1 − β)·H + β·diag(H) (a shrinkage estimator of the
    /// input covariance toward its diagonal, as Ledoit–Wolf's). β = 0 is the paper's GPTQ; β = 1 leaves no
    /// cross-column compensation, so GPTQ becomes round-to-nearest on the same grid. Calibration text from
    /// one narrow domain gives off-diagonal correlations that do not carry over to other text; shrinking
    /// them trades a little of the calibration-domain error for error on everything else (measured in
    /// BENCHMARKS.md). The error metrics always use the unshrunk H.
    public var shrink: Double
    /// After the sweep, re-solve each row's block scales (the float fields of its groups) with the codes
    /// fixed, by least squares in the solver's H (`refitScales`): a group's scales are fitted when the
    /// sweep reaches it, before the later columns absorbed their error. Grids without float fields
    /// (MXFP4) and act-order with dynamic groups (non-contiguous groups) are left as they are.
    public var refitScales: Bool

    /// Damping increases (×10 each) tried after a failed Cholesky, before the diagonal floor.
    public static let maxDampingIncreases = 4
    /// Columns per rank-1 sub-block inside a lazy block (a second level of the paper's lazy batching).
    static let innerBlock = 16

    public init(blockSize: Int = 128, dampPercent: Double = 0.01, actOrder: Bool = false, staticGroups: Bool = true,
                shrink: Double = 0, refitScales: Bool = false) {
        precondition(blockSize > 0 && dampPercent >= 0 && (0...1).contains(shrink),
                     "blockSize \(blockSize), dampPercent \(dampPercent), shrink \(shrink)")
        self.blockSize = blockSize
        self.dampPercent = dampPercent
        self.actOrder = actOrder
        self.staticGroups = staticGroups
        self.shrink = shrink
        self.refitScales = refitScales
    }

    /// FLOPs of the three phases for a (rows, cols) layer over `tokens` calibration rows:
    /// accumulate XᵀX = 2·N·cols² (ssyrk does half), invert (three n³/3 factorizations) ≈ 4/3·cols³,
    /// sweep ≈ rows·cols² (the lazy sgemm updates, 2·rows·cols²/2).
    public static func flops(rows: Int, cols: Int, tokens: Int) -> (accumulate: Double, invert: Double, sweep: Double) {
        let r = Double(rows), c = Double(cols), n = Double(tokens)
        return (2 * n * c * c, 4.0 / 3.0 * c * c * c, r * c * c)
    }

    /// Quantizes W (rows, cols) row-major against H on `grid`. `importance` (cols, natural order) is passed
    /// to `grid.fit` per group. Throws on inconsistent shapes; a Hessian that cannot be inverted is not an
    /// error but a reported `fallback`.
    public func solve(W: [Float], rows: Int, cols: Int, H: LayerHessian, grid: some QuantGrid,
                      importance: [Float]? = nil) throws -> GPTQResult {
        let n = cols, gs = grid.groupSize, pb = grid.parameterBytes
        guard rows > 0, n > 0, W.count == rows * n else {
            throw GPTQError.shapeMismatch("W has \(W.count) values, expected rows \(rows) × cols \(cols)")
        }
        guard H.columns == n else {
            throw GPTQError.shapeMismatch("Hessian has \(H.columns) columns, W has \(n); accumulate the layer's own inputs")
        }
        guard gs > 0, n % gs == 0, (1...255).contains(grid.maxCode) else {
            throw GPTQError.invalidGrid("group size \(gs) must divide \(n) columns and codes 0...\(grid.maxCode) fit a byte")
        }
        if let imp = importance, imp.count != n {
            throw GPTQError.shapeMismatch("importance has \(imp.count) values, expected \(n)")
        }
        let nGroups = n / gs
        var clock = PhaseClock()

        // H = 2/N·XᵀX; the undamped copy H0 is kept for the error metrics.
        let H0 = H.mean()
        var Hw = H0
        var Wn = W
        // Dead columns: an input that is always 0 tells nothing; H_ii = 1 keeps H invertible, W[:, i] = 0.
        for i in 0..<n where Hw[i * n + i] == 0 {
            Hw[i * n + i] = 1
            for r in 0..<rows { Wn[r * n + i] = 0 }
        }

        // Shrinkage toward the diagonal: H ← (1 − β)·H + β·diag(H), off-diagonals scaled by 1 − β.
        if shrink > 0 {
            let keep = Float(1 - shrink)
            for i in 0..<n { for k in 0..<n where k != i { Hw[i * n + k] *= keep } }
        }
        // Act-order: permute columns by descending diag(H) (stable, so ties keep natural order).
        let perm: [Int]? = actOrder
            ? (0..<n).sorted { Hw[$0 * n + $0] > Hw[$1 * n + $1] || (Hw[$0 * n + $0] == Hw[$1 * n + $1] && $0 < $1) }
            : nil
        let p = perm ?? Array(0..<n)                       // working column k is natural column p[k]
        let fitUpFront = actOrder && staticGroups
        var Wp = [Float](repeating: 0, count: rows * n)    // W in working order, updated in place
        var Hp = [Float](repeating: 0, count: n * n)       // H in working order
        for r in 0..<rows { for k in 0..<n { Wp[r * n + k] = Wn[r * n + p[k]] } }
        for i in 0..<n { for k in 0..<n { Hp[i * n + k] = Hw[p[i] * n + p[k]] } }
        let imp: [Float]? = importance.map { im in p.map { im[$0] } }

        // Per-weight grid (scale, offset) in working order, and the stored parameters per (row, group).
        var S = [Float](repeating: 0, count: rows * n), O = S
        var parameters = [UInt8](repeating: 0, count: rows * nGroups * pb)
        if fitUpFront {
            // Static groups: fit from W (dead columns zeroed) in natural order, then permute with the columns.
            var Sn = S, On = S
            fitGroups(grid, Wn, rows: rows, n: n, importance: importance, parameters: &parameters, S: &Sn, O: &On)
            for r in 0..<rows { for k in 0..<n { S[r * n + k] = Sn[r * n + p[k]]; O[r * n + k] = On[r * n + p[k]] } }
        }
        clock.lap(\.prepare)

        // Damping, then Hinv = Cholesky(H⁻¹) upper; on failure raise λ ×10, then floor the diagonal, then RTN.
        let diagMean = (0..<n).reduce(0.0) { $0 + Double(Hp[$1 * n + $1]) } / Double(n)
        var lambda = dampPercent * diagMean
        var fallback = GPTQResult.Fallback.none
        var Hinv = choleskyInverseUpper(Hp, n: n, lambda: lambda)
        var increases = 0
        while Hinv == nil && increases < GPTQ.maxDampingIncreases {
            increases += 1
            lambda = max(lambda * 10, 1e-6 * diagMean)
            Hinv = choleskyInverseUpper(Hp, n: n, lambda: lambda)
            fallback = .dampingIncreased(times: increases)
        }
        if Hinv == nil {
            // Diagonal floor: H_ii ≥ Σ_k≠i |H_ik| makes H diagonally dominant, hence positive definite.
            var Hf = Hp
            for i in 0..<n {
                var off = 0.0
                for k in 0..<n where k != i { off += Double(abs(Hp[i * n + k])) }
                Hf[i * n + i] = Float(max(Double(Hp[i * n + i]), off))
            }
            Hinv = choleskyInverseUpper(Hf, n: n, lambda: lambda)
            fallback = .diagonalFloor
        }
        clock.lap(\.invert)

        // RTN on the same grid from the original W: the baseline, and the last resort.
        var rtnParameters = [UInt8](repeating: 0, count: rows * nGroups * pb)
        var rtnQ = [Float](repeating: 0, count: rows * n), rtnCodes = [UInt8](repeating: 0, count: rows * n)
        do {
            var Sr = rtnQ, Or = rtnQ
            fitGroups(grid, W, rows: rows, n: n, importance: importance, parameters: &rtnParameters, S: &Sr, O: &Or)
            for k in 0..<(rows * n) {
                let q = grid.nearestCode(W[k], scale: Sr[k], offset: Or[k])
                rtnCodes[k] = q
                rtnQ[k] = grid.value(code: q, scale: Sr[k], offset: Or[k])
            }
        }

        guard let Hinv else {
            let rtnErr = layerError(W: W, Q: rtnQ, H: H0, rows: rows, cols: n)
            clock.lap(\.metrics)
            return GPTQResult(Q: rtnQ, codes: rtnCodes, parameters: rtnParameters, groupIndex: (0..<n).map { $0 / gs },
                              permutation: nil, gptqError: rtnErr, rtnError: rtnErr, damping: lambda,
                              fallback: .rtn, seconds: clock.seconds)
        }

        // The sweep, in lazy blocks. A block never ends inside a group fitted during the sweep unless the
        // group began at the block start, so every group is fitted from fully error-compensated columns.
        var Qp = [Float](repeating: 0, count: rows * n)
        var codesP = [UInt8](repeating: 0, count: rows * n)
        var Err = [Float](repeating: 0, count: rows * min(blockSize, n))
        Wp.withUnsafeMutableBufferPointer { W in
        Hinv.withUnsafeBufferPointer { Hinv in
        Err.withUnsafeMutableBufferPointer { Err in
            let W = W.baseAddress!, Hinv = Hinv.baseAddress!, Err = Err.baseAddress!
            // A block [start, end) may not end inside a group fitted in the sweep unless the group starts at `start`.
            func blockEnd(_ start: Int, _ size: Int, _ limit: Int) -> Int {
                let end = min(start + size, limit), lastGroupStart = (end - 1) / gs * gs
                return !fitUpFront && lastGroupStart > start && lastGroupStart + gs > end ? lastGroupStart : end
            }
            var i1 = 0
            while i1 < n {
                let i2 = blockEnd(i1, blockSize, n), bs = i2 - i1
                // Inside a block, sub-blocks of `innerBlock` columns: rank-1 updates only within the sub-block,
                // one small sgemm for the rest of the block (BLAS-2 work drops from rows·n·blockSize to rows·n·16).
                var j1 = i1
                while j1 < i2 {
                    let j2 = blockEnd(j1, GPTQ.innerBlock, i2)
                    for i in j1..<j2 {
                        // A group starts: fit its grid for every row from the current W[:, i..<i+gs].
                        if !fitUpFront && i % gs == 0 {
                            for r in 0..<rows {
                                parameters.withUnsafeMutableBytes { pm in
                                    S.withUnsafeMutableBufferPointer { s in
                                        O.withUnsafeMutableBufferPointer { o in
                                            let at = r * n + i
                                            imp.withOptionalPointer(offset: i) { im in
                                                grid.fit(weights: W + at, importance: im,
                                                         parameters: pm.baseAddress! + (r * nGroups + i / gs) * pb,
                                                         scale: s.baseAddress! + at, offset: o.baseAddress! + at)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        // q = nearest code, Q = scale·q + offset, Err = (w − Q) / Hinv[i,i].
                        let d = Hinv[i * n + i]
                        for r in 0..<rows {
                            let at = r * n + i, w = W[at]
                            let q = grid.nearestCode(w, scale: S[at], offset: O[at])
                            let value = grid.value(code: q, scale: S[at], offset: O[at])
                            codesP[at] = q
                            Qp[at] = value
                            Err[r * bs + (i - i1)] = (w - value) / d
                        }
                        // Inside the sub-block: W[:, i+1..<j2] −= Err[:, i] · Hinv[i, i+1..<j2] (rank 1).
                        if i + 1 < j2 {
                            cblas_sger(CblasRowMajor, Int32(rows), Int32(j2 - i - 1), -1, Err + (i - i1), Int32(bs),
                                       Hinv + i * n + i + 1, 1, W + i + 1, Int32(n))
                        }
                    }
                    // Rest of the block: W[:, j2..<i2] −= Err[:, j1..<j2] · Hinv[j1..<j2, j2..<i2].
                    if j2 < i2 {
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(i2 - j2), Int32(j2 - j1),
                                    -1, Err + (j1 - i1), Int32(bs), Hinv + j1 * n + j2, Int32(n), 1, W + j2, Int32(n))
                    }
                    j1 = j2
                }
                // Lazy batch update of the rest: W[:, i2:] −= Err · Hinv[i1..<i2, i2:].
                if i2 < n {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(n - i2), Int32(bs),
                                -1, Err, Int32(bs), Hinv + i1 * n + i2, Int32(n), 1, W + i2, Int32(n))
                }
                i1 = i2
            }
        }}}
        clock.lap(\.sweep)

        // Back to natural column order.
        var Q = [Float](repeating: 0, count: rows * n), codes = [UInt8](repeating: 0, count: rows * n)
        for r in 0..<rows { for k in 0..<n { Q[r * n + p[k]] = Qp[r * n + k]; codes[r * n + p[k]] = codesP[r * n + k] } }
        var groupIndex = (0..<n).map { $0 / gs }
        let dynamicGroups = actOrder && !fitUpFront        // groups of working columns: not contiguous
        if dynamicGroups { for k in 0..<n { groupIndex[p[k]] = k / gs } }
        clock.lap(\.sweep)
        var refit: ScaleRefitSummary?
        if refitScales, !dynamicGroups, let linear = grid as? any LinearScaleGrid, linear.linearFieldCount > 0 {
            refit = ScaleRefit.run(W: Wn, H: Hw, rows: rows, cols: n, grid: linear, codes: codes,
                                   parameters: &parameters, Q: &Q)
        }
        clock.lap(\.refit)
        let gptqErr = layerError(W: W, Q: Q, H: H0, rows: rows, cols: n)
        let rtnErr = layerError(W: W, Q: rtnQ, H: H0, rows: rows, cols: n)
        clock.lap(\.metrics)
        return GPTQResult(Q: Q, codes: codes, parameters: parameters, groupIndex: groupIndex, permutation: perm,
                          gptqError: gptqErr, rtnError: rtnErr, damping: lambda, fallback: fallback,
                          seconds: clock.seconds, refit: refit)
    }
}

/// What `GPTQ.solve` returns. All matrices are (rows, cols) row-major in natural column order.
public struct GPTQResult: Sendable {
    /// How the Hessian was made invertible.
    public enum Fallback: Sendable, Equatable {
        /// Cholesky succeeded with λ = dampPercent · mean(diag H).
        case none
        /// λ was multiplied by 10 this many times.
        case dampingIncreased(times: Int)
        /// The diagonal was raised to the sum of the row's off-diagonal magnitudes (diagonally dominant).
        case diagonalFloor
        /// No Cholesky succeeded (non-finite H): Q is plain round-to-nearest on the grid.
        case rtn
    }
    /// Wall-clock seconds per phase.
    public struct Seconds: Sendable {
        /// Dead columns, permutation, static group fits.
        public var prepare = 0.0
        /// Damping and the three factorizations (with retries).
        public var invert = 0.0
        /// The column sweep with lazy updates.
        public var sweep = 0.0
        /// The scale refit after the sweep (`GPTQ.refitScales`).
        public var refit = 0.0
        /// RTN baseline and the two layer-wise errors.
        public var metrics = 0.0
    }

    /// Quantized weights: `Q[r, c] = grid.value(code: codes[r, c], …)` (`scale · code + offset` on an affine grid)
    /// of the grid of (r, group of c).
    public var Q: [Float]
    /// Codes in `0...grid.maxCode`.
    public var codes: [UInt8]
    /// Fitted parameters, (rows, nGroups, grid.parameterBytes): natural group order, except with act-order
    /// and dynamic groups, where group g holds working columns g·gs..<(g+1)·gs (see `groupIndex`).
    public var parameters: [UInt8]
    /// Per natural column, the group whose parameters it uses (GPTQ's `g_idx`; `c / groupSize` unless
    /// act-order with dynamic groups).
    public var groupIndex: [Int]
    /// With act-order, working column k is natural column `permutation[k]`.
    public var permutation: [Int]?
    /// tr(ΔW H ΔWᵀ) with ΔW = W − Q and H the undamped 2/N·XᵀX, i.e. 2/N·‖(W − Q)Xᵀ‖².
    public var gptqError: Double
    /// The same error for plain round-to-nearest on the same grid fitted from the original W.
    public var rtnError: Double
    /// The λ added to diag H for the factorization that succeeded (or the last tried).
    public var damping: Double
    public var fallback: Fallback
    public var seconds: Seconds
    /// What the scale refit did (`GPTQ.refitScales`), nil when it did not run.
    public var refit: ScaleRefitSummary? = nil
}

/// Thrown for inputs that do not fit together; each message says what to change.
public enum GPTQError: Error, CustomStringConvertible {
    case invalidGrid(String)
    case shapeMismatch(String)
    public var description: String {
        switch self {
        case .invalidGrid(let m): return "invalid quantization grid: \(m)"
        case .shapeMismatch(let m): return "GPTQ shape mismatch: \(m)"
        }
    }
}

// MARK: - Helpers

/// Fits every (row, group) of W (rows, n) natural order: parameters (rows, n/gs, pb); S, O per weight.
private func fitGroups(_ grid: some QuantGrid, _ W: [Float], rows: Int, n: Int, importance: [Float]?,
                       parameters: inout [UInt8], S: inout [Float], O: inout [Float]) {
    let gs = grid.groupSize, pb = grid.parameterBytes, nGroups = n / gs
    W.withUnsafeBufferPointer { w in
    parameters.withUnsafeMutableBytes { pm in
    S.withUnsafeMutableBufferPointer { s in
    O.withUnsafeMutableBufferPointer { o in
        for r in 0..<rows {
            for g in 0..<nGroups {
                let at = r * n + g * gs
                importance.withOptionalPointer(offset: g * gs) { im in
                    grid.fit(weights: w.baseAddress! + at, importance: im,
                             parameters: pm.baseAddress! + (r * nGroups + g) * pb,
                             scale: s.baseAddress! + at, offset: o.baseAddress! + at)
                }
            }
        }
    }}}}
}

/// H (n, n) symmetric + λI → Hinv, the upper Cholesky factor of H⁻¹ (row-major, `Hinv[i, k]` for k ≥ i;
/// the lower triangle is left over), or nil if H + λI is not numerically positive definite.
/// A row-major symmetric matrix reads the same as column-major, so all three LAPACK calls are column-major
/// 'L' (the fast layout, PLATFORM.md): spotrf gives H = L·Lᵀ, spotri gives H⁻¹ (lower), spotrf again gives
/// H⁻¹ = L'·L'ᵀ; L' column-major is U = L'ᵀ row-major, and Uᵀ·U = H⁻¹ is the reference's `cholesky(upper=True)`.
private func choleskyInverseUpper(_ H: [Float], n: Int, lambda: Double) -> [Float]? {
    var a = H
    for i in 0..<n { a[i * n + i] += Float(lambda) }
    let lower = CChar(UInt8(ascii: "L")), N = Int32(n)
    let ok: Bool = a.withUnsafeMutableBufferPointer { m in
        let m = m.baseAddress!
        guard LAPACKE_spotrf(LAPACK_COL_MAJOR, lower, N, m, N) == 0,
              LAPACKE_spotri(LAPACK_COL_MAJOR, lower, N, m, N) == 0,
              LAPACKE_spotrf(LAPACK_COL_MAJOR, lower, N, m, N) == 0 else { return false }
        for i in 0..<n {
            guard m[i * n + i] > 0 else { return false }
            for k in i..<n where !m[i * n + k].isFinite { return false }
        }
        return true
    }
    return ok ? a : nil
}

/// The layer-wise error tr((W − Q) H (W − Q)ᵀ) for W, Q (rows, cols) and symmetric H (cols, cols), e.g.
/// `LayerHessian.mean()`: what GPTQ minimises, and the "hessian-error" sensitivity of a candidate type.
/// sgemm for D·H, the dot in Double.
public func layerError(W: [Float], Q: [Float], H: [Float], rows: Int, cols n: Int) -> Double {
    precondition(W.count == rows * n && Q.count == W.count && H.count == n * n,
                 "W \(W.count), Q \(Q.count), H \(H.count) for rows \(rows) × cols \(n)")
    let D = zip(W, Q).map { $0 - $1 }
    var DH = [Float](repeating: 0, count: rows * n)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(n), Int32(n),
                1, D, Int32(n), H, Int32(n), 0, &DH, Int32(n))
    var s = 0.0
    for k in 0..<D.count { s += Double(D[k]) * Double(DH[k]) }
    return s
}

/// Wall-clock laps into `GPTQResult.Seconds`.
private struct PhaseClock {
    var seconds = GPTQResult.Seconds()
    var last = ContinuousClock.now
    mutating func lap(_ phase: WritableKeyPath<GPTQResult.Seconds, Double>) {
        let now = ContinuousClock.now, d = (now - last).components
        seconds[keyPath: phase] += Double(d.seconds) + Double(d.attoseconds) * 1e-18
        last = now
    }
}

extension Optional where Wrapped == [Float] {
    /// Calls `body` with a pointer `offset` floats into the array, or nil.
    func withOptionalPointer<R>(offset: Int, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let a = self else { return body(nil) }
        return a.withUnsafeBufferPointer { body($0.baseAddress! + offset) }
    }
}
