// After GPTQ's sweep the codes are final, but each group's scales were fitted once, from the weights the
// sweep held when it reached the group, before the later columns absorbed their error. With the codes
// fixed every ggml block (and every GPTQ integer group) is linear in its few float fields, so the fields
// that minimise the layer objective tr((W − Q) H (W − Q)ᵀ) for the whole row are one small least-squares
// solve per row: (UᵀHU) θ = UᵀH w, U the codes' basis (one column per field of each group). This file is
// that solve; the sweep is `GPTQ.swift`.
import CBLAS

/// A `QuantGrid` whose group values are linear in a few float fields of the group's parameters once the
/// codes (and every other parameter) are fixed: `value = Σ_j θ_j · basis_j(codes)`.
public protocol LinearScaleGrid: QuantGrid {
    /// Float fields per group (Q4_0: d; Q4_1: d and m; Q4_K: d and dmin; MXFP4: none).
    var linearFieldCount: Int { get }
    /// The group's current field values, as the dequantizer reads them.
    func linearFields(of parameters: UnsafeRawPointer, into theta: UnsafeMutablePointer<Float>)
    /// Stores `theta` into the group's fields, rounded as the format stores them; false, with nothing
    /// written, if a value cannot be stored (overflows f16, or a scale the format requires positive).
    func setLinearFields(_ theta: UnsafePointer<Float>, in parameters: UnsafeMutableRawPointer) -> Bool
    /// The `groupSize` values the stored group (parameters + codes) dequantizes to.
    func groupValues(parameters: UnsafeRawPointer, codes: UnsafePointer<UInt8>, into out: UnsafeMutablePointer<Float>)
}

/// What `refitScales` did to one layer.
public struct ScaleRefitSummary: Sendable, Equatable {
    /// Rows whose fields changed (the refit lowered the row's objective).
    public var rowsChanged = 0
    /// The objective tr((W − Q) H (W − Q)ᵀ) over all rows before and after, in the H passed in.
    public var errorBefore = 0.0
    public var errorAfter = 0.0
}

