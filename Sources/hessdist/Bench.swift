import ArgumentParser
import Coordinator
import Foundation
import Node

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Micro-benchmarks behind scripts/bench-*.sh (JSON on stdout).",
        subcommands: [Sgemm.self, Forward.self])

    struct Sgemm: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "GFLOP/s of OpenBLAS sgemm at given shapes.")
        @Option(help: "Shapes M,N,K separated by ';'.")
        var shapes = "2048,2048,2048"
        func run() throws {
            var out: [GemmMeasurement] = []
            for s in shapes.split(separator: ";") {
                let d = s.split(separator: ",").compactMap { Int($0) }
                guard d.count == 3, d.allSatisfy({ $0 > 0 }) else { throw ValidationError("--shapes: bad shape '\(s)'") }
                out.append(measureSgemm(M: d[0], N: d[1], K: d[2]))
            }
            print(String(decoding: try JSONEncoder().encode(out), as: UTF8.self))
        }
    }

    struct Forward: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forward pass throughput by kernel family.")
        @OptionGroup var model: ModelOptions
        @Option var batch = 1
        @Option var ctx = 512
        @Option var passes = 3
        func run() throws {
            let src = try openModel(path: model.model)
            let lm = try LlamaModel(source: src, contextLength: ctx)
            let r = try benchmarkForward(model: lm, B: batch, T: ctx, passes: passes)
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
        }
    }
}
