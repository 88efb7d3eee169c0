import Foundation
import Testing
import TestSupport

/// Owner-rank GPTQ under mpirun: modules solved on ranks other than 0 come back to rank 0 with the same
/// report numbers (errors, damping, fallback) as a single process, and a mixed-precision plan (known on
/// rank 0 only) reaches the owners, so the file has the same bytes. Serialized: the machine has 2 cores.
@Suite(.serialized) struct OwnerRankTests {
    static let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OPENBLAS_NUM_THREADS": "1"]
    let stories = TestData.shared("llama2c/stories260K.bin")
    let tok = TestData.shared("llama2c/tok512.bin")
    static let calib = ["--calib", TestData.shared("text/tinystories_valid_sample.txt"), "--nsamples", "8", "--seqlen", "64",
                        "--micro-batch", "2"]

    /// Runs quantize on `np` ranks (0: no mpirun); returns the output file's bytes and the report.
    func quantize(np: Int, _ args: [String]) throws -> (bytes: Data, report: [String: Any]) {
        let dir = try TestData.tempDir("owner\(np)")
        let out = dir.appendingPathComponent("out.gguf").path
        try runHessdist(np: np, ["quantize", "--model", stories, "--tokenizer", tok, "--out", out] + Self.calib + args, env: Self.env)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + ".report.json"))) as! [String: Any]
        return (try Data(contentsOf: URL(fileURLWithPath: out)), report)
    }

    /// Each module's report without its timing.
    func modules(_ r: [String: Any]) -> [NSDictionary] {
        (r["modules"] as! [[String: Any]]).map { m in
            var m = m
            m["seconds"] = nil
            return m as NSDictionary
        }
    }

    func wireMessages(_ r: [String: Any], _ kind: String) -> Int {
        ((r["wire"] as? [[String: Any]]) ?? []).first { $0["kind"] as? String == kind }?["messages"] as? Int ?? 0
    }

    @Test func reportsMatchAndOwnersSolve() throws {
        let base = try quantize(np: 0, ["--type", "q4_0", "--act-order"])
        for np in [2, 4] {
            let r = try quantize(np: np, ["--type", "q4_0", "--act-order"])
            #expect(r.bytes == base.bytes, "np \(np): different file bytes")
            #expect(modules(r.report) == modules(base.report), "np \(np): module reports differ")
            // stories260K: q/k/v split over 2 or 3 ranks and gate/up over 2, so per block 3 modules come
            // back from another rank, 6 messages each.
            #expect(wireMessages(r.report, "quantizedLinear") == 5 * 3 * 6, "np \(np): \(r.report["wire"] ?? "")")
            // The chain: one hop per rank boundary per group (5 blocks x 4 groups, and the output head's,
            // which rank 0 solves), plus H to each other owner.
            let owners = np == 2 ? 2 : 3
            #expect(wireMessages(r.report, "hessian") == (5 * 4 + 1) * (np - 1) + 5 * owners, "np \(np)")
        }
    }

    @Test func mixedPrecisionPlanReachesTheOwners() throws {
        let args = ["--target-bpw", "8.25"]
        let base = try quantize(np: 0, args)
        let r = try quantize(np: 2, args)
        #expect(r.bytes == base.bytes, "mixed precision under 2 ranks wrote different bytes")
        #expect(modules(r.report) == modules(base.report))
        #expect(wireMessages(r.report, "quantizedLinear") > 0)
    }

    /// A rank that fails inside the job (here by `HESSDIST_FAULT`) aborts every rank quickly, and the
    /// message names the rank, the stage and the cause; whichever rank fails, the others do not hang in
    /// the collective they are waiting in.
    @Test(arguments: [(1, 1, 2, "block 1 group gate/up"), (0, 2, 3, "block 2 group down")])
    func failingRankAbortsWithRankStageAndCause(rank: Int, block: Int, group: Int, stage: String) throws {
        let dir = try TestData.tempDir("fault")
        let fault = "\(rank):\(block):\(group)"
        var env = Self.env
        env["HESSDIST_FAULT"] = fault
        let cmd = [hessdistBinary, "quantize", "--model", stories, "--tokenizer", tok, "--type", "q4_0",
                   "--out", dir.appendingPathComponent("out.gguf").path] + Self.calib
        let f = try Self.failingJob(cmd, env: env)
        #expect(f.stderr.contains("rank \(rank) of 2 failed") && f.stderr.contains(stage)
                && f.stderr.contains("injected fault (HESSDIST_FAULT=\(fault))"), "\(f.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out.gguf").path), "no partial output")
    }

    /// A pipeline stage that fails (or is killed) in the middle of the profile's Fisher pass, while its
    /// neighbour waits for its activations, ends the job quickly; an error names the rank and the cause.
    /// A bad stage count is refused before any work.
    @Test(arguments: [(1, false), (0, false), (1, true)])
    func failingPipelineStageAbortsTheJob(rank: Int, kill: Bool) throws {
        let dir = try TestData.tempDir("fault-stage")
        let fault = "\(rank):fisher:2" + (kill ? ":kill" : "")
        var env = Self.env
        env["HESSDIST_FAULT"] = fault
        let cmd = [hessdistBinary, "profile", "--model", stories, "--tokenizer", tok, "--fisher-samples", "4", "--stages", "2",
                   "--out", dir.appendingPathComponent("s.safetensors").path] + Self.calib
        let f = try Self.failingJob(cmd, env: env)
        if kill {
            #expect(f.stderr.contains("killing rank \(rank)"), "\(f.stderr)")
        } else {
            #expect(f.stderr.contains("rank \(rank) of 2 failed") && f.stderr.contains("injected fault (HESSDIST_FAULT=\(fault))"), "\(f.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("s.safetensors").path), "no partial output")
        var three = Array(cmd.dropFirst())
        three[three.firstIndex(of: "--stages")! + 1] = "3"
        #expect { try runHessdist(np: 2, three, env: Self.env) } throws: { e in
            "\(e)".contains("--stages 3 with 2 ranks: expected a divisor of the rank count")
        }
    }

    /// Runs `cmd` on 2 ranks with HESSDIST_FAULT forwarded: it must fail (not time out) within 30 s.
    static func failingJob(_ cmd: [String], env: [String: String]) throws -> ProcessFailure {
        let t0 = Date()
        var failure: ProcessFailure?
        do {
            _ = try run("timeout", ["60", "mpirun", "-np", "2", "--mca", "btl", "self,vader", "--bind-to", "none",
                                    "-x", "OPENBLAS_NUM_THREADS=1", "-x", "HESSDIST_FAULT"] + cmd, env: env)
        } catch let e as ProcessFailure { failure = e }
        let f = try #require(failure, "the job must exit non-zero")
        #expect(f.status != 0 && f.status != 124, "exit \(f.status) (124 = timed out)")
        #expect(Date().timeIntervalSince(t0) < 30)
        return f
    }

    @Test func malformedFaultVariableIsAnError() throws {
        let dir = try TestData.tempDir("fault-bad")
        var env = Self.env
        env["HESSDIST_FAULT"] = "1:2"
        #expect { try run(hessdistBinary, ["quantize", "--model", stories, "--tokenizer", tok, "--type", "q4_0",
                                           "--out", dir.appendingPathComponent("o.gguf").path] + Self.calib, env: env) } throws: { e in
            "\(e)".contains("HESSDIST_FAULT=1:2") && "\(e)".contains("at setup")
        }
    }
}
