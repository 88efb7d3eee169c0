// Exporting GPTQ-quantized llama-family weights as a Hugging Face checkpoint directory in the GPTQ v1
// ("gptq") layout that transformers, vLLM and GPTQModel load: config.json with `quantization_config`,
// quantize_config.json, model.safetensors (or shards + model.safetensors.index.json). The directory appears
// only when everything is written. Not the solver (`GPTQ`) and not a reader: nothing here dequantizes.
//
// Per quantized Linear (out_features R = rows, in_features C = cols, b bits, G groups):
//   qweight int32 [C·b/32, R]  codes of Wᵀ, packed along the input dimension as a little-endian bit stream
//                              (code c of output r at bit c·b of column r; 3-bit codes straddle int32 words)
//   qzeros  int32 [G, R·b/32]  (zero − 1) mod 2^b, packed the same way along the output dimension (v1)
//   scales  fp16  [G, R]
//   g_idx   int32 [C]          group of each input column
// and the loaders compute W[r, c] = scales[g_idx[c], r] · (q[c, r] − (zeros[g_idx[c], r] + 1)).
import Foundation
import HessianDist
import Node

/// One quantized Linear as the solver produced it.
public struct GPTQExportModule: Sendable {
    /// Canonical (GGUF) name of the weight, e.g. `blk.3.ffn_down.weight`.
    public var canonicalName: String
    /// Output features.
    public var rows: Int
    /// Input features.
    public var cols: Int
    /// The grid the codes live on; its scale format must be `.f16` (what the checkpoint stores).
    public var grid: IntegerGroupGrid
    /// (rows, cols) row-major, natural column order, each in `0...grid.maxCode`.
    public var codes: [UInt8]
    /// (rows, groups, grid.parameterBytes): fp16 scale little-endian, then the zero point byte.
    public var parameters: [UInt8]
    /// Act-order `g_idx` per natural column; nil means `c / groupSize`.
    public var groupIndex: [Int]?

    public init(canonicalName: String, rows: Int, cols: Int, grid: IntegerGroupGrid, codes: [UInt8],
                parameters: [UInt8], groupIndex: [Int]? = nil) {
        self.canonicalName = canonicalName
        self.rows = rows
        self.cols = cols
        self.grid = grid
        self.codes = codes
        self.parameters = parameters
        self.groupIndex = groupIndex
    }

    /// From a `GPTQ.solve` result (its `groupIndex` is kept as g_idx).
    public init(canonicalName: String, rows: Int, cols: Int, grid: IntegerGroupGrid, result: GPTQResult) {
        self.init(canonicalName: canonicalName, rows: rows, cols: cols, grid: grid, codes: result.codes,
                  parameters: result.parameters, groupIndex: result.groupIndex)
    }

    public var groups: Int { cols / grid.groupSize }
}

/// A tensor stored unquantized in fp16: embeddings, norms, lm_head, or a Linear left out of quantization
/// (it is excluded in `dynamic` with a `-:` rule).
public struct GPTQDenseTensor: Sendable {
    public var canonicalName: String
    public var shape: [Int]
    public var values: [Float]
    public init(canonicalName: String, shape: [Int], values: [Float]) {
        self.canonicalName = canonicalName
        self.shape = shape
        self.values = values
    }
}

/// Inputs that cannot form a GPTQ checkpoint: the module or field, what was expected, and what to do.
public struct GPTQExportError: Error, CustomStringConvertible, Sendable {
    public let field: String
    public let expected: String
    public let found: String
    public let hint: String?

    public init(field: String, expected: String, found: String, hint: String? = nil) {
        self.field = field
        self.expected = expected
        self.found = found
        self.hint = hint
    }

    public var description: String {
        var s = "GPTQ export: \(field): expected \(expected), found \(found)"
        if let hint { s += " (hint: \(hint))" }
        return s
    }
}

/// Bit widths the GPTQ kernels (torch, exllama, triton, marlin) unpack.
public let gptqSupportedBits = [2, 3, 4, 8]

