import ArgumentParser
import Coordinator
import Foundation
import HessianDist
import Node

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Micro-benchmarks behind scripts/bench-*.sh (JSON on stdout).",
        subcommands: [Sgemm.self, Forward.self, Gptq.self])

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

    struct Gptq: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "GPTQ phases (accumulate, invert, sweep) per module shape against the cost model.")
        @Option(help: "Module shapes rows,cols separated by ';' (default: SmolLM2-135M's q, k/v, gate/up, down).")
        var shapes = "576,576;192,576;1536,576;576,1536"
        @Option(help: "Calibration tokens (rows of X).") var tokens = 65536
        @Option(help: "Grid: a ggml type (q4_0, q4_K, ...) or intB-gG (e.g. int4-g128).") var grid = "q4_0"
        @Flag(help: "Time the scale refit after the sweep too (`quantize --refit-scales`).") var refitScales = false
        func run() throws {
            var out: [GPTQBenchmark] = []
            for s in shapes.split(separator: ";") {
                let d = s.split(separator: ",").compactMap { Int($0) }
                guard d.count == 2, d.allSatisfy({ $0 > 0 }) else { throw ValidationError("--shapes: bad shape '\(s)'") }
                let g: any QuantGrid
                if grid.hasPrefix("int") {
                    let p = grid.dropFirst(3).split(separator: "-g").compactMap { Int($0) }
                    guard p.count == 2 else { throw ValidationError("--grid \(grid): expected intB-gG, e.g. int4-g128") }
                    g = try IntegerGroupGrid(bits: p[0], groupSize: p[1], columns: d[1])
                } else {
                    guard let t = GGMLType(name: grid) else { throw ValidationError("--grid \(grid): unknown ggml type") }
                    g = try GGMLGrid(type: t)
                }
                out.append(try benchmarkGPTQ(rows: d[0], cols: d[1], tokens: tokens, grid: g, gridName: grid,
                                          refitScales: refitScales))
            }
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(out), as: UTF8.self))
        }
    }
}
