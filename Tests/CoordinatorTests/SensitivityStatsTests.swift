import Foundation
import Testing
import TestSupport
import HessianDist
import Node
@testable import Coordinator

/// The stats file and the allocation read from it, on hand-made statistics.
@Suite struct SensitivityStatsTests {
    /// Two tensors, three candidates each; costs chosen so every budget has one obvious answer.
    func stats() -> SensitivityStats {
        func cand(_ t: String, _ bytes: Int, _ err: Double, _ sq: Double) -> SensitivityStats.Candidate {
            .init(type: t, bytes: bytes, layerError: err, squaredError: sq)
        }
        let a = SensitivityStats.Tensor(name: "a", shape: [4, 32], inputTrace: 6,
                                        fisher: TraceEstimate(name: "a", mean: 128, standardError: 1, samples: 4, converged: true),
                                        hutchinson: nil,
                                        candidates: [cand("Q4_0", 72, 10, 1), cand("Q5_0", 88, 4, 0.5), cand("Q8_0", 136, 1, 0.01)])
        let b = SensitivityStats.Tensor(name: "b", shape: [4, 32], inputTrace: 2,
                                        fisher: TraceEstimate(name: "b", mean: 12.8, standardError: 1, samples: 4, converged: true),
                                        hutchinson: nil,
                                        candidates: [cand("Q4_0", 72, 100, 1), cand("Q5_0", 88, 30, 0.5), cand("Q8_0", 136, 2, 0.01)])
        var s = SensitivityStats(model: "m", calibration: "c", seqlen: 8, parameters: 256, fixedBytes: 1000, tensors: [a, b],
                                 fisherSamples: 4, hutchinsonSamples: nil,
                                 cost: .init(forwardSeconds: 1, fisherSecondsPerSequence: 2, hutchinsonSecondsPerProbe: nil,
                                             layerPassSeconds: 3, totalSeconds: 6))
        s.imatrix = [[Float](repeating: 0.1875, count: 32), [Float](repeating: 0.0625, count: 32)]
        return s
    }

    @Test func roundTripsThroughTheFile() throws {
        let path = try TestData.tempDir("stats").appendingPathComponent("s.safetensors").path
        let s = stats()
        try SensitivityStatsFile.write(s, to: path)
        let r = try SensitivityStatsFile.read(path)
        #expect(r.tensors.map(\.name) == ["a", "b"] && r.fixedBytes == 1000 && r.parameters == 256)
        #expect(r.tensors[0].candidates.map(\.layerError) == [10, 4, 1] && r.tensors[1].fisher == s.tensors[1].fisher)
        #expect(r.imatrix == s.imatrix)
    }

    @Test func allocatesByEachSensitivity() throws {
        let s = stats()
        // 1000 fixed + 72 + 136 = 1208 bytes: one tensor can be Q8_0.
        var m = MixedPrecisionOptions(budget: .bytes(1208))
        // Layer error: Q8_0 saves 98 on b, 9 on a.
        var (types, report) = try allocateMixedPrecision(stats: s, mixed: m)
        #expect(types == ["a": "Q4_0", "b": "Q8_0"] && report.plannedFileBytes == 1208 && report.totalCost == 12)
        // Fisher: cost = tr/n · ‖ΔW‖², a's trace (128/128 = 1 per weight) is 10× b's: a gets Q8_0.
        m.sensitivity = .fisher
        (types, report) = try allocateMixedPrecision(stats: s, mixed: m)
        #expect(types == ["a": "Q8_0", "b": "Q4_0"])
        #expect(abs(report.totalCost - (1 * 0.01 + 0.1 * 1)) < 1e-12)
        // K-FAC: cost = Tr F / (Tr H · rows) · layer error: a's β = 128/(6·4), b's = 12.8/(2·4); Q8_0 saves
        // 5.33·9 = 48 on a but 1.6·98 = 156.8 on b, so b gets it (the Fisher and the layer error disagree).
        m.sensitivity = .kfac
        (types, report) = try allocateMixedPrecision(stats: s, mixed: m)
        #expect(types == ["a": "Q4_0", "b": "Q8_0"])
        #expect(abs(report.totalCost - (128.0 / 24 * 10 + 1.6 * 2)) < 1e-9, "\(report.totalCost)")
        m.sensitivity = .fisher
        // A pin is fixed bytes, not a choice.
        m.pinned = ["a": "Q5_0"]
        (types, report) = try allocateMixedPrecision(stats: s, mixed: m)
        // 1088 fixed leaves 120 for b: Q5_0.
        #expect(types == ["a": "Q5_0", "b": "Q5_0"] && report.fixedBytes == 1088 && report.tensors.map(\.name) == ["b"])
        // No Hutchinson traces were measured: the error says how to get them.
        m.sensitivity = .hutchinson
        #expect { try allocateMixedPrecision(stats: s, mixed: m) } throws: { "\($0)".contains("--traces hutchinson") }
        m.sensitivity = .hessianError
        m.budget = .bytes(1100)
        #expect { try allocateMixedPrecision(stats: s, mixed: m) } throws: { "\($0)".contains("smallest file") }
    }