/// Writes a GPTQ v1 checkpoint directory at `directory` (which must not exist yet).
///
/// - `modules`: quantized Linears; `dense`: everything else the config implies (embeddings, norms, an untied
///   lm_head, unquantized Linears), stored fp16. Together they must cover `config.expectedShapes()` exactly.
/// - `defaultBits`, `groupSize` (−1 = whole row), `symmetric`, `descAct`: the top-level
///   `quantization_config`; modules whose grid differs get a GPTQModel `dynamic` override
///   (`"+:^model\\.layers\\.3\\.mlp\\.down_proj$": {"bits": 8}`); dense Linears get a `-:` exclusion.
/// - `maxShardBytes`: split the tensors into `model-0000i-of-0000n.safetensors` files of at most this
///   many data bytes (a tensor larger than it gets a shard of its own); nil writes one `model.safetensors`.
/// - `sourceRopeLayout`: the layout of q/k rows in `modules`/`dense`; `.interleaved` (GGUF, llama2.c) rows
///   are permuted to HF's half-split order, codes and parameters moving with their rows.
///
/// Everything is written into `<directory>.partial-<pid>`, renamed into place at the end; on any error
/// that directory is removed and nothing remains.
public func writeGPTQCheckpoint(directory: String, config: ModelConfig, modules: [GPTQExportModule],
                                dense: [GPTQDenseTensor], defaultBits: Int, groupSize: Int, symmetric: Bool,
                                descAct: Bool, maxShardBytes: Int? = nil, dampPercent: Double = 0.01,
                                sourceRopeLayout: RopeLayout) throws {
    let plan = try GPTQCheckpointPlan(config: config, modules: modules, dense: dense, defaultBits: defaultBits,
                                      groupSize: groupSize, symmetric: symmetric, descAct: descAct,
                                      maxShardBytes: maxShardBytes, dampPercent: dampPercent,
                                      sourceRopeLayout: sourceRopeLayout)
    let fm = FileManager.default
    let dir = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
    guard !fm.fileExists(atPath: dir) else {
        throw GPTQExportError(field: "directory \(dir)", expected: "a path that does not exist yet", found: "an existing entry",
                              hint: "remove it or choose another output directory; an export never overwrites")
    }
    let partial = "\(dir).partial-\(getpid())"
    do {
        try fm.createDirectory(atPath: partial, withIntermediateDirectories: false)
    } catch {
        throw GPTQExportError(field: "directory \(partial)", expected: "a new directory", found: "\(error.localizedDescription)",
                              hint: "check that the parent exists and is writable, and no other export of this process is running")
    }
    do {
        try plan.write(into: partial)
        guard rename(partial, dir) == 0 else {
            throw GPTQExportError(field: "directory \(dir)", expected: "a rename from \(partial)",
                                  found: String(cString: strerror(errno)), hint: "another process may have created \(dir) meanwhile")
        }
    } catch {
        try? fm.removeItem(atPath: partial)
        throw error
    }
}

// MARK: - Layout

/// The checkpoint-wide settings the files record (top-level `quantization_config` and sharding).
public struct GPTQCheckpointOptions: Sendable, Codable, Equatable {
    /// The top-level `bits`; modules on other widths get a `dynamic` override.
    public var bits: Int
    /// The top-level `group_size` (−1: whole row); modules whose grid steps down get an override.
    public var groupSize: Int
    public var symmetric: Bool
    public var descAct: Bool = false
    public var dampPercent: Double = 0.01
    /// Shard the tensors into files of at most this many data bytes (nil: one `model.safetensors`).
    public var maxShardBytes: Int? = nil

    public init(bits: Int, groupSize: Int, symmetric: Bool, descAct: Bool = false, dampPercent: Double = 0.01,
                maxShardBytes: Int? = nil) {
        self.bits = bits
        self.groupSize = groupSize
        self.symmetric = symmetric
        self.descAct = descAct
        self.dampPercent = dampPercent
        self.maxShardBytes = maxShardBytes
    }
}

