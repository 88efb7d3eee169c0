// The GPTQ grid of the ggml types: fit -> nearestCode -> pack -> dequantize reproduces the grid values
// exactly, the fitted parameters are the reference quantizer's, and packing the nearest codes gives the
// reference bytes whenever the codes agree (and says how often they do not).
import Foundation
import Testing
import TestSupport
@testable import HessianDist

struct FittedBlock {
    var parameters: [UInt8], scale: [Float], offset: [Float], codes: [UInt8], packed: [UInt8]
}

func fitAndPack(_ grid: GGMLGrid, _ w: ArraySlice<Float>, importance: [Float]? = nil) -> FittedBlock {
    let w = Array(w)
    var p = [UInt8](repeating: 0xEE, count: grid.parameterBytes)
    var s = [Float](repeating: .nan, count: grid.groupSize), o = s
    w.withUnsafeBufferPointer { wb in
        p.withUnsafeMutableBytes { pb in
            s.withUnsafeMutableBufferPointer { sb in
                o.withUnsafeMutableBufferPointer { ob in
                    importance.withOptionalPointer(offset: 0) { im in
                        grid.fit(weights: wb.baseAddress!, importance: im, parameters: pb.baseAddress!,
                                 scale: sb.baseAddress!, offset: ob.baseAddress!)
                    }
                }
            }
        }
    }
    let codes = (0..<grid.groupSize).map { grid.nearestCode(w[$0], scale: s[$0], offset: o[$0]) }
    return FittedBlock(parameters: p, scale: s, offset: o, codes: codes, packed: pack(grid, p, codes))
}

func pack(_ grid: GGMLGrid, _ p: [UInt8], _ codes: [UInt8]) -> [UInt8] {
    var block = [UInt8](repeating: 0x55, count: grid.parameterBytes)
    p.withUnsafeBytes { pb in
        codes.withUnsafeBufferPointer { cb in
            block.withUnsafeMutableBytes { grid.pack(parameters: pb.baseAddress!, codes: cb.baseAddress!, into: $0.baseAddress!) }
        }
    }
    return block
}

@Suite struct GGMLGridTests {
    /// The fixture blocks (zeros, equal values, 1e-30...1e30, ties, ...) plus 32 random normal blocks.
    func inputs(_ t: GGMLType) throws -> [Float] {
        var rng = SeededNormal(state: UInt64(t.rawValue))
        return try QuantFixtures.floats(t) + rng.array(32 * t.blockSize)
    }

    /// Property: for every block, dequantize(pack(fit, nearestCode)) equals `scale[i] * Float(q) + offset[i]`
    /// (two roundings) as a Float, bit for bit except that the grid gives +0 where the dequantizer's
    /// `(q − z)·d` gives −0 for a negative d. Blocks whose f16 scale overflowed to inf (the fixture
    /// blocks at 1e6, 1e15, 1e30) are outside the contract: inf·q − inf is NaN where ggml gives ±inf. Codes stay in 0...maxCode.
    @Test(arguments: QuantizeTests.quantTypes)
    func roundTripIsExact(_ t: GGMLType) throws {
        let grid = try GGMLGrid(type: t)
        #expect(grid.groupSize == t.blockSize && grid.parameterBytes == t.typeSize)
        let x = try inputs(t)
        var infinite = 0
        for b in 0..<(x.count / t.blockSize) {
            let f = fitAndPack(grid, x[b * t.blockSize..<(b + 1) * t.blockSize])
            guard f.scale.allSatisfy({ $0.isFinite }), f.offset.allSatisfy({ $0.isFinite }) else {
                // Only blocks whose scale overflows f16 (max |w| beyond ~65504·zero point) may get here.
                let amax = x[b * t.blockSize..<(b + 1) * t.blockSize].map(abs).max()!
                #expect(amax > 1e5, "\(t) block \(b): infinite scale with max |w| = \(amax)")
                infinite += 1
                continue
            }
            #expect(f.codes.allSatisfy { Int($0) <= grid.maxCode })
            let y = try dequantized(t, f.packed, count: t.blockSize)
            for i in 0..<t.blockSize {
                let v = grid.value(code: f.codes[i], scale: f.scale[i], offset: f.offset[i])
                let same = y[i].bitPattern == v.bitPattern || (y[i] == 0 && v == 0)
                #expect(same, "\(t) block \(b) weight \(i): dequantized \(y[i]) vs grid \(v)")
                if !same { return }
            }
        }
        #expect(infinite <= 3, "\(t): \(infinite) blocks with an infinite f16 scale (fixtures at 1e6, 1e15, 1e30)")
    }

