// The quantize job end to end on one node: calibration (a text, or data-free samples from the model),
// true-sequential GPTQ or RTN, export, and a JSON report. The CLI only parses options into `QuantizeJob`.
import Foundation
import HessianDist
import Node
import Wire

public enum ExportFormat: String, Sendable, Codable, CaseIterable {
    case gguf, gptq
}

public struct QuantizeJob: Sendable {
    public var modelPath: String
    public var tokenizerPath: String?
    public var calibrationText: String?
    public var nsamples = 128
    public var seqlen = 512
    public var seed: UInt64 = 0
    public var format: ExportFormat = .gguf
    public var ggmlType: GGMLType = .q4_0
    public var embeddingType: GGMLType?
    public var outputType: GGMLType?
    public var bits = 4
    public var groupSize = 128
    public var symmetric = false
    /// GPTQ safetensors shards at most this many bytes (nil: one file).
    public var maxShardBytes: Int?
    public var options = SequentialOptions()
    /// Mixed precision: per-tensor types (GGUF) or bit widths (GPTQ) chosen under a size budget for the
    /// whole output (nil: `ggmlType` / `bits` for all).
    public var mixed: MixedPrecisionOptions?
    /// With `mixed`: allocate from this `hessdist profile` statistics file instead of profiling.
    public var statsPath: String?
    /// With `mixed`: also write the readable report of the profile and the allocation (HTML) here.
    public var htmlReportPath: String?
    public var outputPath: String
    /// Continue from the checkpoint of an interrupted run of the same job (`<out>.partial-ckpt`), if there
    /// is one; refused, naming the field, if it was written by a different job. Every run checkpoints.
    public var resume = false
    public init(modelPath: String, outputPath: String) {
        self.modelPath = modelPath
        self.outputPath = outputPath
    }
}

public struct QuantizeReport: Sendable, Codable {
    public var model: String
    public var output: String
    public var format: String
    public var method: String
    public var calibration: String
    public var calibrationTokens: Int
    public var parameters: Int
    public var fileBytes: Int
    /// File bytes × 8 / parameters: every byte of the output counts.
    public var bitsPerWeight: Double
    public var seconds: Double
    public var modules: [ModuleReport]
    public var types: [TypeChoice]
    /// MPI ranks the job ran on (data parallel over calibration micro-shards).
    public var ranks: Int = 1
    /// Bytes through MPI as rank 0 saw them, per message kind (empty on one rank).
    public var wire: [WireBytes] = []
    /// The mixed-precision allocation, when `--target-bpw` was given.
    public var allocation: AllocationReport?
    /// Blocks taken from the checkpoint of an interrupted run (`--resume`), not solved again.
    public var resumedBlocks: [Int] = []
    /// What happened to an existing checkpoint: resumed from, replaced, or a block that failed to load.
    public var checkpointNote: String?
}

/// One message kind's traffic: decoded payload bytes vs encoded bytes on the wire (headers included).
public struct WireBytes: Sendable, Codable {
    public var kind: String
    public var messages: Int
    public var rawBytes: Int
    public var wireBytes: Int
}

extension WireStats {
    /// Per kind, in `MessageKind` order.
    public var rows: [WireBytes] {
        MessageKind.allCases.compactMap { k in
            byKind[k].map { WireBytes(kind: k.description, messages: $0.messages, rawBytes: $0.rawBytes, wireBytes: $0.wireBytes) }
        }
    }
}

public enum QuantizeStage: Sendable {
    case calibrating(done: Int, of: Int)
    case quantizing(SequentialProgress)
    /// Mixed precision's profiling pass over the unquantized model.
    case profiling(SequentialProgress)
    /// Fisher sequences or Hutchinson probes done (and, for Hutchinson, tensors still open).
    case traces(SensitivityModel, done: Int, open: Int)
    case exporting
}

