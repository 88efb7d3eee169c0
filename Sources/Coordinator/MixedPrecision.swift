// Mixed precision in two steps, for GGUF files and GPTQ checkpoints. Profiling (`profileSensitivity`)
// measures, per tensor the allocation may choose for, the exact bytes each candidate adds to the output and
// the damage it does under every sensitivity model: for GGUF every block linear and the embedding / output
// head over ggml types, for GPTQ every block linear over the integer grids the checkpoint can pack. The
// result (`SensitivityStats`) is enough to allocate any budget without the model. Allocation
// (`allocateMixedPrecision`) prices the candidates by one sensitivity model and chooses one per tensor with
// the exact budgeted solver (`BitAllocationProblem`). Not GPTQ itself: the chosen types then go through the
// ordinary sequential quantizer.
import Foundation
import HessianDist
import Node
import Wire

/// How the damage of storing a tensor in a type is predicted.
public enum SensitivityModel: String, Sendable, Codable, CaseIterable {
    /// The layer-wise error tr(ΔW H ΔWᵀ) of round-to-nearest (with the imatrix diag(H) where the type has
    /// an importance search) against the layer Hessian H of the unquantized model: the output error of
    /// that layer alone, what GPTQ then reduces. Cheap (one calibration pass) but blind to how much the
    /// layer's output error moves the loss. For the embedding, its error as the (tied) output head plus
    /// the mean over calibration tokens of ‖ΔE_token‖², its error as the first residual stream.
    case hessianError = "hessian-error"
    /// HAWQ's Tr(H_b)/n_b · ‖Q(W_b) − W_b‖² with Tr(H_b) the empirical Fisher trace of tensor b: the mean
    /// over sequences of ‖∇_b ℓ‖² (one backward pass per sequence).
    case fisher
    /// HAWQ's Tr(H_b)/n_b · ‖Q(W_b) − W_b‖² with Tr(H_b) Hutchinson's estimate of the loss-Hessian trace
    /// (Rademacher probes, two gradient passes per probe). A negative estimate (a saddle direction, or
    /// noise) is floored at 0.
    case hutchinson
    /// The empirical Fisher of a linear layer factored as K-FAC does, (input covariance) ⊗ (output-gradient
    /// covariance), with the output-gradient factor taken isotropic (β·I): the loss damage of ΔW is then
    /// ∝ β · tr(ΔW H ΔWᵀ), the layer error weighted by how much the loss cares about the layer's output,
    /// β = Tr(F_b) / (Tr(H_b) · rows_b) from the Fisher trace and the layer Hessian's trace (tr F =
    /// tr H · tr(β·I) under the factorization). HAWQ-Fisher is the special case H ∝ I, where tr(ΔW H ΔWᵀ)
    /// is ‖ΔW‖² scaled; this one also sees which input directions the rounding error falls on. A tensor
    /// without a layer Hessian (an untied embedding) falls back to HAWQ-Fisher.
    case kfac
    /// HAWQ as `fisher`, but with the trace of the Fisher information: per-sequence gradients of the loss
    /// on next tokens sampled from the unquantized model instead of the data's (`--traces
    /// sampled-fisher`). That Fisher is the Hessian of the KL divergence from the original model at the
    /// original weights, so it prices a tensor's damage to the model's own predictions rather than to the
    /// calibration text's likelihood.
    case sampledFisher = "sampled-fisher"
    /// Measured, not predicted (ZeroQ's sensitivity): the mean KL divergence of the model's next-token
    /// distribution from the original's on the first `ProfileOptions.klSamples` calibration sequences, with
    /// this tensor alone replaced by the candidate's values (GPTQ's result with `--gptq-errors`, else
    /// round-to-nearest with the imatrix; an untied embedding always the latter). One partial forward per
    /// tensor and candidate; the HAWQ models'
    /// second-order prices missed how much GPTQ reduces each tensor's damage (BENCHMARKS.md).
    case kl
    /// No sensitivity: the largest uniform type that fits, then single tensors one type up in name order
    /// while they fit (`BitAllocationProblem.sizeOnlyBaseline`). The baseline the others must beat; the
    /// report's costs are the hessian-error ones.
    case sizeOnly = "size-only"

    /// The loss-Hessian trace this model needs estimated, if any (`.fisher`, `.sampledFisher` or `.hutchinson`).
    public var trace: SensitivityModel? {
        switch self {
        case .fisher, .kfac: .fisher
        case .hutchinson: .hutchinson
        case .sampledFisher: .sampledFisher
        case .hessianError, .sizeOnly, .kl: nil
        }
    }
}

/// What profiling measures and how hard it tries.
public struct ProfileOptions: Sendable {
    /// Types a tensor may take (each only where its row length is a whole number of blocks).
    /// MXFP4 (4.25 bpw) is the one type under 4.5 bpw for rows that are not a multiple of 256.
    public var candidates: [GGMLType] = [.mxfp4, .q4_0, .iq4_nl, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .iq4_xs, .q4_K, .q5_K, .q6_K]
    /// Profile for a GPTQ checkpoint with these settings instead of GGUF: the candidates are then the
    /// integer grids of `gptqBits` that `gptqGrid` can pack for each block linear (the embedding and head
    /// stay fp16, as GPTQ checkpoints keep them).
    public var gptq: GPTQCheckpointOptions? = nil
    /// Bit widths a GPTQ module may take (each where the shape packs).
    public var gptqBits: [Int] = gptqSupportedBits
    /// Loss-Hessian traces to estimate (fisher, sampled-fisher, hutchinson); the layer errors are always measured.
    public var traces: Set<SensitivityModel> = []
    /// Calibration sequences the Fisher traces average over (the first ones of the set): one backward
    /// pass each.
    public var fisherSamples = 16
    /// With Fisher traces, also per run of this many output rows of each matrix (0: whole tensors only):
    /// a finer profile, reported; the allocation stays per tensor (what GGUF and GPTQ files can express).
    public var fisherRowBlock = 0
    /// Calibration sequences of Hutchinson's Hessian-vector products: each probe costs two gradient passes
    /// over all of them.
    public var hutchinsonSamples = 4
    /// Hutchinson probes at most (PyHessian's stop rule may end earlier).
    public var maxProbes = 30
    /// Tensors (names containing one of these) whose top Hessian eigenvalue is found by power iteration:
    /// two gradient passes over the Hutchinson sequences per iteration per tensor, so a few tensors only.
    /// Reported, not used by the allocation. On rank 0.
    public var eigenvalueTensors: [String] = []
    public var eigenIterations = 20
    /// Pipeline stages of the whole-model passes (a divisor of the rank count; the replicas are the rest).
    /// nil: `PipelineTopology.automatic`, data parallel unless a whole model's training state would not
    /// fit in `memoryPerRank`.
    public var stages: Int? = nil
    /// Memory one rank may use for the whole-model passes when choosing the stages; nil: 80% of this
    /// machine's memory shared by the ranks on it (`OMPI_COMM_WORLD_LOCAL_SIZE`), decided on rank 0.
    public var memoryPerRank: Int? = nil
    /// Also price every block linear's candidates by GPTQ's own result on them (one GPTQ solve per
    /// candidate, with the job's solver settings), not only by round-to-nearest. Off by default: measured
    /// on SmolLM2 they allocate no better than round-to-nearest's (BENCHMARKS.md).
    public var gptqErrors = false
    /// With > 0, also measure every candidate's KL damage (`SensitivityModel.kl`) on this many calibration
    /// sequences (the first ones), on rank 0 with a second copy of the model: one forward from the tensor's
    /// block per candidate that changes the tensor. The sequences run as one batch, so rank 0 holds their
    /// training activations, logits and original probabilities at once (about 0.8 GB per 512-token sequence
    /// for SmolLM2-135M).
    public var klSamples = 0
    /// The KL sequences of `quantize --sensitivity kl` when none are given.
    public static let defaultKLSamples = 2
    public init() {}

