// The command-line tool: parse, call, print. Only this target exits.
import ArgumentParser

@main
struct HessDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hessdist",
        abstract: "Hessian-guided mixed-precision quantization of LLaMA-family models.",
        subcommands: [Inspect.self, Eval.self, Generate.self, Bench.self])
}
