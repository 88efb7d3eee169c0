// True-sequential GPTQ over a LLaMA model (the reference's `llama_sequential`): capture block 0's inputs
// once; per block, for each sequential group [[q,k,v],[o],[gate,up],[down]]: run the block up to the
// group's input over all calibration samples, accumulate H, solve every module of the group, write the
// quantized weights back; then run the whole (quantized) block to get the next block's inputs.
// Only one block's weights are dequantized at a time. Not the export: see `QuantizedModel`.
import Foundation
import HessianDist
import Node
import Wire

public enum QuantMethod: String, Sendable, Codable, CaseIterable {
    case gptq, rtn
}

/// How one linear tensor is stored.
public enum StorageTarget: Sendable {
    /// A ggml block type (GGUF export).
    case ggml(GGMLType)
    /// An integer group grid (GPTQ safetensors export).
    case integer(IntegerGroupGrid)
}

/// Per module: what was chosen and how well it did.
public struct ModuleReport: Sendable, Codable {
    public var name: String
    public var rows: Int
    public var cols: Int
    public var storage: String
    public var method: String
    /// tr(ΔW H ΔWᵀ) with the layer's mean Hessian; nil without calibration (RTN).
    public var gptqError: Double?
    public var rtnError: Double?
    public var damping: Double?
    public var fallback: String?
    public var seconds: Double
}

/// A quantized linear tensor: codes on its grid and the grid's stored parameters, plus ggml bytes.
public struct QuantizedLinear: Sendable {
    public var name: String
    public var rows: Int
    public var cols: Int
    public var target: StorageTarget
    /// rows × cols codes, natural column order.
    public var codes: [UInt8]
    /// rows × groups × parameterBytes, natural group order.
    public var parameters: [UInt8]
    /// Act-order column permutation, nil otherwise.
    public var permutation: [Int]?
    /// Group of each input column (GPTQ's g_idx), nil when it is column / groupSize.
    public var groupIndex: [Int]? = nil
    /// The ggml tensor bytes (for `.ggml` targets).
    public var ggmlBytes: [UInt8]?
    public var report: ModuleReport
}

public struct SequentialOptions: Sendable {
    public var method: QuantMethod = .gptq
    public var dampPercent: Double = 0.01
    public var blockSize: Int = 128
    public var actOrder: Bool = false
    /// Fit each block's / group's scales with the layer's imatrix diag(H) as per-weight importance
    /// (llama.cpp's weighted scale search) instead of the reference min/max rule. GGUF types with such a search (`GGMLType.importanceQuantizer`: all but Q8_0).
    public var importanceFit: Bool = false
    /// GPTQ's shrinkage of H toward its diagonal (`GPTQ.shrink`). The library default is the paper's 0;
    /// the CLI's is `defaultShrink`.
    public var shrink: Double = 0
    /// The CLI's default β: the best measured on SmolLM2 calibrated on tiny shakespeare and evaluated on
    /// WikiText-2 (BENCHMARKS.md, "GPTQ shrinkage").
    public static let defaultShrink = 0.8
    /// Re-solve each row's block scales with GPTQ's codes fixed (`GPTQ.refitScales`). Off in the library
    /// (the paper's GPTQ); the CLI's default is `defaultRefitScales`.
    public var refitScales: Bool = false
    /// The CLI's default: on, measured in BENCHMARKS.md ("Scale refit after the GPTQ sweep").
    public static let defaultRefitScales = true
    /// Calibration samples per forward micro-batch.
    public var microBatch: Int = 4
    public init() {}
}

public struct SequentialProgress: Sendable {
    public var block: Int
    public var blocks: Int
    public var module: String
    public var elapsed: Double
    public var eta: Double
}

/// The linear layers of block `l`, grouped in the order true-sequential quantization visits them.
public func sequentialGroups(_ l: Int) -> [[String]] {
    [[TensorName.attnQ(l), TensorName.attnK(l), TensorName.attnV(l)], [TensorName.attnOutput(l)],
     [TensorName.ffnGate(l), TensorName.ffnUp(l)], [TensorName.ffnDown(l)]]
}

