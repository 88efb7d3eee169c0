import Foundation
import Testing
@testable import HessianDist

/// The scale refit after GPTQ's sweep: the stored result is still exactly what the blocks dequantize to,
/// it never raises the objective, and it lands on the least-squares optimum (a closed-form 2×2 case).
@Suite struct ScaleRefitTests {
    typealias LCG = GPTQTests.LCG

    static func layer(rows: Int, cols: Int, seed: UInt64) -> (W: [Float], H: LayerHessian) {
        var r = LCG(s: seed)
        let W = r.normals(rows * cols).map { $0 * 0.05 }
        let N = 4 * cols
        return (W, GPTQTests.hessian(GPTQTests.correlatedInputs(N: N, cols: cols, seed: seed &+ 1), N: N, cols: cols))
    }

    /// Every block of the refitted layer, packed, dequantizes to the Q the solver returns, bit for bit;
    /// with shrink 0 (the objective is the reported error's H) the error never rises and does fall.
    @Test(arguments: [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .iq4_nl, .iq4_xs, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K])
    func refitLowersTheErrorAndStaysExact(_ type: GGMLType) throws {
        let rows = 24, cols = 512
        let (W, H) = Self.layer(rows: rows, cols: cols, seed: 7)
        let grid = try GGMLGrid(type: type)
        let plain = try GPTQ().solve(W: W, rows: rows, cols: cols, H: H, grid: grid, importance: H.diagonal)
        let refit = try GPTQ(refitScales: true).solve(W: W, rows: rows, cols: cols, H: H, grid: grid, importance: H.diagonal)
        #expect(refit.codes == plain.codes)
        let s = try #require(refit.refit)
        #expect(s.rowsChanged > rows / 2, "\(type): \(s.rowsChanged) of \(rows) rows improved")
        #expect(s.errorAfter < s.errorBefore)
        #expect(refit.gptqError <= plain.gptqError * (1 + 1e-6))
        #expect(refit.gptqError < plain.gptqError * 0.999, "\(type): \(plain.gptqError) → \(refit.gptqError)")
        // The stored blocks are what the solver reports.
        let bs = grid.groupSize, groups = cols / bs
        var bytes = [UInt8](repeating: 0, count: rows * groups * type.typeSize)
        refit.parameters.withUnsafeBytes { p in refit.codes.withUnsafeBufferPointer { c in bytes.withUnsafeMutableBytes { o in
            for b in 0..<(rows * groups) {
                grid.pack(parameters: p.baseAddress! + b * grid.parameterBytes,
                          codes: c.baseAddress! + (b / groups) * cols + (b % groups) * bs,
                          into: o.baseAddress! + b * type.typeSize)
            }
        }}}
        var deq = [Float](repeating: 0, count: rows * cols)
        try bytes.withUnsafeBytes { raw in try deq.withUnsafeMutableBufferPointer { try dequantizeRow(type, from: raw, into: $0) } }
        #expect(zip(deq, refit.Q).allSatisfy { $0 == $1 || ($0 == 0 && $1 == 0) })
    }