/// The grid a `bits`-wide checkpoint module of shape (rows, cols) is stored on, or nil if it cannot be:
/// qweight / qzeros pack whole int32 words along both dimensions, and groups must tile the row, so a group
/// size that does not divide it steps down (128 → 64 → 32; the checkpoint records it as a per-module
/// override). The one rule `quantize --format gptq` and its mixed-precision profile share.
public func gptqGrid(bits: Int, groupSize: Int, rows: Int, cols: Int, symmetric: Bool) -> IntegerGroupGrid? {
    guard gptqSupportedBits.contains(bits), (cols * bits) % 32 == 0, (rows * bits) % 32 == 0 else { return nil }
    var g = groupSize
    while g > 32 && cols % g != 0 { g /= 2 }
    guard g == -1 || (g > 0 && cols % g == 0) else { return nil }
    return try? IntegerGroupGrid(bits: bits, groupSize: g, columns: cols, symmetric: symmetric)
}

/// Data bytes one quantized module adds to the checkpoint: qweight, qzeros, scales (fp16) and g_idx, as
/// `GPTQCheckpointLayout` declares them.
public func gptqModuleDataBytes(rows: Int, cols: Int, grid: IntegerGroupGrid) -> Int {
    let b = grid.bits, g = cols / grid.groupSize
    return (cols * b / 32) * rows * 4 + g * (rows * b / 32) * 4 + g * rows * 2 + cols * 4
}

/// Every file of a GPTQ checkpoint without the data: the tensors each file declares, the config texts,
/// and so the exact bytes of the directory, for given per-module grids. The writer lays its files out with
/// this very type, so `totalBytes` is what `writeGPTQCheckpoint` writes for the same grids and options;
/// mixed precision plans a budget with it.
public struct GPTQCheckpointLayout: Sendable {
    public let config: ModelConfig
    public let options: GPTQCheckpointOptions
    /// The `quantization_config` (with its `dynamic` overrides).
    let quantizationConfig: JSONValue
    /// Per tensor of the config (config order): its canonical name and the safetensors tensors it becomes.
    let tensors: [(canonical: String, specs: [SafetensorsTensorSpec])]

    /// `grids`: canonical names of the quantized decoder Linears and their grids; every other tensor of
    /// the config is stored fp16 (a Linear among them gets a `-:` exclusion).
    public init(config: ModelConfig, grids: [String: IntegerGroupGrid], options: GPTQCheckpointOptions) throws {
        func fail(_ field: String, _ expected: String, _ found: Any, hint: String? = nil) -> GPTQExportError {
            GPTQExportError(field: field, expected: expected, found: "\(found)", hint: hint)
        }
        try Self.checkOptions(config: config, options: options)
        let expected = config.expectedShapes()
        let known = Set(expected.map(\.name))
        if let unknown = grids.keys.sorted().first(where: { !known.contains($0) }) {
            throw fail("module \(unknown)", "one of the config's tensors", "an unknown name")
        }
        var dynamic: [String: JSONValue] = [:]
        var tensors: [(String, [SafetensorsTensorSpec])] = []
        for t in expected {
            let name = t.name
            guard let hf = HFTensorName.hf(name) else { throw fail("tensor \(name)", "a known tensor name", name) }
            guard let grid = grids[name] else {
                if hf.hasSuffix("_proj.weight") {
                    // A Linear left in fp16: the loaders must not build a QuantLinear for it.
                    dynamic["-:" + Self.moduleRegex(String(hf.dropLast(".weight".count)))] = .object([:])
                }
                tensors.append((name, [SafetensorsTensorSpec(name: hf, dtype: .f16, shape: t.shape)]))
                continue
            }
            guard hf.hasSuffix("_proj.weight"), t.shape.count == 2 else {
                throw fail("module \(name)", "a decoder Linear (attn_q/k/v/output, ffn_gate/up/down)", "another tensor",
                           hint: "store embeddings, norms and lm_head in `dense`")
            }
            let r = t.shape[0], c = t.shape[1], b = grid.bits
            try Self.checkGrid(grid, name: name, rows: r, cols: c)
            let prefix = String(hf.dropLast(".weight".count))
            // Per-module overrides of the top-level config, GPTQModel `dynamic` style.
            var override: [String: JSONValue] = [:]
            if b != options.bits { override["bits"] = .int(b) }
            let defaultGroup = options.groupSize == -1 ? c : options.groupSize
            if grid.groupSize != defaultGroup { override["group_size"] = .int(grid.groupSize == c ? -1 : grid.groupSize) }
            if grid.symmetric != options.symmetric { override["sym"] = .bool(grid.symmetric) }
            if !override.isEmpty { dynamic["+:" + Self.moduleRegex(prefix)] = .object(override) }
            let g = c / grid.groupSize
            tensors.append((name, [
                SafetensorsTensorSpec(name: prefix + ".g_idx", dtype: .i32, shape: [c]),
                SafetensorsTensorSpec(name: prefix + ".qweight", dtype: .i32, shape: [c * b / 32, r]),
                SafetensorsTensorSpec(name: prefix + ".qzeros", dtype: .i32, shape: [g, r * b / 32]),
                SafetensorsTensorSpec(name: prefix + ".scales", dtype: .f16, shape: [g, r]),
            ]))
        }
        var q: [String: JSONValue] = [
            "quant_method": .string("gptq"), "bits": .int(options.bits), "group_size": .int(options.groupSize),
            "desc_act": .bool(options.descAct), "sym": .bool(options.symmetric), "true_sequential": .bool(true),
            "damp_percent": .double(options.dampPercent), "checkpoint_format": .string("gptq"), "lm_head": .bool(false),
            "static_groups": .bool(false),
        ]
        if !dynamic.isEmpty { q["dynamic"] = .object(dynamic) }
        self.config = config
        self.options = options
        self.quantizationConfig = .object(q)
        self.tensors = tensors
    }