public final class SequentialQuantizer {
    public let source: WeightSource
    public let options: SequentialOptions
    /// The storage of each linear tensor of the blocks.
    public let target: (String) -> StorageTarget
    /// This process's rank. With more than one rank, calibration is split by micro-shard (data
    /// parallel); each group's modules are solved on owner ranks (`OwnerSchedule`), and rank 0 returns
    /// the quantized linears, the others return [].
    public let comm: Comm
    /// Bytes that crossed the wire, per message kind. Rank 0 counts every message it sends or receives
    /// (a broadcast as one copy per receiving rank, whoever its root); after `run` it also holds the
    /// messages that went between two other ranks (the Hessian chain with more than two ranks), which
    /// those ranks count and send at the end. So on rank 0 it is the whole job's traffic.
    public internal(set) var wireStats = WireStats()
    /// Wall seconds this rank spent per phase of `run`: `forward` (calibration forwards and Hessian
    /// accumulation), `hessian` (the chain and H to owners, waiting included), `solve` (quantizing its
    /// modules), `results` (quantized linears to rank 0 and weight broadcasts, waiting for owners included).
    public internal(set) var phaseSeconds: [String: Double] = [:]
    /// Where `run` is, for errors.
    var stage = "setup"
    /// Called on rank 0 for every linear before it is quantized, with its current weights (rows, cols) and
    /// merged Hessian: the profiling pass of mixed precision reads each layer's statistics here.
    public var observer: ((_ name: String, _ W: [Float], _ H: LayerHessian?) throws -> Void)?
    /// Called on rank 0 after the last block with the output head's weights (the token embedding when
    /// tied) and the Hessian of its input, the final norm's output over the calibration. Only with
    /// calibration; the head itself is not quantized here unless `quantizesHead`.
    public var headObserver: ((_ name: String, _ W: [Float], _ H: LayerHessian) throws -> Void)?
    /// Also quantize the output head (the token embedding when tied) after the last block, to `target(name)`,
    /// with the same solver and the Hessian of its input: GPTQ on the quantized model's final hidden
    /// states, as every block linear gets. It is the most sensitive matrix, and the only one llama.cpp
    /// rounds with no more than an imatrix. Rank 0 solves it; the result is the last of `run`'s linears.
    public var quantizesHead = false
    /// Where rank 0 saves each completed block (nil: no checkpoints, as in the profiling pass).
    public var checkpoint: QuantizeCheckpoint?
    /// Blocks 0..<n completed by an interrupted run, read from `checkpoint` (rank 0 only; the other
    /// ranks learn n from it). `run` takes them instead of solving them again.
    public var resumed: [CheckpointBlock] = []
    /// How many leading blocks the last `run` took from `resumed`.
    public internal(set) var resumedBlocks = 0
    /// Whether `HESSDIST_FAULT` applies to this run (`InjectedFault`): only the pass that writes the
    /// output sets it, so "block k" means the same block with and without mixed precision's profiling pass.
    public var injectsFaults = false

    public init(source: WeightSource, options: SequentialOptions, comm: Comm = .single,
                target: @escaping (String) -> StorageTarget) {
        self.source = source
        self.options = options
        self.comm = comm
        self.target = target
    }

