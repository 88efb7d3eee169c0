// ggml `IQ4_XS`: IQ4_NL's 16 levels in super-blocks of 256, with a 6-bit scale per 32 weights under one f16
// super-scale. Reference dequantizer and quantizer (`quantize_iq4_xs`); the GPTQ grid is `GGMLGrid`.
//
// 4.25 bits/weight, MXFP4's size, with nearly IQ4_NL's error: the sub-block scales are linear (6 bits)
// where MXFP4's are powers of two. Only rows that are a multiple of 256 take it (SmolLM2's 1536-wide
// ffn_down); the 576-wide ones fall back to IQ4_NL, as in llama.cpp.

/// `block_iq4_xs` (136 bytes, 4.25 bits/weight):
/// - `d: f16` at 0, the super-scale;
/// - `scales_h: u16` at 2; bits 2·ib and 2·ib+1 are the top two bits of sub-block ib's 6-bit scale;
/// - `scales_l: [4] u8` at 4; byte ib/2 holds the low four bits of sub-block ib's scale (low nibble for even ib);
/// - `qs: [128] u8` at 8; sub-block ib's 16 bytes at 8 + 16·ib, packed as an IQ4_NL block's.
///
/// Weight = d · (ls − 32) · levels[q], `ls` the sub-block's 6-bit scale, `levels` IQ4_NL's.
public enum IQ4XSBlock: GGMLBlockFormat {
    public static let type = GGMLType.iq4_xs
    public static let blockSize = 256
    public static let byteSize = 136

    /// Sub-block ib's stored scale `ls` (0...63; the multiplier of d is ls − 32).
    @inline(__always)
    static func subScale(_ block: UnsafeRawPointer, _ ib: Int) -> Int {
        let low = Int(block.loadU8(at: 4 + ib / 2) >> (4 * (ib % 2))) & 0x0F
        let high = Int(UInt16(littleEndian: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) >> (2 * ib)) & 3
        return low | high << 4
    }

    /// Out of line on purpose: inlined into `dequantizeRow`'s switch, the release build (Swift 6.3.1, -O)
    /// crashed on loading any GGUF model, whatever its types (the caller found a garbage error after the
    /// throwing call returned); debug builds and every test were fine. scripts/setup.sh now runs the
    /// release binary once, so such a build fails CI.
    @inline(never)
    public static func dequantize(block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let d = block.loadF16(at: 0)
        IQ4NLBlock.levels.withUnsafeBufferPointer { v in
            for ib in 0..<8 {
                let dl = d * Float(subScale(block, ib) - 32)
                let y = out + 32 * ib
                for j in 0..<16 {
                    let b = block.loadU8(at: 8 + 16 * ib + j)
                    y[j] = dl * Float(v[Int(b & 0x0F)])
                    y[j + 16] = dl * Float(v[Int(b >> 4)])
                }
            }
        }
    }

