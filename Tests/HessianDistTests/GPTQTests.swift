import Foundation
import Testing
import TestSupport
@testable import HessianDist

/// GPTQ against a NumPy reference of the paper's algorithm, against RTN, on weights already on the grid,
/// and the Hessian bookkeeping (merge, NumPy XᵀX, dead columns, damping fallbacks).
@Suite struct GPTQTests {
    struct LCG {
        var s: UInt64
        mutating func uniform() -> Float {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(s >> 40) / Float(1 << 24)            // [0, 1)
        }
        /// Roughly normal: sum of 4 uniforms, centred and scaled to unit variance.
        mutating func normal() -> Float { (uniform() + uniform() + uniform() + uniform() - 2) * 1.7320508 }
        mutating func normals(_ n: Int) -> [Float] { (0..<n).map { _ in normal() } }
    }

    /// X (N, cols) = Z · A with a random mixing A and per-column scales 0.1...3: correlated inputs whose
    /// diag(H) varies, as LLM activations do (a few columns much larger than the rest).
    static func correlatedInputs(N: Int, cols: Int, seed: UInt64) -> [Float] {
        var r = LCG(s: seed)
        let Z = r.normals(N * cols)
        var A = r.normals(cols * cols).map { $0 * 0.5 / Float(cols).squareRoot() }
        for j in 0..<cols { A[j * cols + j] += 1 }
        let colScale = (0..<cols).map { _ in 0.1 + 2.9 * r.uniform() * r.uniform() }
        var X = [Float](repeating: 0, count: N * cols)
        matmulForward(out: &X, inp: Z, weight: A, N: N, C: cols, OC: cols)  // Z · Aᵀ, A random anyway
        for t in 0..<N { for j in 0..<cols { X[t * cols + j] *= colScale[j] } }
        return X
    }

    static func hessian(_ X: [Float], N: Int, cols: Int) -> LayerHessian {
        let h = LayerHessian(columns: cols)
        X.withUnsafeBufferPointer { h.accumulate($0.baseAddress!, rows: N) }
        return h
    }

    static func writeF32(_ a: [Float], _ path: String) throws {
        try a.withUnsafeBytes { Data($0) }.write(to: URL(fileURLWithPath: path))
    }

    // MARK: NumPy reference