    /// Quantizes every block's linear layers; calibration may be nil only for RTN.
    ///
    /// Every rank calls this with the same calibration. Samples are cut into micro-shards of
    /// `options.microBatch` (independent of the rank count); a rank keeps activations only for the
    /// micro-shards it owns. Per group, each micro-shard's partial Hessian goes to rank 0, which merges
    /// them in micro-shard order (the bits do not depend on the rank count), solves the group and
    /// broadcasts each quantized weight; every rank runs the same collectives in the same order.
    ///
    /// With several ranks the micro-shards are owned in contiguous blocks (`MicroShards`), so the sum
    /// in micro-shard order is a chain of one running sum per rank ending on rank 0 (`HessianChainPart`),
    /// and each group's modules are solved by owner ranks chosen by cost (`OwnerSchedule`): rank 0 sends
    /// them the merged H, they send back the `QuantizedLinear` and broadcast its dequantized weights.
    ///
    /// Errors are `QuantizeStageError`s naming this rank and the stage (e.g. "block 3 group gate/up").
    public func run(calibration: CalibrationSet?, progress: ((SequentialProgress) -> Void)? = nil) throws -> [QuantizedLinear] {
        do {
            return try runStages(calibration: calibration, progress: progress)
        } catch let e as QuantizeStageError {
            throw e
        } catch {
            throw QuantizeStageError(rank: comm.rank, size: comm.size, stage: stage, cause: error)
        }
    }

