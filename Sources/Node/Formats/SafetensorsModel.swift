// A Hugging Face llama-family checkpoint: config.json + one safetensors file or shards listed by
// model.safetensors.index.json, with HF tensor names mapped to canonical GGUF names. q/k rows stay in
// HF's half-split RoPE order (`config.ropeLayout == .halfSplit`); `permuteRopeRows` converts them.
// Not a writer; no biases (qwen2 with q/k/v biases is refused).
import Foundation
import HessianDist

/// The HF <-> canonical (GGUF) tensor name mapping for llama-family checkpoints.
public enum HFTensorName {
    static let perLayer: [(hf: String, canonical: String)] = [
        ("input_layernorm.weight", "attn_norm.weight"),
        ("self_attn.q_proj.weight", "attn_q.weight"),
        ("self_attn.k_proj.weight", "attn_k.weight"),
        ("self_attn.v_proj.weight", "attn_v.weight"),
        ("self_attn.o_proj.weight", "attn_output.weight"),
        ("post_attention_layernorm.weight", "ffn_norm.weight"),
        ("mlp.gate_proj.weight", "ffn_gate.weight"),
        ("mlp.up_proj.weight", "ffn_up.weight"),
        ("mlp.down_proj.weight", "ffn_down.weight"),
    ]
    static let global: [(hf: String, canonical: String)] = [
        ("model.embed_tokens.weight", TensorName.tokenEmbedding),
        ("model.norm.weight", TensorName.outputNorm),
        ("lm_head.weight", TensorName.output),
    ]

    /// `model.layers.3.mlp.up_proj.weight` -> `blk.3.ffn_up.weight`; nil for names we do not use.
    public static func canonical(_ hf: String) -> String? {
        if let g = global.first(where: { $0.hf == hf }) { return g.canonical }
        guard let (layer, rest) = split(hf, prefix: "model.layers."),
              let m = perLayer.first(where: { $0.hf == rest }) else { return nil }
        return "blk.\(layer).\(m.canonical)"
    }

    /// `blk.3.ffn_up.weight` -> `model.layers.3.mlp.up_proj.weight`; nil for names outside `TensorName`.
    public static func hf(_ canonical: String) -> String? {
        if let g = global.first(where: { $0.canonical == canonical }) { return g.hf }
        guard let (layer, rest) = split(canonical, prefix: "blk."),
              let m = perLayer.first(where: { $0.canonical == rest }) else { return nil }
        return "model.layers.\(layer).\(m.hf)"
    }

    /// `prefix` + decimal layer + "." + rest.
    static func split(_ s: String, prefix: String) -> (Int, String)? {
        guard s.hasPrefix(prefix) else { return nil }
        let tail = s.dropFirst(prefix.count)
        guard let dot = tail.firstIndex(of: "."), let layer = Int(tail[..<dot]), layer >= 0,
              String(layer) == tail[..<dot] else { return nil }
        return (layer, String(tail[tail.index(after: dot)...]))
    }

    /// Linear-layer biases, which llama-family graphs do not have (qwen2 has q/k/v ones).
    static func isLinearBias(_ hf: String) -> Bool {
        guard let (_, rest) = split(hf, prefix: "model.layers."), rest.hasSuffix(".bias") else { return false }
        return rest.hasPrefix("self_attn.") || rest.hasPrefix("mlp.")
    }
}

public final class SafetensorsModel: WeightSource {
    /// Where a canonical tensor lives.
    struct Location: Sendable {
        var file: Int
        var hfName: String
    }

    public let path: String
    public var format: String { files.count > 1 ? "safetensors (\(files.count) shards)" : "safetensors" }
    public let config: ModelConfig
    public let tensors: [TensorInfo]
    /// The opened files (one, or the shards in index order).
    public let files: [SafetensorsFile]
    private let locations: [String: Location]

