import ArgumentParser
import Foundation
import Node

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Greedy decoding, for sanity checks.")

    @OptionGroup var model: ModelOptions

    @Option(help: "Prompt text (default: start from BOS alone).")
    var prompt: String = ""

    @Option(name: .short, help: "Tokens to generate.")
    var n: Int = 64

    func validate() throws {
        guard n >= 0 else { throw ValidationError("-n \(n): expected >= 0") }
    }

    func run() throws {
        let (src, tok) = try model.open()
        var ids = tok.encode(prompt, addBOS: tok.bosToken != nil && (tok.addsBOS || prompt.isEmpty))
        guard !ids.isEmpty else { throw ValidationError("empty prompt and the tokenizer has no BOS token") }
        let lm = try LlamaModel(source: src, contextLength: ids.count + n)
        let out = FileHandle.standardOutput
        out.write(Data(tok.decode(Array(ids.drop { $0 == tok.bosToken })).utf8))
        var pending: [UInt8] = []
        let cache = lm.makeCache(B: 1, capacity: ids.count + n)
        var logits = [Float](repeating: 0, count: src.config.vocabSize)
        // The prompt goes through the cache one token at a time; its last step gives the first prediction.
        for t in ids.dropLast() {
            try logits.withUnsafeMutableBufferPointer { try lm.decodeStep(tokens: [t], cache: cache, into: $0.baseAddress!) }
        }
        var last = ids.last!
        for _ in 0..<n {
            try logits.withUnsafeMutableBufferPointer { try lm.decodeStep(tokens: [last], cache: cache, into: $0.baseAddress!) }
            let next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
            last = next
            if next == tok.eosToken { break }
            ids.append(next)
            // Print whole UTF-8 characters only: a token may end inside one.
            var piece = tok.decode(next)
            // After a lone BOS, SentencePiece vocabularies carry a leading space the text never had.
            if ids.count == 2, ids[0] == tok.bosToken, prompt.isEmpty, piece.first == 32 { piece.removeFirst() }
            pending += piece
            if String(validating: pending, as: UTF8.self) != nil {
                out.write(Data(pending))
                pending.removeAll()
            }
        }
        out.write(Data(pending + [10]))
    }
}