/// The refit after GPTQ's sweep (`GPTQ.refitScales`).
public enum ScaleRefit {
    /// Re-solves every group's float fields with the codes fixed, row by row, to minimise
    /// `(w − q)ᵀ H (w − q)`; a row keeps its new fields only if its objective, evaluated with the stored
    /// (rounded) fields, went down. `W`, `Q`, `codes` (rows, cols) row-major, natural column order;
    /// `parameters` (rows, cols / groupSize, parameterBytes) in natural group order (contiguous groups);
    /// `H` (cols, cols) symmetric. Updates `parameters` and `Q`; `Q` stays exactly what the stored groups
    /// dequantize to.
    public static func run(W: [Float], H: [Float], rows: Int, cols n: Int, grid: some LinearScaleGrid,
                           codes: [UInt8], parameters: inout [UInt8], Q: inout [Float]) -> ScaleRefitSummary {
        let gs = grid.groupSize, pb = grid.parameterBytes, nb = n / gs, F = grid.linearFieldCount, k = nb * F
        precondition(W.count == rows * n && Q.count == W.count && codes.count == W.count && H.count == n * n
                     && n % gs == 0 && parameters.count == rows * nb * pb,
                     "W \(W.count), Q \(Q.count), codes \(codes.count), H \(H.count), parameters \(parameters.count) for \(rows) × \(n)")
        var summary = ScaleRefitSummary()
        guard F > 0, rows > 0 else { return summary }
        let chunk = min(rows, 256)
        // Per chunk of rows: the basis of each field (chunk, n), the error, P = basis_block · H_block,:,
        // the normal equations per row (k, k) in Double.
        var basis = [[Float]](repeating: [Float](repeating: 0, count: chunk * n), count: F)
        var E = [Float](repeating: 0, count: chunk * n), P = E, EH = E, Qnew = E
        var M = [Double](repeating: 0, count: chunk * k * k), rhs = [Double](repeating: 0, count: chunk * k)
        var theta0 = [Float](repeating: 0, count: chunk * k)
        var unit = [Float](repeating: 0, count: F), thetaNew = unit
        var trial = [UInt8](repeating: 0, count: chunk * nb * pb)

        for r0 in stride(from: 0, to: rows, by: chunk) {
            let R = min(chunk, rows - r0)
            // Fields, basis and error of each row of the chunk.
            parameters.withUnsafeMutableBytes { pm in
            codes.withUnsafeBufferPointer { cd in
            withUnsafeTemporaryAllocation(byteCount: pb, alignment: 16) { tmp in
                let tmp = tmp.baseAddress!
                for r in 0..<R {
                    for g in 0..<nb {
                        let p = pm.baseAddress! + ((r0 + r) * nb + g) * pb, c = cd.baseAddress! + (r0 + r) * n + g * gs
                        theta0.withUnsafeMutableBufferPointer { grid.linearFields(of: p, into: $0.baseAddress! + r * k + g * F) }
                        for j in 0..<F {
                            tmp.copyMemory(from: p, byteCount: pb)
                            for l in 0..<F { unit[l] = l == j ? 1 : 0 }
                            let ok = unit.withUnsafeBufferPointer { grid.setLinearFields($0.baseAddress!, in: tmp) }
                            precondition(ok, "a unit field must be storable")
                            basis[j].withUnsafeMutableBufferPointer {
                                grid.groupValues(parameters: tmp, codes: c, into: $0.baseAddress! + r * n + g * gs)
                            }
                        }
                    }
                    for i in 0..<n { E[r * n + i] = W[(r0 + r) * n + i] - Q[(r0 + r) * n + i] }
                }
            }}}
            // Normal equations for Δθ: (UᵀHU) Δθ = UᵀH e, e = w − q. One sgemm gives E·H: the objective
            // before, per row, and the right-hand side.
            let before = rowObjectives(E, H: H, rows: R, n: n, scratch: &EH)
            EH.withUnsafeBufferPointer { EH in
                for j in 0..<F {
                    basis[j].withUnsafeBufferPointer { Bj in
                        for r in 0..<R {
                            for g in 0..<nb {
                                var s = 0.0
                                for i in (r * n + g * gs)..<(r * n + g * gs + gs) { s += Double(Bj[i]) * Double(EH[i]) }
                                rhs[r * k + g * F + j] = s
                            }
                        }
                    }
                }
            }
            // UᵀHU is symmetric: block column b needs H[block b, block b...] only, P = basis_l[:, block b] ·
            // H[block b, b·gs..<n] (R, gs) × (gs, n − b·gs), and each entry is mirrored.
            for l in 0..<F {
                for b in 0..<nb {
                    let width = n - b * gs
                    basis[l].withUnsafeBufferPointer { B in
                        H.withUnsafeBufferPointer { Hp in
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(R), Int32(width), Int32(gs), 1,
                                        B.baseAddress! + b * gs, Int32(n), Hp.baseAddress! + b * gs * n + b * gs, Int32(n),
                                        0, &P, Int32(n))
                        }
                    }
                    let col = b * F + l
                    P.withUnsafeBufferPointer { P in
                    M.withUnsafeMutableBufferPointer { M in
                        for j in 0..<F {
                            basis[j].withUnsafeBufferPointer { Bj in
                                for r in 0..<R {
                                    for a in b..<nb {
                                        let p0 = r * n + (a - b) * gs, b0 = r * n + a * gs
                                        var m = 0.0
                                        for i in 0..<gs { m += Double(P[p0 + i]) * Double(Bj[b0 + i]) }
                                        let row = a * F + j
                                        M[(r * k + row) * k + col] = m
                                        M[(r * k + col) * k + row] = m
                                    }
                                }
                            }
                        }
                    }}
                }
            }

            // Solve each row, store its trial fields (rounded as the format stores them) and dequantize.
            var tried = [Bool](repeating: false, count: R), after = [Double](repeating: 0, count: R)
            parameters.withUnsafeBytes { pm in
            codes.withUnsafeBufferPointer { cd in
            trial.withUnsafeMutableBytes { tp in
                for r in 0..<R {
                    // A field whose basis is zero (e.g. Q4_0 codes all 8) has a zero row: keep it (Δθ = 0).
                    var m = Array(M[(r * k * k)..<((r + 1) * k * k)]), v = Array(rhs[(r * k)..<((r + 1) * k)])
                    for i in 0..<k {
                        if m[i * k + i] <= 0 {
                            for j in 0..<k { m[i * k + j] = 0; m[j * k + i] = 0 }
                            m[i * k + i] = 1; v[i] = 0
                        } else {
                            m[i * k + i] *= 1 + 1e-9
                        }
                    }
                    let solved = choleskySolve(&m, &v, k)
                    guard solved else { continue }
                    let rowTrial = tp.baseAddress! + r * nb * pb
                    rowTrial.copyMemory(from: pm.baseAddress! + (r0 + r) * nb * pb, byteCount: nb * pb)
                    var storable = true
                    for g in 0..<nb where storable {
                        for j in 0..<F { thetaNew[j] = theta0[r * k + g * F + j] + Float(v[g * F + j]) }
                        storable = thetaNew.withUnsafeBufferPointer { grid.setLinearFields($0.baseAddress!, in: rowTrial + g * pb) }
                        Qnew.withUnsafeMutableBufferPointer { qn in
                            grid.groupValues(parameters: rowTrial + g * pb, codes: cd.baseAddress! + (r0 + r) * n + g * gs,
                                             into: qn.baseAddress! + r * n + g * gs)
                        }
                    }
                    guard storable else { continue }
                    // The objective with the stored fields, from the normal equations:
                    // (e − UΔ)ᵀH(e − UΔ) = eᵀHe − 2Δᵀ(UᵀHe) + Δᵀ(UᵀHU)Δ, Δ the stored change.
                    var delta = [Double](repeating: 0, count: k)
                    for g in 0..<nb {
                        thetaNew.withUnsafeMutableBufferPointer { grid.linearFields(of: rowTrial + g * pb, into: $0.baseAddress!) }
                        for j in 0..<F { delta[g * F + j] = Double(thetaNew[j]) - Double(theta0[r * k + g * F + j]) }
                    }
                    var quad = 0.0, lin = 0.0
                    for i in 0..<k where delta[i] != 0 {
                        lin += delta[i] * rhs[r * k + i]
                        var s = 0.0
                        for j in 0..<k { s += M[(r * k + i) * k + j] * delta[j] }
                        quad += delta[i] * s
                    }
                    after[r] = before[r] - 2 * lin + quad
                    tried[r] = true
                }
            }}}
            parameters.withUnsafeMutableBytes { pm in
            trial.withUnsafeBytes { tp in
                for r in 0..<R {
                    summary.errorBefore += before[r]
                    guard tried[r], after[r] < before[r] else { summary.errorAfter += before[r]; continue }
                    (pm.baseAddress! + (r0 + r) * nb * pb).copyMemory(from: tp.baseAddress! + r * nb * pb, byteCount: nb * pb)
                    for i in 0..<n { Q[(r0 + r) * n + i] = Qnew[r * n + i] }
                    summary.rowsChanged += 1
                    summary.errorAfter += after[r]
                }
            }}
        }
        return summary
    }

    /// Solves A x = b in place (x into `b`) for symmetric positive definite A (k, k) row-major, by
    /// Cholesky; false if A is not numerically positive definite. The systems here are small (k ≤ a few
    /// hundred) and many, one per row: LAPACK's threaded path costs more than the arithmetic.
    static func choleskySolve(_ a: inout [Double], _ b: inout [Double], _ k: Int) -> Bool {
        a.withUnsafeMutableBufferPointer { a in
        b.withUnsafeMutableBufferPointer { b in
            // A = L Lᵀ, L in the lower triangle.
            for j in 0..<k {
                var d = a[j * k + j]
                for p in 0..<j { d -= a[j * k + p] * a[j * k + p] }
                guard d > 0, d.isFinite else { return false }
                let l = d.squareRoot()
                a[j * k + j] = l
                for i in (j + 1)..<k {
                    var s = a[i * k + j]
                    for p in 0..<j { s -= a[i * k + p] * a[j * k + p] }
                    a[i * k + j] = s / l
                }
            }
            for i in 0..<k {                      // L y = b
                var s = b[i]
                for p in 0..<i { s -= a[i * k + p] * b[p] }
                b[i] = s / a[i * k + i]
            }
            for i in stride(from: k - 1, through: 0, by: -1) {  // Lᵀ x = y
                var s = b[i]
                for p in (i + 1)..<k { s -= a[p * k + i] * b[p] }
                b[i] = s / a[i * k + i]
            }
            return true
        }}
    }

    /// eᵀHe for each of `rows` rows of E (rows, n), one sgemm into `scratch`.
    static func rowObjectives(_ E: [Float], H: [Float], rows: Int, n: Int, scratch: inout [Float]) -> [Double] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(n), Int32(n), 1,
                    E, Int32(n), H, Int32(n), 0, &scratch, Int32(n))
        return (0..<rows).map { r in
            var s = 0.0
            for i in 0..<n { s += Double(E[r * n + i]) * Double(scratch[r * n + i]) }
            return s
        }
    }
}