    /// `--choose-from`: the allocation over a subset of the profiled types is the allocation of statistics
    /// that never priced the others; a pin may lie outside it; a tensor left with nothing is an error.
    @Test func choosesFromASubsetOfTheCandidates() throws {
        let s = stats()
        var m = MixedPrecisionOptions(budget: .bytes(1208))  // layer error: b gets Q8_0 (see above)
        m.allowed = ["Q4_0", "Q5_0"]
        let (types, report) = try allocateMixedPrecision(stats: s, mixed: m)
        var without = s
        for i in without.tensors.indices { without.tensors[i].candidates.removeAll { $0.type == "Q8_0" } }
        let (expected, _) = try allocateMixedPrecision(stats: without, mixed: MixedPrecisionOptions(budget: .bytes(1208)))
        // Without Q8_0 the 1208 bytes hold Q5_0 twice (1176).
        #expect(types == expected && types == ["a": "Q5_0", "b": "Q5_0"])
        #expect(report.plannedFileBytes == 1000 + 88 + 88)
        m.pinned = ["a": "Q8_0"]  // 1136 fixed leaves 72 for b: Q4_0
        #expect(try allocateMixedPrecision(stats: s, mixed: m).types == ["a": "Q8_0", "b": "Q4_0"])
        m.pinned = [:]
        m.allowed = ["Q6_K"]
        #expect { try allocateMixedPrecision(stats: s, mixed: m) } throws: { "\($0)".contains("--choose-from Q6_K") && "\($0)".contains("a's candidates") }
    }

    @Test func refusesBrokenFiles() throws {
        let dir = try TestData.tempDir("stats-bad")
        // A safetensors file that is not a stats file.
        let plain = dir.appendingPathComponent("plain.safetensors").path
        let w = try SafetensorsWriter(path: plain)
        try w.addTensor(name: "x", dtype: .f32, shape: [1])
        try w.writeTensorData("x", floats: [1])
        try w.finish()
        #expect { try SensitivityStatsFile.read(plain) } throws: { "\($0)".contains(plain) && "\($0)".contains("__metadata__.format") }
        // An imatrix of the wrong length.
        var s = stats()
        s.imatrix[1] = [1, 2, 3]
        let bad = dir.appendingPathComponent("bad.safetensors").path
        try SensitivityStatsFile.write(s, to: bad)
        #expect { try SensitivityStatsFile.read(bad) } throws: { "\($0)".contains("b.imatrix") && "\($0)".contains("F32 [32]") }
    }

