import ArgumentParser
import Foundation
import Node

/// Options every command that loads a model shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model: GGUF file, llama2.c .bin, or safetensors file/directory (with config.json).")
    var model: String

    @Option(name: .long, help: "Tokenizer file for formats that do not embed one (llama2.c tokenizer.bin).")
    var tokenizer: String?

    func validate() throws {
        guard FileManager.default.fileExists(atPath: model) else {
            throw ValidationError("--model \(model): no such file or directory")
        }
        if let t = tokenizer, !FileManager.default.fileExists(atPath: t) {
            throw ValidationError("--tokenizer \(t): no such file")
        }
    }

    func open() throws -> (WeightSource, Tokenizer) {
        let src = try openModel(path: model)
        return (src, try openTokenizer(for: src, path: tokenizer))
    }
}

/// Progress on stderr, one line redrawn in place when stderr is a terminal.
struct ProgressLine {
    let tty = isatty(STDERR_FILENO) != 0
    func show(_ s: String) {
        FileHandle.standardError.write(Data(((tty ? "\r\u{1B}[K" : "") + s + (tty ? "" : "\n")).utf8))
    }
    func done() { if tty { FileHandle.standardError.write(Data("\n".utf8)) } }
}

func formatSeconds(_ s: Double) -> String {
    s >= 90 ? String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) : String(format: "%.1fs", s)
}