    @Test(arguments: [(false, true, false, 4, 0.0), (true, true, false, 4, 0.0), (true, false, false, 4, 0.0),
                      (false, true, true, 3, 0.0), (false, true, false, 4, 0.8), (true, false, true, 4, 0.5)])
    func codesMatchNumpyReference(_ c: (Bool, Bool, Bool, Int, Double)) throws {
        let (actOrder, staticGroups, symmetric, bits, shrink) = c
        let rows = 16, cols = 64, N = 256, gs = 32
        var r = LCG(s: 42)
        let W = r.normals(rows * cols).map { $0 * 0.05 }
        let X = Self.correlatedInputs(N: N, cols: cols, seed: 7)
        let grid = try IntegerGroupGrid(bits: bits, groupSize: gs, columns: cols, symmetric: symmetric)
        // blockSize 40: blocks cut at group starts (32), 16-column sub-blocks, lazy updates across blocks.
        let res = try GPTQ(blockSize: 40, actOrder: actOrder, staticGroups: staticGroups, shrink: shrink)
            .solve(W: W, rows: rows, cols: cols, H: Self.hessian(X, N: N, cols: cols), grid: grid)
        #expect(res.fallback == .none)

        let dir = try TestData.tempDir("gptq")
        let wPath = dir.appendingPathComponent("w.f32").path, xPath = dir.appendingPathComponent("x.f32").path
        let out = dir.appendingPathComponent("ref").path
        try Self.writeF32(W, wPath)
        try Self.writeF32(X, xPath)
        try runPython("gptq_reference.py", [wPath, xPath, "\(rows)", "\(cols)", "\(N)", "\(bits)", "\(gs)",
                                            symmetric ? "1" : "0", actOrder ? "1" : "0", staticGroups ? "1" : "0",
                                            "0.01", "\(shrink)", out])
        let refCodes = try readF32(out + ".codes.f32").map { UInt8($0) }
        let refQ = try readF32(out + ".q.f32"), refErr = try readF32(out + ".err.f32")
        // Ours is float32 (ssyrk, spotrf, sgemm), the reference float64; the grid arithmetic is the same
        // float32 in both. A code could only differ where a compensated w lands within ~1e-6 relative of a
        // rounding boundary (and would then perturb the rest of its row); on these fixed layers none does,
        // so codes and Q must be identical: any difference is a bug, not rounding.
        let differing = zip(res.codes, refCodes).filter { $0 != $1 }.count
        #expect(differing == 0, "\(differing) of \(rows * cols) codes differ")
        #expect(res.Q == refQ)
        #expect(abs(res.gptqError - Double(refErr[0])) <= 1e-3 * Double(refErr[0]), "\(res.gptqError) vs \(refErr[0])")
        #expect(abs(res.rtnError - Double(refErr[1])) <= 1e-4 * Double(refErr[1]), "\(res.rtnError) vs \(refErr[1])")

        // What an exporter stores decodes to Q exactly: Q = scale·(q − zero) from the parameter bytes.
        let nGroups = cols / gs
        for row in 0..<rows {
            for col in 0..<cols {
                let g = res.groupIndex[col], at = (row * nGroups + g) * grid.parameterBytes
                let scale = Float(Float16(bitPattern: UInt16(res.parameters[at]) | UInt16(res.parameters[at + 1]) << 8))
                let zero = Float(res.parameters[at + 2])
                #expect(res.Q[row * cols + col] == scale * (Float(res.codes[row * cols + col]) - zero))
            }
        }
        if actOrder { #expect(res.permutation.map { Set($0) } == Set(0..<cols)) }
    }

    // MARK: GPTQ vs RTN

    @Test(arguments: [2, 3, 4, 8])
    func gptqErrorAtMostRTN(_ bits: Int) throws {
        let rows = 32, cols = 128, N = 512
        for seed in UInt64(1)...3 {
            var r = LCG(s: seed * 977)
            let W = r.normals(rows * cols).map { $0 * 0.02 }
            let X = Self.correlatedInputs(N: N, cols: cols, seed: seed)
            let H = Self.hessian(X, N: N, cols: cols)
            for (gs, actOrder) in [(64, false), (-1, false), (32, true)] {
                let grid = try IntegerGroupGrid(bits: bits, groupSize: gs, columns: cols)
                let res = try GPTQ(actOrder: actOrder).solve(W: W, rows: rows, cols: cols, H: H, grid: grid)
                #expect(res.gptqError <= res.rtnError,
                        "bits \(bits) seed \(seed) group \(gs) act-order \(actOrder): \(res.gptqError) > RTN \(res.rtnError)")
                #expect(res.codes.allSatisfy { Int($0) <= grid.maxCode })
            }
        }
    }

