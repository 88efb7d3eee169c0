// The GPTQ v1 exporter against a NumPy dequantizer (Tests/Python/gptq_dequant.py) that unpacks the files as
// the loaders' torch kernel does: every Linear must come back bit-exactly as scale·(q − zero) of our codes
// and parameters (q/k rows in HF order) for 2/3/4/8 bits, group sizes 32/128/−1, act-order g_idx, sym and
// asym. Then stories260K through GPTQ.solve, checked for the layout transformers expects, and the errors.
import Foundation
import Testing
import TestSupport
import HessianDist
import Node
@testable import Coordinator

/// A deterministic generator (LCG) for test data.
struct TestRNG {
    var s: UInt64
    mutating func next() -> UInt64 {
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return s >> 33
    }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func float() -> Float { Float(next() % (1 << 24)) / Float(1 << 24) * 2 - 1 }
}

/// What a module's weights are: W[r, c] = scale(r, g(c)) · (q − zero), in Float (exact for fp16 scales).
func referenceWeights(_ m: GPTQExportModule) -> [Float] {
    let groups = m.groups, pb = m.grid.parameterBytes
    var w = [Float](repeating: 0, count: m.rows * m.cols)
    for r in 0..<m.rows {
        for c in 0..<m.cols {
            let g = m.groupIndex?[c] ?? c / m.grid.groupSize
            let p = (r * groups + g) * pb
            let s = Float(Float16(bitPattern: UInt16(m.parameters[p]) | UInt16(m.parameters[p + 1]) << 8))
            let z = Float(m.parameters[p + pb - 1])
            w[r * m.cols + c] = s * (Float(m.codes[r * m.cols + c]) - z)
        }
    }
    return w
}

/// Runs the NumPy dequantizer; returns HF module prefix -> (exact f32, fp16-kernel result).
func dequantizeWithNumpy(_ dir: String) throws -> [String: (exact: [Float], half: [Float])] {
    let out = dir + ".dequant"
    defer { try? FileManager.default.removeItem(atPath: out) }
    let report = try runPython("gptq_dequant.py", [dir, out])
    let list = try JSONSerialization.jsonObject(with: Data(report.utf8)) as! [[String: Any]]
    var result: [String: ([Float], [Float])] = [:]
    for e in list {
        let m = e["module"] as! String
        result[m] = (try readF32(out + "/" + m + ".f32"), try readF32(out + "/" + m + ".f16.f32"))
    }
    return result
}

func hfPrefix(_ canonical: String) -> String { String(HFTensorName.hf(canonical)!.dropLast(".weight".count)) }

@Suite struct GPTQCheckpointTests {
    /// dim 128, hidden 256, 4 heads of 32, 2 KV heads: every in/out size is a multiple of 32 (3-bit packing).
    static let config = ModelConfig(dim: 128, hiddenDim: 256, nLayers: 1, nHeads: 4, nKVHeads: 2, vocabSize: 40,
                                    contextLength: 64, tiedEmbeddings: false, ropeLayout: .interleaved)

    static let linearNames = [TensorName.attnQ(0), TensorName.attnK(0), TensorName.attnV(0), TensorName.attnOutput(0),
                              TensorName.ffnGate(0), TensorName.ffnUp(0), TensorName.ffnDown(0)]

    /// Random codes and parameters on a grid (realistic zero points: (maxq+1)/2 if symmetric, else 1...maxq;
    /// positive fp16 scales spread over several binades). `actOrder` draws a random g_idx.
    static func randomModule(_ name: String, rows: Int, cols: Int, bits: Int, groupSize: Int, symmetric: Bool,
                             actOrder: Bool, rng: inout TestRNG) throws -> GPTQExportModule {
        let grid = try IntegerGroupGrid(bits: bits, groupSize: groupSize, columns: cols, symmetric: symmetric)
        let groups = cols / grid.groupSize, maxq = grid.maxCode
        let codes = (0..<(rows * cols)).map { _ in UInt8(rng.int(maxq + 1)) }
        var params: [UInt8] = []
        for _ in 0..<(rows * groups) {
            let s = Float16(Float(1 + rng.int(1000)) * 1e-4 * Float(1 << rng.int(6)))
            params += [UInt8(s.bitPattern & 0xff), UInt8(s.bitPattern >> 8)]
            params.append(UInt8(symmetric ? (maxq + 1) / 2 : 1 + rng.int(maxq)))
        }
        let gi: [Int]? = actOrder ? (0..<cols).map { _ in rng.int(groups) } : nil
        return GPTQExportModule(canonicalName: name, rows: rows, cols: cols, grid: grid, codes: codes,
                                parameters: params, groupIndex: gi)
    }

