// N ranks as S pipeline stages × R data-parallel replicas, for the passes that need the whole model at once
// (the backward passes of the Fisher and Hutchinson traces). The layer-Hessian pass and GPTQ do not: they
// hold one block at a time and are data parallel over all N ranks (R = N), so for them a stage split
// would only idle ranks.
//
// rank = replica · S + stage. Stage s holds a contiguous range of blocks, balanced by cost; stage 0 also
// holds the embedding and the head, so the residual stream goes round a ring 0 → 1 → … → S−1 → 0 and its
// gradient back the other way. A tied embedding / output head therefore lives on one rank, and its two
// gradient contributions add in the same order as in one process.

/// How a job's ranks are laid out for whole-model passes.
public struct PipelineTopology: Sendable, Equatable, CustomStringConvertible {
    /// S: stages per replica (each a contiguous range of blocks).
    public let stages: Int
    /// R: replicas, each a whole pipeline working on its own share of the sequences.
    public let replicas: Int
    /// The blocks of each stage, in order, covering 0..<nLayers.
    public let blocks: [Range<Int>]

    public init(stages: Int, replicas: Int, blocks: [Range<Int>]) {
        precondition(stages >= 1 && replicas >= 1 && blocks.count == stages)
        self.stages = stages
        self.replicas = replicas
        self.blocks = blocks
    }

    /// One stage per replica: every rank holds the whole model.
    public static func dataParallel(ranks: Int, config: ModelConfig) -> PipelineTopology {
        PipelineTopology(stages: 1, replicas: ranks, blocks: [0..<config.nLayers])
    }

    /// `stages` × (ranks / stages), the blocks split by `balance`.
    public init(ranks: Int, stages: Int, config: ModelConfig, seqlen: Int) throws {
        guard stages >= 1, ranks % stages == 0 else {
            throw TopologyError.invalid("--stages \(stages) with \(ranks) ranks: expected a divisor of the rank count (ranks = stages × replicas)")
        }
        guard stages <= config.nLayers else {
            throw TopologyError.invalid("--stages \(stages): the model has \(config.nLayers) blocks; expected at most that many stages")
        }
        let c = Self.costs(config: config, seqlen: seqlen)
        self.init(stages: stages, replicas: ranks / stages,
                  blocks: Self.balance(blockCosts: c.blocks, firstStageExtra: c.head, stages: stages))
    }

    public func stage(ofRank r: Int) -> Int { r % stages }
    public func replica(ofRank r: Int) -> Int { r / stages }
    public func rank(stage: Int, replica: Int) -> Int { replica * stages + stage }

    /// The stage holding a canonical tensor: its block's, or stage 0 for the embedding and head.
    public func stage(holding name: String) -> Int {
        guard let l = TensorName.block(of: name) else { return 0 }
        return blocks.firstIndex { $0.contains(l) }!
    }

    /// The tensors stage `s` holds, in the model's canonical order (what `LlamaModel` loads for it).
    public func tensorNames(stage s: Int, config: ModelConfig) -> [String] {
        config.expectedShapes().map(\.name).filter { stage(holding: $0) == s }
    }

    public var description: String {
        "\(stages) stage\(stages == 1 ? "" : "s") × \(replicas) replica\(replicas == 1 ? "" : "s") (blocks "
            + blocks.map { "\($0.lowerBound)–\($0.upperBound - 1)" }.joined(separator: ", ") + "; embedding and head on stage 0)"
    }

    // MARK: cost and balance

    /// Forward multiply-adds per token of each block (its matrices, plus attention over a mean T/2
    /// positions) and of the head (the classifier), the unit the stages are balanced in. A backward pass
    /// costs about twice its forward, for blocks and head alike, so the ratio holds for both.
    public static func costs(config c: ModelConfig, seqlen T: Int) -> (blocks: [Double], head: Double) {
        let matrices = Double(c.dim * (2 * c.qDim + 2 * c.kvDim) + 3 * c.dim * c.hiddenDim)
        let attention = Double(c.qDim) * Double(T) // q·k and att·v over T/2 positions each
        return (Array(repeating: matrices + attention, count: c.nLayers), Double(c.vocabSize * c.dim))
    }