    /// Parameter-sized arenas the whole-model passes need besides the weights: the gradient, and for
    /// Hessian-vector products the probe, the product, the scratch gradient and the saved weights.
    public var trainingVectors: Int { traces.contains(.hutchinson) || !eigenvalueTensors.isEmpty ? 5 : 1 }

    /// The topology of the whole-model passes, the same on every rank (rank 0's choice, broadcast).
    public func topology(ranks: Int, config: ModelConfig, seqlen: Int, comm: Comm) throws -> PipelineTopology {
        if let stages { return try PipelineTopology(ranks: ranks, stages: stages, config: config, seqlen: seqlen) }
        var chosen = [UInt8](repeating: 0, count: 4)
        if comm.isRoot {
            let local = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } ?? ranks
            let budget = memoryPerRank ?? Int(Double(ProcessInfo.processInfo.physicalMemory) * 0.8) / max(1, local)
            let s = PipelineTopology.automatic(ranks: ranks, config: config, seqlen: seqlen, vectors: trainingVectors,
                                               memoryPerRank: budget).stages
            chosen = withUnsafeBytes(of: UInt32(s).littleEndian) { Array($0) }
        }
        chosen = try comm.broadcast(bytes: chosen, root: 0)
        let s = Int(UInt32(littleEndian: chosen.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        return try PipelineTopology(ranks: ranks, stages: s, config: config, seqlen: seqlen)
    }
}

/// A budget for the whole file, every byte counted (header, metadata, embedding, norms, padding).
public enum FileBudget: Sendable, Equatable {
    /// Bytes × 8 / parameters.
    case bitsPerWeight(Double)
    case bytes(Int)

    func bytes(parameters: Int) -> Int {
        switch self {
        case .bitsPerWeight(let b): return Int((b * Double(parameters) / 8).rounded(.down))
        case .bytes(let n): return n
        }
    }

