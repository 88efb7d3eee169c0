import Foundation
import Testing
import TestSupport
import HessianDist
@testable import Coordinator

/// The HTML report's pieces on exact small cases; the whole page is checked against the statistics by an
/// independent reader in IntegrationTests (Tests/Python/report_check.py).
@Suite struct SensitivityReportTests {
    /// Two blocks of three roles, an embedding: roles are rows in first-seen order, blocks are columns.
    @Test func laysTensorsOutByRoleAndBlock() {
        let names = ["token_embd.weight"] + (0..<2).flatMap { l in ["attn_q", "attn_k", "ffn_down"].map { "blk.\(l).\($0).weight" } }
        let g = BlockGrid(names: names)
        #expect(g.rows.map(\.label) == ["attn_q", "attn_k", "ffn_down", "token_embd"])
        #expect(g.columns == 2 && g.hasBlocks)
        #expect(g.rows[2].cells.map(\.name) == ["blk.0.ffn_down.weight", "blk.1.ffn_down.weight"] && g.rows[2].cells.map(\.column) == [0, 1])
        #expect(g.rows[3].cells.map(\.column) == [0])
        let flat = BlockGrid(names: ["a", "b"])
        #expect(flat.rows.map(\.label) == ["a", "b"] && !flat.hasBlocks)
    }

    @Test func scalesAndTicks() {
        // Ticks at 1, 2 or 5 × 10^k, at most 7: [0, 1] by 0.2, [7.3, 9.9] by 0.5, [7.3, 10.7] by 1.
        let t = niceTicks(0, 1)
        #expect(t.count == 6 && zip(t, [0, 0.2, 0.4, 0.6, 0.8, 1.0]).allSatisfy { abs($0 - $1) < 1e-12 }, "\(t)")
        #expect(niceTicks(7.3, 9.9) == [7.5, 8, 8.5, 9, 9.5] && niceTicks(7.3, 10.7) == [8, 9, 10])
        // Costs over 3 decades: a log axis with decade ticks; a zero sits on the floor.
        let y = ValueAxis(values: [0.002, 0.5, 1.3, 0])
        #expect(y.log && y.ticks == [0.001, 0.01, 0.1, 1] && y.unit(0) == 0 && y.unit(1.3) < 1 && y.unit(0.002) > 0)
        #expect(abs(y.unit(0.01) - y.unit(0.001) - (y.unit(0.1) - y.unit(0.01))) < 1e-12)
        // Within a factor 20: linear from 0.
        let lin = ValueAxis(values: [1, 4])
        #expect(!lin.log && lin.unit(0) == 0 && abs(lin.unit(2) - 2 / 4.2) < 1e-12)
        // Viridis' ends and middle; a log colour scale over 1 … 1000 puts 10 a third of the way up.
        #expect(ColorScale.palette(0) == "#440154" && ColorScale.palette(1) == "#fde725" && ColorScale.palette(0.5) == "#21918c")
        let c = ColorScale(values: [1, 1000, 10])
        #expect(c.log && c.color(1) == "#440154" && c.color(1000) == "#fde725" && c.color(10) == ColorScale.palette(1.0 / 3))
        #expect(ColorScale(values: [-1, 2, 30]).color(-1) == "#d9d9d9")
        #expect(esc("a<b & \"c\">") == "a&lt;b &amp; &quot;c&quot;&gt;" && grouped(1234567) == "1,234,567" && grouped(12) == "12")
    }