    static func checkOptions(config: ModelConfig, options o: GPTQCheckpointOptions) throws {
        func fail(_ field: String, _ expected: String, _ found: Any, hint: String? = nil) -> GPTQExportError {
            GPTQExportError(field: field, expected: expected, found: "\(found)", hint: hint)
        }
        guard config.architecture == "llama" else {
            throw fail("config.architecture", "llama (LlamaForCausalLM)", config.architecture)
        }
        try config.validate(file: "export config")
        guard gptqSupportedBits.contains(o.bits) else {
            throw fail("defaultBits", "one of \(gptqSupportedBits)", o.bits, hint: "GPTQ kernels unpack 2, 3, 4 or 8 bits")
        }
        guard o.groupSize == -1 || o.groupSize > 0 else {
            throw fail("groupSize", "-1 (whole row) or a positive group size", o.groupSize)
        }
        if let m = o.maxShardBytes, m <= 0 { throw fail("maxShardBytes", "a positive byte count or nil", m) }
        guard o.dampPercent.isFinite, o.dampPercent >= 0 else { throw fail("dampPercent", "a finite value >= 0", o.dampPercent) }
    }

    /// What a grid must satisfy to be packed for a (rows, cols) module.
    static func checkGrid(_ grid: IntegerGroupGrid, name: String, rows: Int, cols: Int) throws {
        func fail(_ field: String, _ expected: String, _ found: Any, hint: String? = nil) -> GPTQExportError {
            GPTQExportError(field: "module \(name) \(field)", expected: expected, found: "\(found)", hint: hint)
        }
        let b = grid.bits
        guard gptqSupportedBits.contains(b) else {
            throw fail("bits", "one of \(gptqSupportedBits)", b, hint: "GPTQ kernels unpack 2, 3, 4 or 8 bits; requantize this layer")
        }
        guard grid.scaleFormat == .f16 else {
            throw fail("grid scale format", ".f16 (the checkpoint stores fp16 scales)", ".f32",
                       hint: "quantize with IntegerGroupGrid(scaleFormat: .f16) so the solver sees the stored scales")
        }
        let gs = grid.groupSize
        guard gs > 0, cols % gs == 0 else {
            throw fail("group size", "a divisor of \(cols) input columns", gs, hint: "use -1 or a divisor such as 32, 64, 128")
        }
        guard (cols * b) % 32 == 0, (rows * b) % 32 == 0 else {
            throw fail("shape", "in and out features whose \(b)-bit codes fill whole int32 words (multiples of \(32 / gcd(32, b)))",
                       "[\(rows), \(cols)]", hint: "use 8 bits for this layer, or keep it dense")
        }
    }