    var flag: String {
        switch self {
        case .bitsPerWeight(let b): return "--target-bpw \(b)"
        case .bytes(let n): return "--target-size \(n)"
        }
    }
}

public struct MixedPrecisionOptions: Sendable {
    public var budget: FileBudget
    public var sensitivity: SensitivityModel = .hessianError
    /// What the profile measures (when the job profiles rather than reading a stats file).
    public var profile = ProfileOptions()
    /// Tensors the solver may not choose for, with their candidate label (a ggml type name such as
    /// "Q8_0", or `gptqLabel(bits:)` such as "int8").
    public var pinned: [String: String] = [:]
    /// The candidate labels the solver may choose (nil: every one the statistics price). A pin need not be
    /// among them.
    public var allowed: Set<String>? = nil
    /// Which rounding the candidates' errors come from: GPTQ's (what quantize writes) or round-to-nearest.
    /// nil: GPTQ's where the statistics have them.
    public var errors: CandidateErrors? = nil
    /// GPTQ: the checkpoint settings the plan is laid out for (nil: those the statistics were profiled
    /// for). `quantize` passes its own, so its plan is exact for the files it writes.
    public var checkpoint: GPTQCheckpointOptions? = nil
    /// Budgets (bits per weight) at which the report lists the optimal cost: the Pareto frontier.
    public var frontier: [Double] = stride(from: 4.0, through: 9.0, by: 0.25).map { $0 }
    public init(budget: FileBudget) { self.budget = budget }
    public init(targetBitsPerWeight: Double) { self.budget = .bitsPerWeight(targetBitsPerWeight) }
}

/// The rounding whose damage prices a candidate.
public enum CandidateErrors: String, Sendable, Codable, CaseIterable {
    /// GPTQ's result on the candidate's grid: the error the quantized file will have.
    case gptq
    /// Round-to-nearest (with the imatrix where the type searches with one).
    case rtn
}

/// Everything the allocation needs, from one profiling pass: written by `hessdist profile`, read by
/// `hessdist allocate` and `quantize --stats`.
public struct SensitivityStats: Sendable, Codable {
    public struct Candidate: Sendable, Codable {
        /// A ggml type name (GGUF) or `gptqLabel(bits:)` (GPTQ).
        public var type: String
        /// Bytes in the file's data section, padding included; for GPTQ the module's qweight, qzeros,
        /// scales and g_idx data.
        public var bytes: Int
        /// tr(ΔW H̄ ΔWᵀ) with H̄ GPTQ's mean layer Hessian 2/N·XᵀX; for the embedding, plus
        /// its input error (see `SensitivityModel.hessianError`).
        public var layerError: Double
        /// ‖Q(W) − W‖².
        public var squaredError: Double
        /// The same two errors with Q from GPTQ (the solver settings of the profile's job) instead of
        /// round-to-nearest: what the quantizer will really leave, when profiled with `gptqErrors`.
        public var gptqLayerError: Double? = nil
        public var gptqSquaredError: Double? = nil
        /// Mean KL(p_original ‖ p) over the KL sequences' predictions with this tensor alone replaced by its
        /// round-to-nearest values (`kl`) or GPTQ's (`gptqKL`), when profiled with `klSamples`
        /// (`SensitivityModel.kl`). A candidate that reproduces the tensor exactly has 0 without a pass.
        public var kl: Double? = nil
        public var gptqKL: Double? = nil
    }
    public struct Tensor: Sendable, Codable {
        public var name: String
        public var shape: [Int]
        /// The imatrix's sum: the mean over calibration tokens of ‖x‖², x the tensor's input.
        public var inputTrace: Double
        public var fisher: TraceEstimate?
        public var hutchinson: TraceEstimate?
        public var candidates: [Candidate]
        /// The trace of the Fisher information (labels sampled from the model), when profiled.
        public var sampledFisher: TraceEstimate? = nil
        /// Fisher traces of runs of output rows (`ProfileOptions.fisherRowBlock`), summing to `fisher`.
        public var fisherRowBlocks: [TraceEstimate]? = nil
        /// The largest-magnitude eigenvalue of the tensor's loss-Hessian block and the power iterations it
        /// took, when asked for (`ProfileOptions.eigenvalueTensors`).
        public var topEigenvalue: Double? = nil
        public var eigenIterations: Int? = nil
    }
    /// Wall-clock cost of the measurements, for the report and BENCHMARKS.
    public struct Cost: Sendable, Codable {
        /// One forward pass of one calibration sequence (loss only), the unit of the ratios.
        public var forwardSeconds: Double
        /// One Fisher sequence: a forward and a backward pass.
        public var fisherSecondsPerSequence: Double?
        /// One Hutchinson probe: two gradient passes over `hutchinsonSamples` sequences.
        public var hutchinsonSecondsPerProbe: Double?
        /// The layer-Hessian pass and pricing every candidate (KL measurements included).
        public var layerPassSeconds: Double
        /// KL measurements made (partial forwards of `klSequences` sequences) and their mean seconds each.
        public var klMeasurements: Int? = nil
        public var klSequences: Int? = nil
        public var klSecondsPerMeasurement: Double? = nil
        public var totalSeconds: Double
        /// The ranks' layout for the whole-model passes (`PipelineTopology.description`), when there were any.
        public var topology: String? = nil
        /// Each rank's peak resident memory after the whole-model passes (the process high-water mark).
        public var peakResidentBytesByRank: [Int]? = nil
        /// Bytes the whole-model passes put on the wire: pipeline activations and gathered scalars.
        public var wireBytes: Int? = nil
    }
    public var version = 1
    public var model: String
    public var calibration: String
    public var seqlen: Int
    public var parameters: Int
    /// Bytes no allocation chooses: header and metadata, and the tensors that are not profiled (norms) at
    /// their fixed types. GPTQ: every file's bytes with each profiled tensor at its first candidate, less
    /// those candidates' data; the headers and configs vary a little with the plan, which the allocation
    /// handles by laying the plan out exactly (see `allocateMixedPrecision`).
    public var fixedBytes: Int
    public var tensors: [Tensor]
    public var fisherSamples: Int?
    public var hutchinsonSamples: Int?
    public var cost: Cost
    /// diag(H̄) of each profiled tensor's input (the imatrix), in `tensors` order; the export quantizes the
    /// embedding with it, as it was priced.
    public var imatrix: [[Float]] = []
    /// The output the candidates are priced for. Files written before the field existed are GGUF.
    public var format: ExportFormat = .gguf
    /// GPTQ: the checkpoint settings profiled for (the grids' group size and symmetry, and the defaults
    /// the layout was priced with), and the model config the checkpoint's files are laid out from.
    public var gptq: GPTQCheckpointOptions? = nil
    public var config: ModelConfig? = nil

    enum CodingKeys: String, CodingKey {
        case version, model, calibration, seqlen, parameters, fixedBytes, tensors, fisherSamples, hutchinsonSamples, cost
        case format, gptq, config
    }
}

extension SensitivityStats {
    /// Decodes, with `format` defaulting to GGUF (stats files written before GPTQ profiling).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(version: try c.decode(Int.self, forKey: .version), model: try c.decode(String.self, forKey: .model),
                  calibration: try c.decode(String.self, forKey: .calibration), seqlen: try c.decode(Int.self, forKey: .seqlen),
                  parameters: try c.decode(Int.self, forKey: .parameters), fixedBytes: try c.decode(Int.self, forKey: .fixedBytes),
                  tensors: try c.decode([Tensor].self, forKey: .tensors),
                  fisherSamples: try c.decodeIfPresent(Int.self, forKey: .fisherSamples),
                  hutchinsonSamples: try c.decodeIfPresent(Int.self, forKey: .hutchinsonSamples),
                  cost: try c.decode(Cost.self, forKey: .cost),
                  format: try c.decodeIfPresent(ExportFormat.self, forKey: .format) ?? .gguf,
                  gptq: try c.decodeIfPresent(GPTQCheckpointOptions.self, forKey: .gptq),
                  config: try c.decodeIfPresent(ModelConfig.self, forKey: .config))
    }
}

/// The allocation label of a `bits`-wide GPTQ module ("int4"); its grid follows from the shape and the
/// checkpoint's group size (`gptqGrid`).
public func gptqLabel(bits: Int) -> String { "int\(bits)" }

/// The bit width of a `gptqLabel`, nil for anything else.
public func gptqBits(label: String) -> Int? {
    guard label.hasPrefix("int"), let b = Int(label.dropFirst(3)), gptqSupportedBits.contains(b) else { return nil }
    return b
}

/// The grid of every module `labels` chooses for (labels from `gptqLabel`): the one rule the profile's
/// prices, the allocation's layout and the quantizer share. Throws for a label or shape that cannot pack.
public func gptqGrids(labels: [String: String], shapes: [String: [Int]],
                      options: GPTQCheckpointOptions) throws -> [String: IntegerGroupGrid] {
    var grids: [String: IntegerGroupGrid] = [:]
    for (name, label) in labels {
        guard let bits = gptqBits(label: label), let shape = shapes[name], shape.count == 2,
              let grid = gptqGrid(bits: bits, groupSize: options.groupSize, rows: shape[0], cols: shape[1],
                                  symmetric: options.symmetric) else {
            throw MixedPrecisionError.budget("\(name)=\(label): not a GPTQ grid its shape \(shapes[name] ?? []) packs at group size \(options.groupSize) (hint: choose one of \(gptqSupportedBits.map { gptqLabel(bits: $0) }) whose codes fill whole int32 words)")
        }
        grids[name] = grid
    }
    return grids
}