    /// Degenerate inputs: one value everywhere, zeros on a linear scale, all-zero costs, an empty frontier,
    /// names that need escaping, files a few bytes apart. The page stays well-formed and finite.
    @Test func edgeCases() throws {
        #expect(ColorScale(values: [3, 3, 3]).color(3) == ColorScale.palette(0.5))
        let zeros = ColorScale(values: [0, 0, 5])
        #expect(!zeros.log && zeros.color(0) == "#440154" && zeros.color(5) == "#fde725")
        let flat = ValueAxis(values: [0, 0])
        #expect(!flat.log && flat.ticks.count >= 2 && flat.unit(0) == 0 && flat.unit(0).isFinite)
        let negative = ValueAxis(values: [-2, -1])
        #expect(negative.unit(-2) == 0 && negative.unit(-1) > 0 && negative.unit(-1) < 1)
        // Ticks 0.000005 apart get the decimals to tell them apart.
        let close = niceTicks(8.49998, 8.50002)
        let labels = tickLabels(close, log: false)
        #expect(close.count >= 2 && Set(labels).count == labels.count, "\(labels)")
        #expect(esc("a\u{1}b") == "a\u{FFFD}b")
        // Labels: free spots first (below, then above), a full column ends the search (it had looped forever).
        #expect(labelY(50, span: (0, 40), placed: [], h: 10, top: 0, bottom: 100) == 50)
        #expect(labelY(50, span: (0, 40), placed: [(30, 80, 50)], h: 10, top: 0, bottom: 100) == 60)
        #expect(labelY(50, span: (0, 40), placed: [(45, 80, 50)], h: 10, top: 0, bottom: 100) == 50)  // side by side
        #expect(labelY(95, span: (0, 40), placed: [(0, 40, 95)], h: 10, top: 0, bottom: 100) == 85)
        let full = stride(from: 0.0, through: 100, by: 5).map { (0.0, 40.0, $0) }
        #expect(labelY(50, span: (0, 40), placed: full, h: 10, top: 0, bottom: 100) == 50)
        // Twelve evaluated files at two sizes: the page is written (it had hung placing their labels).
        var many = SensitivityReport(stats: SensitivityStatsTests().stats())
        many.measured = (0..<12).map { .init(label: "file-\($0)", fileBytes: $0 < 6 ? 1144 : 1176, perplexity: 7 + 0.01 * Double($0), standardError: 0.5, meanKL: nil) }
        #expect(many.html().components(separatedBy: "class=\"measured-point\"").count == 13)

        var s = SensitivityStatsTests().stats()
        s.tensors[0].name = "x\"&<"
        s.tensors[0].fisherRowBlocks = [{ var e = TraceEstimate(name: "x", mean: 1, standardError: 0, samples: 1, converged: true); e.rows = 0..<4; return e }()]
        for i in s.tensors.indices { for j in s.tensors[i].candidates.indices { s.tensors[i].candidates[j].layerError = 0 } }
        var m = MixedPrecisionOptions(budget: .bytes(1208))
        m.frontier = []
        let (_, a) = try allocateMixedPrecision(stats: s, mixed: m)
        #expect(a.frontier.isEmpty && a.totalCost == 0)
        let html = SensitivityReport(stats: s, allocation: a).html()
        #expect(!html.contains("x\"&<") && html.contains("x&quot;&amp;&lt;") && html.contains("id=\"rows-x&quot;&amp;&lt;\""))
        #expect(!html.contains("nan") && !html.contains("\"inf") && !html.contains("\"-inf"))
    }

    /// An allocation file must be one of these statistics: each tensor once, its choice among its
    /// candidates, the candidates' bytes the profile's.
    @Test func refusesAnAllocationOfAnotherProfile() throws {
        let s = SensitivityStatsTests().stats()
        let (_, a) = try allocateMixedPrecision(stats: s, mixed: MixedPrecisionOptions(budget: .bytes(1208)))
        let path = try TestData.tempDir("report-bad").appendingPathComponent("a.json").path
        func refused(_ change: (inout AllocationReport) -> Void) throws -> String {
            var b = a
            change(&b)
            try JSONEncoder().encode(b).write(to: URL(fileURLWithPath: path))
            do { _ = try readAllocationReport(path, stats: s); return "accepted" } catch { return "\(error)" }
        }
        #expect(try refused { $0.tensors.append($0.tensors[0]) }.contains("twice"))
        #expect(try refused { $0.tensors[0].chosen = "Q6_K" }.contains("tensors[a].chosen: expected one of its candidates"))
        #expect(try refused { $0.tensors[1].candidates[0].bytes += 2 }.contains("tensors[b].candidates[Q4_0].bytes: expected the statistics' 72"))
        #expect(try refused { _ in } == "accepted")
    }

    /// GPTQ statistics: the uniform points are the checkpoints laid out with one width everywhere (their
    /// headers differ from the plan's), and the plan's point is its exact size.
    @Test func gptqUniformPointsAreLaidOut() throws {
        let options = GPTQCheckpointOptions(bits: 4, groupSize: 32, symmetric: false)
        let s = try SensitivityStatsTests().gptqStats(options: options)
        let widest = s.fixedBytes + s.tensors.reduce(0) { $0 + $1.candidates.last!.bytes }
        let (types, a) = try allocateMixedPrecision(stats: s, mixed: MixedPrecisionOptions(budget: .bytes(widest + 10_000)))  // headers: room to spare
        let r = SensitivityReport(stats: s, allocation: a)
        let shapes = Dictionary(uniqueKeysWithValues: s.tensors.map { ($0.name, $0.shape) })
        for u in r.uniformPoints {
            let labels = Dictionary(uniqueKeysWithValues: s.tensors.map { ($0.name, u.type) })
            let exact = try GPTQCheckpointLayout(config: s.config!, grids: try gptqGrids(labels: labels, shapes: shapes, options: options),
                                                 options: options).totalBytes
            #expect(u.fileBytes == exact, "\(u.type)")
        }
        #expect(r.uniformPoints.map(\.type).sorted() == ["int2", "int3", "int4", "int8"])
        #expect(types.values.allSatisfy { $0 == "int8" } && r.uniformPoints.last!.fileBytes == a.plannedFileBytes)
        #expect(r.html().contains("id=\"types\""))
    }