    static func denseTensors(_ c: ModelConfig, except: Set<String>, rng: inout TestRNG) -> [GPTQDenseTensor] {
        c.expectedShapes().filter { !except.contains($0.name) }.map { t in
            GPTQDenseTensor(canonicalName: t.name, shape: t.shape, values: (0..<t.shape.reduce(1, *)).map { _ in rng.float() })
        }
    }

    /// 48 combinations (bits × group size × sym × act-order) spread over checkpoints of 7 modules each,
    /// alternating interleaved and half-split sources and single-file / sharded output.
    @Test func everyModuleDequantizesBitExactlyInNumpy() throws {
        let c = Self.config
        var combos: [(bits: Int, gs: Int, sym: Bool, act: Bool)] = []
        for bits in [2, 3, 4, 8] { for gs in [32, 128, -1] { for sym in [true, false] { for act in [false, true] {
            combos.append((bits, gs, sym, act))
        } } } }
        let shapes = Dictionary(uniqueKeysWithValues: c.expectedShapes().map { ($0.name, $0.shape) })
        var rng = TestRNG(s: 42)
        let tmp = try TestData.tempDir("gptq-exact")
        defer { try? FileManager.default.removeItem(at: tmp) }
        var checked = 0
        for (k, start) in stride(from: 0, to: combos.count, by: 7).enumerated() {
            let chunk = combos[start..<min(start + 7, combos.count)]
            var modules: [GPTQExportModule] = []
            for (name, combo) in zip(Self.linearNames, chunk) {
                let s = shapes[name]!
                modules.append(try Self.randomModule(name, rows: s[0], cols: s[1], bits: combo.bits, groupSize: combo.gs,
                                                     symmetric: combo.sym, actOrder: combo.act, rng: &rng))
            }
            let quantized = Set(modules.map(\.canonicalName))
            let dense = Self.denseTensors(c, except: quantized, rng: &rng)
            let layout: RopeLayout = k % 2 == 0 ? .interleaved : .halfSplit
            let dir = tmp.appendingPathComponent("ckpt\(k)").path
            try writeGPTQCheckpoint(directory: dir, config: c, modules: modules, dense: dense, defaultBits: 4,
                                    groupSize: 128, symmetric: true, descAct: true,
                                    maxShardBytes: k % 3 == 1 ? 40_000 : nil, sourceRopeLayout: layout)
            _ = try runPython("gptq_checkpoint_check.py", [dir])
            let got = try dequantizeWithNumpy(dir)
            #expect(got.count == modules.count, "checkpoint \(k): \(got.count) modules dequantized")
            for m in modules {
                var want = referenceWeights(m)
                let isQK = m.canonicalName.hasSuffix("attn_q.weight") || m.canonicalName.hasSuffix("attn_k.weight")
                if isQK && layout == .interleaved {
                    want = gatherRows(want, rowLength: m.cols, permutation:
                        ropeRowPermutation(rows: m.rows, headDim: c.headDim, from: .interleaved, to: .halfSplit))
                }
                guard let g = got[hfPrefix(m.canonicalName)] else {
                    Issue.record("\(m.canonicalName) missing from the dequantized modules")
                    continue
                }
                let what = "ckpt \(k) \(m.canonicalName) bits \(m.grid.bits) gs \(m.grid.groupSize) sym \(m.grid.symmetric) g_idx \(m.groupIndex != nil)"
                expectBitEqual(g.exact, want, what + " (f32)")
                expectBitEqual(g.half, want.map { Float(Float16($0)) }, what + " (fp16 kernel)")
                checked += 1
            }
        }
        #expect(checked == combos.count)
    }