    /// GPTQ statistics by hand for GPTQCheckpointTests.config: every Linear with its int2/3/4/8 grids,
    /// bytes as the checkpoint stores them, errors falling with the bits and differing per module.
    func gptqStats(options: GPTQCheckpointOptions) throws -> SensitivityStats {
        let c = GPTQCheckpointTests.config
        let shapes = Dictionary(uniqueKeysWithValues: c.expectedShapes().map { ($0.name, $0.shape) })
        var tensors: [SensitivityStats.Tensor] = []
        for (k, name) in GPTQCheckpointTests.linearNames.enumerated() {
            let s = shapes[name]!
            let cands = gptqSupportedBits.compactMap { b -> SensitivityStats.Candidate? in
                guard let g = gptqGrid(bits: b, groupSize: options.groupSize, rows: s[0], cols: s[1], symmetric: options.symmetric) else { return nil }
                let err = Double(k + 1) * 3 * pow(4, -Double(b))
                return .init(type: gptqLabel(bits: b), bytes: gptqModuleDataBytes(rows: s[0], cols: s[1], grid: g),
                             layerError: err, squaredError: err / 10)
            }
            tensors.append(.init(name: name, shape: s, inputTrace: 1, fisher: nil, hutchinson: nil, candidates: cands))
        }
        var st = SensitivityStats(model: "m", calibration: "c", seqlen: 8, parameters: c.parameterCount,
                                  fixedBytes: try gptqFixedBytes(config: c, tensors: tensors, options: options),
                                  tensors: tensors, fisherSamples: nil, hutchinsonSamples: nil,
                                  cost: .init(forwardSeconds: 1, fisherSecondsPerSequence: nil, hutchinsonSecondsPerProbe: nil,
                                              layerPassSeconds: 1, totalSeconds: 2))
        st.format = .gptq
        st.gptq = options
        st.config = c
        st.imatrix = tensors.map { [Float](repeating: 1, count: $0.shape[1]) }
        return st
    }