    /// Every safetensors tensor in canonical (layer-by-layer) order.
    var specs: [SafetensorsTensorSpec] { tensors.flatMap(\.specs) }

    /// Shards of indices into `specs`, each within `maxShardBytes` unless a tensor alone exceeds it.
    func shards() -> [[Int]] {
        let specs = self.specs
        guard let limit = options.maxShardBytes else { return [Array(specs.indices)] }
        var out: [[Int]] = [[]]
        var size = 0
        for (i, t) in specs.enumerated() {
            if !out[out.count - 1].isEmpty, size + t.byteCount > limit {
                out.append([])
                size = 0
            }
            out[out.count - 1].append(i)
            size += t.byteCount
        }
        return out
    }

    /// The safetensors file names, one per shard.
    func shardFileNames(_ count: Int) -> [String] {
        count == 1 && options.maxShardBytes == nil ? ["model.safetensors"]
            : (1...count).map { String(format: "model-%05d-of-%05d.safetensors", $0, count) }
    }

    /// Each shard's tensors in the order the file declares them (safetensors' reference order).
    func shardSpecs() -> [(file: String, specs: [SafetensorsTensorSpec])] {
        let all = specs, shards = self.shards()
        return zip(shardFileNames(shards.count), shards).map { ($0, SafetensorsWriter.referenceOrder($1.map { all[$0] })) }
    }

    /// model.safetensors.index.json when sharded, with the weight map `shardSpecs` gives.
    func indexText() -> String? {
        guard options.maxShardBytes != nil else { return nil }
        var weightMap: [String: JSONValue] = [:]
        for (file, specs) in shardSpecs() { for s in specs { weightMap[s.name] = .string(file) } }
        let total = specs.reduce(0) { $0 + $1.byteCount }
        let idx: JSONValue = .object(["metadata": .object(["total_size": .int(total)]), "weight_map": .object(weightMap)])
        return idx.text() + "\n"
    }

    /// The safetensors `__metadata__` of every shard (transformers checks for "pt").
    static let safetensorsMetadata = ["format": "pt"]

    /// Every file of the directory and its exact size in bytes.
    public func files() -> [(name: String, bytes: Int)] {
        var out: [(String, Int)] = shardSpecs().map { file, specs in
            (file, 8 + SafetensorsWriter.headerBytes(metadata: Self.safetensorsMetadata, tensors: specs).count
                + specs.reduce(0) { $0 + $1.byteCount })
        }
        if let idx = indexText() { out.append(("model.safetensors.index.json", idx.utf8.count)) }
        out.append(("config.json", configText().utf8.count))
        out.append(("quantize_config.json", quantizeConfigText().utf8.count))
        return out
    }

    /// Bytes of every file of the directory.
    public var totalBytes: Int { files().reduce(0) { $0 + $1.bytes } }

    func configText() -> String { hfConfig().text() + "\n" }
    func quantizeConfigText() -> String { quantizationConfig.text() + "\n" }

