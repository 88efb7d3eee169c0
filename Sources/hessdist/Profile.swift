import ArgumentParser
import Coordinator
import Foundation
import HessianDist
import Node

struct Profile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a model's sensitivity to quantization: per tensor, every candidate type's bytes and layer error, and loss-Hessian traces.",
        discussion: "Writes a statistics file (safetensors: the JSON in __metadata__, each tensor's imatrix as F32) that `hessdist allocate` and `hessdist quantize --stats` read, so one profile serves any budget and sensitivity model. Runs under mpirun (the layer-Hessian pass is data parallel).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var calibration: CalibrationOptions
    @OptionGroup var jobFile: JobOptions
    @OptionGroup var trace: TraceOptions
    @OptionGroup var topology: TopologyOptions
    @Option(help: "The output the candidates are priced for: gguf (ggml types per tensor, the embedding too) or gptq (integer grids per block linear, fused q/k/v and gate/up tied at allocation).")
    var format: ExportFormat = .gguf
    @OptionGroup var checkpoint: CheckpointOptions
    @Flag(help: "GPTQ format: the checkpoint's desc_act, as `quantize --act-order` writes it (its config bytes are priced).")
    var actOrder = false
    @Option(help: "Loss-Hessian traces to estimate, comma-separated: fisher, sampled-fisher (labels drawn from the model: the Fisher information), hutchinson (or none); default fisher. The layer errors are always measured.")
    // Hutchinson is opt-in: on SmolLM2 a probe costs ~9 forwards per sequence and 20 probes do not converge
    // (BENCHMARKS.md), while Fisher allocates as well for 3.3 forwards per sequence.
    var traces = "fisher"
    @Option(help: "Top loss-Hessian eigenvalue by power iteration for the tensors whose names contain one of these (comma-separated, e.g. blk.0.,token_embd): two gradient passes over the Hutchinson sequences per iteration per tensor.")
    var eigenvalues: String?
    @Option(help: "Power iterations at most per eigenvalue (PyHessian's 1e-3 stop rule may end earlier).")
    var eigenIterations = 20
    @Option(help: "Output statistics file (.safetensors).") var out: String
    @Option(help: "Also write the readable report of the statistics (HTML with sensitivity heatmaps, as `hessdist report` writes) here.")
    var html: String?

    func traceSet() throws -> Set<SensitivityModel> {
        var out: Set<SensitivityModel> = []
        for t in traces.split(separator: ",").map(String.init) where t != "none" {
            guard let m = SensitivityModel(rawValue: t), m.trace == m else {
                throw ValidationError("--traces: '\(t)' is not fisher, sampled-fisher or hutchinson")
            }
            out.insert(m)
        }
        return out
    }

    func validate() throws {
        _ = try traceSet()
        if let html { try refuseOverwriting(html, flag: "--html", inputs: [("--out", out), ("--model", model.model)]) }
        guard eigenIterations >= 1 else { throw ValidationError("--eigen-iterations \(eigenIterations): expected >= 1") }
    }

    func run() throws {
        var job = ProfileJob(modelPath: model.model, outputPath: out)
        job.tokenizerPath = model.tokenizer
        job.calibrationText = calibration.calib
        job.nsamples = calibration.nsamples
        job.seqlen = calibration.seqlen
        job.seed = calibration.seed
        job.options.microBatch = calibration.microBatch
        // GPTQ errors are priced with quantize's default solver settings (what `quantize --stats` runs).
        job.options.shrink = SequentialOptions.defaultShrink
        job.options.importanceFit = true
        job.options.refitScales = SequentialOptions.defaultRefitScales
        job.profile = trace.options(traces: try traceSet())
        job.profile.eigenvalueTensors = eigenvalues?.split(separator: ",").map(String.init) ?? []
        job.profile.eigenIterations = eigenIterations
        topology.apply(to: &job.profile)
        if format == .gptq { job.profile.gptq = checkpoint.options(descAct: actOrder) }
        let comm = try launchedComm()
        try jobFile.checkRanks(comm)
        let line = ProgressLine()
        let result = try runProfile(job, comm: comm) { line.show($0.line) }
        line.done()
        guard let s = result else { return }
        print(sensitivityTable(s))
        let c = s.cost
        var cost = String(format: "cost: %.1f s in all; one forward of one sequence %.2f s", c.totalSeconds, c.forwardSeconds)
        if let f = c.fisherSecondsPerSequence {
            cost += String(format: "; Fisher %.2f s per sequence (%.1f forwards)", f, f / c.forwardSeconds)
        }
        if let h = c.hutchinsonSecondsPerProbe, let n = s.hutchinsonSamples {
            cost += String(format: "; Hutchinson %.2f s per probe over %d sequences (%.1f forwards per sequence)",
                           h, n, h / Double(n) / c.forwardSeconds)
        }
        if let n = c.klMeasurements, let k = c.klSecondsPerMeasurement {
            cost += String(format: "; KL damage %d measurements, %.2f s each (%.1f forwards)", n, k, k / c.forwardSeconds)
        }
        print(cost + String(format: "; layer Hessians and pricing %.1f s", c.layerPassSeconds))
        if let t = c.topology {
            let peaks = (c.peakResidentBytesByRank ?? []).map { String(format: "%.0f", Double($0) / 1_048_576) }
            print("whole-model passes on \(t): peak memory per rank \(peaks.joined(separator: ", ")) MiB; \(c.wireBytes ?? 0) bytes on the wire")
        }
        print("wrote \(out): \(s.tensors.count) tensors (\(s.format.rawValue))")
        if let html {
            try SensitivityReport(stats: s).write(to: html)
            print("wrote \(html)")
        }
    }
}