    /// Maps the tensors of `files` to canonical names. `weightMap` (HF name -> index into `files`), when given,
    /// says which file holds each tensor (sharded checkpoints); otherwise every tensor of every file is used.
    /// Unknown tensors are ignored; a missing or misshapen required tensor throws (`validateShapes`).
    public init(path: String, config: ModelConfig, files: [SafetensorsFile], weightMap: [String: Int]? = nil) throws {
        self.path = path
        self.config = config
        self.files = files
        var locations: [String: Location] = [:]
        var infos: [TensorInfo] = []
        var entries: [(name: String, file: Int)] = []
        if let weightMap {
            entries = weightMap.map { ($0.key, $0.value) }.sorted { $0.name < $1.name }
        } else {
            for (i, f) in files.enumerated() { entries += f.tensors.map { ($0.name, i) } }
        }
        for (hf, fi) in entries {
            let file = files[fi]
            if HFTensorName.isLinearBias(hf) {
                throw ModelFormatError(file: file.path, field: "tensor \(hf)",
                                       expected: "no linear-layer biases (llama-family)", found: "a bias",
                                       hint: "checkpoints with q/k/v biases (e.g. qwen2) are not supported")
            }
            guard let canonical = HFTensorName.canonical(hf) else { continue }
            // A tied checkpoint may still carry lm_head; the config says the embedding is reused.
            if canonical == TensorName.output && config.tiedEmbeddings { continue }
            guard let t = file.tensor(hf) else {
                throw ModelFormatError(file: file.path, field: "tensor \(hf)", expected: "present", found: "missing")
            }
            guard let type = t.dtype.ggmlType else {
                throw ModelFormatError(file: file.path, field: "tensor \(hf) dtype", expected: "F32, F16 or BF16",
                                       found: t.dtype.rawValue, hint: "weights must be float tensors")
            }
            if let other = locations[canonical] {
                throw ModelFormatError(file: file.path, field: "tensor \(hf)", expected: "one tensor per name",
                                       found: "a second copy (also in \(files[other.file].path))")
            }
            locations[canonical] = Location(file: fi, hfName: hf)
            infos.append(TensorInfo(name: canonical, shape: t.shape, type: type))
        }
        // Canonical order: layer by layer, as GGUF lists them.
        let order = Dictionary(uniqueKeysWithValues: config.expectedShapes().enumerated().map { ($1.name, $0) })
        self.tensors = infos.sorted { order[$0.name, default: .max] < order[$1.name, default: .max] }
        self.locations = locations
        try validateShapes()
    }

    /// The HF name of a canonical tensor: the name in the file when present, else the standard mapping;
    /// names outside the mapping come back unchanged. The exporter uses this to write HF checkpoints.
    public func hfName(for canonical: String) -> String {
        locations[canonical]?.hfName ?? HFTensorName.hf(canonical) ?? canonical
    }

    public func dequantize(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws {
        guard let loc = locations[name] else {
            throw ModelFormatError(file: path, field: "tensor \(name)", expected: "present", found: "missing",
                                   hint: "the checkpoint has no tensor mapping to this canonical name")
        }
        try files[loc.file].dequantize(loc.hfName, into: out)
    }
}

/// Opens a Hugging Face checkpoint: a directory (config.json + model.safetensors or
/// model.safetensors.index.json), a `.safetensors` file, or an index json (config.json beside either).
public func openSafetensorsModel(path: String) throws -> WeightSource {
    let fm = FileManager.default
    var isDir: ObjCBool = false
    guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
        throw ModelFormatError(file: path, field: "path", expected: "an existing checkpoint", found: "nothing there")
    }
    let dir: String
    var weights: String
    if isDir.boolValue {
        dir = path
        let index = (dir as NSString).appendingPathComponent("model.safetensors.index.json")
        let single = (dir as NSString).appendingPathComponent("model.safetensors")
        if fm.fileExists(atPath: index) {
            weights = index
        } else if fm.fileExists(atPath: single) {
            weights = single
        } else {
            throw ModelFormatError(file: path, field: "directory",
                                   expected: "model.safetensors or model.safetensors.index.json", found: "neither",
                                   hint: "point at a Hugging Face checkpoint directory")
        }
    } else {
        dir = (path as NSString).deletingLastPathComponent
        weights = path
    }
    let config = try ModelConfig(hfConfigAt: ((dir.isEmpty ? "." : dir) as NSString).appendingPathComponent("config.json"))

    guard weights.hasSuffix(".json") else {
        return try SafetensorsModel(path: path, config: config, files: [SafetensorsFile(path: weights)])
    }
    // Sharded: the index's weight_map names the shard of every tensor.
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: weights)) } catch {
        throw ModelFormatError(file: weights, field: "file", expected: "a readable index", found: error.localizedDescription)
    }
    let index = try JSONFields(try JSONValue.parse(data, file: weights, field: "index JSON"), file: weights)
    let map = try index.object("weight_map")
    var shardNames: [String] = []
    var shardOf: [String: Int] = [:]
    var tensorShard: [String: Int] = [:]
    for name in map.fields.keys.sorted() {
        let shard = try map.string(name)
        guard !shard.isEmpty, !shard.hasPrefix("/"), !shard.split(separator: "/").contains("..") else {
            throw map.fail(name, "a shard file name inside the checkpoint directory", "\"\(shard)\"")
        }
        if shardOf[shard] == nil {
            shardOf[shard] = shardNames.count
            shardNames.append(shard)
        }
        tensorShard[name] = shardOf[shard]
    }
    let baseDir = (weights as NSString).deletingLastPathComponent
    let files = try shardNames.map {
        try SafetensorsFile(path: ((baseDir.isEmpty ? "." : baseDir) as NSString).appendingPathComponent($0))
    }
    for (name, fi) in tensorShard where files[fi].tensor(name) == nil {
        throw map.fail(name, "a tensor present in shard \(shardNames[fi])", "no such tensor in that shard",
                       hint: "the index and the shards disagree")
    }
    return try SafetensorsModel(path: path, config: config, files: files, weightMap: tensorShard)
}
