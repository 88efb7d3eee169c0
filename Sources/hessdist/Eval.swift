import ArgumentParser
import Coordinator
import Foundation
import Node

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity of a model on a text file, with llama.cpp's llama-perplexity protocol.")

    @OptionGroup var model: ModelOptions

    @Option(help: "Text file to evaluate on (e.g. WikiText-2 test).")
    var text: String

    @Option(help: "Context length of each chunk.")
    var ctx: Int = 512

    @Option(help: "Evaluate only the first N chunks (default: all).")
    var chunks: Int?

    @Option(help: "Chunks per forward pass: larger GEMMs run closer to the sgemm peak; same PPL up to float rounding.")
    var batch: Int = 2

    @Option(help: "The original model: adds mean KL divergence and top-1 agreement against it (same tokenizer).")
    var reference: String?

    @Flag(help: "Print the result as JSON on stdout.")
    var json = false

    func validate() throws {
        guard ctx >= 4 else { throw ValidationError("--ctx \(ctx): expected at least 4") }
        if let c = chunks, c < 1 { throw ValidationError("--chunks \(c): expected at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch \(batch): expected at least 1") }
    }

    func run() throws {
        let (src, tok) = try model.open()
        guard let data = FileManager.default.contents(atPath: text) else {
            throw ValidationError("--text \(text): cannot read the file")
        }
        let t0 = Date()
        let tokens = tok.encode(String(decoding: data, as: UTF8.self), addBOS: tok.addsBOS)
        let tokenizeSeconds = Date().timeIntervalSince(t0)
        let lm = try LlamaModel(source: src, contextLength: max(ctx, 16))
        let loadSeconds = Date().timeIntervalSince(t0) - tokenizeSeconds
        let ref = try reference.map { try LlamaModel(source: openModel(path: $0), contextLength: max(ctx, 16)) }
        let progress = ProgressLine()
        progress.show(String(format: "tokenized %d tokens in %.2fs; loaded %d parameters in %.2fs",
                             tokens.count, tokenizeSeconds, src.config.parameterCount, loadSeconds))
        var r = try evaluatePerplexity(
            model: lm, tokens: tokens,
            options: PerplexityOptions(context: ctx, chunks: chunks, batch: batch, bos: tok.addsBOS ? tok.bosToken : nil),
            reference: ref
        ) { p in
            let tps = Double(p.chunksDone * ctx) / p.elapsed
            progress.show(String(format: "[%d/%d] PPL %.4f  %.0f tok/s  elapsed %@  ETA %@", p.chunksDone, p.chunks,
                                 p.runningPerplexity, tps, formatSeconds(p.elapsed), formatSeconds(p.eta)))
        }
        progress.done()
        r.model = model.model
        r.fileBytes = try fileSize(model.model)
        r.parameters = src.config.parameterCount
        r.text = text
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
        } else {
            print(String(format: "Final estimate: PPL = %.4f +/- %.5f", r.perplexity, r.standardError))
            print(String(format: "%d chunks of %d tokens, %d scored, %.1f s, %.0f tokens/s",
                         r.chunks, r.context, r.tokensScored, r.seconds, r.tokensPerSecond))
            if let k = r.reference {
                print(String(format: "reference PPL = %.4f; mean KL = %.6f +/- %.6f nats (max %.4f); top-1 agreement %.2f %%",
                             k.referencePerplexity, k.meanKL, k.meanKLStandardError, k.maxKL, 100 * k.top1Agreement))
            }
        }
    }
}