/// Per tensor: parameters, the imatrix's sum, the traces, the layer error of a few types, and with KL
/// measurements the KL damage of the first of them (GPTQ's where measured).
func sensitivityTable(_ s: SensitivityStats) -> String {
    let shown = s.format == .gptq ? [2, 4, 8].map { gptqLabel(bits: $0) } : ["Q4_0", "Q5_0", "Q8_0"]
    let width = max(8, s.tensors.map(\.name.count).max() ?? 0)
    func pad(_ x: String, _ n: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, n - x.count))
        return left ? x + fill : fill + x
    }
    func tr(_ e: TraceEstimate?) -> String { e.map { String(format: "%.3g ± %.2g", $0.mean, $0.standardError) } ?? "-" }
    let hasKL = s.tensors.contains { $0.candidates.contains { $0.kl != nil || $0.gptqKL != nil } }
    var lines = [pad("tensor", width, left: true) + pad("params", 10) + pad("Σ imatrix", 11) + pad("Fisher tr ± se", 20)
                 + pad("Hutchinson tr ± se", 22) + shown.map { pad("err \($0)", 12) }.joined()
                 + (hasKL ? pad("KL \(shown[0])", 12) : "")]
    for t in s.tensors {
        var line = pad(t.name, width, left: true) + pad("\(t.shape.reduce(1, *))", 10)
            + pad(String(format: "%.4g", t.inputTrace), 11) + pad(tr(t.fisher), 20) + pad(tr(t.hutchinson), 22)
        for type in shown {
            line += pad(t.candidates.first { $0.type == type }.map { String(format: "%.4g", $0.layerError) } ?? "-", 12)
        }
        if hasKL {
            line += pad(t.candidates.first { $0.type == shown[0] }.flatMap { $0.gptqKL ?? $0.kl }.map { String(format: "%.3g", $0) } ?? "-", 12)
        }
        if let e = t.topEigenvalue { line += String(format: "  λmax %.4g (%d iterations)", e, t.eigenIterations ?? 0) }
        lines.append(line)
    }
    return lines.joined(separator: "\n")
}