    /// The page for hand-made statistics: one heatmap cell per tensor with its per-weight Fisher trace, the
    /// uniform points are every tensor at one type, and an allocation file of other tensors is refused.
    @Test func pageAndAllocationFile() throws {
        let s = SensitivityStatsTests().stats()
        var m = MixedPrecisionOptions(budget: .bytes(1208))
        m.frontier = [35.75, 36.5, 37.75, 40]  // 1144, 1168, 1208 and 1280 bytes for 256 weights
        let (_, a) = try allocateMixedPrecision(stats: s, mixed: m)
        #expect(a.frontier.map(\.fileBytes) == [1144, 1160, 1208, 1272])
        let r = SensitivityReport(stats: s, allocation: a)
        let html = r.html()
        #expect(html.contains("data-tensor=\"a\" data-value=\"1\"") && html.contains("data-tensor=\"b\" data-value=\"0.10000000000000001\""))
        #expect(html.components(separatedBy: "class=\"frontier-point").count - 1 == a.frontier.count)
        #expect(r.uniformPoints.map(\.type) == ["Q4_0", "Q5_0", "Q8_0"])
        #expect(r.uniformPoints.map(\.fileBytes) == [1144, 1176, 1272] && r.uniformPoints[0].cost == 110)
        #expect(r.measures.map(\.id) == ["fisher", "input", "cost"])
        #expect(html == SensitivityReport(stats: s, allocation: a).html())

        // Row blocks: a's two runs of 2 rows (64 weights each) show their traces per weight.
        var rb = s
        rb.tensors[0].fisherRowBlocks = [(0..<2, 96.0), (2..<4, 32.0)].map { r, m in
            var e = TraceEstimate(name: "a", mean: m, standardError: 1, samples: 4, converged: true)
            e.rows = r
            return e
        }
        let grids = SensitivityReport(stats: rb).rowBlockGrids
        #expect(grids.count == 1 && grids[0].0 == "a" && grids[0].1.columns == 2)
        #expect(grids[0].2 == ["a[rows 0..<2]": 1.5, "a[rows 2..<4]": 0.5])
        #expect(SensitivityReport(stats: rb).html().contains("id=\"rows-a\""))

        let dir = try TestData.tempDir("report")
        let path = dir.appendingPathComponent("a.json").path
        try JSONEncoder().encode(a).write(to: URL(fileURLWithPath: path))
        #expect(try readAllocationReport(path, stats: s).plannedFileBytes == a.plannedFileBytes)
        var other = s
        other.tensors[1].name = "c"
        #expect { try readAllocationReport(path, stats: other) } throws: { "\($0)".contains(path) && "\($0)".contains("tensors[].name") && "\($0)".contains("found b") }
        try Data("{\"x\": 1}".utf8).write(to: URL(fileURLWithPath: path))
        #expect { try readAllocationReport(path, stats: s) } throws: { "\($0)".contains("hessdist allocate --json") }

        // Evaluations: one that records its file is read; an older one (no size) or another model's is refused.
        var e = PerplexityResult(perplexity: 7.5, standardError: 0.25, meanNLL: log(7.5), tokensScored: 10, chunks: 1, context: 8,
                                 seconds: 1, tokensPerSecond: 8, runningPerplexity: [7.5], reference: nil)
        let evalPath = dir.appendingPathComponent("e.json").path
        try JSONEncoder().encode(e).write(to: URL(fileURLWithPath: evalPath))
        #expect { try readMeasuredFile(evalPath, parameters: 256) } throws: { "\($0)".contains("fileBytes") && "\($0)".contains(evalPath) }
        (e.model, e.fileBytes, e.parameters) = ("/x/m-Q4_0.gguf", 1144, 300)
        try JSONEncoder().encode(e).write(to: URL(fileURLWithPath: evalPath))
        #expect { try readMeasuredFile(evalPath, parameters: 256) } throws: { "\($0)".contains("parameters: expected 256") }
        e.parameters = 256
        try JSONEncoder().encode(e).write(to: URL(fileURLWithPath: evalPath))
        let file = try readMeasuredFile(evalPath, parameters: 256)
        #expect(file.label == "m-Q4_0" && file.fileBytes == 1144 && file.perplexity == 7.5)
        var withEval = r
        withEval.measured = [file]
        #expect(withEval.html().contains("data-label=\"m-Q4_0\" data-bytes=\"1144\" data-bpw=\"35.75\" data-ppl=\"7.5\""))
    }
}