/// Tensors a runtime fuses into one kernel, which must therefore share a bit width: per block, q/k/v
/// (vLLM's qkv_proj) and gate/up (gate_up_proj); only members in `names`. GGUF has none: llama.cpp keeps
/// every tensor separate. A member no grid packs is not in `names` and stays fp16, as in uniform GPTQ
/// (a runtime that fuses it with quantized partners cannot load that; the tie binds the quantized ones).
public func fusedTies(format: ExportFormat, nLayers: Int, names: Set<String>) -> [[String]] {
    guard format == .gptq else { return [] }
    var ties: [[String]] = []
    for l in 0..<nLayers {
        for group in [[TensorName.attnQ(l), TensorName.attnK(l), TensorName.attnV(l)], [TensorName.ffnGate(l), TensorName.ffnUp(l)]] {
            let present = group.filter(names.contains)
            if present.count > 1 { ties.append(present) }
        }
    }
    return ties
}

/// What the allocation decided and why, for the report.
public struct AllocationReport: Sendable, Codable {
    public struct Candidate: Sendable, Codable {
        public var type: String
        /// Bytes in the file's data section, padding included.
        public var bytes: Int
        public var cost: Double
    }
    public struct Tensor: Sendable, Codable {
        public var name: String
        public var chosen: String
        public var candidates: [Candidate]
    }
    public struct FrontierPoint: Sendable, Codable {
        public var bitsPerWeight: Double
        public var fileBytes: Int
        public var cost: Double
        /// Tensors per chosen type at this budget.
        public var types: [String: Int]
    }
    public var sensitivity: String
    /// "gptq" or "rtn": the rounding whose errors priced the candidates.
    public var errors: String? = nil
    /// "gguf" or "gptq": what the plan's bytes are laid out for.
    public var format: String
    public var targetBitsPerWeight: Double
    public var budgetBytes: Int
    /// The budget the solver was last given: `budgetBytes` less what earlier solves overshot it by once the
    /// plan's headers and configs were laid out exactly (GPTQ; equal to `budgetBytes` for GGUF).
    public var solverBudgetBytes: Int
    /// Tensors that had to share a label (GPTQ: fused q/k/v and gate/up of each block).
    public var ties: [[String]]
    /// Bytes the allocation does not choose: header, metadata, norms, pinned tensors.
    public var fixedBytes: Int
    /// The file size the plan gives (equal to the written file's size; for GPTQ, to every file of the
    /// checkpoint directory).
    public var plannedFileBytes: Int
    public var totalCost: Double
    /// Whether the solver proved the plan optimal, and its lower bound on the cost (both at
    /// `solverBudgetBytes`).
    public var optimal: Bool
    public var lowerBound: Double
    public var tensors: [Tensor]
    public var frontier: [FrontierPoint]
    /// Per tensor, the trace the HAWQ cost used (fisher / hutchinson), with its standard error.
    public var traces: [TraceEstimate]?
    /// Seconds of the profiling pass (calibration forwards, traces and pricing every candidate).
    public var profileSeconds: Double
    /// GPTQ: the checkpoint settings the plan was laid out with.
    public var checkpoint: GPTQCheckpointOptions? = nil
}

public enum MixedPrecisionError: Error, CustomStringConvertible {
    case budget(String)
    case stats(file: String, field: String, expected: String, found: String)
    public var description: String {
        switch self {
        case .budget(let s): return s
        case .stats(let file, let field, let expected, let found):
            return "\(file): \(field): expected \(expected), found \(found) (hint: write it with `hessdist profile` for this model and output format)"
        }
    }
}