    /// Full shrinkage (β = 1) leaves only diag(H): Hinv is diagonal, no error is pushed to later columns,
    /// so GPTQ is round-to-nearest on the same grid, code for code, for ggml blocks (affine and codebook)
    /// and integer groups alike.
    /// In between, the calibration error lies between GPTQ's and RTN's.
    @Test func fullShrinkageIsRoundToNearest() throws {
        let rows = 16, cols = 128, N = 400
        var r = LCG(s: 31)
        let W = r.normals(rows * cols).map { $0 * 0.03 }
        let H = Self.hessian(Self.correlatedInputs(N: N, cols: cols, seed: 4), N: N, cols: cols)
        let grids: [any QuantGrid] = [try IntegerGroupGrid(bits: 3, groupSize: 32, columns: cols),
                                      try GGMLGrid(type: .q4_0), try GGMLGrid(type: .q5_1),
                                      try GGMLGrid(type: .iq4_nl), try GGMLGrid(type: .mxfp4)]
        for grid in grids {
            for actOrder in [false, true] {
                let full = try GPTQ(actOrder: actOrder, shrink: 1).solve(W: W, rows: rows, cols: cols, H: H, grid: grid)
                let rtn = roundToNearestCodes(W, rows: rows, cols: cols, grid: grid)
                #expect(full.codes == rtn, "\(grid) act-order \(actOrder)")
                #expect(full.gptqError == full.rtnError)
                let none = try GPTQ(actOrder: actOrder).solve(W: W, rows: rows, cols: cols, H: H, grid: grid)
                let half = try GPTQ(actOrder: actOrder, shrink: 0.5).solve(W: W, rows: rows, cols: cols, H: H, grid: grid)
                #expect(none.gptqError < half.gptqError && half.gptqError < full.gptqError,
                        "\(grid): \(none.gptqError), \(half.gptqError), \(full.gptqError)")
            }
        }
    }

    /// Codes of plain rounding on `grid` fitted from W, group by group.
    func roundToNearestCodes(_ W: [Float], rows: Int, cols: Int, grid: any QuantGrid) -> [UInt8] {
        let gs = grid.groupSize
        var codes = [UInt8](repeating: 0, count: rows * cols)
        var p = [UInt8](repeating: 0, count: grid.parameterBytes)
        var s = [Float](repeating: 0, count: gs), o = s
        W.withUnsafeBufferPointer { w in
            for row in 0..<rows {
                for g in stride(from: 0, to: cols, by: gs) {
                    p.withUnsafeMutableBytes { grid.fit(weights: w.baseAddress! + row * cols + g, importance: nil,
                                                        parameters: $0.baseAddress!, scale: &s, offset: &o) }
                    for k in 0..<gs { codes[row * cols + g + k] = grid.nearestCode(w[row * cols + g + k], scale: s[k], offset: o[k]) }
                }
            }
        }
        return codes
    }

    // MARK: Weights already on the grid

    /// W built on the grid with codes 0 and maxq in every (row, group), so the min-max fit is idempotent;
    /// RTN reproduces W, and GPTQ must too: every error is 0, nothing is propagated.
    @Test(arguments: [false, true])
    func weightsOnTheGridComeBackUnchanged(_ actOrder: Bool) throws {
        let rows = 12, cols = 128, gs = 32, N = 300, bits = 4
        let grid = try IntegerGroupGrid(bits: bits, groupSize: gs, columns: cols)
        var r = LCG(s: 5)
        var W = [Float](repeating: 0, count: rows * cols), codes = [UInt8](repeating: 0, count: rows * cols)
        for row in 0..<rows {
            for g in 0..<(cols / gs) {
                let scale = Float(Float16(0.001 + 0.01 * r.uniform()))
                // Zero points 1...15: v1 checkpoints cannot store 0, so the fit never returns it.
                let zero = Float(1 + Int(r.uniform() * 15))
                for k in 0..<gs {
                    let q = k == 0 ? 0 : k == 1 ? 15 : Int(r.uniform() * 16)
                    codes[row * cols + g * gs + k] = UInt8(q)
                    W[row * cols + g * gs + k] = scale * (Float(q) - zero)
                }
            }
        }
        let X = Self.correlatedInputs(N: N, cols: cols, seed: 11)
        let res = try GPTQ(actOrder: actOrder)
            .solve(W: W, rows: rows, cols: cols, H: Self.hessian(X, N: N, cols: cols), grid: grid)
        #expect(res.rtnError == 0)
        #expect(res.codes == codes)
        #expect(res.Q == W)
        #expect(res.gptqError == 0)
    }

    // MARK: LayerHessian

    @Test func hessianMergeAndNumpy() throws {
        let cols = 48, N = 200
        let X = Self.correlatedInputs(N: N, cols: cols, seed: 3)
        let half = N / 2 * cols
        // Two calls into one hessian == two hessians merged, bit for bit (same additions in the same order).
        let seq = LayerHessian(columns: cols), a = LayerHessian(columns: cols), b = LayerHessian(columns: cols)
        X.withUnsafeBufferPointer { x in
            seq.accumulate(x.baseAddress!, rows: N / 2)
            seq.accumulate(x.baseAddress! + half, rows: N / 2)
            a.accumulate(x.baseAddress!, rows: N / 2)
            b.accumulate(x.baseAddress! + half, rows: N / 2)
        }
        let merged = LayerHessian(columns: cols)
        merged.merge(a)
        merged.merge(b)
        #expect(merged.count == N && seq.count == N)
        #expect(merged.sum() == seq.sum())
        // One call with all rows: only float32 rounding of the per-call products differs.
        let all = Self.hessian(X, N: N, cols: cols)
        let s = all.sum(), m = merged.sum()
        let scale = s.map(abs).max()!
        #expect(zip(s, m).allSatisfy { abs($0 - $1) <= 1e-6 * scale })
        // Against NumPy's float64 XᵀX, per entry relative to the matrix scale.
        let dir = try TestData.tempDir("xtx")
        let xPath = dir.appendingPathComponent("x.f32").path, out = dir.appendingPathComponent("xtx.f32").path
        try Self.writeF32(X, xPath)
        try runPython("gptq_reference.py", ["--xtx", xPath, "\(N)", "\(cols)", out])
        let ref = try readF32(out)
        let worst = zip(s, ref).map { abs($0 - Double($1)) }.max()! / scale
        #expect(worst <= 1e-6, "max |ours − numpy| / max|XᵀX| = \(worst)")
        // Symmetric; mean = 2/N·sum; diagonal = sum_ii/N; a serialized copy restores the same values.
        for i in 0..<cols { for j in 0..<cols { #expect(s[i * cols + j] == s[j * cols + i]) } }
        let mean = all.mean()
        #expect(mean[5 * cols + 7] == Float(s[5 * cols + 7] * 2 / Double(N)))
        #expect(all.diagonal[9] == Float(s[9 * cols + 9] / Double(N)))
        let copy = LayerHessian(columns: cols, count: all.count, sum: s)
        #expect(copy.sum() == s && copy.mean() == mean)
    }

    // MARK: Dead columns and fallbacks

    /// GPTQ v1 stores zero − 1, so an asymmetric fit never returns zero 0: an all-positive group (and one
    /// whose minimum is above −scale/2) gets zero 1 and scale xmax/(maxq − 1), and still rounds every weight
    /// within half a step; groups that reach below keep the min-max fit.
    @Test func asymmetricZeroPointIsAtLeastOne() throws {
        let grid = try IntegerGroupGrid(bits: 4, groupSize: 8, columns: 8)
        func fit(_ w: [Float]) -> (s: Float, o: Float, zero: UInt8) {
            var p = [UInt8](repeating: 0, count: grid.parameterBytes)
            var s = [Float](repeating: 0, count: 8), o = s
            w.withUnsafeBufferPointer { wb in
                p.withUnsafeMutableBytes { grid.fit(weights: wb.baseAddress!, importance: nil, parameters: $0.baseAddress!,
                                                    scale: &s, offset: &o) }
            }
            return (s[0], o[0], p[grid.parameterBytes - 1])
        }
        for w: [Float] in [[0.1, 0.5, 0.9, 1.5, 0.3, 2.0, 0.7, 1.1], [-0.01, 0.5, 0.9, 1.5, 0.3, 2.0, 0.7, 1.1]] {
            let f = fit(w)
            #expect(f.zero == 1)
            #expect(f.s == Float(Float16(Float(2.0) / 14)))
            #expect(f.o == -f.s)
            for x in w {
                let q = grid.nearestCode(x, scale: f.s, offset: f.o)
                #expect(abs(f.s * Float(q) + f.o - x) <= f.s / 2 * 1.001, "\(x) -> code \(q)")
            }
        }
        let mixed = fit([-0.5, 0.5, 0.9, 1.5, 0.3, 2.0, 0.7, 1.1])
        #expect(mixed.zero == 3 && mixed.s == Float(Float16(Float(2.5) / 15)))
    }

    @Test func deadColumnsQuantizeToZero() throws {
        let rows = 8, cols = 64, N = 128, dead = [3, 40]
        var X = Self.correlatedInputs(N: N, cols: cols, seed: 9)
        for t in 0..<N { for d in dead { X[t * cols + d] = 0 } }
        var r = LCG(s: 2)
        let W = r.normals(rows * cols).map { $0 * 0.1 }
        let grid = try IntegerGroupGrid(bits: 4, groupSize: 32, columns: cols)
        for actOrder in [false, true] {
            let res = try GPTQ(actOrder: actOrder).solve(W: W, rows: rows, cols: cols,
                                                         H: Self.hessian(X, N: N, cols: cols), grid: grid)
            #expect(res.fallback == .none)
            for row in 0..<rows { for d in dead { #expect(res.Q[row * cols + d] == 0) } }
            #expect(res.gptqError.isFinite && res.gptqError <= res.rtnError)
            // Dead columns get H_ii = 1 before the act-order sort (as the reference), so they sort as 1.
            if actOrder { #expect(Set(res.permutation!) == Set(0..<cols)) }
        }
    }

    @Test func singularHessianIncreasesDamping() throws {
        // 16 tokens for 64 columns: XᵀX has rank 16; without damping Cholesky fails.
        let rows = 8, cols = 64, N = 16
        let X = Self.correlatedInputs(N: N, cols: cols, seed: 4)
        var r = LCG(s: 8)
        let W = r.normals(rows * cols).map { $0 * 0.1 }
        let grid = try IntegerGroupGrid(bits: 4, groupSize: 32, columns: cols)
        let res = try GPTQ(dampPercent: 0).solve(W: W, rows: rows, cols: cols, H: Self.hessian(X, N: N, cols: cols), grid: grid)
        guard case .dampingIncreased(let times) = res.fallback else {
            Issue.record("expected a damping increase, got \(res.fallback)"); return
        }
        #expect(times >= 1 && times <= GPTQ.maxDampingIncreases && res.damping > 0)
        #expect(res.Q.allSatisfy(\.isFinite) && res.gptqError <= res.rtnError)
    }

    @Test func indefiniteHessianGetsDiagonalFloorAndNaNFallsBackToRTN() throws {
        let rows = 4, cols = 32
        var r = LCG(s: 1)
        let W = r.normals(rows * cols).map { $0 * 0.1 }
        let grid = try IntegerGroupGrid(bits: 4, groupSize: -1, columns: cols)
        // Not a Gram matrix: unit diagonal, off-diagonal 500 (H = sum with count 2): eigenvalues −499 (×31)
        // and 15 001, indefinite even with λ = 100·mean diag after four increases.
        var sum = [Double](repeating: 500, count: cols * cols)
        for i in 0..<cols { sum[i * cols + i] = 1 }
        let floor = try GPTQ().solve(W: W, rows: rows, cols: cols, H: LayerHessian(columns: cols, count: 2, sum: sum), grid: grid)
        #expect(floor.fallback == .diagonalFloor && floor.Q.allSatisfy(\.isFinite))
        sum[1] = .nan
        sum[cols] = .nan
        let rtn = try GPTQ().solve(W: W, rows: rows, cols: cols, H: LayerHessian(columns: cols, count: 2, sum: sum), grid: grid)
        #expect(rtn.fallback == .rtn)
        // The RTN fallback is plain round-to-nearest of the original W on the grid.
        var params = [UInt8](repeating: 0, count: grid.parameterBytes)
        var scale = [Float](repeating: 0, count: cols), offset = scale
        for row in 0..<rows {
            W.withUnsafeBufferPointer { w in
                grid.fit(weights: w.baseAddress! + row * cols, importance: nil, parameters: &params, scale: &scale, offset: &offset)
            }
            for c in 0..<cols {
                #expect(rtn.codes[row * cols + c] == grid.nearestCode(W[row * cols + c], scale: scale[c], offset: offset[c]))
            }
        }
    }

    @Test func shapeErrorsThrow() throws {
        let grid = try IntegerGroupGrid(bits: 4, groupSize: 32, columns: 64)
        #expect(throws: GPTQError.self) {
            try GPTQ().solve(W: [Float](repeating: 0, count: 10), rows: 2, cols: 64, H: LayerHessian(columns: 64), grid: grid)
        }
        #expect(throws: GPTQError.self) { try IntegerGroupGrid(bits: 4, groupSize: 48, columns: 64) }
        #expect(throws: GPTQError.self) { try IntegerGroupGrid(bits: 9, groupSize: 32, columns: 64) }
    }
}