    /// Every bit of the block that is not a code bit (found by packing all-0 and all-maxCode codes)
    /// is the reference quantizer's: fit computes exactly the reference's d, m, 4/6/8-bit scales.
    @Test(arguments: QuantizeTests.quantTypes)
    func fitWritesReferenceParameters(_ t: GGMLType) throws {
        let grid = try GGMLGrid(type: t)
        let zero = [UInt8](repeating: 0, count: t.typeSize)
        let codeBits = zip(pack(grid, zero, [UInt8](repeating: 0, count: t.blockSize)),
                           pack(grid, zero, [UInt8](repeating: UInt8(grid.maxCode), count: t.blockSize))).map { $0 | $1 }
        let x = try inputs(t)
        let ref = try quantized(t, x)
        for b in 0..<(x.count / t.blockSize) {
            let f = fitAndPack(grid, x[b * t.blockSize..<(b + 1) * t.blockSize])
            let r = Array(ref[b * t.typeSize..<(b + 1) * t.typeSize])
            #expect(zip(f.parameters, codeBits).allSatisfy { $0 & $1 == 0 }, "\(t) block \(b): code region not zeroed")
            let mismatch = (0..<t.typeSize).filter { f.parameters[$0] & ~codeBits[$0] != r[$0] & ~codeBits[$0] }
            #expect(mismatch.isEmpty, "\(t) block \(b): parameter bytes \(mismatch) differ from the reference")
        }
    }

    /// With an importance vector, Q4_0/Q4_1/Q5_0/Q5_1 fit the block's parameters by llama.cpp's weighted
    /// search: the parameter bytes equal those of the importance quantizer run with the same weights
    /// (σ² = 0 and x-independent weights are not expressible there, so the imatrix path is reproduced with
    /// one block per row: weights = importance·sqrt(σ² + x²) computed the same way), the round trip stays
    /// exact, and the grid differs from the min/max fit on some blocks. Other types ignore importance.
    @Test(arguments: QuantizeTests.quantTypes)
    func importanceFit(_ t: GGMLType) throws {
        let grid = try GGMLGrid(type: t)
        var rng = SeededNormal(state: 99 + UInt64(t.rawValue))
        let x = rng.array(24 * t.blockSize)
        let importance = (0..<t.blockSize).map { i in i % 7 == 0 ? 50 : Float(i % 3) + 0.5 }
        var changed = 0
        for b in 0..<24 {
            let xb = Array(x[b * t.blockSize..<(b + 1) * t.blockSize])
            let f = fitAndPack(grid, xb[...], importance: importance)
            let plain = fitAndPack(grid, xb[...])
            guard t.importanceQuantizer != nil else {
                #expect(f.parameters == plain.parameters, "\(t) block \(b): importance must be ignored")
                continue
            }
            if f.parameters != plain.parameters { changed += 1 }
            let y = try dequantized(t, f.packed, count: t.blockSize)
            for i in 0..<t.blockSize {
                let v = grid.value(code: f.codes[i], scale: f.scale[i], offset: f.offset[i])
                #expect(y[i].bitPattern == v.bitPattern || (y[i] == 0 && v == 0), "\(t) block \(b) weight \(i)")
            }
            // One block as a one-row tensor through the imatrix quantizer: weights importance·sqrt(σ² + x²)
            // with the type's σ² (the row's for Q4_0..Q5_1, the block's for IQ4_NL and the K-quants).
            var sumX2: Float = 0
            for v in xb { sumX2 += v * v }
            let sigma2 = sumX2 / Float(t.blockSize)
            var weights = [Float](repeating: 0, count: t.blockSize)
            xb.withUnsafeBufferPointer { x in importance.withUnsafeBufferPointer { qw in weights.withUnsafeMutableBufferPointer { w in
                t.importanceQuantizer!.importanceWeights(block: x.baseAddress!, imatrix: qw.baseAddress!, rowSigma2: sigma2,
                                                          into: w.baseAddress!)
            }}}
            let viaGrid = fitAndPack(grid, xb[...], importance: weights)
            let viaImatrix = try xb.withUnsafeBufferPointer {
                try quantizeTensor(t, rows: 1, cols: t.blockSize, from: $0.baseAddress!, importance: importance)
            }
            let codeBits = zip(pack(grid, [UInt8](repeating: 0, count: t.typeSize), [UInt8](repeating: 0, count: t.blockSize)),
                               pack(grid, [UInt8](repeating: 0, count: t.typeSize), [UInt8](repeating: UInt8(grid.maxCode), count: t.blockSize))).map { $0 | $1 }
            #expect((0..<t.typeSize).allSatisfy { viaGrid.parameters[$0] & ~codeBits[$0] == viaImatrix[$0] & ~codeBits[$0] },
                    "\(t) block \(b): grid fit and imatrix quantizer disagree on the scales")
        }
        if t.importanceQuantizer != nil { #expect(changed > 0, "\(t): importance never changed the fit") }
    }