    /// config.json of a LlamaForCausalLM with fp16 weights and the quantization config.
    func hfConfig() -> JSONValue {
        let c = config
        // Floats through their shortest decimal text, so 1e-5 is written as 1e-05, not 9.99999974737875e-06.
        func decimal(_ f: Float) -> JSONValue { .double(Double("\(f)") ?? Double(f)) }
        return .object([
            "architectures": .array([.string("LlamaForCausalLM")]), "model_type": .string("llama"),
            "hidden_act": .string("silu"), "hidden_size": .int(c.dim), "intermediate_size": .int(c.hiddenDim),
            "num_hidden_layers": .int(c.nLayers), "num_attention_heads": .int(c.nHeads),
            "num_key_value_heads": .int(c.nKVHeads), "head_dim": .int(c.headDim), "vocab_size": .int(c.vocabSize),
            "max_position_embeddings": .int(c.contextLength), "rms_norm_eps": decimal(c.normEps),
            "rope_theta": decimal(c.ropeTheta), "rope_scaling": .null, "tie_word_embeddings": .bool(c.tiedEmbeddings),
            "attention_bias": .bool(false), "mlp_bias": .bool(false), "torch_dtype": .string("float16"),
            "use_cache": .bool(true), "quantization_config": quantizationConfig,
        ])
    }

    /// `^model\.layers\.3\.mlp\.down_proj$`: the module path with dots escaped, anchored.
    static func moduleRegex(_ module: String) -> String {
        "^" + module.replacingOccurrences(of: ".", with: "\\.") + "$"
    }
}

// MARK: - Plan

/// Everything validated and named before a byte is written: the layout plus each tensor's data.
struct GPTQCheckpointPlan {
    let layout: GPTQCheckpointLayout
    /// Each safetensors tensor's little-endian bytes, by its HF name.
    let data: [String: () throws -> [UInt8]]

    init(config: ModelConfig, modules: [GPTQExportModule], dense: [GPTQDenseTensor], defaultBits: Int,
         groupSize: Int, symmetric: Bool, descAct: Bool, maxShardBytes: Int?, dampPercent: Double,
         sourceRopeLayout: RopeLayout) throws {
        func fail(_ field: String, _ expected: String, _ found: Any, hint: String? = nil) -> GPTQExportError {
            GPTQExportError(field: field, expected: expected, found: "\(found)", hint: hint)
        }
        let options = GPTQCheckpointOptions(bits: defaultBits, groupSize: groupSize, symmetric: symmetric, descAct: descAct,
                                            dampPercent: dampPercent, maxShardBytes: maxShardBytes)
        try GPTQCheckpointLayout.checkOptions(config: config, options: options)

        let expected = config.expectedShapes()
        let shapes = Dictionary(uniqueKeysWithValues: expected.map { ($0.name, $0.shape) })
        var seen = Set<String>()
        func claim(_ name: String) throws -> [Int] {
            guard let shape = shapes[name] else {
                throw fail("tensor \(name)", "one of the config's tensors (\(expected.count) names, e.g. blk.0.attn_q.weight)",
                           "an unknown name", hint: config.tiedEmbeddings && name == TensorName.output
                               ? "the config ties lm_head to the embedding; drop output.weight" : nil)
            }
            guard seen.insert(name).inserted else {
                throw fail("tensor \(name)", "given once (in modules or dense)", "a second copy")
            }
            return shape
        }
        let qkNames: (String) -> Bool = { $0.hasSuffix(".attn_q.weight") || $0.hasSuffix(".attn_k.weight") }
        func ropePermutation(_ name: String, rows: Int) -> [Int]? {
            guard qkNames(name), sourceRopeLayout != .halfSplit else { return nil }
            return ropeRowPermutation(rows: rows, headDim: config.headDim, from: sourceRopeLayout, to: .halfSplit)
        }

        var data: [String: () throws -> [UInt8]] = [:]
        var grids: [String: IntegerGroupGrid] = [:]
        for m in modules {
            let name = m.canonicalName
            let shape = try claim(name)
            guard let hf = HFTensorName.hf(name), hf.hasSuffix("_proj.weight") else {
                throw fail("module \(name)", "a decoder Linear (attn_q/k/v/output, ffn_gate/up/down)", "another tensor",
                           hint: "store embeddings, norms and lm_head in `dense`")
            }
            let prefix = String(hf.dropLast(".weight".count))
            try Self.validate(m, shape: shape, descAct: descAct)
            grids[name] = m.grid
            let packed = GPTQPackedModule(m, rowPermutation: ropePermutation(name, rows: m.rows))
            data[prefix + ".g_idx"] = { packed.gIdx() }
            data[prefix + ".qweight"] = { packed.qweight() }
            data[prefix + ".qzeros"] = { packed.qzeros() }
            data[prefix + ".scales"] = { packed.scales() }
        }
        for d in dense {
            let name = d.canonicalName
            let shape = try claim(name)
            guard d.shape == shape, d.values.count == shape.reduce(1, *) else {
                throw fail("dense \(name)", "shape \(shape) with \(shape.reduce(1, *)) values",
                           "shape \(d.shape) with \(d.values.count) values")
            }
            guard let hf = HFTensorName.hf(name) else { throw fail("dense \(name)", "a known tensor name", name) }
            let perm = ropePermutation(name, rows: shape[0])
            let values = d.values
            data[hf] = {
                let v = perm.map { gatherRows(values, rowLength: shape[1], permutation: $0) } ?? values
                return v.flatMap { h -> [UInt8] in let u = Float16(h).bitPattern; return [UInt8(u & 0xff), UInt8(u >> 8)] }
            }
        }
        let missing = expected.map(\.name).filter { !seen.contains($0) }
        guard missing.isEmpty else {
            throw fail("tensors", "every tensor of the config in modules or dense", "\(missing.count) missing: \(missing.prefix(4).joined(separator: ", "))")
        }
        self.layout = try GPTQCheckpointLayout(config: config, grids: grids, options: options)
        self.data = data
    }

