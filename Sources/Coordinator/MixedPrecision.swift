// Mixed precision for GGUF: profile every block linear's layer Hessian on the unquantized model, price
// each candidate ggml type by the exact bytes it adds to the file and by a sensitivity, and choose one
// type per tensor with the exact budgeted solver (`BitAllocationProblem`). Not the solver, not GPTQ:
// the chosen types then go through the ordinary sequential quantizer.
import Foundation
import HessianDist
import Node

/// How the damage of storing a tensor in a type is predicted.
public enum SensitivityModel: String, Sendable, Codable, CaseIterable {
    /// The layer-wise error tr(ΔW H ΔWᵀ) of round-to-nearest (with the imatrix diag(H) where the type has
    /// an importance search) against the layer Hessian H of the unquantized model: the output error of
    /// that layer alone, what GPTQ then reduces. Cheap (one calibration pass) but blind to how much the
    /// layer's output error moves the loss.
    case hessianError = "hessian-error"
    /// HAWQ's Tr(H_b)/n_b · ‖Q(W_b) − W_b‖² with Tr(H_b) the empirical Fisher trace of tensor b: the mean
    /// over sequences of ‖∇_b ℓ‖² (one backward pass per sequence).
    case fisher
    /// HAWQ's Tr(H_b)/n_b · ‖Q(W_b) − W_b‖² with Tr(H_b) Hutchinson's estimate of the loss-Hessian trace
    /// (Rademacher probes, two gradient passes per probe). A negative estimate (a saddle direction, or
    /// noise) is floored at 0.
    case hutchinson
    /// No sensitivity: the largest uniform type that fits, then single tensors one type up in name order
    /// while they fit (`BitAllocationProblem.sizeOnlyBaseline`). The baseline the others must beat; the
    /// report's costs are the hessian-error ones.
    case sizeOnly = "size-only"
}

public struct MixedPrecisionOptions: Sendable {
    /// The whole file's budget: bytes × 8 / parameters, every byte counted (header, metadata, embedding,
    /// norms, padding).
    public var targetBitsPerWeight: Double
    /// Types a block linear may take (each only where its row length is a whole number of blocks).
    public var candidates: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]
    public var sensitivity: SensitivityModel = .hessianError
    /// Calibration sequences the Fisher / Hutchinson traces average over (the first ones of the set):
    /// each costs a backward pass (Fisher) or two per probe (Hutchinson).
    public var sensitivitySamples = 16
    /// Hutchinson probes at most (PyHessian's stop rule may end earlier).
    public var maxProbes = 30
    /// Budgets (bits per weight) at which the report lists the optimal cost: the Pareto frontier.
    public var frontier: [Double] = stride(from: 4.0, through: 9.0, by: 0.25).map { $0 }
    public init(targetBitsPerWeight: Double) { self.targetBitsPerWeight = targetBitsPerWeight }
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
    public var targetBitsPerWeight: Double
    public var budgetBytes: Int
    /// Bytes the allocation does not choose: header, metadata, embedding, output, norms.
    public var fixedBytes: Int
    /// The file size the plan gives (equal to the written file's size).
    public var plannedFileBytes: Int
    public var totalCost: Double
    /// Whether the solver proved the plan optimal, and its lower bound on the cost.
    public var optimal: Bool
    public var lowerBound: Double
    public var tensors: [Tensor]
    public var frontier: [FrontierPoint]
    /// Per tensor, the trace the HAWQ cost used (fisher / hutchinson), with its standard error.
    public var traces: [TraceEstimate]?
    /// Seconds of the profiling pass (calibration forwards and pricing every candidate).
    public var profileSeconds: Double
}

public enum MixedPrecisionError: Error, CustomStringConvertible {
    case budget(String)
    public var description: String {
        switch self { case .budget(let s): return "--target-bpw: \(s)" }
    }
}