/// Runs the job on every rank of `comm` (data parallel over calibration; see `SequentialQuantizer`).
/// Only rank 0 writes the output and returns a report; the other ranks return nil.
/// Calibration: see `buildCalibration`. Mixed precision is allocated on rank 0 and its types broadcast.
public func runQuantize(_ job: QuantizeJob, comm: Comm = .single,
                        progress: ((QuantizeStage) -> Void)? = nil) throws -> QuantizeReport? {
    let t0 = Date()
    var wire = WireStats()
    let source = try openModel(path: job.modelPath)
    let tokenizer = try? openTokenizer(for: source, path: job.tokenizerPath)
    var calibration: CalibrationSet? = nil
    var calibrationDescription = "none (RTN)"
    // With --resume, the checkpoint's fingerprint, already checked against the options (rank 0 only).
    let recorded = comm.isRoot ? try job.recordedCheckpoint(source: source) : nil
    let profiles = job.mixed != nil && job.statsPath == nil
    if job.options.method == .gptq || job.options.importanceFit || profiles {
        (calibration, calibrationDescription) = try buildCalibration(
            source: source, tokenizer: tokenizer, text: job.calibrationText, nsamples: job.nsamples, seqlen: job.seqlen,
            seed: job.seed, comm: comm, wire: &wire) { progress?(.calibrating(done: $0, of: job.seqlen)) }
    }
    let c = source.config
    var plan = TypePlan(config: c, tensors: source.tensors, linear: job.ggmlType,
                        embedding: job.embeddingType, output: job.outputType)
    var allocation: AllocationReport? = nil
    var profiled: SensitivityStats? = nil  // rank 0: what the allocation was made from, for the HTML report
    let checkpoint = GPTQCheckpointOptions(bits: job.bits, groupSize: job.groupSize, symmetric: job.symmetric,
                                           descAct: job.options.actOrder, dampPercent: job.options.dampPercent,
                                           maxShardBytes: job.maxShardBytes)
    if job.format == .gptq {
        guard gptqSupportedBits.contains(job.bits) else {
            throw CalibrationError.invalid("--bits \(job.bits): GPTQ checkpoints pack \(gptqSupportedBits) bits")
        }
    }
    // Mixed precision's choice per allocated tensor: a ggml type name (GGUF) or `gptqLabel` (GPTQ).
    var chosen: [String: String]? = nil
    if var mixed = job.mixed {
        if job.format == .gguf {
            // An explicit embedding / output type is a pin: the allocation works around it.
            if let e = job.embeddingType { mixed.pinned[TensorName.tokenEmbedding] = e.description }
            if let o = job.outputType, !c.tiedEmbeddings { mixed.pinned[TensorName.output] = o.description }
        } else {
            // Laid out for the files this job writes (its bits, act-order, damping, shards).
            mixed.checkpoint = checkpoint
        }
        var stats: SensitivityStats? = nil
        if let path = job.statsPath {
            // Every rank reads the file: only rank 0 needs it, but a bad file then fails every rank alike.
            stats = try SensitivityStatsFile.read(path)
            try SensitivityStatsFile.check(stats!, path: path, format: job.format, gptq: job.format == .gptq ? checkpoint : nil)
            try SensitivityStatsFile.check(stats!, path: path, against: source)
        } else {
            guard let cal = calibration else { throw CalibrationError.invalid("--target-bpw needs calibration samples") }
            var profile = mixed.profile
            if let trace = mixed.sensitivity.trace { profile.traces.insert(trace) }
            if mixed.sensitivity == .kl && profile.klSamples == 0 { profile.klSamples = ProfileOptions.defaultKLSamples }
            if job.format == .gptq { profile.gptq = checkpoint }
            stats = try profileSensitivity(source: source, tokenizer: tokenizer, base: plan, calibration: cal,
                                           calibrationDescription: calibrationDescription, options: job.options,
                                           profile: profile, comm: comm, progress: { progress?(.profiling($0)) },
                                           traceProgress: { progress?(.traces($0, done: $1, open: $2)) })
        }
        if comm.isRoot, let stats {
            let (labels, report) = try allocateMixedPrecision(stats: stats, mixed: mixed)
            if job.format == .gguf { plan = plan.applying(labels.mapValues { GGMLType(name: $0)! }, stats: stats) }
            chosen = labels
            allocation = report
            profiled = stats
        }
        // Every rank stores (or solves) by the same choices.
        if comm.size > 1 {
            let bytes = comm.isRoot ? Array(try JSONEncoder().encode(chosen ?? [:])) : []
            let labels = try JSONDecoder().decode([String: String].self, from: Data(try comm.broadcast(bytes: bytes, root: 0)))
            if job.format == .gguf && !comm.isRoot {
                for (name, t) in labels {
                    guard let type = GGMLType(name: t) else {
                        throw ClusterError(rank: comm.rank, operation: "type plan broadcast", message: "\(name): unknown type \(t)")
                    }
                    plan.types[name] = type
                }
            }
            chosen = labels
        }
    }
    let target: (String) -> StorageTarget
    switch job.format {
    case .gguf:
        let types = plan.types
        target = { .ggml(types[$0]!) }
    case .gptq:
        var grids: [String: IntegerGroupGrid] = [:]
        plan.choices = []  // the GGUF type plan does not apply; list the GPTQ fallbacks instead
        let shapes = Dictionary(uniqueKeysWithValues: source.tensors.map { ($0.name, $0.shape) })
        if let chosen {
            // The allocation's grids, by the rule its layout priced; a linear it did not choose for packs at
            // no width and stays dense.
            grids = try gptqGrids(labels: chosen, shapes: shapes, options: checkpoint)
        }
        let wanted = chosen == nil ? "int\(job.bits) g\(job.groupSize)" : "any of \(gptqSupportedBits.map { gptqLabel(bits: $0) })"
        for t in source.tensors where t.shape.count == 2 && t.name.hasPrefix("blk.") {
            let (rows, cols) = (t.shape[0], t.shape[1])
            if chosen == nil {
                // qweight/qzeros pack whole int32 words along both dimensions; groups must tile the row
                // (`gptqGrid` steps the group size down, recorded as a per-module override).
                grids[t.name] = gptqGrid(bits: job.bits, groupSize: job.groupSize, rows: rows, cols: cols, symmetric: job.symmetric)
            }
            if let g = grids[t.name] {
                let asked = job.groupSize == -1 ? cols : job.groupSize
                if g.groupSize != asked {
                    plan.choices.append(TypeChoice(name: t.name, type: "int\(g.bits) g\(g.groupSize)", fallbackFrom: "int\(g.bits) g\(job.groupSize)"))
                }
            } else {
                plan.choices.append(TypeChoice(name: t.name, type: "F16 (dense)", fallbackFrom: wanted))
            }
        }
        target = { grids[$0].map { .integer($0) } ?? .ggml(.f16) }
    }
    let quantizer = SequentialQuantizer(source: source, options: job.options, comm: comm, target: target)
    quantizer.injectsFaults = true
    // GGUF stores the head (the tied embedding) quantized: GPTQ it like the block linears. A GPTQ checkpoint
    // keeps it fp16; RTN jobs quantize it in the export with the imatrix, as llama.cpp does.
    quantizer.quantizesHead = job.format == .gguf && job.options.method == .gptq && calibration != nil
    var setup: CheckpointSetup? = nil
    if comm.isRoot {
        let calibrated = (job.options.method == .gptq || job.options.importanceFit) && calibration != nil
        setup = try job.setUpCheckpoint(source: source, recorded: recorded, calibration: calibration, calibrated: calibrated,
                                        plan: plan, target: target)
        quantizer.checkpoint = setup?.checkpoint
        quantizer.resumed = setup?.resumed ?? []
        if let note = setup?.note { comm.log0(note) }
    }
    let linears = try quantizer.run(calibration: calibration) { progress?(.quantizing($0)) }
    wire += quantizer.wireStats
    guard comm.isRoot else { return nil }
    progress?(.exporting)
    switch job.format {
    case .gguf:
        try exportGGUF(path: job.outputPath, source: source, tokenizer: tokenizer, plan: plan, linears: linears,
                       fileType: TypePlan.fileType(for: allocation == nil ? job.ggmlType
                                                                       : plan.dominantLinearType(source) ?? job.ggmlType))
    case .gptq:
        var modules: [GPTQExportModule] = []
        for q in linears {
            guard case .integer(let grid) = q.target else { continue }
            modules.append(GPTQExportModule(canonicalName: q.name, rows: q.rows, cols: q.cols, grid: grid,
                                            codes: q.codes, parameters: q.parameters, groupIndex: q.groupIndex))
        }
        // Embeddings, norms and the output stay dense (fp16 in the checkpoint), as GPTQ checkpoints keep them.
        let quantized = Set(modules.map(\.canonicalName))
        var dense: [GPTQDenseTensor] = []
        for t in source.tensors where !quantized.contains(t.name) {
            dense.append(GPTQDenseTensor(canonicalName: t.name, shape: t.shape, values: try source.dequantize(t.name)))
        }
        try writeGPTQCheckpoint(directory: job.outputPath, config: c, modules: modules, dense: dense,
                                defaultBits: checkpoint.bits, groupSize: checkpoint.groupSize, symmetric: checkpoint.symmetric,
                                descAct: checkpoint.descAct, maxShardBytes: checkpoint.maxShardBytes,
                                dampPercent: checkpoint.dampPercent, sourceRopeLayout: c.ropeLayout)
    }
    if let path = job.htmlReportPath, let profiled, let allocation {
        try SensitivityReport(stats: profiled, allocation: allocation).write(to: path)
    }
    // The output is in place: the checkpoint has served its purpose.
    try setup?.checkpoint.remove()
    let size = try fileSize(job.outputPath)
    return QuantizeReport(model: job.modelPath, output: job.outputPath, format: job.format.rawValue,
                          method: job.options.method.rawValue, calibration: calibrationDescription,
                          calibrationTokens: calibration?.tokenCount ?? 0, parameters: c.parameterCount,
                          fileBytes: size, bitsPerWeight: Double(size * 8) / Double(c.parameterCount),
                          seconds: Date().timeIntervalSince(t0), modules: linears.map(\.report),
                          types: plan.choices, ranks: comm.size, wire: wire.rows, allocation: allocation,
                          resumedBlocks: Array(0..<quantizer.resumedBlocks), checkpointNote: setup?.note)
}