    /// The contiguous split of blocks into `stages` non-empty ranges that minimises the costliest stage
    /// (stage 0 also paying `firstStageExtra`), exactly, by dynamic programming over split points; among
    /// equal maxima the one with the earliest splits, so the choice is deterministic.
    public static func balance(blockCosts: [Double], firstStageExtra: Double, stages S: Int) -> [Range<Int>] {
        let L = blockCosts.count
        precondition(S >= 1 && S <= L)
        var prefix = [0.0]
        for x in blockCosts { prefix.append(prefix.last! + x) }
        func cost(_ s: Int, _ a: Int, _ b: Int) -> Double { prefix[b] - prefix[a] + (s == 0 ? firstStageExtra : 0) }
        // best[s][b]: the smallest maximum over stages 0..<s covering blocks 0..<b; cut[s][b]: where stage s−1 starts.
        var best = [[Double]](repeating: [Double](repeating: .infinity, count: L + 1), count: S + 1)
        var cut = [[Int]](repeating: [Int](repeating: 0, count: L + 1), count: S + 1)
        best[0][0] = 0
        for s in 1...S {
            for b in s...L {
                for a in (s - 1)..<b where best[s - 1][a].isFinite {
                    let m = max(best[s - 1][a], cost(s - 1, a, b))
                    if m < best[s][b] { best[s][b] = m; cut[s][b] = a }
                }
            }
        }
        var out: [Range<Int>] = []
        var b = L
        for s in stride(from: S, to: 0, by: -1) {
            let a = cut[s][b]
            out.append(a..<b)
            b = a
        }
        return out.reversed()
    }

    // MARK: memory and the default

    /// Bytes one rank of stage `s` needs for whole-model passes: its fp32 parameters, `vectors` more
    /// parameter-sized arenas (the gradient, and for Hessian-vector products the probe, the product, the
    /// scratch gradient and the saved weights), and the training activations of one sequence.
    public func trainingBytes(stage s: Int, config c: ModelConfig, seqlen T: Int, vectors: Int) -> Int {
        let shapes = Dictionary(uniqueKeysWithValues: c.expectedShapes().map { ($0.name, $0.shape.reduce(1, *)) })
        let params = tensorNames(stage: s, config: c).reduce(0) { $0 + shapes[$1]! }
        return (1 + vectors) * params * 4
            + TrainingActivations.floatCount(config: c, layers: blocks[s].count, B: 1, T: T, head: s == 0) * 4
    }

    /// The default layout for `ranks` ranks: data parallel (S = 1, fastest: no ring, no idle stages) when a
    /// whole model's training state fits in `memoryPerRank` bytes, else the fewest stages (a divisor of
    /// `ranks`) whose costliest stage fits; the most stages there are if none does.
    public static func automatic(ranks: Int, config: ModelConfig, seqlen: Int, vectors: Int, memoryPerRank: Int) -> PipelineTopology {
        var last = dataParallel(ranks: ranks, config: config)
        for s in 1...max(1, min(ranks, config.nLayers)) where ranks % s == 0 {
            guard let t = try? PipelineTopology(ranks: ranks, stages: s, config: config, seqlen: seqlen) else { continue }
            last = t
            let worst = (0..<s).map { t.trainingBytes(stage: $0, config: config, seqlen: seqlen, vectors: vectors) }.max()!
            if worst <= memoryPerRank { return t }
        }
        return last
    }
}

public enum TopologyError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let s): return s }
    }
}

extension TensorName {
    /// The block a canonical tensor name belongs to (`blk.L.…`), nil for the embedding and head.
    public static func block(of name: String) -> Int? {
        guard name.hasPrefix("blk.") else { return nil }
        return Int(name.dropFirst(4).prefix { $0 != "." })
    }
}
