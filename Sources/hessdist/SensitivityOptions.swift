import ArgumentParser
import Coordinator
import Foundation
import HessianDist
import Node

/// Calibration data: shared by quantize and profile.
struct CalibrationOptions: ParsableArguments {
    @Option(help: "Calibration text. Omitted: data-free calibration, text sampled from the model itself (seeded).")
    var calib: String?
    @Option(help: "Calibration samples.") var nsamples = 128
    @Option(help: "Tokens per calibration sample.") var seqlen = 512
    @Option(help: "Seed for calibration windows or sampling.") var seed: UInt64 = 0
    @Option(help: "Calibration samples per forward micro-batch; also the unit of data-parallel work (the output does not depend on the number of MPI ranks).")
    var microBatch = 4

    func validate() throws {
        guard nsamples >= 1 else { throw ValidationError("--nsamples \(nsamples): expected >= 1") }
        guard microBatch >= 1 else { throw ValidationError("--micro-batch \(microBatch): expected >= 1") }
        guard seqlen >= 2 else { throw ValidationError("--seqlen \(seqlen): expected >= 2") }
        if let c = calib, !FileManager.default.fileExists(atPath: c) { throw ValidationError("--calib \(c): no such file") }
    }
}

/// What a sensitivity profile measures: shared by profile and quantize --target-bpw.
struct TraceOptions: ParsableArguments {
    @Option(help: "Candidate types, comma-separated: for GGUF ggml types (default MXFP4,Q4_0,IQ4_NL,Q4_1,Q5_0,Q5_1,Q8_0,Q2_K…Q6_K,IQ4_XS; each where the row length fits), for GPTQ bit widths (default int2,int3,int4,int8; each where the shape packs).")
    var candidates: String?
    @Option(help: "Fisher traces: calibration sequences averaged (one backward pass each).")
    var fisherSamples = 16
    @Option(help: "Fisher traces also per run of this many output rows of each matrix (e.g. the head size, 64 for SmolLM2: one block per attention head), in the stats file; the allocation stays per tensor. 0: whole tensors only.")
    var fisherRowBlock = 0
    @Option(help: "Hutchinson traces: calibration sequences of each Hessian-vector product (two gradient passes over all of them per probe).")
    var hutchinsonSamples = 4
    @Option(help: "Hutchinson traces: probes at most (PyHessian's 1e-3 stop rule may end earlier, after 10).")
    var maxProbes = 30
    @Flag(help: "Price every block linear's candidates by GPTQ's result on them too (one GPTQ solve per candidate with quantize's solver settings), not only by round-to-nearest; the allocation then uses them unless --errors rtn. Off by default: on SmolLM2 they allocated no better (BENCHMARKS.md) and double the pricing time.")
    var gptqErrors = false
    @Option(help: "Measure every candidate's damage as ZeroQ does, for --sensitivity kl: the mean KL divergence of the next-token distribution from the original's on this many calibration sequences, with the tensor alone replaced by the candidate (GPTQ's result with --gptq-errors, else round-to-nearest). One forward from the tensor's block per candidate, on rank 0, which holds the training activations of all N sequences at once (about 0.8 GB per 512-token sequence for SmolLM2-135M). Default: 0 for profile, \(ProfileOptions.defaultKLSamples) for quantize --sensitivity kl.")
    var klSamples: Int?

    func validate() throws {
        if let k = klSamples, k < 0 { throw ValidationError("--kl-samples \(k): expected >= 0 (0: no KL measurements)") }
        guard fisherRowBlock >= 0 else { throw ValidationError("--fisher-row-block \(fisherRowBlock): expected >= 0 (0: whole tensors)") }
        guard fisherSamples >= 1, hutchinsonSamples >= 1, maxProbes >= 1 else {
            throw ValidationError("--fisher-samples \(fisherSamples), --hutchinson-samples \(hutchinsonSamples), --max-probes \(maxProbes): expected >= 1")
        }
        if let c = candidates {
            for name in c.split(separator: ",").map(String.init)
            where GGMLType(name: name)?.isQuantizable != true && gptqBits(label: name) == nil {
                throw ValidationError("--candidates: '\(name)' is not a quantized ggml type (Q4_0 … Q8_0, Q2_K … Q6_K, IQ4_NL, IQ4_XS, MXFP4) or a GPTQ width (int2, int3, int4, int8)")
            }
        }
    }