    /// GPTQ allocation: fused q/k/v and gate/up share bits, and the planned size is the exact size of the
    /// checkpoint the writer makes with those grids (headers and configs included), within every budget of
    /// a sweep, some of which need the solver's budget lowered to fit. The stats' fixed bytes are laid out
    /// with every module at int2: with default bits 4 that plan carries a `dynamic` entry per module, which
    /// wider plans drop (the additive size overestimates); with default bits 2 wider plans add entries (it
    /// underestimates, and the re-solve must lower the budget).
    @Test(arguments: [4, 2]) func gptqPlansAreExactAndTied(defaultBits: Int) throws {
        let c = GPTQCheckpointTests.config
        let options = GPTQCheckpointOptions(bits: defaultBits, groupSize: 32, symmetric: false)
        let s = try gptqStats(options: options)
        let shapes = Dictionary(uniqueKeysWithValues: s.tensors.map { ($0.name, $0.shape) })
        let smallest = s.fixedBytes + s.tensors.reduce(0) { $0 + $1.candidates[0].bytes }
        let largest = s.fixedBytes + s.tensors.reduce(0) { $0 + $1.candidates.last!.bytes }
        let tmp = try TestData.tempDir("gptq-plan")
        defer { try? FileManager.default.removeItem(at: tmp) }
        var lowered = 0, widths = Set<String>(), costs: [Double] = []
        for (k, budget) in stride(from: smallest + 200, through: largest + 2000, by: 997).enumerated() {
            let (types, report) = try allocateMixedPrecision(stats: s, mixed: MixedPrecisionOptions(budget: .bytes(budget)))
            #expect(report.format == "gptq" && report.ties == [[TensorName.attnQ(0), TensorName.attnK(0), TensorName.attnV(0)],
                                                              [TensorName.ffnGate(0), TensorName.ffnUp(0)]])
            #expect(types[TensorName.attnQ(0)] == types[TensorName.attnK(0)] && types[TensorName.attnK(0)] == types[TensorName.attnV(0)])
            #expect(types[TensorName.ffnGate(0)] == types[TensorName.ffnUp(0)])
            let grids = try gptqGrids(labels: types, shapes: shapes, options: options)
            let exact = try GPTQCheckpointLayout(config: c, grids: grids, options: options).totalBytes
            #expect(report.plannedFileBytes == exact && exact <= budget, "budget \(budget): planned \(report.plannedFileBytes), layout \(exact)")
            if report.solverBudgetBytes < budget { lowered += 1 }
            widths.formUnion(types.values)
            costs.append(report.totalCost)
            // Every third budget: write the checkpoint (random codes on the chosen grids) and count its bytes.
            if k % 3 == 0 {
                var rng = TestRNG(s: UInt64(k + 1))
                let modules = try types.keys.sorted().map { name in
                    try GPTQCheckpointTests.randomModule(name, rows: shapes[name]![0], cols: shapes[name]![1], bits: grids[name]!.bits,
                                                         groupSize: grids[name]!.groupSize, symmetric: false, actOrder: false, rng: &rng)
                }
                let dir = tmp.appendingPathComponent("b\(budget)").path
                try writeGPTQCheckpoint(directory: dir, config: c, modules: modules,
                                        dense: GPTQCheckpointTests.denseTensors(c, except: Set(types.keys), rng: &rng),
                                        defaultBits: defaultBits, groupSize: 32, symmetric: false, descAct: false, sourceRopeLayout: .halfSplit)
                #expect(try fileSize(dir) == report.plannedFileBytes, "budget \(budget)")
            }
        }
        if defaultBits == 2 { #expect(lowered > 0, "no budget of the sweep needed the layout's re-solve: the test does not exercise it") }
        #expect(widths.count >= 3, "\(widths)")
        #expect(zip(costs, costs.dropFirst()).allSatisfy { $0.1 <= $0.0 }, "cost must not rise with the budget: \(costs)")
        // A pin inside a tie moves its partners; a GGUF type is no GPTQ candidate.
        var m = MixedPrecisionOptions(budget: .bytes(largest))
        m.pinned = [TensorName.attnV(0): "int2"]
        let (types, _) = try allocateMixedPrecision(stats: s, mixed: m)
        #expect(types[TensorName.attnQ(0)] == "int2" && types[TensorName.attnK(0)] == "int2" && types[TensorName.attnOutput(0)] == "int8")
        m.pinned = [TensorName.attnV(0): "Q8_0"]
        #expect { try allocateMixedPrecision(stats: s, mixed: m) } throws: { "\($0)".contains("not a candidate") }
    }

    /// The format travels through the file; a file without it is GGUF; the wrong format is refused naming
    /// the file and the field, as are a GPTQ profile of another group size and a gptq file lacking its settings.
    @Test func formatIsRecordedAndChecked() throws {
        let dir = try TestData.tempDir("stats-format")
        let options = GPTQCheckpointOptions(bits: 4, groupSize: 32, symmetric: false, maxShardBytes: 50_000)
        let g = dir.appendingPathComponent("gptq.safetensors").path
        try SensitivityStatsFile.write(try gptqStats(options: options), to: g)
        let r = try SensitivityStatsFile.read(g)
        #expect(r.format == .gptq && r.gptq == options && r.config == GPTQCheckpointTests.config)
        try SensitivityStatsFile.check(r, path: g, format: .gptq, gptq: options)
        #expect { try SensitivityStatsFile.check(r, path: g, format: .gguf) } throws: { "\($0)".contains(g) && "\($0)".contains("format") }
        var other = options
        other.groupSize = 128
        #expect { try SensitivityStatsFile.check(r, path: g, format: .gptq, gptq: other) } throws: { "\($0)".contains("gptq.groupSize") }
        // Old files: the JSON without the format key decodes as GGUF.
        var json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(stats())) as! [String: Any]
        #expect(json["format"] as? String == "gguf")
        json.removeValue(forKey: "format")
        let old = try JSONDecoder().decode(SensitivityStats.self, from: try JSONSerialization.data(withJSONObject: json))
        #expect(old.format == .gguf && old.gptq == nil)
        #expect { try SensitivityStatsFile.check(old, path: "old", format: .gptq) } throws: { "\($0)".contains("format") }
        // gptq without its settings.
        var broken = try gptqStats(options: options)
        broken.gptq = nil
        let b = dir.appendingPathComponent("broken.safetensors").path
        try SensitivityStatsFile.write(broken, to: b)
        #expect { try SensitivityStatsFile.read(b) } throws: { "\($0)".contains(b) && "\($0)".contains("gptq") }
    }
}