    /// Two Q4_0 blocks per row: the optimum of (w − d₀u₀ − d₁u₁)ᵀH(·) by Cramer's rule, independent of the
    /// solver's LAPACK path. Each stored d is that optimum rounded to f16, or (when the rounding of both
    /// together did not lower the objective) the row is left as the sweep fitted it.
    @Test func twoBlocksMatchTheClosedForm() throws {
        let rows = 16, cols = 64
        let (W, Hl) = Self.layer(rows: rows, cols: cols, seed: 11)
        let grid = try GGMLGrid(type: .q4_0)
        let plain = try GPTQ().solve(W: W, rows: rows, cols: cols, H: Hl, grid: grid)
        let r = try GPTQ(refitScales: true).solve(W: W, rows: rows, cols: cols, H: Hl, grid: grid)
        let H = Hl.mean()
        var matched = 0
        for row in 0..<rows {
            // u_b: the codes' values at d = 1, zero outside block b.
            let codes = Array(r.codes[(row * cols)..<((row + 1) * cols)]).map { Double(Int($0) - 8) }
            let w = (0..<cols).map { Double(W[row * cols + $0]) }
            func hdot(_ a: [Double], _ b: [Double]) -> Double {
                var s = 0.0
                for i in 0..<cols { for k in 0..<cols { s += a[i] * Double(H[i * cols + k]) * b[k] } }
                return s
            }
            let u0 = (0..<cols).map { $0 < 32 ? codes[$0] : 0 }, u1 = (0..<cols).map { $0 >= 32 ? codes[$0] : 0 }
            let a = hdot(u0, u0), b = hdot(u0, u1), c = hdot(u1, u1), y0 = hdot(u0, w), y1 = hdot(u1, w)
            let det = a * c - b * b
            let d0 = (y0 * c - b * y1) / det, d1 = (a * y1 - b * y0) / det
            let p = (0..<2).map { g in r.parameters.withUnsafeBytes { $0.baseAddress!.loadF16(at: (row * 2 + g) * 18) } }
            let old = (0..<2).map { g in plain.parameters.withUnsafeBytes { $0.baseAddress!.loadF16(at: (row * 2 + g) * 18) } }
            if p == old { continue }
            #expect(p[0] == Float(Float16(Float(d0))) || abs(Double(p[0]) - d0) <= abs(d0) * 0x1p-10, "row \(row): d0 \(p[0]) vs \(d0)")
            #expect(p[1] == Float(Float16(Float(d1))) || abs(Double(p[1]) - d1) <= abs(d1) * 0x1p-10, "row \(row): d1 \(p[1]) vs \(d1)")
            matched += 1
        }
        #expect(matched >= rows / 2)
    }

    /// GPTQ integer groups refit their fp16 scale (the zero point stays), and keep it positive.
    @Test func integerGroupsRefitTheirScale() throws {
        let rows = 16, cols = 256
        let (W, H) = Self.layer(rows: rows, cols: cols, seed: 5)
        let grid = try IntegerGroupGrid(bits: 4, groupSize: 64, columns: cols)
        let plain = try GPTQ().solve(W: W, rows: rows, cols: cols, H: H, grid: grid)
        let refit = try GPTQ(refitScales: true).solve(W: W, rows: rows, cols: cols, H: H, grid: grid)
        #expect(refit.gptqError < plain.gptqError)
        for g in 0..<(rows * cols / 64) {
            let base = g * grid.parameterBytes
            let s = Float(Float16(bitPattern: UInt16(refit.parameters[base]) | UInt16(refit.parameters[base + 1]) << 8))
            let z = Float(refit.parameters[base + 2])
            #expect(s > 0 && s.isFinite)
            #expect(z == Float(plain.parameters[base + 2]))
            let row = g / (cols / 64), c0 = (g % (cols / 64)) * 64
            for i in 0..<64 {
                #expect(refit.Q[row * cols + c0 + i] == s * Float(refit.codes[row * cols + c0 + i]) + -(s * z))
            }
        }
    }

    /// MXFP4 has no float field to refit; act-order with dynamic groups has no contiguous groups.
    @Test func refitIsSkippedWhereItDoesNotApply() throws {
        let rows = 8, cols = 64
        let (W, H) = Self.layer(rows: rows, cols: cols, seed: 3)
        let mx = try GPTQ(refitScales: true).solve(W: W, rows: rows, cols: cols, H: H, grid: GGMLGrid(type: .mxfp4))
        #expect(mx.refit == nil)
        let dyn = try GPTQ(actOrder: true, staticGroups: false, refitScales: true)
            .solve(W: W, rows: rows, cols: cols, H: H, grid: GGMLGrid(type: .q4_0))
        #expect(dyn.refit == nil)
    }
}
