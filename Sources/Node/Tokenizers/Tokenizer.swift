// The tokenizer interface every format provides (llama2.c .bin, GGUF `llama` and `gpt2`).

public protocol Tokenizer: Sendable {
    var vocabSize: Int { get }
    var bosToken: Int32? { get }
    var eosToken: Int32? { get }
    /// Whether the model expects BOS at the start of a text (GGUF `tokenizer.ggml.add_bos_token`).
    var addsBOS: Bool { get }
    /// Token ids of `text`, as llama.cpp's `llama_tokenize(add_special: addBOS, parse_special: false)`.
    func encode(_ text: String, addBOS: Bool) -> [Int32]
    /// The bytes a token stands for when printed (byte-fallback tokens give their byte).
    func decode(_ token: Int32) -> [UInt8]
}

extension Tokenizer {
    public func decode(_ tokens: [Int32]) -> String {
        var bytes: [UInt8] = []
        for t in tokens { bytes += decode(t) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