// MARK: - Conformances

extension GGMLGrid: LinearScaleGrid {
    public var linearFieldCount: Int { type.blockQuantizer!.linearHalfFields.count }

    public func linearFields(of parameters: UnsafeRawPointer, into theta: UnsafeMutablePointer<Float>) {
        for (j, at) in type.blockQuantizer!.linearHalfFields.enumerated() { theta[j] = parameters.loadF16(at: at) }
    }

    public func setLinearFields(_ theta: UnsafePointer<Float>, in parameters: UnsafeMutableRawPointer) -> Bool {
        let fields = type.blockQuantizer!.linearHalfFields
        for j in fields.indices where !halfToFloat(floatToHalfBits(theta[j])).isFinite { return false }
        for (j, at) in fields.enumerated() { parameters.storeF16(theta[j], at: at) }
        return true
    }

    public func groupValues(parameters: UnsafeRawPointer, codes: UnsafePointer<UInt8>, into out: UnsafeMutablePointer<Float>) {
        withUnsafeTemporaryAllocation(byteCount: parameterBytes, alignment: 16) { block in
            pack(parameters: parameters, codes: codes, into: block.baseAddress!)
            type.blockQuantizer!.dequantize(block: UnsafeRawPointer(block.baseAddress!), into: out)
        }
    }
}