    func runStages(calibration: CalibrationSet?, progress: ((SequentialProgress) -> Void)?) throws -> [QuantizedLinear] {
        stage = "setup"
        let fault = injectsFaults ? try InjectedFault.fromEnvironment() : nil
        let c = source.config
        let start = Date()
        var out: [QuantizedLinear] = []
        guard options.method == .rtn || calibration != nil else {
            throw CalibrationError.invalid("GPTQ needs calibration samples (--calib, or data-free sampling)")
        }
        // Calibration forwards run for GPTQ, and for RTN with an importance fit (the imatrix is diag(H)).
        let gptq = (options.method == .gptq || options.importanceFit) && calibration != nil
        let shards = MicroShards(samples: calibration?.samples.count ?? 0, microBatch: options.microBatch)
        let mine = shards.local(rank: comm.rank, size: comm.size)
        let localSamples = shards.localSamples(rank: comm.rank, size: comm.size)
        let seqlen = calibration?.seqlen ?? 16
        // Owner ranks for every group, decided once on rank 0 (only it knows a mixed-precision plan).
        let schedule = gptq && comm.size > 1 ? try broadcastSchedule() : nil
        // Block 0's inputs for this rank's samples: X (S_local, T, C).
        var X: FloatBuffer? = nil
        if gptq, let cal = calibration {
            stage = "calibration (embedding)"
            let embedder = try LlamaModel(source: source, layers: 0..<0, embedding: true, head: false, contextLength: seqlen)
            let x = FloatBuffer(count: max(1, localSamples * seqlen * c.dim))
            try forEachMicroShard(mine, model: embedder, T: seqlen) { a, range, first in
                try embedder.embed(a, tokens: Array(cal.samples[range].joined()))
                x.base.advanced(by: first * seqlen * c.dim).update(from: a.x, count: range.count * seqlen * c.dim)
            }
            X = x
        }
        resumedBlocks = try resumePoint(blocks: c.nLayers)
        for l in 0..<c.nLayers {
            let block = try LlamaModel(source: source, layers: l..<(l + 1), embedding: false, head: false,
                                       contextLength: seqlen)
            if l < resumedBlocks {
                // Taken from the checkpoint; the forward rebuilds X only if anything still reads it (a
                // block still to solve, or the head's Hessian); a job killed while exporting needs none.
                stage = "block \(l) (resumed from the checkpoint)"
                let forward = resumedBlocks < c.nLayers || headObserver != nil || quantizesHead
                try restoreBlock(l, block: block, X: forward ? X : nil, mine: mine, seqlen: seqlen, calibrated: gptq, into: &out)
                if comm.isRoot {
                    let elapsed = Date().timeIntervalSince(start)
                    progress?(SequentialProgress(block: l, blocks: c.nLayers, module: "(resumed)", elapsed: elapsed, eta: 0))
                }
                continue
            }
            let blockStart = out.count
            // Stored between passes (calibration only): attention outputs (S,T,NH·hs) and SwiGLU outputs (S,T,H).
            // Each group's input depends only on groups already solved, so every pass resumes where the
            // previous one stopped: one block forward per block instead of one per group.
            let stash = gptq ? (atty: FloatBuffer(count: max(1, localSamples * seqlen * c.qDim)),
                                hid: FloatBuffer(count: max(1, localSamples * seqlen * c.hiddenDim))) : nil
            for (g, group) in sequentialGroups(l).enumerated() {
                stage = "block \(l) group \(groupLabel(l, g))"
                if let fault, fault.rank == comm.rank, fault.block == l, fault.group == g { try fault.fire() }
                var H: LayerHessian? = nil
                if let X, let stash {
                    let cols = try source.info(group[0]).shape[1]
                    // One partial per owned micro-shard, accumulated exactly as a single-process run would,
                    // folded into the running sum in micro-shard order (at once on the chain's first rank).
                    var part = HessianChainPart(columns: cols, first: shards.chain(size: comm.size).first == comm.rank)
                    try forEachMicroShard(mine, model: block, T: seqlen) { a, range, firstSample in
                        let h = LayerHessian(columns: cols)
                        let rows = range.count * seqlen, first = firstSample * seqlen
                        let x = X.base + first * c.dim
                        a.x.update(from: x, count: rows * c.dim)
                        switch g {
                        case 0:  // q,k,v read xn = norm(x)
                            block.attentionNorm(l, a)
                            h.accumulate(a.xn, rows: rows)
                        case 1:  // o reads the attention output of the quantized q,k,v
                            block.attentionNorm(l, a)
                            block.attention(l, a)
                            (stash.atty.base + first * c.qDim).update(from: a.atty, count: rows * c.qDim)
                            h.accumulate(a.atty, rows: rows)
                        case 2:  // gate,up read norm(x + atty·Wo); the residual stream moves past attention
                            a.atty.update(from: stash.atty.base + first * c.qDim, count: rows * c.qDim)
                            block.attentionOutput(l, a)
                            x.update(from: a.x, count: rows * c.dim)
                            block.ffnNorm(l, a)
                            h.accumulate(a.xn, rows: rows)
                        default:  // down reads silu(gate)·up of the quantized gate,up
                            block.ffnNorm(l, a)
                            block.ffnGateUp(l, a)
                            (stash.hid.base + first * c.hiddenDim).update(from: a.hid, count: rows * c.hiddenDim)
                            h.accumulate(a.hid, rows: rows)
                        }
                        part.append(h)
                    }
                    // The same merge order without the wire: an empty sum, then micro-shards 0, 1, 2, …
                    H = try passHessianChain(&part, layer: l, group: g, shards: shards, seqlen: seqlen)
                }
                if let schedule {
                    try solveOnOwners(group, layer: l, group: g, H: H, rows: shards.samples * seqlen, block: block, schedule: schedule, into: &out) { name in
                        let elapsed = Date().timeIntervalSince(start)
                        let done = Double(l) + Double(g + 1) / 4
                        progress?(SequentialProgress(block: l, blocks: c.nLayers, module: name, elapsed: elapsed,
                                                     eta: elapsed / done * (Double(c.nLayers) - done)))
                    }
                    continue
                }
                for name in group {
                    let t0 = Date()
                    var weights: [Float] = []
                    if comm.isRoot {
                        try observer?(name, block.weight(name), H)
                        let q = try quantize(name: name, block: block, H: H)
                        out.append(q.0)
                        weights = q.1
                        out[out.count - 1].report.seconds = Date().timeIntervalSince(t0)
                    }
                    if gptq && comm.size > 1 {
                        // Rank 0's quantized weights reach every rank; the next pass runs on them.
                        weights = try broadcastWeights(name, weights)
                    }
                    if comm.isRoot || gptq { block.setWeight(name, weights) }
                    let elapsed = Date().timeIntervalSince(start)
                    let done = Double(l) + Double(g + 1) / 4
                    if comm.isRoot {
                        progress?(SequentialProgress(block: l, blocks: c.nLayers, module: name, elapsed: elapsed,
                                                     eta: elapsed / done * (Double(c.nLayers) - done)))
                    }
                }
            }
            stage = "block \(l) (the next block's inputs)"
            // The next block's inputs: x (already past attention) + hid · Wdown of the quantized down.
            if let X, let stash {
                try forEachMicroShard(mine, model: block, T: seqlen) { a, range, firstSample in
                    let rows = range.count * seqlen, first = firstSample * seqlen
                    let x = X.base + first * c.dim
                    a.x.update(from: x, count: rows * c.dim)
                    a.hid.update(from: stash.hid.base + first * c.hiddenDim, count: rows * c.hiddenDim)
                    block.ffnDown(l, a)
                    x.update(from: a.x, count: rows * c.dim)
                }
            }
            if comm.isRoot, let checkpoint {
                stage = "block \(l) (checkpoint)"
                // After the next block's inputs: a checkpoint of block l is what a resume needs to run block l + 1.
                try checkpoint.write(block: l, linears: Array(out[blockStart...])) { gptq ? block.weight($0) : nil }
            }
        }
        if headObserver != nil || quantizesHead, let X {
            stage = "output head"
            let head = try LlamaModel(source: source, layers: 0..<0, embedding: false, head: true, contextLength: seqlen)
            if let H = try reduceHessian(layer: c.nLayers, group: 0, columns: c.dim, shards: shards, mine: mine,
                                         model: head, seqlen: seqlen, { a, rows, first in
                a.x.update(from: X.base + first * c.dim, count: rows * c.dim)
                head.outputNorm(a)
                return a.xn
            }) {
                let name = c.tiedEmbeddings ? TensorName.tokenEmbedding : TensorName.output
                try headObserver?(name, head.weight(name), H)
                if quantizesHead {
                    let t0 = Date()
                    var q = try quantize(name: name, block: head, H: H).0
                    q.report.seconds = Date().timeIntervalSince(t0)
                    out.append(q)
                }
            }
        }
        stage = "end of run"
        if gptq { try summarizeRun() }
        return out
    }