    static func validate(_ m: GPTQExportModule, shape: [Int], descAct: Bool) throws {
        let name = m.canonicalName
        func fail(_ field: String, _ expected: String, _ found: Any, hint: String? = nil) -> GPTQExportError {
            GPTQExportError(field: "module \(name) \(field)", expected: expected, found: "\(found)", hint: hint)
        }
        guard [m.rows, m.cols] == shape else { throw fail("shape", "\(shape) (rows = out, cols = in)", [m.rows, m.cols]) }
        try GPTQCheckpointLayout.checkGrid(m.grid, name: name, rows: m.rows, cols: m.cols)
        let gs = m.grid.groupSize
        guard m.codes.count == m.rows * m.cols else {
            throw fail("codes", "\(m.rows * m.cols) codes (rows × cols)", m.codes.count)
        }
        if let bad = m.codes.firstIndex(where: { Int($0) > m.grid.maxCode }) {
            throw fail("codes", "values in 0...\(m.grid.maxCode)", "\(m.codes[bad]) at index \(bad)")
        }
        let groups = m.cols / gs, pb = m.grid.parameterBytes
        guard m.parameters.count == m.rows * groups * pb else {
            throw fail("parameters", "\(m.rows * groups * pb) bytes (rows \(m.rows) × groups \(groups) × \(pb))", m.parameters.count)
        }
        if let gi = m.groupIndex {
            guard gi.count == m.cols else { throw fail("groupIndex", "\(m.cols) entries", gi.count) }
            if let bad = gi.firstIndex(where: { !(0..<groups).contains($0) }) {
                throw fail("groupIndex", "groups in 0..<\(groups)", "\(gi[bad]) at column \(bad)")
            }
            if !descAct, gi.enumerated().contains(where: { $1 != $0 / gs }) {
                throw fail("groupIndex", "c / groupSize without desc_act", "an act-order g_idx",
                           hint: "pass descAct: true, or quantize with static groups")
            }
        }
        for r in 0..<m.rows {
            for g in 0..<groups {
                let z = m.parameters[(r * groups + g) * pb + pb - 1]
                guard Int(z) <= m.grid.maxCode else {
                    throw fail("zero point", "0...\(m.grid.maxCode)", "\(z) at row \(r), group \(g)")
                }
                guard z > 0 else {
                    throw fail("zero point", "1...\(m.grid.maxCode) (v1 stores zero − 1)", "0 at row \(r), group \(g)",
                               hint: "GPTQ v1 cannot store a zero point of 0 (loaders read it back as \(m.grid.maxCode + 1)); use a symmetric grid or requantize this group")
                }
            }
        }
    }

