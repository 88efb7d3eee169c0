import ArgumentParser
import Coordinator
import Foundation
import HessianDist
import Node

extension GGMLType: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
}
extension QuantMethod: ExpressibleByArgument {}
extension ExportFormat: ExpressibleByArgument {}
extension SensitivityModel: ExpressibleByArgument {}

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize a model with true-sequential GPTQ (or RTN) and export GGUF or GPTQ safetensors.")

    @OptionGroup var model: ModelOptions

    @OptionGroup var calibration: CalibrationOptions
    @OptionGroup var jobFile: JobOptions

    @Option(help: "Output format: gguf (llama.cpp) or gptq (transformers / vLLM safetensors).")
    var format: ExportFormat = .gguf
    @Option(help: "GGUF type of the block linears: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K … Q6_K, IQ4_NL, IQ4_XS, MXFP4.")
    var type: GGMLType = .q4_0
    @Option(help: "GGUF type of token_embd (default: Q6_K when tied to the output, else --type; falls back per row length).")
    var embeddingType: GGMLType?
    @Option(help: "GGUF type of output.weight when untied (default Q6_K, falling back per row length).")
    var outputType: GGMLType?
    @OptionGroup var checkpoint: CheckpointOptions

    @Option(help: "gptq (Hessian-compensated rounding) or rtn (round to nearest: llama.cpp's reference quantizers).")
    var method: QuantMethod = .gptq
    @Option(help: "GPTQ damping as a fraction of mean diag(H); 0.01 is the paper's default, raised automatically when H is singular.")
    var damp = 0.01
    @Flag(help: "GPTQ act-order (descending diag(H)), with static groups.") var actOrder = false
    @Option(help: "GPTQ shrinkage of H toward its diagonal, β in [0, 1]: solve with (1-β)·H + β·diag(H). 0 is the paper's GPTQ, 1 is importance-weighted rounding; the default is the best measured out of the calibration domain (BENCHMARKS.md).")
    var shrink = SequentialOptions.defaultShrink
    @Flag(inversion: .prefixedNo, help: "Fit each ggml block's scale with the layer's diag(H) as importance (llama.cpp's imatrix search; every type but Q8_0; MXFP4's weighted exponent choice is ours, ggml has none). Default: on for gptq, off for rtn (with --method rtn it is llama.cpp's imatrix quantization, calibrated as GPTQ is).")
    var importanceFit: Bool?
    @Flag(inversion: .prefixedNo, help: "After GPTQ's sweep, re-solve each row's block scales (f16 scales and mins, the K-quants' super-scales, GPTQ group scales) with the codes fixed, by least squares in the solver's H; a row keeps them only if its error falls. MXFP4's power-of-two scales are left. Off is the paper's GPTQ.")
    var refitScales = SequentialOptions.defaultRefitScales

    @OptionGroup var budget: BudgetOptions
    @OptionGroup var traces: TraceOptions
    @OptionGroup var topology: TopologyOptions
    @Option(help: "With --target-bpw/--target-size: allocate from this `hessdist profile` statistics file instead of profiling (the calibration options then only feed GPTQ).")
    var stats: String?

    @Option(help: "Output path (GGUF file, or directory for gptq).") var out: String
    @Option(help: "JSON report path (default: <out>.report.json).") var report: String?
    @Option(help: "With --target-bpw/--target-size: also write the readable report (HTML with plots, as `hessdist report` writes) here.")
    var html: String?
    @Flag(help: "Continue an interrupted job from its checkpoint <out>.partial-ckpt (every run writes one after each block and removes it on success). The job must be the same (model, calibration, options; the rank count may differ) or it is refused naming what differs; the output has the same bytes as an uninterrupted run. With no checkpoint there, starts fresh. Without --resume an existing checkpoint is replaced.")
    var resume = false

    func validate() throws {
        guard damp > 0, damp < 1 else { throw ValidationError("--damp \(damp): expected a fraction in (0, 1)") }
        guard (0...1).contains(shrink) else { throw ValidationError("--shrink \(shrink): expected β in [0, 1]") }
        guard type.isQuantizable || type == .f16 || type == .f32 else {
            throw ValidationError("--type \(type): not a type we write")
        }
        if let h = html, budget.budget == nil {
            throw ValidationError("--html \(h): needs --target-bpw or --target-size (a uniform job allocates nothing to show)")
        }
        if let s = stats {
            guard budget.budget != nil else { throw ValidationError("--stats \(s): needs --target-bpw or --target-size") }
            guard FileManager.default.fileExists(atPath: s) else { throw ValidationError("--stats \(s): no such file") }
        }
    }

    func run() throws {
        var job = QuantizeJob(modelPath: model.model, outputPath: out)
        job.tokenizerPath = model.tokenizer
        job.calibrationText = calibration.calib
        job.nsamples = calibration.nsamples
        job.seqlen = calibration.seqlen
        job.seed = calibration.seed
        job.format = format
        job.ggmlType = type
        job.embeddingType = embeddingType
        job.outputType = outputType
        job.bits = checkpoint.bits
        job.groupSize = checkpoint.groupSize
        job.symmetric = checkpoint.sym
        job.maxShardBytes = checkpoint.maxShardSize.map { $0 * 1_000_000 }
        job.options.method = method
        job.options.dampPercent = damp
        job.options.actOrder = actOrder
        job.options.importanceFit = importanceFit ?? (method == .gptq)
        job.options.shrink = shrink
        job.options.refitScales = refitScales
        job.options.microBatch = calibration.microBatch
        var profile = traces.options(traces: [])
        topology.apply(to: &profile)
        job.mixed = try budget.options(profile: profile)
        job.statsPath = stats
        job.htmlReportPath = html
        job.resume = resume
        let comm = try launchedComm()
        try jobFile.checkRanks(comm)
        let line = ProgressLine()
        let result = try runQuantize(job, comm: comm) { line.show($0.line) }
        line.done()
        guard let r = result else { return }  // ranks other than 0 write nothing
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let reportPath = report ?? out + ".report.json"
        try enc.encode(r).write(to: URL(fileURLWithPath: reportPath), options: .atomic)
        var gptq = 0.0, rtn = 0.0
        for m in r.modules { gptq += m.gptqError ?? 0; rtn += m.rtnError ?? 0 }
        if let first = r.resumedBlocks.first, let last = r.resumedBlocks.last {
            print("resumed blocks \(first)...\(last) of the interrupted job from \(QuantizeCheckpoint.directory(forOutput: out))")
        }
        print("wrote \(r.output): \(r.fileBytes) bytes, \(String(format: "%.3f", r.bitsPerWeight)) bits/weight, \(String(format: "%.1f", r.seconds)) s")
        if rtn > 0 {
            print(String(format: "layer-wise error tr(ΔW H ΔWᵀ) summed over %d modules: GPTQ %.4g vs RTN %.4g (%.2fx lower)",
                         r.modules.count, gptq, rtn, rtn / gptq))
        }
        if let a = r.allocation {
            let counts = Dictionary(a.tensors.map { ($0.chosen, 1) }, uniquingKeysWith: +).sorted { $0.key < $1.key }
            print(String(format: "mixed precision (%@, %@): budget %d bytes, planned %d, written %d; predicted cost %.4g (%@)",
                         a.sensitivity as NSString, a.format as NSString, a.budgetBytes, a.plannedFileBytes, r.fileBytes, a.totalCost,
                         (a.optimal ? "optimal" : "lower bound \(a.lowerBound)") as NSString))
            print("  types: " + counts.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
            if !a.ties.isEmpty { print("  \(a.ties.count) tie groups share their bits (fused q/k/v and gate/up)") }
        }
        for t in r.types where t.fallbackFrom != nil {
            print("note: \(t.name) stored as \(t.type) instead of \(t.fallbackFrom!) (its shape does not fit that format\'s blocks)")
        }
        if r.ranks > 1 {
            print("data parallel over \(r.ranks) ranks; bytes through MPI (raw -> encoded):")
            for w in r.wire {
                print(String(format: "  %-12@ %5d messages  %12d -> %12d bytes (%.2fx)", w.kind as NSString, w.messages,
                             w.rawBytes, w.wireBytes, w.wireBytes == 0 ? 0 : Double(w.rawBytes) / Double(w.wireBytes)))
            }
        }
        print("report: \(reportPath)\(html.map { ", \($0)" } ?? "")")
    }
}