    /// The layer Hessian of the input `input` returns per micro-shard (given activations, its rows and its
    /// first row), summed in micro-shard order along the rank chain as the block groups' are; on rank 0
    /// only (nil on other ranks).
    func reduceHessian(layer: Int, group: Int, columns: Int, shards: MicroShards,
                       mine: [(shard: Int, range: Range<Int>, localFirst: Int)], model: LlamaModel, seqlen: Int,
                       _ input: (Activations, Int, Int) throws -> UnsafeMutablePointer<Float>) throws -> LayerHessian? {
        var part = HessianChainPart(columns: columns, first: shards.chain(size: comm.size).first == comm.rank)
        try forEachMicroShard(mine, model: model, T: seqlen) { a, range, firstSample in
            let h = LayerHessian(columns: columns)
            let rows = range.count * seqlen
            h.accumulate(try input(a, rows, firstSample * seqlen), rows: rows)
            part.append(h)
        }
        return try passHessianChain(&part, layer: layer, group: group, shards: shards, seqlen: seqlen)
    }

    /// The `root` rank's dequantized weights of `name` on every rank (f32, shuffle+zstd, bit-exact).
    func broadcastWeights(_ name: String, _ weights: [Float], root: Int = 0) throws -> [Float] {
        let info = try source.info(name)
        let shape = [info.shape[0], info.shape[1]]
        var bytes: [UInt8] = []
        if comm.rank == root {
            let m = try WireMessage(kind: .tensorBytes, shape: shape, floats: weights, codec: .shuffleZstd())
            bytes = m.encode()
            // One copy per receiving rank.
            if comm.isRoot { for _ in 1..<comm.size { wireStats.record(m, wireBytes: bytes.count) } }
        }
        let got = try comm.broadcast(bytes: bytes, root: root)
        if comm.rank == root { return weights }
        let m = try WireMessage.decode(got)
        if comm.isRoot { for _ in 1..<comm.size { wireStats.record(m, wireBytes: got.count) } }
        guard m.kind == .tensorBytes, m.dtype == .f32, m.shape == shape else {
            throw ClusterError(rank: comm.rank, operation: "weight broadcast of \(name)",
                               message: "expected f32 \(shape), got \(m.kind) \(m.dtype) \(m.shape)")
        }
        return try m.floats()
    }

