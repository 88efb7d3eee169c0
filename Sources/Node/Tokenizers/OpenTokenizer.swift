// The tokenizer that goes with a model: embedded in GGUF, or a llama2.c tokenizer.bin given by path.

public func openTokenizer(for source: WeightSource, path: String?) throws -> Tokenizer {
    if let path {
        return try Llama2cTokenizer(path: path, vocabSize: source.config.vocabSize)
    }
    if let g = source as? GGUFModel {
        return try makeGGUFTokenizer(metadata: g.gguf.metadata)
    }
    throw ModelFormatError(file: source.path, field: "tokenizer", expected: "a tokenizer embedded in the model",
                           found: "none in a \(source.format) file",
                           hint: "pass --tokenizer with a llama2.c tokenizer.bin (e.g. tok512.bin for stories260K)")
}