    /// Nearest codes on the stored grid vs the reference quantizer's codes (read back from its bytes
    /// where the sub-block scale is nonzero and finite):
    /// - packing the reference's codes with the fitted parameters gives the reference bytes exactly;
    /// - Q2_K, Q4_K, Q5_K: the codes are identical (ggml re-rounds with the same `(x + dmin·m)/(d·sc)`);
    /// - MXFP4 too (its power-of-two scale is stored exactly);
    /// - Q4_0, Q5_0, Q8_0, Q4_1, Q5_1 round with the unrounded 1/d (and Q4_0/Q5_0/Q4_1 truncate x/d + ½),
    ///   Q3_K and Q6_K divide by d·sc then add the zero point, IQ4_NL picks the level nearest to x/d with
    ///   the unrounded d: a code may differ by one step (one level), near ties.
    /// Sub-blocks with a zero stored scale dequantize to the same values either way. The one-step bound
    /// and the 1% rate hold where the f16 scale is a normal half (|d| >= 2^-14).
    @Test(arguments: QuantizeTests.quantTypes)
    func nearestCodesReproduceReference(_ t: GGMLType) throws {
        let grid = try GGMLGrid(type: t)
        let x = try inputs(t)
        let ref = try quantized(t, x)
        let exactTypes: Set<GGMLType> = [.q2_K, .q4_K, .q5_K, .mxfp4]
        var compared = 0, differing = 0, reproducedBlocks = 0
        for b in 0..<(x.count / t.blockSize) {
            let f = fitAndPack(grid, x[b * t.blockSize..<(b + 1) * t.blockSize])
            let r = Array(ref[b * t.typeSize..<(b + 1) * t.typeSize])
            let yRef = try dequantized(t, r, count: t.blockSize)
            let yGrid = try dequantized(t, f.packed, count: t.blockSize)
            var refCodes = f.codes, recoverable = true
            for i in 0..<t.blockSize {
                guard f.scale[i] != 0, f.scale[i].isFinite, f.offset[i].isFinite else {
                    recoverable = false
                    if f.scale[i] == 0 { #expect(yRef[i] == yGrid[i], "\(t) block \(b) weight \(i) (zero scale)") }
                    continue
                }
                refCodes[i] = grid.nearestCode(yRef[i], scale: f.scale[i], offset: f.offset[i])  // yRef is on the grid
                // A subnormal f16 scale (|d| < 2^-14, e.g. weights ~1e-6) has a large relative rounding
                // error, so the reference's unrounded-1/d codes may be several steps off the stored grid.
                guard abs(f.scale[i]) >= 0x1p-14 else { continue }
                compared += 1
                if refCodes[i] != f.codes[i] {
                    differing += 1
                    #expect(abs(Int(refCodes[i]) - Int(f.codes[i])) <= 1, "\(t) block \(b) weight \(i) scale \(f.scale[i]) offset \(f.offset[i]) w \(x[b * t.blockSize + i])")
                    #expect(!exactTypes.contains(t), "\(t) block \(b) weight \(i): \(refCodes[i]) vs \(f.codes[i])")
                }
            }
            if recoverable {
                #expect(pack(grid, f.parameters, refCodes) == r, "\(t) block \(b): packing the reference codes")
                reproducedBlocks += 1
            }
        }
        #expect(reproducedBlocks >= 40, "\(t): only \(reproducedBlocks) blocks with all scales nonzero")
        #expect(Double(differing) <= 0.01 * Double(compared), "\(t): \(differing) of \(compared) codes differ")
        print("\(t): nearest code != reference code for \(differing) of \(compared) weights; \(reproducedBlocks) blocks reproduced")
    }
}