/// Profiles `source` on `calibration` (every rank takes part in the layer-Hessian pass, data parallel as
/// the quantizer is; the traces run on rank 0) and returns the statistics on rank 0, nil elsewhere.
/// `base` gives the types of the tensors that are not profiled (norms).
public func profileSensitivity(source: WeightSource, tokenizer: Tokenizer?, base: TypePlan, calibration: CalibrationSet,
                               calibrationDescription: String, options: SequentialOptions, profile: ProfileOptions,
                               comm: Comm = .single, progress: ((SequentialProgress) -> Void)? = nil,
                               traceProgress: ((SensitivityModel, Int, Int) -> Void)? = nil) throws -> SensitivityStats? {
    let t0 = Date()
    let c = source.config
    // The GGUF file's layout prices ggml candidates; a GPTQ profile lays out its checkpoint instead (and
    // needs no GGUF metadata, so no tokenizer).
    let layout = profile.gptq == nil ? try exportLayout(source: source, tokenizer: tokenizer) : nil
    let shapes = Dictionary(uniqueKeysWithValues: source.tensors.map { ($0.name, $0.shape) })
    // Loss-Hessian traces and eigenvalues from whole-model passes before the layer pass, on a pipeline
    // topology (S stages × R replicas; sequences split over the replicas, per-tensor scalars gathered on
    // rank 0). Without either, only rank 0 times a forward (the costs' unit) on the whole model.
    var fisher: [String: TraceEstimate] = [:], hutchinson: [String: TraceEstimate] = [:]
    var forwardSeconds = 0.0, fisherSeconds: Double? = nil, probeSeconds: Double? = nil
    var eigen: [String: (eigenvalue: Double, iterations: Int)] = [:]
    var fisherBlocks: [String: [TraceEstimate]] = [:], sampledFisher: [String: TraceEstimate] = [:]
    var topology: PipelineTopology? = nil
    var pipelineWire = WireStats()
    var peaks: [Int]? = nil, wireTotal = 0
    let wholeModelPasses = !profile.traces.isEmpty || !profile.eigenvalueTensors.isEmpty
    if wholeModelPasses {
        let t = try profile.topology(ranks: comm.size, config: c, seqlen: calibration.seqlen, comm: comm)
        topology = t
        let stage = t.stage(ofRank: comm.rank)
        let lm = try LlamaModel(source: source, layers: t.blocks[stage], embedding: stage == 0, head: stage == 0,
                                contextLength: calibration.seqlen)
        let profiler = try SensitivityProfiler(model: lm, seqlen: calibration.seqlen, comm: comm, topology: t)
        if let fault = try InjectedFault.fromEnvironment(), fault.rank == comm.rank, let seq = fault.fisherSequence {
            profiler.beforeFisherSequence = { s in if s == seq { try fault.fire() } }
        }
        if let f = try profiler.forwardSeconds(calibration.samples[0]) { forwardSeconds = f }
        if profile.traces.contains(.fisher) {
            let seqs = Array(calibration.samples.prefix(max(1, profile.fisherSamples)))
            let t = Date()
            for e in try profiler.empiricalFisher(seqs, rowBlock: profile.fisherRowBlock,
                                                  progress: { traceProgress?(.fisher, $0, $1) }) {
                if e.rows == nil { fisher[e.name] = e } else { fisherBlocks[e.name, default: []].append(e) }
            }
            fisherSeconds = Date().timeIntervalSince(t) / Double(seqs.count)
        }
        if profile.traces.contains(.sampledFisher) {
            let seqs = Array(calibration.samples.prefix(max(1, profile.fisherSamples)))
            for e in try profiler.empiricalFisher(seqs, sampledLabels: 0x4649_5348,
                                                  progress: { traceProgress?(.sampledFisher, $0, $1) }) {
                sampledFisher[e.name] = e
            }
        }
        if profile.traces.contains(.hutchinson) {
            let seqs = Array(calibration.samples.prefix(max(1, profile.hutchinsonSamples)))
            let t = Date()
            let est = try profiler.hutchinsonTrace(seqs, options: .init(maxProbes: profile.maxProbes,
                                                                       minProbes: min(10, profile.maxProbes)),
                                                   seed: 0x4841_5751, progress: { traceProgress?(.hutchinson, $0, $1) })
            for e in est { hutchinson[e.name] = e }
            probeSeconds = Date().timeIntervalSince(t) / Double(max(1, est.map(\.samples).max() ?? 1))
        }
        let seqs = Array(calibration.samples.prefix(max(1, profile.hutchinsonSamples)))
        for name in profiler.allTensorNames where profile.eigenvalueTensors.contains(where: { name.contains($0) }) {
            if let e = try profiler.topEigenvalue(seqs, tensor: name, seed: 0x4841_5751, maxIterations: profile.eigenIterations) {
                eigen[name] = e
            }
        }
        pipelineWire = profiler.link.wireStats
        pipelineWire += profiler.wireStats
        // Every rank's high-water mark and wire bytes, while the whole-model state is the largest thing held.
        let mine = try WireMessage(kind: .scalars, shape: [2], doubles: [Double(peakResidentBytes()), Double(pipelineWire.total.wireBytes)])
        if let all = try comm.gather(bytes: mine.encode(), root: 0) {
            let d = try all.map { try WireMessage.decode($0).doubles() }
            peaks = d.map { Int($0[0]) }
            wireTotal = d.reduce(0) { $0 + Int($1[1]) }
        }
    } else if comm.isRoot {
        let lm = try LlamaModel(source: source, contextLength: calibration.seqlen)
        forwardSeconds = try SensitivityProfiler(model: lm, seqlen: calibration.seqlen).forwardSeconds(calibration.samples[0]) ?? 0
    }
    let tLayers = Date()
    var tensors: [SensitivityStats.Tensor] = []
    var imatrix: [[Float]] = []
    // One tensor's candidates: bytes and damage. `inputError` adds the embedding's error as the first
    // residual stream, from each candidate's dequantized rows.
    let solver = GPTQ(blockSize: options.blockSize, dampPercent: options.dampPercent, actOrder: options.actOrder,
                      shrink: options.shrink, refitScales: options.refitScales)
    // GPTQ's error on a candidate grid, for the tensors GPTQ quantizes (those with a layer Hessian).
    func gptqErrors(_ W: [Float], _ H: LayerHessian?, _ hMean: [Float]?, rows: Int, cols: Int,
                    grid: some QuantGrid) throws -> (layer: Double, squared: Double, Q: [Float])? {
        guard profile.gptqErrors, let H, let hMean else { return nil }
        let r = try solver.solve(W: W, rows: rows, cols: cols, H: H, grid: grid, importance: options.importanceFit ? H.diagonal : nil)
        return (layerError(W: W, Q: r.Q, H: hMean, rows: rows, cols: cols), squaredDistance(W, r.Q), r.Q)
    }
    // ZeroQ's measured damage, on rank 0 (where the observers run) with a second copy of the model.
    let klProbe: TensorReplacementKL? = profile.klSamples > 0 && comm.isRoot
        ? try TensorReplacementKL(model: LlamaModel(source: source, contextLength: calibration.seqlen),
                                  sequences: Array(calibration.samples.prefix(profile.klSamples)))
        : nil
    var klSeconds = 0.0
    /// The KL damage of Q in place of tensor `name` (rtn: round-to-nearest's Q, else GPTQ's), nil without
    /// KL sequences; 0 without a pass when Q is the tensor itself.
    func klDamage(_ name: String, _ Q: [Float]?, squared: Double?) throws -> Double? {
        guard let klProbe, let Q, let squared else { return nil }
        if squared == 0 { return 0 }
        let t = Date()
        defer { klSeconds += Date().timeIntervalSince(t) }
        return try klProbe.divergence(replacing: name, with: Q)
    }
    func price(_ name: String, _ W: [Float], _ H: LayerHessian?, inputError: (([Float]) -> Double)? = nil) throws {
        guard let shape = shapes[name] else { return }
        let rows = shape[0], cols = shape[1]
        // Once per tensor, not per candidate: GPTQ's mean H and the imatrix (stored, so the export quantizes
        // the embedding with the very importance its price was computed with).
        let hMean = H?.mean()
        let imp = H?.diagonal
        var candidates: [SensitivityStats.Candidate] = []
        if let gptq = profile.gptq {
            // The checkpoint's grids: RTN on each (what GPTQ then improves on), priced by the module's data.
            for bits in profile.gptqBits {
                guard let grid = gptqGrid(bits: bits, groupSize: gptq.groupSize, rows: rows, cols: cols,
                                          symmetric: gptq.symmetric) else { continue }
                let Q = roundToNearest(W: W, rows: rows, cols: cols, grid: grid).Q
                let d2 = squaredDistance(W, Q)
                let err = hMean.map { layerError(W: W, Q: Q, H: $0, rows: rows, cols: cols) } ?? 0
                let g = try gptqErrors(W, H, hMean, rows: rows, cols: cols, grid: grid)
                // The KL of what quantize will write: GPTQ's result when profiled, else round-to-nearest's.
                candidates.append(.init(type: gptqLabel(bits: bits), bytes: gptqModuleDataBytes(rows: rows, cols: cols, grid: grid),
                                        layerError: err, squaredError: d2, gptqLayerError: g?.layer, gptqSquaredError: g?.squared,
                                        kl: g == nil ? try klDamage(name, Q, squared: d2) : nil,
                                        gptqKL: try klDamage(name, g?.Q, squared: g?.squared)))
            }
        }
        for type in profile.candidates where profile.gptq == nil && cols % type.blockSize == 0 {
            let bytes = try W.withUnsafeBufferPointer { w in
                try imp.map { try quantizeTensor(type, rows: rows, cols: cols, from: w.baseAddress!, importance: $0) }
                    ?? quantizeTensor(type, rows: rows, cols: cols, from: w.baseAddress!)
            }
            var Q = [Float](repeating: 0, count: rows * cols)
            try bytes.withUnsafeBytes { raw in try Q.withUnsafeMutableBufferPointer { try dequantizeRow(type, from: raw, into: $0) } }
            let d2 = squaredDistance(W, Q)
            var err = hMean.map { layerError(W: W, Q: Q, H: $0, rows: rows, cols: cols) } ?? 0
            if let inputError { err += inputError(Q) }
            // GPTQ's result wherever quantize runs GPTQ: the block linears and the output head, which for a tied
            // embedding is the embedding (priced with its error as the input too). An untied embedding has no H.
            let g = try gptqErrors(W, H, hMean, rows: rows, cols: cols, grid: try GGMLGrid(type: type))
            let gptqLayer = g.map { $0.layer + (inputError?($0.Q) ?? 0) }
            candidates.append(.init(type: type.description, bytes: layout!.dataBytes(type, elements: rows * cols)!,
                                    layerError: err, squaredError: d2, gptqLayerError: gptqLayer, gptqSquaredError: g?.squared,
                                    kl: g == nil ? try klDamage(name, Q, squared: d2) : nil,
                                    gptqKL: try klDamage(name, g?.Q, squared: g?.squared)))
        }
        // A tensor no candidate fits (rows not a whole number of blocks) keeps its base type as fixed bytes.
        guard !candidates.isEmpty else { return }
        let trace = imp?.reduce(0.0) { $0 + Double($1) } ?? 0
        tensors.append(.init(name: name, shape: shape, inputTrace: trace, fisher: fisher[name], hutchinson: hutchinson[name],
                             candidates: candidates, sampledFisher: sampledFisher[name], fisherRowBlocks: fisherBlocks[name],
                             topEigenvalue: eigen[name]?.eigenvalue, eigenIterations: eigen[name]?.iterations))
        imatrix.append(imp ?? [])
    }
    // Token frequencies of the calibration inputs: the embedding's error as the first residual stream is
    // the mean over tokens of ‖ΔE_token‖².
    var frequency: [Int32: Double] = [:]
    for s in calibration.samples { for t in s { frequency[t, default: 0] += 1 } }
    let tokens = Double(calibration.tokenCount)
    func embeddingInputError(_ E: [Float]) -> (([Float]) -> Double) {
        { Q in
            var s = 0.0
            for (t, n) in frequency {
                let r = Int(t) * c.dim
                var d2 = 0.0
                for j in 0..<c.dim { let d = Double(E[r + j] - Q[r + j]); d2 += d * d }
                s += n * d2
            }
            return s / tokens
        }
    }
    // The layer pass: the sequential quantizer's calibration with every linear kept as F32, which
    // round-trips exactly, so each Hessian is that of the unquantized model.
    var profileOptions = options
    profileOptions.method = .gptq
    let layers = SequentialQuantizer(source: source, options: profileOptions, comm: comm) { _ in .ggml(.f32) }
    layers.observer = { name, W, H in try price(name, W, H) }
    // A GPTQ checkpoint keeps the embedding and head fp16: nothing to price there.
    if profile.gptq == nil { layers.headObserver = { name, W, H in
        // Tied: the embedding is the head, its damage both at the output and at the input.
        if c.tiedEmbeddings {
            try price(name, W, H, inputError: embeddingInputError(W))
        } else {
            try price(name, W, H)
            let E = try source.dequantize(TensorName.tokenEmbedding)
            try price(TensorName.tokenEmbedding, E, nil, inputError: embeddingInputError(E))
        }
    } }
    _ = try layers.run(calibration: calibration, progress: progress)
    guard comm.isRoot else { return nil }
    let profiled = Set(tensors.map(\.name))
    var fixed = 0
    if let gptq = profile.gptq {
        fixed = try gptqFixedBytes(config: c, tensors: tensors, options: gptq)
    } else if let layout {
        fixed = layout.headerBytes
        for t in source.tensors where !profiled.contains(t.name) {
            fixed += layout.dataBytes(base.types[t.name]!, elements: t.shape.reduce(1, *))!
        }
    }
    let layerSeconds = Date().timeIntervalSince(tLayers)
    var stats = SensitivityStats(model: source.path, calibration: calibrationDescription, seqlen: calibration.seqlen,
                                 parameters: c.parameterCount, fixedBytes: fixed, tensors: tensors,
                                 fisherSamples: !profile.traces.isDisjoint(with: [.fisher, .sampledFisher]) ? min(profile.fisherSamples, calibration.samples.count) : nil,
                                 hutchinsonSamples: profile.traces.contains(.hutchinson) ? min(profile.hutchinsonSamples, calibration.samples.count) : nil,
                                 cost: .init(forwardSeconds: forwardSeconds, fisherSecondsPerSequence: fisherSeconds,
                                             hutchinsonSecondsPerProbe: probeSeconds, layerPassSeconds: layerSeconds,
                                             klMeasurements: klProbe?.measurements, klSequences: klProbe?.B,
                                             klSecondsPerMeasurement: klProbe.map { klSeconds / Double(max(1, $0.measurements)) },
                                             totalSeconds: Date().timeIntervalSince(t0), topology: topology?.description,
                                             peakResidentBytesByRank: peaks, wireBytes: topology.map { _ in wireTotal }))
    stats.imatrix = imatrix
    if let gptq = profile.gptq {
        stats.format = .gptq
        stats.gptq = gptq
        stats.config = c
    }
    return stats
}