    /// `quantize_row_iq4_nl_impl(256, 32, …, ntry: 7)` up to the code packing: IQ4_NL's scale search on each
    /// 32-weight sub-block with `weights` (ggml's `weight[j]`, 256 of them); d = −s/32 for the sub-block scale s
    /// of largest magnitude, so that s maps to −32; each sub-block's scale rounded to l = nearest(scale/d) in
    /// −32...31 and stored as l + 32; the codes the nearest levels to x/(d·l) with the float (unrounded) d.
    /// Writes d, scales_h and scales_l into `out` (the code region zeroed) and the codes into `L`.
    static func search(_ x: UnsafePointer<Float>, weights w: UnsafePointer<Float>,
                       into out: UnsafeMutableRawPointer, codes L: UnsafeMutablePointer<UInt8>) {
        out.initializeMemory(as: UInt8.self, repeating: 0, count: byteSize)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 8) { scales in
            var maxScale: Float = 0, amaxScale: Float = 0
            for ib in 0..<8 {
                let s = IQ4NLBlock.searchScale(x + 32 * ib, weights: w + 32 * ib)  // 0 below GROUP_MAX_EPS
                scales[ib] = s
                if abs(s) > amaxScale { amaxScale = abs(s); maxScale = s }
            }
            let d = -maxScale / 32
            out.storeF16(d, at: 0)
            let id: Float = d != 0 ? 1 / d : 0
            var high: UInt16 = 0
            IQ4NLBlock.levels.withUnsafeBufferPointer { v in
                for ib in 0..<8 {
                    let l = max(-32, min(31, Int(nearestInt(id * scales[ib]))))
                    let dl = d * Float(l)
                    let idl: Float = dl != 0 ? 1 / dl : 0
                    for j in 32 * ib..<32 * ib + 32 { L[j] = UInt8(IQ4NLBlock.bestIndex(v, idl * x[j])) }
                    out.orU8(UInt8((l + 32) & 0x0F) << (4 * (ib % 2)), at: 4 + ib / 2)
                    high |= UInt16((l + 32) >> 4) << (2 * ib)
                }
            }
            out.storeBytes(of: high.littleEndian, toByteOffset: 2, as: UInt16.self)
        }
    }

    /// The search without an imatrix (`quant_weights` NULL): weight[j] = x[j]².
    static func plainSearch(_ x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer, codes L: UnsafeMutablePointer<UInt8>) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 256) { w in
            for j in 0..<256 { w[j] = x[j] * x[j] }
            search(x, weights: w.baseAddress!, into: out, codes: L)
        }
    }

    /// The grid of a block with stored scales: weight = (f16(d)·(ls − 32))·level + 0.
    static func grid(_ p: UnsafeRawPointer, _ s: UnsafeMutablePointer<Float>, _ o: UnsafeMutablePointer<Float>) {
        let d = p.loadF16(at: 0)
        for ib in 0..<8 {
            let dl = d * Float(subScale(p, ib) - 32)
            for j in 32 * ib..<32 * ib + 32 { s[j] = dl; o[j] = 0 }
        }
    }
}

extension IQ4XSBlock: GGMLBlockQuantizer {
    public static let maxCode = 15
    /// The f16 fields the block's weights are linear in, codes and sub-block scales fixed: d.
    public static let linearHalfFields = [0]
    public static var codebook: [Float]? { IQ4NLBlock.codebook }

    /// `quantize_row_iq4_xs_ref` (= `quantize_iq4_xs` without an imatrix, what llama-quantize runs).
    public static func quantize(block x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { L in
            plainSearch(x, into: out, codes: L.baseAddress!)
            packCodes(L.baseAddress!, into: out)
        }
    }

    public static func fit(block x: UnsafePointer<Float>, parameters: UnsafeMutableRawPointer,
                           scale s: UnsafeMutablePointer<Float>, offset o: UnsafeMutablePointer<Float>) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { plainSearch(x, into: parameters, codes: $0.baseAddress!) }
        grid(UnsafeRawPointer(parameters), s, o)
    }

    /// Sub-block ib: byte j of its 16 (at 8 + 16·ib) holds weight 32·ib + j (low nibble) and 32·ib + 16 + j (high).
    public static func packCodes(_ codes: UnsafePointer<UInt8>, into block: UnsafeMutableRawPointer) {
        for ib in 0..<8 {
            let c = codes + 32 * ib
            for j in 0..<16 { block.orU8(c[j] & 0x0F | (c[j + 16] & 0x0F) << 4, at: 8 + 16 * ib + j) }
        }
    }
}

extension IQ4XSBlock: GGMLImportanceQuantizer {
    /// `quantize_iq4_xs` with quant_weights: `qw[j]·sqrt(σ² + x[j]²)`, σ² = Σx²·(2/256) over the super-block.
    public static func importanceWeights(block x: UnsafePointer<Float>, imatrix qw: UnsafePointer<Float>,
                                         rowSigma2: Float, into weight: UnsafeMutablePointer<Float>) {
        iq4ImportanceWeights(x, qw, weight, count: 256)
    }

    public static func fitWeighted(block x: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                                   parameters: UnsafeMutableRawPointer, codes: UnsafeMutablePointer<UInt8>,
                                   scale: UnsafeMutablePointer<Float>, offset: UnsafeMutablePointer<Float>) {
        search(x, weights: weights, into: parameters, codes: codes)
        grid(UnsafeRawPointer(parameters), scale, offset)
    }
}