    func options(traces: Set<SensitivityModel>) -> ProfileOptions {
        var p = ProfileOptions()
        if let c = candidates {
            let names = c.split(separator: ",").map(String.init)
            let ggml = names.compactMap { GGMLType(name: $0) }, bits = names.compactMap { gptqBits(label: $0) }
            if !ggml.isEmpty { p.candidates = ggml }
            if !bits.isEmpty { p.gptqBits = bits }
        }
        p.traces = traces
        p.fisherSamples = fisherSamples
        p.fisherRowBlock = fisherRowBlock
        p.hutchinsonSamples = hutchinsonSamples
        p.maxProbes = maxProbes
        p.gptqErrors = gptqErrors
        p.klSamples = klSamples ?? 0
        return p
    }
}

/// How the ranks are laid out for the whole-model passes (Fisher, Hutchinson, eigenvalues): shared by
/// profile and quantize --target-bpw. The layer-Hessian pass and GPTQ are data parallel over every rank.
struct TopologyOptions: ParsableArguments {
    @Option(help: "Pipeline stages of the whole-model passes: a divisor of the rank count (ranks = stages × replicas), each stage a balanced range of blocks, the embedding and head on the first; or auto (default): data parallel unless a whole model's training state does not fit in --memory-per-rank.")
    var stages = "auto"
    @Option(help: "With --stages auto: memory in GiB one rank may use for the whole-model passes (default: 80% of this machine's memory over the ranks on it).")
    var memoryPerRank: Double?

    var stageCount: Int? { Int(stages) }

    func validate() throws {
        guard stages == "auto" || (stageCount ?? 0) >= 1 else { throw ValidationError("--stages \(stages): expected auto or a positive number of stages") }
        if let m = memoryPerRank, !(m > 0 && m.isFinite) { throw ValidationError("--memory-per-rank \(m): expected a positive number of GiB") }
    }

    func apply(to p: inout ProfileOptions) {
        p.stages = stageCount
        p.memoryPerRank = memoryPerRank.map { Int($0 * 1_073_741_824) }
    }
}

/// A mixed-precision budget: shared by allocate and quantize.
struct BudgetOptions: ParsableArguments {
    @Option(help: "Mixed precision: the whole file at most this many bits per weight (file bytes × 8 / parameters).")
    var targetBpw: Double?
    @Option(help: "Mixed precision: the whole file at most this many bytes.")
    var targetSize: Int?
    @Option(help: "How a type's damage is predicted: hessian-error (tr(ΔW H ΔWᵀ) of the layer), fisher, sampled-fisher or hutchinson (HAWQ: Tr(H_b)/n_b · ‖Q(W_b) − W_b‖² with the empirical Fisher, the Fisher information (labels drawn from the model) or Hutchinson's loss-Hessian trace), kfac (the layer error tr(ΔW H ΔWᵀ) weighted by Tr(F)/(Tr(H)·rows), the Fisher factored as K-FAC does), kl (measured: the KL divergence from the original model with the tensor alone quantized, see --kl-samples), or size-only (the baseline). The default, fisher, is the best of the predicted models on SmolLM2 and costs one backward pass per --fisher-samples sequence; kl with --gptq-errors allocated better there but costs a forward per tensor and candidate (BENCHMARKS.md).")
    var sensitivity: SensitivityModel = .fisher
    @Option(help: "The rounding whose errors price the candidates: gptq (what quantize writes; the default when the statistics have them) or rtn (round-to-nearest).")
    var errors: CandidateErrors?
    @Option(help: "Fix a tensor's type, NAME=TYPE (repeatable), e.g. token_embd.weight=Q8_0, or for GPTQ blk.0.attn_v.weight=int8 (its tied q/k follow).")
    var pin: [String] = []
    @Option(help: "Choose among these of the profiled candidate types only, comma-separated (e.g. all but one, to measure what that type adds to the plan); default every candidate the statistics price.")
    var chooseFrom: String?

    var budget: FileBudget? {
        if let b = targetBpw { return .bitsPerWeight(b) }
        return targetSize.map { .bytes($0) }
    }

    func validate() throws {
        guard targetBpw == nil || targetSize == nil else { throw ValidationError("--target-bpw and --target-size: give one") }
        if let b = targetBpw, !(b > 0 && b.isFinite) {
            throw ValidationError("--target-bpw \(b): expected a positive number of bits per weight")
        }
        if let n = targetSize, n <= 0 { throw ValidationError("--target-size \(n): expected a positive number of bytes") }
        _ = try pins()
        _ = try allowedLabels()
    }