/// ‖a − b‖², in Double.
func squaredDistance(_ a: [Float], _ b: [Float]) -> Double {
    var s = 0.0
    for k in a.indices { let d = Double(a[k] - b[k]); s += d * d }
    return s
}

/// A GPTQ profile's `fixedBytes`: every file of the checkpoint with each profiled module at its first
/// candidate, less those candidates' data, i.e. the additive part of any plan's size. What a plan's own
/// headers and configs add on top is settled by laying the chosen plan out (`allocateMixedPrecision`).
func gptqFixedBytes(config: ModelConfig, tensors: [SensitivityStats.Tensor], options: GPTQCheckpointOptions) throws -> Int {
    let first = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0.candidates[0].type) })
    let shapes = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0.shape) })
    let grids = try gptqGrids(labels: first, shapes: shapes, options: options)
    return try GPTQCheckpointLayout(config: config, grids: grids, options: options).totalBytes
        - tensors.reduce(0) { $0 + $1.candidates[0].bytes }
}

/// The label (ggml type name, or `gptqLabel` for GPTQ) of every profiled or pinned tensor under `mixed`'s
/// budget and sensitivity model, with the report. Pure: no model, no files.
///
/// GPTQ: fused tensors are tied (`fusedTies`), and the plan's size is the exact size of every file of the
/// checkpoint (`GPTQCheckpointLayout`). The solver sees that size as `fixedBytes` + Σ module data, which is
/// exact for the data but not for the safetensors headers and the configs: their bytes follow the plan
/// (shape and offset digits, one `dynamic` entry per module off the default bits, shard boundaries). So
/// the chosen plan is laid out, and while it overshoots the budget the solver runs again with its budget
/// lowered by the overshoot; the budget strictly falls, so this ends with a plan that fits or with the
/// solver's infeasible error.
public func allocateMixedPrecision(stats: SensitivityStats,
                                   mixed: MixedPrecisionOptions) throws -> (types: [String: String], report: AllocationReport) {
    let params = Double(stats.parameters)
    let names = Set(stats.tensors.map(\.name))
    for name in mixed.pinned.keys.sorted() where !names.contains(name) {
        throw MixedPrecisionError.budget("--pin \(name): not a tensor the statistics allocate (\(stats.tensors.count) tensors, e.g. \(stats.tensors.first?.name ?? "none"))")
    }
    let ties = fusedTies(format: stats.format, nLayers: stats.config?.nLayers ?? 0, names: names)
    let tied = Set(ties.joined())
    var fixed = stats.fixedBytes
    var items: [AllocationItem] = []
    // GPTQ's errors where the profile has them, unless round-to-nearest is asked for.
    let hasGPTQErrors = stats.tensors.contains { $0.candidates.contains { $0.gptqLayerError != nil } }
    let errors = mixed.errors ?? (hasGPTQErrors ? .gptq : .rtn)
    if errors == .gptq && !hasGPTQErrors {
        throw MixedPrecisionError.budget("--errors gptq: the statistics of \(stats.model) have no GPTQ errors (hint: profile again with --gptq-errors, or allocate with --errors rtn)")
    }
    var traces: [TraceEstimate] = []
    for var t in stats.tensors {
        if let allowed = mixed.allowed, mixed.pinned[t.name] == nil {
            let profiled = t.candidates.map(\.type)
            t.candidates.removeAll { !allowed.contains($0.type) }
            guard !t.candidates.isEmpty else {
                throw MixedPrecisionError.budget("--choose-from \(allowed.sorted().joined(separator: ",")): none of \(t.name)'s candidates (\(profiled.joined(separator: ", ")))")
            }
        }
        if let pin = mixed.pinned[t.name] {
            guard let c = t.candidates.first(where: { $0.type == pin }) else {
                throw MixedPrecisionError.budget("--pin \(t.name)=\(pin): not a candidate for its shape \(t.shape) (candidates: \(t.candidates.map(\.type).joined(separator: ", ")))")
            }
            // A pin is fixed bytes, unless tie partners must follow it: then it stays an item, pinned.
            if !tied.contains(t.name) {
                fixed += c.bytes
                continue
            }
        }
        if mixed.sensitivity == .kl {
            let missing = t.candidates.first { (errors == .gptq ? $0.gptqKL ?? $0.kl : $0.kl) == nil }
            if let missing {
                throw MixedPrecisionError.budget("--sensitivity kl: the statistics have no \(errors == .gptq ? "GPTQ " : "")KL measurement for \(t.name) as \(missing.type) (hint: profile with --kl-samples N\(errors == .gptq ? " --gptq-errors" : ""): the KL of the rounding the allocation prices by)")
            }
        }
        let trace: TraceEstimate?
        switch mixed.sensitivity.trace {
        case .fisher: trace = t.fisher
        case .hutchinson: trace = t.hutchinson
        case .sampledFisher: trace = t.sampledFisher
        default: trace = nil
        }
        if let kind = mixed.sensitivity.trace {
            guard let trace else {
                throw MixedPrecisionError.budget("--sensitivity \(mixed.sensitivity.rawValue): the statistics have no \(kind.rawValue) trace for \(t.name) (hint: profile with --traces \(kind.rawValue))")
            }
            traces.append(trace)
        }
        let n = Double(t.shape.reduce(1, *)), rows = Double(t.shape[0])
        items.append(AllocationItem(name: t.name, choices: t.candidates.map { c in
            // An untied embedding has no GPTQ-priced errors (quantize rounds it with its imatrix).
            let layer = errors == .gptq ? c.gptqLayerError ?? c.layerError : c.layerError
            let squared = errors == .gptq ? c.gptqSquaredError ?? c.squaredError : c.squaredError
            let cost: Double
            if mixed.sensitivity == .kl {
                // An untied embedding has no GPTQ-priced KL: its round-to-nearest one stands in.
                cost = max(0, (errors == .gptq ? c.gptqKL ?? c.kl : c.kl)!)
            } else if let trace, mixed.sensitivity == .kfac, t.inputTrace > 0 {
                cost = max(0, trace.mean) / (t.inputTrace * rows) * layer
            } else if let trace {
                cost = max(0, trace.mean) / n * squared
            } else {
                cost = layer
            }
            return AllocationChoice(label: c.type, bytes: c.bytes, cost: cost)
        }, pinned: mixed.pinned[t.name]))
    }
    let budgetBytes = mixed.budget.bytes(parameters: stats.parameters)
    let problem = BitAllocationProblem(items: items, ties: ties, fixedBytes: fixed, budgetBytes: budgetBytes)

    // The exact size of a plan's output: the additive model for GGUF (exact there), the checkpoint's
    // layout for GPTQ.
    var exactBytes: (BitPlan) throws -> Int = { $0.totalBytes }
    if stats.format == .gptq {
        guard let config = stats.config, let profiled = stats.gptq else {
            throw MixedPrecisionError.budget("statistics of \(stats.model): format gptq without its checkpoint settings and model config (hint: profile again with `hessdist profile --format gptq`)")
        }
        let options = mixed.checkpoint ?? profiled
        let shapes = Dictionary(uniqueKeysWithValues: stats.tensors.map { ($0.name, $0.shape) })
        exactBytes = { plan in
            var labels = plan.labels
            for (name, label) in mixed.pinned { labels[name] = label }
            return try GPTQCheckpointLayout(config: config, grids: try gptqGrids(labels: labels, shapes: shapes, options: options),
                                            options: options).totalBytes
        }
    }
    func solve(_ budget: Int) throws -> (plan: BitPlan, bytes: Int, solverBudget: Int) {
        var q = problem
        q.budgetBytes = budget
        func run() throws -> (BitPlan, Int) {
            let plan = mixed.sensitivity == .sizeOnly ? try q.sizeOnlyBaseline() : try q.solve()
            return (plan, try exactBytes(plan))
        }
        var (plan, bytes) = try run()
        while bytes > budget {
            q.budgetBytes -= bytes - budget
            (plan, bytes) = try run()
        }
        // The other way (GPTQ): a plan that drops the `dynamic` entries of the reference layout is smaller
        // than the solver thought, leaving budget unused. Hand the slack back to the solver while its plan
        // still fits; a larger budget never costs more, so a few rounds only refine.
        var fitted = (plan, bytes, q.budgetBytes)
        for _ in 0..<8 where fitted.1 < budget && stats.format == .gptq {
            q.budgetBytes = fitted.2 + (budget - fitted.1)
            let (p, b) = try run()
            guard b <= budget else { break }
            fitted = (p, b, q.budgetBytes)
        }
        return fitted
    }
    let range = try problem.usefulByteRange()
    let chosen: (plan: BitPlan, bytes: Int, solverBudget: Int)
    do {
        chosen = try solve(budgetBytes)
    } catch BitAllocationError.infeasible(_, let smallest) {
        throw MixedPrecisionError.budget(
            "\(mixed.budget.flag): \(budgetBytes) bytes; the smallest file these candidates allow is \(smallest) bytes (\(String(format: "%.3f", Double(smallest * 8) / params)) bits/weight): raise the target or add smaller candidates")
    }
    let plan = chosen.plan
    let budgets = mixed.frontier.map { FileBudget.bitsPerWeight($0).bytes(parameters: stats.parameters) }
        .filter { $0 >= range.lowerBound }
    var frontier: [AllocationReport.FrontierPoint] = []
    for b in budgets {
        let p: (plan: BitPlan, bytes: Int, solverBudget: Int)
        do {
            p = try solve(b)
        } catch BitAllocationError.infeasible {
            // A budget just above the additive minimum can be short of the exact one: no point there.
            continue
        }
        frontier.append(AllocationReport.FrontierPoint(bitsPerWeight: Double(b * 8) / params, fileBytes: p.bytes,
                                                       cost: p.plan.totalCost,
                                                       types: Dictionary(p.plan.labels.values.map { ($0, 1) }, uniquingKeysWith: +)))
    }
    var types = plan.labels
    for (name, label) in mixed.pinned { types[name] = label }
    let tensors = items.map { item in
        AllocationReport.Tensor(name: item.name, chosen: plan.labels[item.name]!,
                                candidates: item.choices.map { .init(type: $0.label, bytes: $0.bytes, cost: $0.cost) })
    }
    // What the plan does not choose, from the exact size: headers, configs, dense tensors, pins.
    let chosenBytes = items.reduce(0) { sum, item in sum + item.choices.first { $0.label == plan.labels[item.name] }!.bytes }
    var report = AllocationReport(sensitivity: mixed.sensitivity.rawValue, format: stats.format.rawValue,
                                  targetBitsPerWeight: Double(budgetBytes * 8) / params,
                                  budgetBytes: budgetBytes, solverBudgetBytes: chosen.solverBudget, ties: ties,
                                  fixedBytes: chosen.bytes - chosenBytes, plannedFileBytes: chosen.bytes,
                                  totalCost: plan.totalCost, optimal: plan.isOptimal, lowerBound: plan.lowerBound,
                                  tensors: tensors, frontier: frontier, traces: traces.isEmpty ? nil : traces,
                                  profileSeconds: stats.cost.totalSeconds)
    report.errors = errors.rawValue
    if stats.format == .gptq { report.checkpoint = mixed.checkpoint ?? stats.gptq }
    return (types, report)
}