extension IntegerGroupGrid: LinearScaleGrid {
    /// The scale; the zero point is an integer code and stays.
    public var linearFieldCount: Int { 1 }

    public func linearFields(of parameters: UnsafeRawPointer, into theta: UnsafeMutablePointer<Float>) {
        theta[0] = storedGrid(parameters).scale
    }

    /// A GPTQ checkpoint's scale must be positive and (with `.f16`) a finite half.
    public func setLinearFields(_ theta: UnsafePointer<Float>, in parameters: UnsafeMutableRawPointer) -> Bool {
        switch scaleFormat {
        case .f16:
            let h = Float16(theta[0])
            guard h.isFinite, h > 0 else { return false }
            parameters.storeBytes(of: h.bitPattern.littleEndian, toByteOffset: 0, as: UInt16.self)
        case .f32:
            guard theta[0].isFinite, theta[0] > 0 else { return false }
            parameters.storeBytes(of: theta[0].bitPattern.littleEndian, toByteOffset: 0, as: UInt32.self)
        }
        return true
    }

    public func groupValues(parameters: UnsafeRawPointer, codes: UnsafePointer<UInt8>, into out: UnsafeMutablePointer<Float>) {
        let (s, o) = storedGrid(parameters)
        for i in 0..<groupSize { out[i] = value(code: codes[i], scale: s, offset: o) }
    }
}
