// Perplexity with llama.cpp's `llama-perplexity` protocol, so our figures compare with theirs:
// the text is tokenized once (BOS only if the vocabulary adds it); it is cut into n_ctx chunks; each chunk
// is evaluated from an empty context with its first token replaced by BOS when the vocabulary adds BOS;
// only the second half is scored (positions n_ctx/2 ..< n_ctx-1 predict the next token), and
// PPL = exp(mean NLL) with standard error sqrt(var(NLL) / (count-1)) · PPL, accumulated in Double.
import Foundation
import HessianDist
import Node

public struct PerplexityOptions: Sendable {
    public var context: Int = 512
    /// nil: every whole chunk in the text.
    public var chunks: Int? = nil
    /// Chunks evaluated per forward pass (B); larger B means larger GEMMs, same result.
    public var batch: Int = 1
    public var bos: Int32? = nil
    public init(context: Int = 512, chunks: Int? = nil, batch: Int = 1, bos: Int32? = nil) {
        self.context = context
        self.chunks = chunks
        self.batch = batch
        self.bos = bos
    }
}

public struct PerplexityResult: Sendable, Codable {
    public var perplexity: Double
    public var standardError: Double
    public var meanNLL: Double
    public var tokensScored: Int
    public var chunks: Int
    public var context: Int
    public var seconds: Double
    /// Tokens run through the model per second (chunks · n_ctx / seconds).
    public var tokensPerSecond: Double
    /// Running PPL after each chunk, as llama-perplexity prints `[i]ppl`.
    public var runningPerplexity: [Double]
}

public struct PerplexityProgress: Sendable {
    public var chunksDone: Int
    public var chunks: Int
    public var runningPerplexity: Double
    public var elapsed: Double
    public var eta: Double
}

public enum EvaluationError: Error, CustomStringConvertible {
    case tooFewTokens(have: Int, need: Int, context: Int)
    case invalidOption(String)
    public var description: String {
        switch self {
        case .tooFewTokens(let have, let need, let ctx):
            return "the text tokenizes to \(have) tokens; a context of \(ctx) needs at least \(need) (hint: a longer --text or a smaller --ctx)"
        case .invalidOption(let s): return s
        }
    }
}

/// Running sums of the scored tokens' negative log-likelihoods.
public struct NLLAccumulator: Sendable {
    public private(set) var nll = 0.0
    public private(set) var nll2 = 0.0
    public private(set) var count = 0
    public init() {}

    public mutating func add(_ v: Double) {
        nll += v
        nll2 += v * v
        count += 1
    }

    public var perplexity: Double { exp(nll / Double(count)) }

    /// llama-perplexity's error estimate of PPL (delta method on the mean NLL).
    public var standardError: Double {
        let mean = nll / Double(count)
        let variance = nll2 / Double(count) - mean * mean
        guard variance > 0, count > 1 else { return 0 }
        return (variance / Double(count - 1)).squareRoot() * perplexity
    }
}

public func evaluatePerplexity(model: LlamaModel, tokens: [Int32], options o: PerplexityOptions,
                               progress: ((PerplexityProgress) -> Void)? = nil) throws -> PerplexityResult {
    let ctx = o.context
    guard ctx >= 4, ctx <= model.rope.T else {
        throw EvaluationError.invalidOption("--ctx \(ctx): expected 4...\(model.rope.T) (the model's context)")
    }
    guard o.batch >= 1 else { throw EvaluationError.invalidOption("--batch \(o.batch): expected >= 1") }
    guard tokens.count >= 2 * ctx else { throw EvaluationError.tooFewTokens(have: tokens.count, need: 2 * ctx, context: ctx) }
    let maxChunks = tokens.count / ctx
    let nChunks = min(o.chunks ?? maxChunks, maxChunks)
    guard nChunks >= 1 else { throw EvaluationError.invalidOption("--chunks must be >= 1") }
    let V = model.config.vocabSize, first = ctx / 2, scored = ctx - 1 - first
    var acc = NLLAccumulator()
    var running: [Double] = []
    let start = Date()
    var logits = [Float](repeating: 0, count: o.batch * (ctx - first) * V)
    var acts: Activations? = nil
    var i = 0
    while i < nChunks {
        let B = min(o.batch, nChunks - i)
        if acts == nil || acts!.B != B { acts = Activations(config: model.config, B: B, T: ctx) }
        var batchTokens: [Int32] = []
        batchTokens.reserveCapacity(B * ctx)
        for s in 0..<B {
            var chunk = Array(tokens[((i + s) * ctx)..<((i + s + 1) * ctx)])
            if let bos = o.bos { chunk[0] = bos }
            batchTokens += chunk
        }
        try model.embed(acts!, tokens: batchTokens)
        model.blocks(acts!)
        logits.withUnsafeMutableBufferPointer { model.head(acts!, from: first, into: $0.baseAddress!) }
        for s in 0..<B {
            let base = (i + s) * ctx
            logits.withUnsafeBufferPointer { lp in
                for j in 0..<scored {
                    let row = lp.baseAddress! + (s * (ctx - first) + j) * V
                    let target = Int(tokens[base + first + j + 1])
                    acc.add(logSumExp(row, V) - Double(row[target]))
                }
            }
            running.append(acc.perplexity)
        }
        i += B
        let elapsed = Date().timeIntervalSince(start)
        progress?(PerplexityProgress(chunksDone: i, chunks: nChunks, runningPerplexity: acc.perplexity,
                                     elapsed: elapsed, eta: elapsed / Double(i) * Double(nChunks - i)))
    }
    let seconds = Date().timeIntervalSince(start)
    return PerplexityResult(perplexity: acc.perplexity, standardError: acc.standardError,
                            meanNLL: acc.nll / Double(acc.count), tokensScored: acc.count, chunks: nChunks,
                            context: ctx, seconds: seconds, tokensPerSecond: Double(nChunks * ctx) / seconds,
                            runningPerplexity: running)
}
