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

    @Option(help: "Calibration text. Omitted: data-free calibration, text sampled from the model itself (seeded).")
    var calib: String?
    @Option(help: "Calibration samples.") var nsamples = 128
    @Option(help: "Tokens per calibration sample.") var seqlen = 512
    @Option(help: "Seed for calibration windows or sampling.") var seed: UInt64 = 0
    @Option(help: "Calibration samples per forward micro-batch; also the unit of data-parallel work (the output does not depend on the number of MPI ranks).")
    var microBatch = 4

    @Option(help: "Output format: gguf (llama.cpp) or gptq (transformers / vLLM safetensors).")
    var format: ExportFormat = .gguf
    @Option(help: "GGUF type of the block linears: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K … Q6_K.")
    var type: GGMLType = .q4_0
    @Option(help: "GGUF type of token_embd (default: Q6_K when tied to the output, else --type; falls back per row length).")
    var embeddingType: GGMLType?
    @Option(help: "GGUF type of output.weight when untied (default Q6_K, falling back per row length).")
    var outputType: GGMLType?
    @Option(help: "GPTQ bits (2-8).") var bits = 4
    @Option(help: "GPTQ group size (--group-size=-1: one group per row; steps down to divide the row).") var groupSize = 128
    @Flag(help: "GPTQ symmetric grid.") var sym = false
    @Option(help: "GPTQ safetensors: largest shard in MB (default: one file).") var maxShardSize: Int?

    @Option(help: "gptq (Hessian-compensated rounding) or rtn (round to nearest: llama.cpp's reference quantizers).")
    var method: QuantMethod = .gptq
    @Option(help: "GPTQ damping as a fraction of mean diag(H); 0.01 is the paper's default, raised automatically when H is singular.")
    var damp = 0.01
    @Flag(help: "GPTQ act-order (descending diag(H)), with static groups.") var actOrder = false
    @Option(help: "GPTQ shrinkage of H toward its diagonal, β in [0, 1]: solve with (1-β)·H + β·diag(H). 0 is the paper's GPTQ, 1 is importance-weighted rounding; the default is the best measured out of the calibration domain (BENCHMARKS.md).")
    var shrink = SequentialOptions.defaultShrink
    @Flag(inversion: .prefixedNo, help: "Fit each ggml block's scale with the layer's diag(H) as importance (llama.cpp's imatrix search; Q4_0/Q4_1/Q5_0/Q5_1). Default: on for gptq, off for rtn (with --method rtn it is llama.cpp's imatrix quantization, calibrated as GPTQ is).")
    var importanceFit: Bool?

    @Option(help: "GGUF mixed precision: choose each block linear's type so the whole file is at most this many bits per weight (file bytes × 8 / parameters).")
    var targetBpw: Double?
    @Option(help: "With --target-bpw: how a type's damage is predicted: hessian-error (tr(ΔW H ΔWᵀ) of the layer), fisher or hutchinson (HAWQ: Tr(H_b)/n_b · ‖Q(W_b) − W_b‖² with the empirical Fisher or Hutchinson loss-Hessian trace).")
    var sensitivity: SensitivityModel = .hessianError
    @Option(help: "With --sensitivity fisher|hutchinson: calibration sequences the traces average over.")
    var sensitivitySamples = 16
    @Option(help: "With --sensitivity hutchinson: probes at most (PyHessian's 1e-3 stop rule may end earlier).")
    var maxProbes = 30
    @Option(help: "With --target-bpw: candidate types, comma-separated (default Q4_0,Q4_1,Q5_0,Q5_1,Q8_0,Q2_K…Q6_K; each where the row length fits).")
    var candidates: String?

    @Option(help: "Output path (GGUF file, or directory for gptq).") var out: String
    @Option(help: "JSON report path (default: <out>.report.json).") var report: String?

    func validate() throws {
        guard nsamples >= 1 else { throw ValidationError("--nsamples \(nsamples): expected >= 1") }
        guard microBatch >= 1 else { throw ValidationError("--micro-batch \(microBatch): expected >= 1") }
        guard seqlen >= 2 else { throw ValidationError("--seqlen \(seqlen): expected >= 2") }
        guard damp > 0, damp < 1 else { throw ValidationError("--damp \(damp): expected a fraction in (0, 1)") }
        guard (0...1).contains(shrink) else { throw ValidationError("--shrink \(shrink): expected β in [0, 1]") }
        guard type.isQuantizable || type == .f16 || type == .f32 else {
            throw ValidationError("--type \(type): not a type we write")
        }
        if let c = calib, !FileManager.default.fileExists(atPath: c) { throw ValidationError("--calib \(c): no such file") }
        if let b = targetBpw {
            guard b > 0, b.isFinite else { throw ValidationError("--target-bpw \(b): expected a positive number of bits per weight") }
            guard format == .gguf else { throw ValidationError("--target-bpw: mixed precision writes GGUF only for now (--format gguf)") }
        }
        guard sensitivitySamples >= 1, maxProbes >= 1 else {
            throw ValidationError("--sensitivity-samples \(sensitivitySamples), --max-probes \(maxProbes): expected >= 1")
        }
        if let c = candidates {
            for name in c.split(separator: ",") where GGMLType(name: String(name))?.isQuantizable != true {
                throw ValidationError("--candidates: '\(name)' is not a quantized ggml type (Q4_0 … Q8_0, Q2_K … Q6_K)")
            }
        }
    }

    func run() throws {
        var job = QuantizeJob(modelPath: model.model, outputPath: out)
        job.tokenizerPath = model.tokenizer
        job.calibrationText = calib
        job.nsamples = nsamples
        job.seqlen = seqlen
        job.seed = seed
        job.format = format
        job.ggmlType = type
        job.embeddingType = embeddingType
        job.outputType = outputType
        job.bits = bits
        job.groupSize = groupSize
        job.symmetric = sym
        job.maxShardBytes = maxShardSize.map { $0 * 1_000_000 }
        job.options.method = method
        job.options.dampPercent = damp
        job.options.actOrder = actOrder
        job.options.importanceFit = importanceFit ?? (method == .gptq)
        job.options.shrink = shrink
        job.options.microBatch = microBatch
        if let b = targetBpw {
            var m = MixedPrecisionOptions(targetBitsPerWeight: b)
            m.sensitivity = sensitivity
            m.sensitivitySamples = sensitivitySamples
            m.maxProbes = maxProbes
            if let c = candidates { m.candidates = c.split(separator: ",").map { GGMLType(name: String($0))! } }
            job.mixed = m
        }
        // Under mpirun (or any launcher that sets the MPI environment) join the world; otherwise stay
        // a plain single process with no MPI at all.
        let env = ProcessInfo.processInfo.environment
        let launched = env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil || env["PMI_SIZE"] != nil
        let comm = launched ? try Comm.world() : Comm.single
        let line = ProgressLine()
        let result = try runQuantize(job, comm: comm) { stage in
            switch stage {
            case .calibrating(let d, let n): line.show("sampling calibration text: token \(d)/\(n)")
            case .quantizing(let p):
                line.show("[block \(p.block + 1)/\(p.blocks)] \(p.module)  elapsed \(formatSeconds(p.elapsed))  ETA \(formatSeconds(p.eta))")
            case .profiling(let p):
                line.show("[profile \(p.block + 1)/\(p.blocks)] \(p.module)  elapsed \(formatSeconds(p.elapsed))  ETA \(formatSeconds(p.eta))")
            case .traces(let d, let open):
                line.show(sensitivity == .fisher ? "Fisher: sequence \(d)/\(sensitivitySamples)"
                                                 : "Hutchinson: probe \(d), \(open) tensors not converged")
            case .exporting: line.show("writing \(out)")
            }
        }
        line.done()
        guard let r = result else { return }  // ranks other than 0 write nothing
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let reportPath = report ?? out + ".report.json"
        try enc.encode(r).write(to: URL(fileURLWithPath: reportPath), options: .atomic)
        var gptq = 0.0, rtn = 0.0
        for m in r.modules { gptq += m.gptqError ?? 0; rtn += m.rtnError ?? 0 }
        print("wrote \(r.output): \(r.fileBytes) bytes, \(String(format: "%.3f", r.bitsPerWeight)) bits/weight, \(String(format: "%.1f", r.seconds)) s")
        if rtn > 0 {
            print(String(format: "layer-wise error tr(ΔW H ΔWᵀ) summed over %d modules: GPTQ %.4g vs RTN %.4g (%.2fx lower)",
                         r.modules.count, gptq, rtn, rtn / gptq))
        }
        if let a = r.allocation {
            let counts = Dictionary(a.tensors.map { ($0.chosen, 1) }, uniquingKeysWith: +).sorted { $0.key < $1.key }
            print(String(format: "mixed precision (%@): budget %d bytes, planned %d, written %d; predicted cost %.4g (%@)",
                         a.sensitivity as NSString, a.budgetBytes, a.plannedFileBytes, r.fileBytes, a.totalCost,
                         (a.optimal ? "optimal" : "lower bound \(a.lowerBound)") as NSString))
            print("  types: " + counts.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
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
        print("report: \(reportPath)")
    }
}
