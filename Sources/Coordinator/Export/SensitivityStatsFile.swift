// The statistics file of `hessdist profile`: a safetensors container whose `__metadata__` holds the
// `SensitivityStats` JSON ("hessdist.stats") and whose tensors are each profiled tensor's imatrix
// (`<name>.imatrix`, F32 [cols]), so any safetensors reader can load the numbers.
import Foundation
import Node

public enum SensitivityStatsFile {
    public static let format = "hessdist-stats"

    /// Writes `stats` to `path` (a temporary file renamed into place).
    public static func write(_ stats: SensitivityStats, to path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let json = String(decoding: try enc.encode(stats), as: UTF8.self)
        let w = try SafetensorsWriter(path: path, metadata: ["format": format, "hessdist.stats": json])
        let pairs = zip(stats.tensors, stats.imatrix).filter { !$0.1.isEmpty }
        for (t, m) in pairs { try w.addTensor(name: t.name + ".imatrix", dtype: .f32, shape: [m.count]) }
        for (t, m) in pairs { try w.writeTensorData(t.name + ".imatrix", floats: m) }
        try w.finish()
    }

    /// Reads and checks a statistics file: the container, the JSON, and every imatrix's shape.
    public static func read(_ path: String) throws -> SensitivityStats {
        let f = try SafetensorsFile(path: path)
        func bad(_ field: String, _ expected: String, _ found: String) -> MixedPrecisionError {
            .stats(file: path, field: field, expected: expected, found: found)
        }
        guard f.metadata["format"] == format else {
            throw bad("__metadata__.format", "\"\(format)\"", f.metadata["format"].map { "\"\($0)\"" } ?? "none")
        }
        guard let json = f.metadata["hessdist.stats"] else { throw bad("__metadata__.hessdist.stats", "the statistics JSON", "none") }
        var stats: SensitivityStats
        do {
            stats = try JSONDecoder().decode(SensitivityStats.self, from: Data(json.utf8))
        } catch {
            throw bad("__metadata__.hessdist.stats", "SensitivityStats JSON", "\(error)")
        }
        guard stats.version == 1 else { throw bad("version", "1", "\(stats.version)") }
        if stats.format == .gptq {
            // The allocation lays the checkpoint out from these; without them its size is unknown.
            guard stats.gptq != nil else { throw bad("gptq", "the checkpoint settings of a gptq profile", "none") }
            guard stats.config != nil else { throw bad("config", "the model config of a gptq profile", "none") }
        }
        stats.imatrix = []
        for t in stats.tensors {
            guard t.shape.count == 2, t.shape.allSatisfy({ $0 > 0 }) else { throw bad("tensors[\(t.name)].shape", "[rows, cols]", "\(t.shape)") }
            guard let m = f.tensor(t.name + ".imatrix") else { stats.imatrix.append([]); continue }
            guard m.dtype == .f32, m.shape == [t.shape[1]] else {
                throw bad("\(t.name).imatrix", "F32 [\(t.shape[1])]", "\(m.dtype.rawValue) \(m.shape)")
            }
            stats.imatrix.append(try f.dequantize(m.name))
        }
        return stats
    }

    /// Checks that `stats` were profiled for `format` (and, for GPTQ, grids of `gptq`'s group size and
    /// symmetry: the candidates were priced on those grids).
    public static func check(_ stats: SensitivityStats, path: String, format: ExportFormat, gptq: GPTQCheckpointOptions? = nil) throws {
        func flags(_ f: ExportFormat) -> String { "\(f.rawValue) (hessdist profile --format \(f.rawValue))" }
        guard stats.format == format else {
            throw MixedPrecisionError.stats(file: path, field: "format", expected: flags(format), found: flags(stats.format))
        }
        if let want = gptq, let got = stats.gptq {
            guard got.groupSize == want.groupSize else {
                throw MixedPrecisionError.stats(file: path, field: "gptq.groupSize", expected: "\(want.groupSize) (--group-size)",
                                                found: "\(got.groupSize) (profile with --group-size \(want.groupSize))")
            }
            guard got.symmetric == want.symmetric else {
                throw MixedPrecisionError.stats(file: path, field: "gptq.symmetric", expected: "\(want.symmetric) (--sym)",
                                                found: "\(got.symmetric) (profile with\(want.symmetric ? "" : "out") --sym)")
            }
        }
    }

    /// Checks that `stats` were measured on a model of `source`'s shapes.
    public static func check(_ stats: SensitivityStats, path: String, against source: WeightSource) throws {
        let shapes = Dictionary(uniqueKeysWithValues: source.tensors.map { ($0.name, $0.shape) })
        guard stats.parameters == source.config.parameterCount else {
            throw MixedPrecisionError.stats(file: path, field: "parameters", expected: "\(source.config.parameterCount) (\(source.path))",
                                            found: "\(stats.parameters) (profiled on \(stats.model))")
        }
        if let c = stats.config, c != source.config {
            throw MixedPrecisionError.stats(file: path, field: "config", expected: "\(source.config) (\(source.path))", found: "\(c)")
        }
        for t in stats.tensors where shapes[t.name] != t.shape {
            throw MixedPrecisionError.stats(file: path, field: "tensors[\(t.name)].shape",
                                            expected: shapes[t.name].map { "\($0) (\(source.path))" } ?? "a tensor of \(source.path)",
                                            found: "\(t.shape)")
        }
    }
}