struct Allocate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Choose each tensor's type under a file-size budget from a `hessdist profile` statistics file.",
        discussion: "Exact multiple-choice knapsack over the exact bytes each type adds to the GGUF file or GPTQ checkpoint (for GPTQ, fused q/k/v and gate/up share their bits, and the plan is laid out with the checkpoint settings the profile recorded). Prints the plan and the Pareto frontier; `hessdist quantize --stats FILE` with the same budget writes that plan.")

    @Option(help: "Statistics file from `hessdist profile`.") var stats: String
    @Option(help: "Refuse statistics profiled for another output format (default: the file's own).")
    var format: ExportFormat?
    @OptionGroup var budget: BudgetOptions
    @Option(help: "Write the allocation report (JSON) here.") var json: String?
    @Option(help: "Write the readable report (HTML with plots: the Pareto frontier, sensitivity heatmaps, the chosen types) here.")
    var html: String?

    func validate() throws {
        guard FileManager.default.fileExists(atPath: stats) else { throw ValidationError("--stats \(stats): no such file") }
        guard budget.budget != nil else { throw ValidationError("allocate needs --target-bpw or --target-size") }
        if let html { try refuseOverwriting(html, flag: "--html", inputs: [("--stats", stats)] + (json.map { [("--json", $0)] } ?? [])) }
        if let json { try refuseOverwriting(json, flag: "--json", inputs: [("--stats", stats)]) }
    }

    func run() throws {
        let s = try SensitivityStatsFile.read(stats)
        if let format { try SensitivityStatsFile.check(s, path: stats, format: format) }
        let (types, report) = try allocateMixedPrecision(stats: s, mixed: try budget.options(profile: ProfileOptions())!)
        if let json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try enc.encode(report).write(to: URL(fileURLWithPath: json), options: .atomic)
        }
        if let html { try SensitivityReport(stats: s, allocation: report).write(to: html) }
        let params = Double(s.parameters)
        print(String(format: "%@ (%@): %d tensors, budget %d bytes (%.3f bits/weight); plan %d bytes (%.3f bits/weight), cost %.4g (%@)",
                     report.sensitivity as NSString, report.format as NSString, report.tensors.count, report.budgetBytes, report.targetBitsPerWeight,
                     report.plannedFileBytes, Double(report.plannedFileBytes * 8) / params, report.totalCost,
                     (report.optimal ? "optimal" : "lower bound \(report.lowerBound)") as NSString))
        for t in report.tensors {
            let chosen = t.candidates.first { $0.type == t.chosen }!
            print(String(format: "  %-26@ %-5@ %10d bytes  cost %.4g", t.name as NSString, t.chosen as NSString, chosen.bytes, chosen.cost))
        }
        for (name, type) in types where !report.tensors.contains(where: { $0.name == name }) {
            print("  \(name) \(type) (pinned)")
        }
        for tie in report.ties { print("  tied: " + tie.joined(separator: " = ")) }
        print("Pareto frontier (bits/weight: cost, types):")
        for p in report.frontier {
            let mix = p.types.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
            print(String(format: "  %.3f: %.4g  %@", p.bitsPerWeight, p.cost, mix as NSString))
        }
    }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a readable report of a profile, and of an allocation from it: one HTML page with plots.",
        discussion: "The page has the profile's summary and cost, heatmaps of every measured sensitivity by block and tensor role (Fisher, Hutchinson, the imatrix), and with a budget (or --allocation) the Pareto frontier beside the uniform files priced the same way, the chosen types and the per-tensor table. Self-contained (inline SVG), well-formed XML; every mark carries its value in data-* attributes.")

    @Option(help: "Statistics file from `hessdist profile`.") var stats: String
    @OptionGroup var budget: BudgetOptions
    @Option(help: "Show this allocation instead of solving one: `allocate --json`'s file, or the <out>.report.json of `quantize --target-bpw`.")
    var allocation: String?
    @Option(name: .customLong("eval"), help: "A `hessdist eval --json` result of a file of this model (repeatable): plotted as measured perplexity against file bits per weight.")
    var evals: [String] = []
    @Option(help: "Output HTML file.") var out: String

    func validate() throws {
        guard FileManager.default.fileExists(atPath: stats) else { throw ValidationError("--stats \(stats): no such file") }
        if let a = allocation {
            guard FileManager.default.fileExists(atPath: a) else { throw ValidationError("--allocation \(a): no such file") }
            guard budget.budget == nil else { throw ValidationError("--allocation and --target-bpw/--target-size: give one") }
        }
        for e in evals where !FileManager.default.fileExists(atPath: e) { throw ValidationError("--eval \(e): no such file") }
        if allocation != nil || budget.budget == nil {
            let given = [("--pin", !budget.pin.isEmpty), ("--choose-from", budget.chooseFrom != nil), ("--errors", budget.errors != nil)]
            if let (flag, _) = given.first(where: { $0.1 }) {
                throw ValidationError("\(flag): shapes an allocation this command solves, so it needs --target-bpw or --target-size\(allocation != nil ? " (not --allocation, which shows one made already)" : "")")
            }
        }
        try refuseOverwriting(out, flag: "--out", inputs: [("--stats", stats)] + (allocation.map { [("--allocation", $0)] } ?? []) + evals.map { ("--eval", $0) })
    }

    func run() throws {
        let s = try SensitivityStatsFile.read(stats)
        var report: AllocationReport?
        if let allocation {
            report = try readAllocationReport(allocation, stats: s)
        } else if let mixed = try budget.options(profile: ProfileOptions()) {
            report = try allocateMixedPrecision(stats: s, mixed: mixed).report
        }
        var page = SensitivityReport(stats: s, allocation: report)
        page.measured = try readMeasuredFiles(evals, parameters: s.parameters)
        try page.write(to: out)
        print("wrote \(out): \(s.tensors.count) tensors\(report.map { ", \($0.sensitivity) allocation at \(String(format: "%.3f", Double($0.plannedFileBytes * 8) / Double(s.parameters))) bits/weight" } ?? "")")
    }
}

/// An output path that is one of the command's inputs would destroy the input: refused before any work.
func refuseOverwriting(_ output: String, flag: String, inputs: [(String, String)]) throws {
    let out = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath().path
    for (name, path) in inputs where URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path == out {
        throw ValidationError("\(flag) \(output): the same file as \(name); write the report elsewhere")
    }
}
