// `hessdist profile`: the sensitivity statistics of a model on calibration data, written as a stats file
// that `hessdist allocate` and `quantize --stats` read (any budget, any sensitivity model, no second pass).
import Foundation
import HessianDist
import Node
import Wire

public struct ProfileJob: Sendable {
    public var modelPath: String
    public var tokenizerPath: String?
    public var calibrationText: String?
    public var nsamples = 128
    public var seqlen = 512
    public var seed: UInt64 = 0
    public var options = SequentialOptions()
    public var profile = ProfileOptions()
    /// The types of the tensors that are not profiled, as `quantize` would set them.
    public var linearType: GGMLType = .q4_0
    public var outputPath: String
    public init(modelPath: String, outputPath: String) {
        self.modelPath = modelPath
        self.outputPath = outputPath
    }
}

/// Runs the profile on every rank of `comm`; rank 0 writes the stats file and returns the statistics.
public func runProfile(_ job: ProfileJob, comm: Comm = .single,
                       progress: ((QuantizeStage) -> Void)? = nil) throws -> SensitivityStats? {
    var wire = WireStats()
    let source = try openModel(path: job.modelPath)
    let tokenizer = try? openTokenizer(for: source, path: job.tokenizerPath)
    let (calibration, description) = try buildCalibration(
        source: source, tokenizer: tokenizer, text: job.calibrationText, nsamples: job.nsamples, seqlen: job.seqlen,
        seed: job.seed, comm: comm, wire: &wire) { progress?(.calibrating(done: $0, of: job.seqlen)) }
    let base = TypePlan(config: source.config, tensors: source.tensors, linear: job.linearType, embedding: nil, output: nil)
    guard let stats = try profileSensitivity(source: source, tokenizer: tokenizer, base: base, calibration: calibration,
                                             calibrationDescription: description, options: job.options, profile: job.profile,
                                             comm: comm, progress: { progress?(.profiling($0)) },
                                             traceProgress: { progress?(.traces($0, done: $1, open: $2)) }) else { return nil }
    try SensitivityStatsFile.write(stats, to: job.outputPath)
    return stats
}