extension TypePlan {
    /// The plan with `types` replacing its own, and the imatrix of `stats` for tensors the export quantizes
    /// itself (the embedding: it is quantized with the importance it was priced with).
    public func applying(_ chosen: [String: GGMLType], stats: SensitivityStats) -> TypePlan {
        var result = self
        for (i, t) in stats.tensors.enumerated() where i < stats.imatrix.count && !stats.imatrix[i].isEmpty {
            result.importance[t.name] = stats.imatrix[i]
        }
        for (name, type) in chosen { result.types[name] = type }
        result.choices = result.choices.map { c in
            var c = c
            if let type = chosen[c.name] { c.type = type.description; c.fallbackFrom = nil }
            return c
        }
        return result
    }

    /// The type holding most block-linear parameters: what `general.file_type` names for a mixed plan.
    func dominantLinearType(_ source: WeightSource) -> GGMLType? {
        var weight: [GGMLType: Int] = [:]
        for t in source.tensors where t.shape.count == 2 && t.name.hasPrefix("blk.") {
            if let ty = types[t.name] { weight[ty, default: 0] += t.shape.reduce(1, *) }
        }
        return weight.max { $0.value < $1.value || ($0.value == $1.value && $0.key.rawValue > $1.key.rawValue) }?.key
    }
}