    /// stories260K's Linears through GPTQ.solve (random Hessians), exported with per-module overrides (its
    /// 172-wide FFN needs 8 bits to fill int32 words; down_proj's group is the whole row), one FFN left dense,
    /// sharded; the layout checked in Python and every module bit-exact with the solver's Q.
    @Test func stories260KThroughSolveExportsLoadableLayout() throws {
        let src = try Llama2cCheckpoint(path: TestData.shared("llama2c/stories260K.bin"))
        let c = src.config
        #expect(c.ropeLayout == .interleaved && c.dim == 64 && c.hiddenDim == 172)
        var rng = TestRNG(s: 7)
        var modules: [GPTQExportModule] = [], Qs: [String: [Float]] = [:], dense: [GPTQDenseTensor] = []
        let keepDense = TensorName.ffnDown(c.nLayers - 1)
        for t in c.expectedShapes() {
            let values = try src.dequantize(t.name)
            let isLinear = t.shape.count == 2 && t.name.hasPrefix("blk.")
            guard isLinear, t.name != keepDense else {
                dense.append(GPTQDenseTensor(canonicalName: t.name, shape: t.shape, values: values))
                continue
            }
            let (rows, cols) = (t.shape[0], t.shape[1])
            let ffn = t.name.contains("ffn_")
            let bits = ffn ? 8 : 4
            let gs = cols == 172 ? -1 : 32
            let symmetric = !ffn
            let grid = try IntegerGroupGrid(bits: bits, groupSize: gs, columns: cols, symmetric: symmetric)
            let N = 96
            let X = (0..<(N * cols)).map { _ in rng.float() }
            let H = LayerHessian(columns: cols)
            X.withUnsafeBufferPointer { H.accumulate($0.baseAddress!, rows: N) }
            let actOrder = t.name.hasPrefix("blk.1.")
            let r = try GPTQ(actOrder: actOrder, staticGroups: false).solve(W: values, rows: rows, cols: cols, H: H, grid: grid)
            let m = GPTQExportModule(canonicalName: t.name, rows: rows, cols: cols, grid: grid, result: r)
            #expect(referenceWeights(m) == r.Q, "\(t.name): scale·(q − zero) must be the solver's Q")
            modules.append(m)
            Qs[t.name] = r.Q
        }
        let tmp = try TestData.tempDir("gptq-stories")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let dir = tmp.appendingPathComponent("stories260K-gptq").path
        // Asymmetric grids never produce a zero point of 0 (IntegerGroupGrid refits such groups), so
        // every module is storable in v1.
        try writeGPTQCheckpoint(directory: dir, config: c, modules: modules, dense: dense, defaultBits: 4,
                                groupSize: 32, symmetric: true, descAct: true, maxShardBytes: 150_000,
                                dampPercent: 0.01, sourceRopeLayout: .interleaved)
        let summary = try runPython("gptq_checkpoint_check.py", [dir])
        #expect(summary.contains("\"quantized_modules\": \(modules.count)"), "\(summary)")
        #expect(summary.contains("-:^model\\\\.layers\\\\.\(c.nLayers - 1)\\\\.mlp\\\\.down_proj$"), "\(summary)")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(files.contains("model.safetensors.index.json") && files.filter { $0.hasSuffix(".safetensors") }.count > 1, "\(files)")
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: tmp.path)).contains { $0.contains(".partial-") })

        let cfg = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
        let q = cfg["quantization_config"] as! [String: Any]
        #expect(q["bits"] as? Int == 4 && q["group_size"] as? Int == 32 && q["desc_act"] as? Bool == true)
        #expect(q["sym"] as? Bool == true && q["damp_percent"] as? Double == 0.01 && q["checkpoint_format"] as? String == "gptq")
        let dyn = q["dynamic"] as! [String: [String: Any]]
        #expect(dyn["+:^model\\.layers\\.0\\.mlp\\.down_proj$"].map { $0["bits"] as? Int == 8 && $0["group_size"] as? Int == -1 && $0["sym"] as? Bool == false } == true, "\(dyn)")
        #expect(dyn["+:^model\\.layers\\.0\\.mlp\\.up_proj$"].map { $0["bits"] as? Int == 8 && $0["group_size"] == nil } == true)
        #expect(dyn["+:^model\\.layers\\.0\\.self_attn\\.q_proj$"] == nil)
        #expect(cfg["rms_norm_eps"] as? Double == 1e-5 && cfg["tie_word_embeddings"] as? Bool == true && cfg["head_dim"] as? Int == 8)

        let got = try dequantizeWithNumpy(dir)
        #expect(got.count == modules.count)
        for m in modules {
            var want = Qs[m.canonicalName]!
            if m.canonicalName.hasSuffix("attn_q.weight") || m.canonicalName.hasSuffix("attn_k.weight") {
                want.withUnsafeMutableBufferPointer {
                    permuteRopeRows($0, rows: m.rows, cols: m.cols, headDim: c.headDim, from: .interleaved, to: .halfSplit)
                }
            }
            expectBitEqual(got[hfPrefix(m.canonicalName)]?.exact ?? [], want, m.canonicalName)
        }
    }

    /// The dry-run layout counts every byte the writer writes: per file and in all, for mixed bit widths,
    /// dense Linears, several defaults and shard limits; and the checker reads each module's bits back
    /// from `dynamic`.
    @Test func layoutCountsEveryByteTheWriterWrites() throws {
        let c = Self.config
        let shapes = Dictionary(uniqueKeysWithValues: c.expectedShapes().map { ($0.name, $0.shape) })
        var rng = TestRNG(s: 99)
        let tmp = try TestData.tempDir("gptq-layout")
        defer { try? FileManager.default.removeItem(at: tmp) }
        for k in 0..<6 {
            var modules: [GPTQExportModule] = []
            for name in Self.linearNames where k == 0 || rng.int(5) > 0 {  // some Linears stay dense
                let s = shapes[name]!
                modules.append(try Self.randomModule(name, rows: s[0], cols: s[1], bits: gptqSupportedBits[rng.int(4)],
                                                     groupSize: [32, 64, -1][rng.int(3)], symmetric: rng.int(2) == 0,
                                                     actOrder: false, rng: &rng))
            }
            let dense = Self.denseTensors(c, except: Set(modules.map(\.canonicalName)), rng: &rng)
            let options = GPTQCheckpointOptions(bits: gptqSupportedBits[k % 4], groupSize: k % 2 == 0 ? 32 : -1,
                                                symmetric: k % 3 == 0, descAct: k % 2 == 1, dampPercent: k == 5 ? 0.125 : 0.01,
                                                maxShardBytes: [nil, 30_000, 1][k % 3])
            let layout = try GPTQCheckpointLayout(config: c, grids: Dictionary(uniqueKeysWithValues: modules.map { ($0.canonicalName, $0.grid) }),
                                                  options: options)
            let dir = tmp.appendingPathComponent("ckpt\(k)").path
            try writeGPTQCheckpoint(directory: dir, config: c, modules: modules, dense: dense, defaultBits: options.bits,
                                    groupSize: options.groupSize, symmetric: options.symmetric, descAct: options.descAct,
                                    maxShardBytes: options.maxShardBytes, dampPercent: options.dampPercent,
                                    sourceRopeLayout: .interleaved)
            var written: [String: Int] = [:]
            for f in try FileManager.default.contentsOfDirectory(atPath: dir) {
                written[f] = try FileManager.default.attributesOfItem(atPath: dir + "/" + f)[.size] as? Int
            }
            let planned = Dictionary(uniqueKeysWithValues: layout.files().map { ($0.name, $0.bytes) })
            #expect(planned == written, "checkpoint \(k): layout \(planned) vs written \(written)")
            #expect(layout.totalBytes == (try fileSize(dir)), "checkpoint \(k)")
            let summary = try runPython("gptq_checkpoint_check.py", [dir])
            let bits = (try JSONSerialization.jsonObject(with: Data(summary.utf8)) as! [String: Any])["module_bits"] as! [String: Int]
            #expect(bits == Dictionary(uniqueKeysWithValues: modules.map { (hfPrefix($0.canonicalName), $0.grid.bits) }),
                    "checkpoint \(k): \(bits)")
        }
    }

    /// The grid rule: packing along both dimensions, the group size stepping down to divide the row.
    @Test func gridRuleMatchesThePacking() throws {
        #expect(gptqGrid(bits: 4, groupSize: 128, rows: 64, cols: 64, symmetric: false)?.groupSize == 64)
        #expect(gptqGrid(bits: 3, groupSize: 128, rows: 32, cols: 64, symmetric: true)?.groupSize == 64)
        #expect(gptqGrid(bits: 4, groupSize: 128, rows: 172, cols: 64, symmetric: false) == nil, "172 × 4 bits is not whole words")
        #expect(gptqGrid(bits: 8, groupSize: 128, rows: 172, cols: 64, symmetric: false)?.bits == 8)
        #expect(gptqGrid(bits: 8, groupSize: 128, rows: 64, cols: 172, symmetric: false) == nil, "no group of 32…128 tiles 172")
        #expect(gptqGrid(bits: 8, groupSize: -1, rows: 64, cols: 172, symmetric: false)?.groupSize == 172)
        #expect(gptqGrid(bits: 5, groupSize: 32, rows: 64, cols: 64, symmetric: false) == nil)
        let g = try IntegerGroupGrid(bits: 3, groupSize: 32, columns: 128)
        // qweight 12×64 int32, qzeros 4×6 int32, scales 4×64 fp16, g_idx 128 int32.
        #expect(gptqModuleDataBytes(rows: 64, cols: 128, grid: g) == 12 * 64 * 4 + 4 * 6 * 4 + 4 * 64 * 2 + 128 * 4)
    }

    // MARK: errors

    func expectExportError(_ contains: String, modules: [GPTQExportModule], dense: [GPTQDenseTensor]? = nil,
                           bits: Int = 4, descAct: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) throws {
        var rng = TestRNG(s: 5)
        let c = Self.config
        let d = dense ?? Self.denseTensors(c, except: Set(modules.map(\.canonicalName)), rng: &rng)
        let tmp = try TestData.tempDir("gptq-err")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let dir = tmp.appendingPathComponent("out").path
        let e = #expect(throws: GPTQExportError.self, sourceLocation: sourceLocation) {
            try writeGPTQCheckpoint(directory: dir, config: c, modules: modules, dense: d, defaultBits: bits, groupSize: 32,
                                    symmetric: true, descAct: descAct, sourceRopeLayout: .halfSplit)
        }
        #expect(e?.description.contains(contains) == true, "\(String(describing: e)) should mention \(contains)", sourceLocation: sourceLocation)
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path).isEmpty, "nothing may remain", sourceLocation: sourceLocation)
    }

    @Test func rejectsBadInputsAndLeavesNothing() throws {
        var rng = TestRNG(s: 3)
        let ok = try Self.randomModule(TensorName.attnV(0), rows: 64, cols: 128, bits: 4, groupSize: 32, symmetric: false,
                                       actOrder: false, rng: &rng)
        // 5 bits: no GPTQ kernel unpacks it.
        var m = ok
        m.grid = try IntegerGroupGrid(bits: 5, groupSize: 32, columns: 128)
        try expectExportError("one of [2, 3, 4, 8]", modules: [m])
        try expectExportError("defaultBits", modules: [ok], bits: 5)
        // A group size that does not divide the columns (the grid was built for other columns).
        m = ok
        m.grid = try IntegerGroupGrid(bits: 4, groupSize: 48, columns: 96)
        try expectExportError("group size", modules: [m])
        // Wrong code and parameter counts.
        m = ok; m.codes.removeLast()
        try expectExportError("rows × cols", modules: [m])
        m = ok; m.parameters.append(0)
        try expectExportError("parameters", modules: [m])
        m = ok; m.codes[5] = 16
        try expectExportError("0...15", modules: [m])
        // Shape contradicting the config; unknown and duplicate names; missing tensors.
        m = ok; m.rows = 32; m.codes = Array(m.codes[..<(32 * 128)]); m.parameters = Array(m.parameters[..<(32 * 4 * 3)])
        try expectExportError("shape", modules: [m])
        m = ok; m.canonicalName = "blk.7.attn_v.weight"
        try expectExportError("unknown name", modules: [m])
        try expectExportError("a second copy", modules: [ok], dense: Self.denseTensors(Self.config, except: [], rng: &rng))
        try expectExportError("missing", modules: [ok], dense: [])
        // v1 cannot store a zero point of 0; act-order g_idx needs desc_act.
        m = ok; m.parameters[2] = 0
        try expectExportError("v1 stores zero − 1", modules: [m])
        m = ok; m.groupIndex = (0..<128).map { ($0 + 1) % 4 }
        try expectExportError("desc_act", modules: [m], descAct: false)
        m = ok; m.groupIndex = Array(repeating: 4, count: 128)
        try expectExportError("groups in 0..<4", modules: [m])
        // An f32-scale grid is not what the file stores.
        m = ok; m.grid = try IntegerGroupGrid(bits: 4, groupSize: 32, columns: 128, scaleFormat: .f32)
        m.parameters = Array(repeating: 1, count: 64 * 4 * 5)
        try expectExportError(".f16", modules: [m])
    }

    @Test func refusesExistingDirectoryAndCleansUpFailedWrites() throws {
        var rng = TestRNG(s: 11)
        let c = Self.config
        let tmp = try TestData.tempDir("gptq-atomic")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let dir = tmp.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        let dense = Self.denseTensors(c, except: [], rng: &rng)
        let e = #expect(throws: GPTQExportError.self) {
            try writeGPTQCheckpoint(directory: dir, config: c, modules: [], dense: dense, defaultBits: 4, groupSize: 128,
                                    symmetric: true, descAct: false, sourceRopeLayout: .halfSplit)
        }
        #expect(e?.description.contains("does not exist yet") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty, "the existing directory is untouched")
        // A partial directory in the way (this process's name): refused, and our failure removes nothing else.
        try FileManager.default.removeItem(atPath: dir)
        let partial = "\(dir).partial-\(getpid())"
        try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: false)
        #expect(throws: GPTQExportError.self) {
            try writeGPTQCheckpoint(directory: dir, config: c, modules: [], dense: dense, defaultBits: 4, groupSize: 128,
                                    symmetric: true, descAct: false, sourceRopeLayout: .halfSplit)
        }
        #expect(!FileManager.default.fileExists(atPath: dir))
        try FileManager.default.removeItem(atPath: partial)
        // All dense (nothing quantized) is a valid checkpoint: every Linear excluded with a `-:` rule.
        try writeGPTQCheckpoint(directory: dir, config: c, modules: [], dense: dense, defaultBits: 4, groupSize: 128,
                                symmetric: true, descAct: false, sourceRopeLayout: .halfSplit)
        #expect(try runPython("gptq_checkpoint_check.py", [dir]).contains("\"quantized_modules\": 0"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path) == ["out"])
    }
}

/// Bit-exact comparison reporting the first differing index and the count of differences.
func expectBitEqual(_ a: [Float], _ b: [Float], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard a.count == b.count else {
        Issue.record("\(what): \(a.count) vs \(b.count) elements", sourceLocation: sourceLocation)
        return
    }
    var first = -1, diffs = 0
    for i in 0..<a.count where a[i].bitPattern != b[i].bitPattern {
        if first < 0 { first = i }
        diffs += 1
    }
    #expect(diffs == 0, "\(what): \(diffs) differ, first at \(first): \(first >= 0 ? "\(a[first]) vs \(b[first])" : "")",
            sourceLocation: sourceLocation)
}
