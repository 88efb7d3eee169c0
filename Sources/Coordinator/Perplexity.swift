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
    /// Against a reference model (`eval --reference`): the same chunks and scored positions.
    public var reference: ReferenceComparison?
    /// What was evaluated, as `hessdist eval` records it (absent in files written before it did): the model's
    /// path, its bytes on disk (every file of a checkpoint directory), its parameters, the text's path.
    public var model: String? = nil
    public var fileBytes: Int? = nil
    public var parameters: Int? = nil
    public var text: String? = nil
}

/// How far a (quantized) model's next-token distributions are from a reference model's,
/// over the positions perplexity scores — llama.cpp's `--kl-divergence` statistics.
public struct ReferenceComparison: Sendable, Codable {
    /// The reference model's own perplexity on the same tokens.
    public var referencePerplexity: Double
    /// Mean KL(p_ref ‖ p_model) in nats, and its standard error.
    public var meanKL: Double
    public var meanKLStandardError: Double
    /// Largest per-token KL seen.
    public var maxKL: Double
    /// Fraction of positions where both models' argmax agree.
    public var top1Agreement: Double
}

/// Running sums for `ReferenceComparison`.
struct KLAccumulator {
    var sum = 0.0, sum2 = 0.0, maxKL = 0.0, count = 0, agree = 0
    var reference = NLLAccumulator()

    /// KL(p ‖ q) = Σ p (log p − log q) with log p = a − lseA, log q = b − lseB.
    mutating func add(ref a: UnsafePointer<Float>, model b: UnsafePointer<Float>, n: Int, target: Int) {
        let lseA = logSumExp(a, n), lseB = logSumExp(b, n)
        var kl = 0.0
        var argA = 0, argB = 0
        for i in 0..<n {
            let la = Double(a[i]) - lseA
            kl += exp(la) * (la - (Double(b[i]) - lseB))
            if a[i] > a[argA] { argA = i }
            if b[i] > b[argB] { argB = i }
        }
        kl = max(kl, 0)
        sum += kl
        sum2 += kl * kl
        maxKL = max(maxKL, kl)
        count += 1
        if argA == argB { agree += 1 }
        reference.add(lseA - Double(a[target]))
    }

    var result: ReferenceComparison {
        let mean = sum / Double(count)
        let variance = max(0, sum2 / Double(count) - mean * mean)
        return ReferenceComparison(referencePerplexity: reference.perplexity, meanKL: mean,
                                   meanKLStandardError: count > 1 ? (variance / Double(count - 1)).squareRoot() : 0,
                                   maxKL: maxKL, top1Agreement: Double(agree) / Double(count))
    }
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
                               reference: LlamaModel? = nil,
                               progress: ((PerplexityProgress) -> Void)? = nil) throws -> PerplexityResult {
    if let r = reference, r.config.vocabSize != model.config.vocabSize {
        throw EvaluationError.invalidOption("--reference has vocabulary \(r.config.vocabSize), the model \(model.config.vocabSize)")
    }
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
    var refLogits = [Float](repeating: 0, count: reference == nil ? 0 : o.batch * (ctx - first) * V)
    var kl = KLAccumulator()
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
        if let reference {
            try reference.embed(acts!, tokens: batchTokens)
            reference.blocks(acts!)
            refLogits.withUnsafeMutableBufferPointer { reference.head(acts!, from: first, into: $0.baseAddress!) }
            logits.withUnsafeBufferPointer { lp in
                refLogits.withUnsafeBufferPointer { rp in
                    for s in 0..<B {
                        for j in 0..<scored {
                            let at = (s * (ctx - first) + j) * V
                            kl.add(ref: rp.baseAddress! + at, model: lp.baseAddress! + at, n: V,
                                   target: Int(tokens[(i + s) * ctx + first + j + 1]))
                        }
                    }
                }
            }
        }
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
                            runningPerplexity: running, reference: reference == nil ? nil : kl.result)
}
