// The quantize job's side of checkpoints: its fingerprint (everything that determines the output
// bytes, named as the user would change it) and opening the checkpoint fresh or for `--resume`. Rank
// 0 only: it alone reads and writes files. Not the file format (`QuantizeCheckpoint`).
import Foundation
import HessianDist
import Node
import Wire

/// What `runQuantize` hands the quantizer: where to checkpoint, the blocks already done, and a note on
/// what happened to an existing checkpoint (for the log and the report).
struct CheckpointSetup {
    var checkpoint: QuantizeCheckpoint
    var resumed: [CheckpointBlock]
    var note: String?
}

extension QuantizeJob {
    /// The fields known before calibration: model, tokenizer, every option. Checked first, so a changed
    /// option is refused before data-free sampling or profiling run. The rank count is not one of them:
    /// the bytes are the same for any N, so a job may resume on a different N.
    func earlyFingerprint(source: WeightSource) throws -> [FingerprintField] {
        func file(_ path: String?) throws -> String {
            guard let path else { return "none" }
            let abs = URL(fileURLWithPath: path).standardizedFileURL.path
            return "\(abs) (\(try fileSize(path)) bytes)"
        }
        var table = ByteWriter()
        for t in source.tensors {
            writeString(&table, t.name)
            for d in t.shape { table.write(Int64(d)) }
            table.write(t.type.rawValue)
        }
        let o = options
        var f: [FingerprintField] = [
            .init("model", try file(modelPath)),
            .init("model tensors", "\(source.tensors.count) tensors, table CRC32C " + String(format: "0x%08x", crc32c(table.bytes))),
            .init("model config", "\(source.config)"),
            .init("--tokenizer", try file(tokenizerPath)),
            .init("--calib", calibrationText == nil ? "none (data-free)" : try file(calibrationText)),
            .init("--nsamples", "\(nsamples)"), .init("--seqlen", "\(seqlen)"), .init("--seed", "\(seed)"),
            .init("--micro-batch", "\(o.microBatch)"),
            .init("--method", o.method.rawValue), .init("--damp", "\(o.dampPercent)"), .init("--act-order", "\(o.actOrder)"),
            .init("--importance-fit", "\(o.importanceFit)"), .init("--shrink", "\(o.shrink)"),
            .init("--refit-scales", "\(o.refitScales)"),
            .init("GPTQ block size", "\(o.blockSize)"),
            .init("--format", format.rawValue), .init("--type", ggmlType.description),
            .init("--embedding-type", embeddingType?.description ?? "default"), .init("--output-type", outputType?.description ?? "default"),
            .init("--bits", "\(bits)"), .init("--group-size", "\(groupSize)"), .init("--sym", "\(symmetric)"),
            .init("--max-shard-size", maxShardBytes.map { "\($0) bytes" } ?? "one file"),
        ]
        if let m = mixed {
            let budget: String
            switch m.budget {
            case .bitsPerWeight(let b): budget = "--target-bpw \(b)"
            case .bytes(let n): budget = "--target-size \(n)"
            }
            f.append(.init("--target-bpw/--target-size", budget))
            f.append(.init("--sensitivity", "\(m.sensitivity)"))
            // Sorted: dictionary and set order differs between processes.
            f.append(.init("--pin", m.pinned.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ",")))
            let p = m.profile
            f.append(.init("profile", "candidates \(p.candidates.map(\.description).joined(separator: ",")); traces "
                           + p.traces.map { "\($0)" }.sorted().joined(separator: ",")
                           + "; fisher \(p.fisherSamples), hutchinson \(p.hutchinsonSamples), probes \(p.maxProbes)"))
            f.append(.init("--stats", try file(statsPath)))
        } else {
            f.append(.init("--target-bpw/--target-size", "none"))
        }
        // OpenBLAS sums in an order that depends on its thread count: another count gives other bits.
        f.append(.init("OPENBLAS_NUM_THREADS", ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] ?? "unset"))
        return f
    }

    /// The fields known once calibration and the type plan are: the calibration tokens themselves (a
    /// data-free set is sampled again on resume; this proves it came out the same), every tensor's
    /// planned type and every block linear's storage (for mixed precision, the allocation's result).
    func lateFingerprint(source: WeightSource, calibration: CalibrationSet?, plan: TypePlan,
                         target: (String) -> StorageTarget) -> [FingerprintField] {
        var tokens = ByteWriter()
        for s in calibration?.samples ?? [] { for t in s { tokens.write(t) } }
        var types = ByteWriter()
        for (name, t) in plan.types.sorted(by: { $0.key < $1.key }) {
            writeString(&types, name)
            types.write(t.rawValue)
        }
        var storage = ByteWriter()
        for l in 0..<source.config.nLayers {
            for name in sequentialGroups(l).flatMap({ $0 }) {
                writeString(&storage, name)
                writeTarget(&storage, target(name))
            }
        }
        func crc(_ w: ByteWriter) -> String { String(format: "CRC32C 0x%08x", crc32c(w.bytes)) }
        return [
            .init("calibration tokens", "\(calibration?.tokenCount ?? 0) tokens, " + crc(tokens)),
            .init("type plan", "\(plan.types.count) tensors, " + crc(types)),
            .init("block storage", crc(storage)),
        ]
    }

    /// Rank 0, before calibration: with `--resume`, the checkpoint's fingerprint (nil: none there) after
    /// checking the early fields against it.
    func recordedCheckpoint(source: WeightSource) throws -> [FingerprintField]? {
        guard resume else { return nil }
        let dir = QuantizeCheckpoint.directory(forOutput: outputPath)
        guard let (recorded, blocks) = try QuantizeCheckpoint.recordedFingerprint(directory: dir).map({ ($0.fields, $0.blocks) }) else { return nil }
        guard blocks == source.config.nLayers else {
            throw CheckpointError.mismatch(directory: dir, field: "model blocks", checkpoint: "\(blocks)", job: "\(source.config.nLayers)")
        }
        try QuantizeCheckpoint.check(try earlyFingerprint(source: source), against: recorded, directory: dir, complete: false)
        return recorded
    }

    /// Rank 0, once the targets are known: the checkpoint this run writes, with the blocks a `--resume`
    /// continues from. With a recorded fingerprint (it passed the early check) every field must match;
    /// then the valid leading block files are loaded. Otherwise a fresh checkpoint replaces any old one.
    func setUpCheckpoint(source: WeightSource, recorded: [FingerprintField]?, calibration: CalibrationSet?, calibrated: Bool,
                         plan: TypePlan, target: @escaping (String) -> StorageTarget) throws -> CheckpointSetup {
        let dir = QuantizeCheckpoint.directory(forOutput: outputPath)
        let fingerprint = try earlyFingerprint(source: source)
            + lateFingerprint(source: source, calibration: calibration, plan: plan, target: target)
        let nLayers = source.config.nLayers
        guard let recorded else {
            let hadOne = FileManager.default.fileExists(atPath: dir)
            let ckpt = try QuantizeCheckpoint.start(directory: dir, fingerprint: fingerprint, blocks: nLayers)
            let note = resume ? "no checkpoint at \(dir): starting fresh"
                : hadOne ? "replaced the checkpoint at \(dir) (pass --resume to continue one)" : nil
            return CheckpointSetup(checkpoint: ckpt, resumed: [], note: note)
        }
        try QuantizeCheckpoint.check(fingerprint, against: recorded, directory: dir, complete: true)
        let ckpt = QuantizeCheckpoint.reopen(directory: dir, fingerprint: fingerprint)
        let (blocks, problem) = try ckpt.loadBlocks(count: nLayers, withWeights: calibrated) { l in
            try sequentialGroups(l).flatMap { $0 }.map { name in
                let s = try source.info(name).shape
                return (name, s[0], s[1], target(name))
            }
        }
        var note = blocks.isEmpty ? "resuming from \(dir): no completed block" : "resuming from \(dir): blocks 0...\(blocks.count - 1) done"
        if let problem { note += "; " + problem }
        return CheckpointSetup(checkpoint: ckpt, resumed: blocks, note: note)
    }
}