/// Profiles `source` on `calibration` (every rank takes part; data parallel as the quantizer is) and, on
/// rank 0, returns the per-tensor types for a budget of `mixed.targetBitsPerWeight`, with the report.
/// `base` fixes the tensors that are not block linears (embedding, output, norms). Other ranks return nil.
public func planMixedPrecision(source: WeightSource, tokenizer: Tokenizer?, base: TypePlan, calibration: CalibrationSet,
                               options: SequentialOptions, mixed: MixedPrecisionOptions,
                               comm: Comm = .single, progress: ((SequentialProgress) -> Void)? = nil,
                               traceProgress: ((Int, Int) -> Void)? = nil) throws -> (plan: TypePlan, report: AllocationReport)? {
    let t0 = Date()
    let layout = try exportLayout(source: source, tokenizer: tokenizer)
    let shapes = Dictionary(uniqueKeysWithValues: source.tensors.map { ($0.name, $0.shape) })
    var items: [AllocationItem] = []
    // HAWQ models: per-tensor loss-Hessian traces on rank 0 from the whole model, before the layer pass.
    var traces: [String: TraceEstimate] = [:]
    if mixed.sensitivity == .fisher || mixed.sensitivity == .hutchinson, comm.isRoot {
        let lm = try LlamaModel(source: source, contextLength: calibration.seqlen)
        let profiler = try SensitivityProfiler(model: lm, seqlen: calibration.seqlen)
        let seqs = Array(calibration.samples.prefix(max(1, mixed.sensitivitySamples)))
        let estimates = mixed.sensitivity == .fisher
            ? try profiler.empiricalFisher(seqs, progress: traceProgress)
            : try profiler.hutchinsonTrace(seqs, options: .init(maxProbes: mixed.maxProbes, minProbes: min(10, mixed.maxProbes)),
                                           seed: 0x4841_5751, progress: traceProgress)
        for e in estimates { traces[e.name] = e }
    }
    // The profiling pass: the sequential quantizer's calibration with every linear kept as F32, which
    // round-trips exactly, so each Hessian is that of the unquantized model.
    var profileOptions = options
    profileOptions.method = .gptq
    let profiler = SequentialQuantizer(source: source, options: profileOptions, comm: comm) { _ in .ggml(.f32) }
    profiler.observer = { name, W, H in
        guard let H, let shape = shapes[name] else { return }
        let rows = shape[0], cols = shape[1]
        // Once per tensor, not per candidate: the imatrix, and (for the layer-wise error) H itself.
        let imatrix = H.diagonal
        let hMean = mixed.sensitivity == .hessianError || mixed.sensitivity == .sizeOnly ? H.mean() : []
        var choices: [AllocationChoice] = []
        for type in mixed.candidates where cols % type.blockSize == 0 {
            let bytes = try W.withUnsafeBufferPointer { w in
                try quantizeTensor(type, rows: rows, cols: cols, from: w.baseAddress!, importance: imatrix)
            }
            var Q = [Float](repeating: 0, count: rows * cols)
            try bytes.withUnsafeBytes { raw in try Q.withUnsafeMutableBufferPointer { try dequantizeRow(type, from: raw, into: $0) } }
            let cost: Double
            switch mixed.sensitivity {
            case .hessianError, .sizeOnly:
                cost = layerError(W: W, Q: Q, H: hMean, rows: rows, cols: cols)
            case .fisher, .hutchinson:
                guard let tr = traces[name] else { throw MixedPrecisionError.budget("no trace was estimated for \(name)") }
                var d2 = 0.0
                for k in 0..<(rows * cols) { let d = Double(W[k] - Q[k]); d2 += d * d }
                cost = max(0, tr.mean) / Double(rows * cols) * d2
            }
            choices.append(AllocationChoice(label: type.description, bytes: layout.dataBytes(type, elements: rows * cols)!,
                                            cost: cost))
        }
        // A tensor no candidate fits (rows not a whole number of blocks) keeps its base type as fixed bytes.
        if !choices.isEmpty { items.append(AllocationItem(name: name, choices: choices)) }
    }
    _ = try profiler.run(calibration: calibration, progress: progress)
    guard comm.isRoot else { return nil }

    let linear = Set(items.map(\.name))
    var fixed = layout.headerBytes
    for t in source.tensors where !linear.contains(t.name) {
        fixed += layout.dataBytes(base.types[t.name]!, elements: t.shape.reduce(1, *))!
    }
    let params = Double(source.config.parameterCount)
    func budget(_ bpw: Double) -> Int { Int((bpw * params / 8).rounded(.down)) }
    let problem = BitAllocationProblem(items: items, fixedBytes: fixed, budgetBytes: budget(mixed.targetBitsPerWeight))
    let range = try problem.usefulByteRange()
    let plan: BitPlan
    do {
        plan = mixed.sensitivity == .sizeOnly ? try problem.sizeOnlyBaseline() : try problem.solve()
    } catch BitAllocationError.infeasible(_, let smallest) {
        throw MixedPrecisionError.budget(
            "\(mixed.targetBitsPerWeight) bits/weight is \(problem.budgetBytes) bytes; the smallest file these candidates allow is \(smallest) bytes (\(String(format: "%.3f", Double(smallest * 8) / params)) bits/weight): raise the target or add smaller candidates")
    }
    let budgets = mixed.frontier.map(budget).filter { $0 >= range.lowerBound }
    let frontier = try problem.paretoFrontier(budgets: budgets).map { p in
        AllocationReport.FrontierPoint(bitsPerWeight: Double(p.budgetBytes * 8) / params, fileBytes: p.totalBytes,
                                       cost: p.totalCost, types: Dictionary(p.labels.values.map { ($0, 1) }, uniquingKeysWith: +))
    }
    var result = base
    for (name, label) in plan.labels { result.types[name] = GGMLType(name: label)! }
    result.choices = result.choices.map { c in
        var c = c
        if let label = plan.labels[c.name] { c.type = label; c.fallbackFrom = nil }
        return c
    }
    let tensors = items.map { item in
        AllocationReport.Tensor(name: item.name, chosen: plan.labels[item.name]!,
                                candidates: item.choices.map { .init(type: $0.label, bytes: $0.bytes, cost: $0.cost) })
    }
    let report = AllocationReport(sensitivity: mixed.sensitivity.rawValue, targetBitsPerWeight: mixed.targetBitsPerWeight,
                                  budgetBytes: problem.budgetBytes, fixedBytes: fixed, plannedFileBytes: plan.totalBytes,
                                  totalCost: plan.totalCost, optimal: plan.isOptimal, lowerBound: plan.lowerBound,
                                  tensors: tensors, frontier: frontier,
                                  traces: traces.isEmpty ? nil : items.compactMap { traces[$0.name] },
                                  profileSeconds: Date().timeIntervalSince(t0))
    return (result, report)
}

extension TypePlan {
    /// The type holding most block-linear parameters: what `general.file_type` names for a mixed plan.
    func dominantLinearType(_ source: WeightSource) -> GGMLType? {
        var weight: [GGMLType: Int] = [:]
        for t in source.tensors where t.shape.count == 2 && t.name.hasPrefix("blk.") {
            if let ty = types[t.name] { weight[ty, default: 0] += t.shape.reduce(1, *) }
        }
        return weight.max { $0.value < $1.value || ($0.value == $1.value && $0.key.rawValue > $1.key.rawValue) }?.key
    }
}