    /// Runs `body` over the given micro-shards in order: activations sized to each micro-shard (the same
    /// micro-batch composition on every rank), its global sample range, and its first local sample.
    func forEachMicroShard(_ shards: [(shard: Int, range: Range<Int>, localFirst: Int)], model: LlamaModel, T: Int,
                           _ body: (Activations, Range<Int>, Int) throws -> Void) throws {
        let t0 = Date()
        defer { phaseSeconds["forward", default: 0] += Date().timeIntervalSince(t0) }
        var acts: Activations? = nil
        for s in shards {
            let B = s.range.count
            if acts == nil || acts!.B != B { acts = Activations(config: model.config, B: B, T: T) }
            try body(acts!, s.range, s.localFirst)
        }
    }

    /// Quantizes one tensor to `storage` (default: `target(name)`); returns it and the dequantized
    /// weights the model continues with. The caller runs `observer` (on rank 0, before dispatch).
    func quantize(name: String, block: LlamaModel, H: LayerHessian?, storage: StorageTarget? = nil) throws -> (QuantizedLinear, [Float]) {
        let t0 = Date()
        defer { phaseSeconds["solve", default: 0] += Date().timeIntervalSince(t0) }
        let info = try source.info(name)
        let rows = info.shape[0], cols = info.shape[1]
        let W = block.weight(name)
        let t = storage ?? target(name)
        if case .ggml(let type) = t, !type.isQuantizable {
            // Plain floats (a fallback for rows no block fits): stored as they are, nothing to solve.
            let bytes = try W.withUnsafeBufferPointer { try encodeTensor(type, rows: rows, cols: cols, $0.baseAddress!) }
            var deq = [Float](repeating: 0, count: rows * cols)
            try bytes.withUnsafeBytes { raw in
                try deq.withUnsafeMutableBufferPointer { try dequantizeRow(type, from: raw, into: $0) }
            }
            let report = ModuleReport(name: name, rows: rows, cols: cols, storage: type.description, method: "none",
                                      gptqError: nil, rtnError: nil, damping: nil, fallback: nil, seconds: 0)
            return (QuantizedLinear(name: name, rows: rows, cols: cols, target: t, codes: [], parameters: [],
                                    permutation: nil, ggmlBytes: bytes, report: report), deq)
        }
        let grid: any QuantGrid
        var storage: String
        switch t {
        case .ggml(let type):
            grid = try GGMLGrid(type: type)
            storage = type.description
        case .integer(let g):
            grid = g
            storage = "int\(g.bits) g\(g.groupSize)\(g.symmetric ? " sym" : "")"
        }
        var report = ModuleReport(name: name, rows: rows, cols: cols, storage: storage, method: options.method.rawValue,
                                  gptqError: nil, rtnError: nil, damping: nil, fallback: nil, seconds: 0)
        if options.method == .gptq, let H {
            let solver = GPTQ(blockSize: options.blockSize, dampPercent: options.dampPercent, actOrder: options.actOrder,
                              shrink: options.shrink, refitScales: options.refitScales)
            let r = try solver.solve(W: W, rows: rows, cols: cols, H: H, grid: grid,
                                     importance: options.importanceFit ? H.diagonal : nil)
            report.gptqError = r.gptqError
            report.rtnError = r.rtnError
            report.damping = r.damping
            report.fallback = "\(r.fallback)"
            var q = QuantizedLinear(name: name, rows: rows, cols: cols, target: t, codes: r.codes,
                                    parameters: r.parameters, permutation: r.permutation, ggmlBytes: nil, report: report)
            q.groupIndex = r.permutation == nil ? nil : r.groupIndex
            if case .ggml(let type) = t { q.ggmlBytes = try packGGML(type: type, grid: grid as! GGMLGrid, q) }
            return (q, r.Q)
        }
        // RTN: ggml types use llama.cpp's reference quantizer bit for bit; integer grids round on the grid.
        switch t {
        case .ggml(let type):
            // With an importance fit: llama.cpp's imatrix quantizer, the imatrix being this layer's diag(H).
            let imatrix = options.importanceFit ? H?.diagonal : nil
            let bytes = try W.withUnsafeBufferPointer { w in
                try imatrix.map { try quantizeTensor(type, rows: rows, cols: cols, from: w.baseAddress!, importance: $0) }
                    ?? quantizeTensor(type, rows: rows, cols: cols, from: w.baseAddress!)
            }
            var deq = [Float](repeating: 0, count: rows * cols)
            try bytes.withUnsafeBytes { raw in
                try deq.withUnsafeMutableBufferPointer { try dequantizeRow(type, from: raw, into: $0) }
            }
            let q = QuantizedLinear(name: name, rows: rows, cols: cols, target: t, codes: [], parameters: [],
                                    permutation: nil, ggmlBytes: bytes, report: report)
            return (q, deq)
        case .integer:
            let r = roundToNearest(W: W, rows: rows, cols: cols, grid: grid)
            let q = QuantizedLinear(name: name, rows: rows, cols: cols, target: t, codes: r.codes,
                                    parameters: r.parameters, permutation: nil, ggmlBytes: nil, report: report)
            return (q, r.Q)
        }
    }