/// The calibration set every rank uses, and its description for reports. With a text every rank tokenizes
/// it and cuts the same seeded windows; data-free samples are drawn on rank 0 only and broadcast as token
/// ids (one sampling run, and the ranks cannot disagree even if sampling were sensitive to thread counts).
func buildCalibration(source: WeightSource, tokenizer: Tokenizer?, text: String?, nsamples: Int, seqlen: Int, seed: UInt64,
                      comm: Comm, wire: inout WireStats, progress: ((Int) -> Void)?) throws -> (CalibrationSet, String) {
    if let text {
        guard let data = FileManager.default.contents(atPath: text) else {
            throw CalibrationError.invalid("--calib \(text): cannot read the file")
        }
        guard let tok = tokenizer else {
            throw CalibrationError.invalid("--calib needs a tokenizer: the model has none embedded (pass --tokenizer)")
        }
        let ids = tok.encode(String(decoding: data, as: UTF8.self), addBOS: tok.addsBOS)
        return (try CalibrationSet.windows(of: ids, count: nsamples, seqlen: seqlen, seed: seed),
                "\(nsamples) windows of \(seqlen) tokens from \(text), seed \(seed)")
    }
    var samples: [[Int32]] = []
    if comm.isRoot {
        let lm = try LlamaModel(source: source, contextLength: seqlen)
        samples = try sampleSequences(model: lm, count: nsamples, length: seqlen, bos: tokenizer?.bosToken, seed: seed) { progress?($0) }
    }
    if comm.size > 1 { samples = try broadcastTokens(samples, count: nsamples, length: seqlen, comm: comm, stats: &wire) }
    return (CalibrationSet(samples: samples),
            "data-free: \(nsamples) sequences of \(seqlen) tokens sampled from the model (top-k 50, seed \(seed))")
}

