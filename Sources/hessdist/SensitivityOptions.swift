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
    @Option(help: "Candidate types, comma-separated (default Q4_0,Q4_1,Q5_0,Q5_1,Q8_0,Q2_K…Q6_K; each where the row length fits).")
    var candidates: String?
    @Option(help: "Fisher traces: calibration sequences averaged (one backward pass each).")
    var fisherSamples = 16
    @Option(help: "Hutchinson traces: calibration sequences of each Hessian-vector product (two gradient passes over all of them per probe).")
    var hutchinsonSamples = 4
    @Option(help: "Hutchinson traces: probes at most (PyHessian's 1e-3 stop rule may end earlier, after 10).")
    var maxProbes = 30

    func validate() throws {
        guard fisherSamples >= 1, hutchinsonSamples >= 1, maxProbes >= 1 else {
            throw ValidationError("--fisher-samples \(fisherSamples), --hutchinson-samples \(hutchinsonSamples), --max-probes \(maxProbes): expected >= 1")
        }
        if let c = candidates {
            for name in c.split(separator: ",") where GGMLType(name: String(name))?.isQuantizable != true {
                throw ValidationError("--candidates: '\(name)' is not a quantized ggml type (Q4_0 … Q8_0, Q2_K … Q6_K)")
            }
        }
    }

    func options(traces: Set<SensitivityModel>) -> ProfileOptions {
        var p = ProfileOptions()
        if let c = candidates { p.candidates = c.split(separator: ",").map { GGMLType(name: String($0))! } }
        p.traces = traces
        p.fisherSamples = fisherSamples
        p.hutchinsonSamples = hutchinsonSamples
        p.maxProbes = maxProbes
        return p
    }
}

/// A mixed-precision budget: shared by allocate and quantize.
struct BudgetOptions: ParsableArguments {
    @Option(help: "Mixed precision: the whole file at most this many bits per weight (file bytes × 8 / parameters).")
    var targetBpw: Double?
    @Option(help: "Mixed precision: the whole file at most this many bytes.")
    var targetSize: Int?
    @Option(help: "How a type's damage is predicted: hessian-error (tr(ΔW H ΔWᵀ) of the layer), fisher or hutchinson (HAWQ: Tr(H_b)/n_b · ‖Q(W_b) − W_b‖² with the empirical Fisher or Hutchinson loss-Hessian trace), or size-only (the baseline).")
    var sensitivity: SensitivityModel = .hessianError
    @Option(help: "Fix a tensor's type, NAME=TYPE (repeatable), e.g. token_embd.weight=Q8_0.")
    var pin: [String] = []

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
    }

    func pins() throws -> [String: GGMLType] {
        var out: [String: GGMLType] = [:]
        for p in pin {
            let parts = p.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let t = GGMLType(name: parts[1]), t.isQuantizable else {
                throw ValidationError("--pin \(p): expected NAME=TYPE with a quantized ggml type, e.g. token_embd.weight=Q8_0")
            }
            out[parts[0]] = t
        }
        return out
    }

    func options(profile: ProfileOptions) throws -> MixedPrecisionOptions? {
        guard let budget else { return nil }
        var m = MixedPrecisionOptions(budget: budget)
        m.sensitivity = sensitivity
        m.profile = profile
        m.pinned = try pins()
        return m
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
        case .traces(_, let d, let open): return "Hutchinson: probe \(d), \(open) tensors not converged"
        case .exporting: return "writing"
        }
    }
}