    /// Writes every file `layout` lists into `dir`: the safetensors shards, the index, the configs.
    func write(into dir: String) throws {
        for (file, specs) in layout.shardSpecs() {
            let w = try SafetensorsWriter(path: dir + "/" + file, metadata: GPTQCheckpointLayout.safetensorsMetadata)
            do {
                for s in specs { try w.addTensor(s) }
                for s in w.declared { try w.writeTensorData(s.name, try data[s.name]!()) }
                try w.finish()
            } catch {
                w.abandon()
                throw error
            }
        }
        if let idx = layout.indexText() { try writeText(idx, to: dir + "/model.safetensors.index.json") }
        try writeText(layout.configText(), to: dir + "/config.json")
        try writeText(layout.quantizeConfigText(), to: dir + "/quantize_config.json")
    }

    private func writeText(_ s: String, to path: String) throws {
        let f = try PartialFile(path: path)
        try f.write(Array(s.utf8))
        try f.commit()
    }
}

private func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

// MARK: - Packing

/// One module's codes and parameters in HF row order, packed into the v1 tensors on demand.
struct GPTQPackedModule: Sendable {
    let rows: Int, cols: Int, bits: Int, groupSize: Int, parameterBytes: Int
    let codes: [UInt8]
    let parameters: [UInt8]
    let groupIndex: [Int]?
    var groups: Int { cols / groupSize }

    init(_ m: GPTQExportModule, rowPermutation: [Int]?) {
        rows = m.rows; cols = m.cols; bits = m.grid.bits; groupSize = m.grid.groupSize
        parameterBytes = m.grid.parameterBytes
        groupIndex = m.groupIndex
        if let p = rowPermutation {
            codes = gatherRows(m.codes, rowLength: m.cols, permutation: p)
            parameters = gatherRows(m.parameters, rowLength: (m.cols / m.grid.groupSize) * m.grid.parameterBytes, permutation: p)
        } else {
            codes = m.codes
            parameters = m.parameters
        }
    }

    /// int32 [cols·bits/32, rows]: column r is output r's codes along the input as a little-endian bit stream.
    func qweight() -> [UInt8] {
        let words = cols * bits / 32
        var q = [UInt32](repeating: 0, count: words * rows)
        for r in 0..<rows {
            for c in 0..<cols {
                let v = UInt32(codes[r * cols + c]), bit = c * bits
                let w = bit / 32, off = bit % 32
                q[w * rows + r] |= v << off
                if off + bits > 32 { q[(w + 1) * rows + r] |= v >> (32 - off) }
            }
        }
        return bytes(q)
    }

    /// int32 [groups, rows·bits/32]: (zero − 1) mod 2^bits per (group, output), packed along the output.
    func qzeros() -> [UInt8] {
        let words = rows * bits / 32, mask = UInt32((1 << bits) - 1)
        var q = [UInt32](repeating: 0, count: groups * words)
        for g in 0..<groups {
            for r in 0..<rows {
                let z = UInt32(parameters[(r * groups + g) * parameterBytes + parameterBytes - 1])
                let v = (z &- 1) & mask, bit = r * bits
                let w = bit / 32, off = bit % 32
                q[g * words + w] |= v << off
                if off + bits > 32 { q[g * words + w + 1] |= v >> (32 - off) }
            }
        }
        return bytes(q)
    }

    /// fp16 [groups, rows], little-endian (copied from the stored parameters).
    func scales() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: groups * rows * 2)
        for g in 0..<groups {
            for r in 0..<rows {
                let p = (r * groups + g) * parameterBytes
                out[2 * (g * rows + r)] = parameters[p]
                out[2 * (g * rows + r) + 1] = parameters[p + 1]
            }
        }
        return out
    }

    /// int32 [cols].
    func gIdx() -> [UInt8] {
        bytes((0..<cols).map { UInt32(groupIndex?[$0] ?? $0 / groupSize) })
    }

    private func bytes(_ v: [UInt32]) -> [UInt8] {
        v.map(\.littleEndian).withUnsafeBytes { Array($0) }
    }
}