/// Rank 0's token ids (count × length) on every rank, as one i32 WireMessage (kind vector, shuffle+zstd).
func broadcastTokens(_ samples: [[Int32]], count: Int, length: Int, comm: Comm, stats: inout WireStats) throws -> [[Int32]] {
    var bytes: [UInt8] = []
    if comm.isRoot {
        var w = ByteWriter(capacity: count * length * 4)
        for s in samples { for t in s { w.write(t) } }
        let m = try WireMessage(kind: .vector, dtype: .i32, shape: [count, length], payload: w.bytes, codec: .shuffleZstd())
        bytes = m.encode()
        for _ in 1..<comm.size { stats.record(m, wireBytes: bytes.count) }
    }
    let m = try WireMessage.decode(try comm.broadcast(bytes: bytes, root: 0))
    guard m.kind == .vector, m.dtype == .i32, m.shape == [count, length] else {
        throw ClusterError(rank: comm.rank, operation: "calibration broadcast",
                           message: "expected i32 [\(count), \(length)], got \(m.kind) \(m.dtype) \(m.shape)")
    }
    return m.payload.withUnsafeBytes { raw in
        (0..<count).map { s in
            (0..<length).map { t in Int32(littleEndian: raw.loadUnaligned(fromByteOffset: (s * length + t) * 4, as: Int32.self)) }
        }
    }
}

/// Bytes of a file, or of every file under a directory.
public func fileSize(_ path: String) throws -> Int {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    guard fm.fileExists(atPath: path, isDirectory: &isDir) else { return 0 }
    if !isDir.boolValue { return (try fm.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }
    var total = 0
    for f in try fm.subpathsOfDirectory(atPath: path) {
        total += (try fm.attributesOfItem(atPath: path + "/" + f)[.size] as? Int) ?? 0
    }
    return total
}
