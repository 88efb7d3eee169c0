import ArgumentParser
import Node

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a model's architecture, parameter count and tensors.")

    @Argument(help: "A GGUF file, a llama2.c .bin, or a safetensors file/directory with config.json.")
    var model: String

    func run() throws {
        let src = try openModel(path: model)
        let c = src.config
        print("model: \(src.path) (\(src.format))")
        print("architecture: \(c.architecture)  dim \(c.dim)  ffn \(c.hiddenDim)  layers \(c.nLayers)  heads \(c.nHeads)/\(c.nKVHeads) kv  head_dim \(c.headDim)")
        print("vocab \(c.vocabSize)  context \(c.contextLength)  rope theta \(c.ropeTheta) (\(c.ropeLayout.rawValue))  norm eps \(c.normEps)  tied embeddings \(c.tiedEmbeddings)")
        print("parameters: \(c.parameterCount)")
        for t in src.tensors {
            let name = t.name.padding(toLength: 32, withPad: " ", startingAt: 0)
            print("  \(name) \(t.type.description.padding(toLength: 5, withPad: " ", startingAt: 0)) \(t.shape)")
        }
    }
}