    /// Packs codes and fitted block parameters into ggml blocks, row by row.
    func packGGML(type: GGMLType, grid: GGMLGrid, _ q: QuantizedLinear) throws -> [UInt8] {
        let bs = type.blockSize, groups = q.cols / bs, pb = grid.parameterBytes
        var bytes = [UInt8](repeating: 0, count: q.rows * groups * type.typeSize)
        q.parameters.withUnsafeBytes { params in
            q.codes.withUnsafeBufferPointer { codes in
                bytes.withUnsafeMutableBytes { out in
                    for r in 0..<q.rows {
                        for g in 0..<groups {
                            grid.pack(parameters: params.baseAddress! + (r * groups + g) * pb,
                                      codes: codes.baseAddress! + r * q.cols + g * bs,
                                      into: out.baseAddress! + (r * groups + g) * type.typeSize)
                        }
                    }
                }
            }
        }
        return bytes
    }
}

/// Plain rounding on a grid fitted from the weights themselves: codes, parameters and the dequantized values.
public func roundToNearest(W: [Float], rows: Int, cols: Int, grid: any QuantGrid) -> (Q: [Float], codes: [UInt8], parameters: [UInt8]) {
    let gs = grid.groupSize, groups = (cols + gs - 1) / gs, pb = grid.parameterBytes
    var Q = [Float](repeating: 0, count: rows * cols)
    var codes = [UInt8](repeating: 0, count: rows * cols)
    var params = [UInt8](repeating: 0, count: rows * groups * pb)
    var scale = [Float](repeating: 0, count: gs), offset = [Float](repeating: 0, count: gs)
    W.withUnsafeBufferPointer { w in
        params.withUnsafeMutableBytes { p in
            for r in 0..<rows {
                for g in 0..<groups {
                    let c0 = g * gs
                    grid.fit(weights: w.baseAddress! + r * cols + c0, importance: nil,
                             parameters: p.baseAddress! + (r * groups + g) * pb, scale: &scale, offset: &offset)
                    for j in 0..<min(gs, cols - c0) {
                        let i = r * cols + c0 + j
                        let q = grid.nearestCode(w[i], scale: scale[j], offset: offset[j])
                        codes[i] = q
                        Q[i] = grid.value(code: q, scale: scale[j], offset: offset[j])
                    }
                }
            }
        }
    }
    return (Q, codes, params)
}
