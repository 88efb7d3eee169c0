import Foundation
import Testing
import TestSupport
import HessianDist
import Node

/// The CLI as a user runs it.
@Suite struct CLITests {
    let stories = TestData.shared("llama2c/stories260K.bin")
    let tok512 = TestData.shared("llama2c/tok512.bin")

    @Test func generateReproducesLlama2cGreedyOutput() throws {
        let out = try run(hessdistBinary, ["generate", "--model", stories, "--tokenizer", tok512, "-n", "40"])
        #expect(out.hasPrefix("Once upon a time, there was a little girl named Lily. She loved to play outside in the park."),
                "got: \(out)")
    }

    @Test func inspectPrintsArchitecture() throws {
        let out = try run(hessdistBinary, ["inspect", stories])
        #expect(out.contains("dim 64") && out.contains("layers 5") && out.contains("parameters: 260032"))
        #expect(out.contains("blk.4.ffn_down.weight"))
    }

    @Test func evalPrintsPerplexityAndJSON() throws {
        let text = TestData.shared("text/tinystories_valid_sample.txt")
        let out = try run(hessdistBinary, ["eval", "--model", stories, "--tokenizer", tok512, "--text", text,
                                           "--ctx", "128", "--chunks", "4", "--json"])
        let j = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
        let ppl = j["perplexity"] as! Double
        // stories260K is a tiny model trained on TinyStories: PPL is low single digits on its own domain.
        #expect(ppl > 1 && ppl < 20, "ppl \(ppl)")
        #expect(j["chunks"] as? Int == 4 && j["tokensScored"] as? Int == 4 * 63)
    }

    /// The kernels the tool computes with are as wide as the CPU allows (OpenBLAS alone falls back to SSE
    /// on CPU models newer than it), and a user's OPENBLAS_CORETYPE is obeyed as given.
    @Test func openBLASKernelsMatchTheCPU() throws {
        func core(_ env: [String: String]) throws -> String {
            let out = try run(hessdistBinary, ["bench", "sgemm", "--shapes", "64,64,64"], env: env)
            let j = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [[String: Any]]
            return j[0]["core"] as! String
        }
        let flags = BLASKernelSelection.cpuFlags(cpuinfo: try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))
        let chosen = try core([:])
        if let level = BLASCore.level(ofCore: chosen) {
            #expect(level >= BLASCore.level(cpuFlags: flags), "OpenBLAS runs \(chosen) kernels on a CPU with \(BLASCore.level(cpuFlags: flags))")
        }
        #expect(try core(["OPENBLAS_CORETYPE": "Prescott"]) == "Prescott")
    }

    @Test func badInputGivesClearErrors() throws {
        #expect { try run(hessdistBinary, ["eval", "--model", "/nonexistent.gguf", "--text", stories]) } throws: { e in
            "\(e)".contains("/nonexistent.gguf")
        }
        // A llama2.c model without a tokenizer: the error says what to pass.
        #expect { try run(hessdistBinary, ["generate", "--model", stories, "-n", "1"]) } throws: { e in
            "\(e)".contains("--tokenizer")
        }
    }
}