    /// `--choose-from` as allocation labels, spelled as the statistics spell them.
    func allowedLabels() throws -> Set<String>? {
        guard let chooseFrom else { return nil }
        var out = Set<String>()
        for name in chooseFrom.split(separator: ",").map(String.init) {
            guard let label = allocationLabel(name) else {
                throw ValidationError("--choose-from: '\(name)' is not a quantized ggml type (Q4_0 … Q8_0, Q2_K … Q6_K, IQ4_NL, IQ4_XS, MXFP4) or a GPTQ width (int2, int3, int4, int8)")
            }
            out.insert(label)
        }
        return out
    }

    /// Pins as allocation labels: a ggml type's name as the stats spell it ("Q8_0"), or "int8".
    func pins() throws -> [String: String] {
        var out: [String: String] = [:]
        for p in pin {
            let parts = p.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                throw ValidationError("--pin \(p): expected NAME=TYPE, e.g. token_embd.weight=Q8_0 or blk.0.attn_v.weight=int8")
            }
            guard let label = allocationLabel(parts[1]) else {
                throw ValidationError("--pin \(p): expected a quantized ggml type (Q4_0 … Q8_0, Q2_K … Q6_K) or a GPTQ width (int2, int3, int4, int8)")
            }
            out[parts[0]] = label
        }
        return out
    }

    /// A type name as the statistics spell it: a quantized ggml type ("Q8_0") or a GPTQ width ("int8").
    func allocationLabel(_ name: String) -> String? {
        if let t = GGMLType(name: name), t.isQuantizable { return t.description }
        return gptqBits(label: name.lowercased()).map { gptqLabel(bits: $0) }
    }

    func options(profile: ProfileOptions) throws -> MixedPrecisionOptions? {
        guard let budget else { return nil }
        var m = MixedPrecisionOptions(budget: budget)
        m.sensitivity = sensitivity
        m.errors = errors
        m.profile = profile
        m.pinned = try pins()
        m.allowed = try allowedLabels()
        return m
    }
}

/// The GPTQ checkpoint's settings: shared by quantize and profile (a GPTQ profile prices these grids and
/// lays out this checkpoint).
struct CheckpointOptions: ParsableArguments {
    @Option(help: "GPTQ bits: 2, 3, 4 or 8 (with --target-bpw: the top-level default; other widths are per-module overrides).")
    var bits = 4
    @Option(help: "GPTQ group size (--group-size=-1: one group per row; steps down to divide the row).") var groupSize = 128
    @Flag(help: "GPTQ symmetric grid.") var sym = false
    @Option(help: "GPTQ safetensors: largest shard in MB (default: one file).") var maxShardSize: Int?

    func validate() throws {
        guard gptqSupportedBits.contains(bits) else { throw ValidationError("--bits \(bits): GPTQ checkpoints pack \(gptqSupportedBits) bits") }
        guard groupSize == -1 || groupSize > 0 else { throw ValidationError("--group-size \(groupSize): expected -1 or a positive size") }
        if let m = maxShardSize, m <= 0 { throw ValidationError("--max-shard-size \(m): expected a positive number of MB") }
    }

    func options(descAct: Bool, dampPercent: Double = 0.01) -> GPTQCheckpointOptions {
        GPTQCheckpointOptions(bits: bits, groupSize: groupSize, symmetric: sym, descAct: descAct, dampPercent: dampPercent,
                              maxShardBytes: maxShardSize.map { $0 * 1_000_000 })
    }
}

/// Joins the MPI world under mpirun (or any launcher that sets its environment); otherwise a plain single
/// process with no MPI at all.
func launchedComm() throws -> Comm {
    let env = ProcessInfo.processInfo.environment
    let launched = env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil || env["PMI_SIZE"] != nil
    return launched ? try Comm.world() : Comm.single
}

extension QuantizeStage {
    /// The progress line for a stage.
    var line: String {
        switch self {
        case .calibrating(let d, let n): return "sampling calibration text: token \(d)/\(n)"
        case .quantizing(let p):
            return "[block \(p.block + 1)/\(p.blocks)] \(p.module)  elapsed \(formatSeconds(p.elapsed))  ETA \(formatSeconds(p.eta))"
        case .profiling(let p):
            return "[profile \(p.block + 1)/\(p.blocks)] \(p.module)  elapsed \(formatSeconds(p.elapsed))  ETA \(formatSeconds(p.eta))"
        case .traces(.fisher, let d, let n): return "Fisher: sequence \(d)/\(n)"
        case .traces(.sampledFisher, let d, let n): return "Fisher, sampled labels: sequence \(d)/\(n)"
        case .traces(_, let d, let open): return "Hutchinson: probe \(d), \(open) tensors not converged"
        case .exporting: return "writing"
        }
    }
}

extension CandidateErrors: ExpressibleByArgument {}
