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
        #expect(types == ["a": .q4_0, "b": .q8_0] && report.plannedFileBytes == 1208 && report.totalCost == 12)
        // Fisher: cost = tr/n · ‖ΔW‖², a's trace (128/128 = 1 per weight) is 10× b's: a gets Q8_0.
        m.sensitivity = .fisher
        (types, report) = try allocateMixedPrecision(stats: s, mixed: m)
        #expect(types == ["a": .q8_0, "b": .q4_0])
        #expect(abs(report.totalCost - (1 * 0.01 + 0.1 * 1)) < 1e-12)
        // A pin is fixed bytes, not a choice.
        m.pinned = ["a": .q5_0]
        (types, report) = try allocateMixedPrecision(stats: s, mixed: m)
        // 1088 fixed leaves 120 for b: Q5_0.
        #expect(types == ["a": .q5_0, "b": .q5_0] && report.fixedBytes == 1088 && report.tensors.map(\.name) == ["b"])
        // No Hutchinson traces were measured: the error says how to get them.
        m.sensitivity = .hutchinson
        #expect { try allocateMixedPrecision(stats: s, mixed: m) } throws: { "\($0)".contains("--traces hutchinson") }
        m.sensitivity = .hessianError
        m.budget = .bytes(1100)
        #expect { try allocateMixedPrecision(stats: s, mixed: m) } throws: { "\($0)".contains("smallest file") }
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
}
