import Foundation
import Testing
import TestSupport

/// `hessdist quantize|profile --job FILE.toml`: a job file writes the same bytes as the same job given as
/// flags (with and without mpirun), flags override it, and a typo or a wrong rank count is refused.
/// Serialized: the machine has 2 cores.
@Suite(.serialized) struct JobFileCLITests {
    static let env = DataParallelQuantizeTests.env
    let stories = TestData.shared("llama2c/stories260K.bin")
    let tok = TestData.shared("llama2c/tok512.bin")
    let text = TestData.shared("text/tinystories_valid_sample.txt")

    /// `hessdist ARGS` without mpirun (np 0) or on np ranks, as DataParallelQuantizeTests runs them.
    @discardableResult
    func hessdist(np: Int, _ args: [String]) throws -> String {
        try runHessdist(np: np, args, env: Self.env)
    }

    func write(_ toml: String, _ dir: URL, _ name: String = "job.toml") throws -> String {
        let p = dir.appendingPathComponent(name).path
        try toml.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    func bytes(_ p: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: p)) }

    /// Every option kind: strings, integers, floats, a negative number, flags on and off, an inverted flag.
    func uniformJob(out: String, ranks: Int) -> String {
        """
        # GPTQ to Q4_0 on stories260K
        [model]
        path = "\(stories)"
        tokenizer = '\(tok)'
        [calibration]
        text = "\(text)"
        nsamples = 8
        seqlen = 64
        seed = 3
        micro_batch = 2
        [quantize]
        type = "Q4_0"
        method = "gptq"
        shrink = 0.5
        damp = 0.02
        act_order = true
        importance_fit = false
        [output]
        path = "\(out)"
        [cluster]
        ranks = \(ranks)
        """
    }

    var uniformFlags: [String] {
        ["--model", stories, "--tokenizer", tok, "--calib", text, "--nsamples", "8", "--seqlen", "64", "--seed", "3",
         "--micro-batch", "2", "--type", "Q4_0", "--method", "gptq", "--shrink", "0.5", "--damp", "0.02", "--act-order",
         "--no-importance-fit"]
    }

    @Test func jobFileWritesTheSameBytesAsFlags() throws {
        let dir = try TestData.tempDir("job")
        let flagsOut = dir.appendingPathComponent("flags.gguf").path
        try hessdist(np: 0, ["quantize"] + uniformFlags + ["--out", flagsOut])
        let expected = try bytes(flagsOut)
        for np in [0, 2] {
            let out = dir.appendingPathComponent("job\(np).gguf").path
            let job = try write(uniformJob(out: out, ranks: max(np, 1)), dir, "job\(np).toml")
            let stdout = try hessdist(np: np, ["quantize", "--job", job])
            #expect(try bytes(out) == expected, "np \(np): the job file's output differs from the flags'")
            if np == 2 { #expect(stdout.contains("data parallel over 2 ranks"), "\(stdout)") }
        }
        // The same file with default shrink and importance fit (flags after it override it) is the default job.
        let defaultsOut = dir.appendingPathComponent("defaults.gguf").path
        var flags = uniformFlags
        flags.removeAll { $0 == "--no-importance-fit" }
        flags.removeSubrange(flags.firstIndex(of: "--shrink")!...flags.firstIndex(of: "--shrink")! + 1)
        try hessdist(np: 0, ["quantize"] + flags + ["--out", defaultsOut])
        let overridden = dir.appendingPathComponent("overridden.gguf").path
        let job = try write(uniformJob(out: "/nonexistent/never-written.gguf", ranks: 2), dir, "override.toml")
        try hessdist(np: 0, ["quantize", "--job", job, "--shrink", "0.8", "--importance-fit", "--ranks=1", "--out", overridden])
        #expect(try bytes(overridden) == bytes(defaultsOut))
        #expect(try bytes(overridden) != expected, "the overrides changed nothing: the test cannot tell")
    }

    /// One file for profile then quantize: profile writes [profile] stats, quantize allocates from it.
    @Test func mixedPrecisionProfileThenQuantize() throws {
        let dir = try TestData.tempDir("jobmixed")
        let common = ["--model", stories, "--tokenizer", tok, "--calib", text, "--nsamples", "8", "--seqlen", "64", "--micro-batch", "2"]
        let statsF = dir.appendingPathComponent("flags.safetensors").path, outF = dir.appendingPathComponent("flags.gguf").path
        try hessdist(np: 0, ["profile"] + common + ["--traces", "fisher", "--fisher-samples", "4", "--out", statsF])
        try hessdist(np: 0, ["quantize"] + common + ["--stats", statsF, "--target-bpw", "9.0", "--sensitivity", "fisher",
                                                     "--pin", "token_embd.weight=Q8_0", "--out", outF])
        let statsJ = dir.appendingPathComponent("job.safetensors").path, outJ = dir.appendingPathComponent("job.gguf").path
        let job = try write("""
            [model]
            path = "\(stories)"
            tokenizer = "\(tok)"
            [calibration]
            text = "\(text)"
            nsamples = 8
            seqlen = 64
            micro_batch = 2
            [profile]
            stats = "\(statsJ)"
            traces = ["fisher"]
            fisher_samples = 4
            html = "\(dir.appendingPathComponent("profile.html").path)"
            [mixed]
            target_bpw = 9.0
            sensitivity = "fisher"
            pins = ["token_embd.weight=Q8_0"]
            [output]
            path = "\(outJ)"
            html = "\(dir.appendingPathComponent("quantize.html").path)"
            [cluster]
            ranks = 2
            """, dir)
        try hessdist(np: 2, ["profile", "--job", job])
        let stdout = try hessdist(np: 2, ["quantize", "--job", job])
        #expect(try bytes(statsJ).count > 0 && bytes(outJ) == bytes(outF), "\(stdout)")
        #expect(stdout.contains("mixed precision (fisher"), "\(stdout)")
        // Each command's page: the profile's statistics alone, quantize's with its allocation.
        let profilePage = try String(contentsOfFile: dir.appendingPathComponent("profile.html").path, encoding: .utf8)
        let quantizePage = try String(contentsOfFile: dir.appendingPathComponent("quantize.html").path, encoding: .utf8)
        #expect(profilePage.contains("id=\"heat-fisher\"") && !profilePage.contains("id=\"frontier\""))
        #expect(quantizePage.contains("id=\"frontier\"") && quantizePage.contains("id=\"types\""))
    }

    @Test func refusesTyposWrongValuesAndRankCounts() throws {
        let dir = try TestData.tempDir("jobbad")
        func failure(np: Int = 0, _ toml: String, _ extra: [String] = [], command: String = "quantize") throws -> String {
            let job = try write(toml, dir)
            do {
                try hessdist(np: np, [command, "--job", job] + extra)
            } catch let e as ProcessFailure {
                return e.stderr
            }
            Issue.record("\(command) accepted \(toml)")
            return ""
        }
        let model = "[model]\npath = \"\(stories)\"\ntokenizer = \"\(tok)\"\n"
        var e = try failure(model + "[calibration]\nnsample = 8\n", ["--out", "/tmp/x"])
        #expect(e.contains("job.toml:5:1: unknown key 'nsample' in [calibration] (did you mean 'nsamples'?); valid keys there: micro_batch, nsamples, seed, seqlen, text"), "\(e)")
        e = try failure(model + "[quantise]\ntype = 'Q4_0'\n", ["--out", "/tmp/x"], command: "profile")
        #expect(e.contains("unknown table [quantise] (did you mean 'quantize'?); the tables are [calibration], [cluster], [gptq], [mixed], [model], [output], [profile], [quantize]"), "\(e)")
        e = try failure(model + "[mixed]\ntarget_bpw = \"lots\"\n[output]\npath = '/tmp/x'\n")
        #expect(e.contains("--target-bpw") && e.contains("note: --target-bpw is [mixed] target_bpw at \(dir.path)/job.toml:5:1"), "\(e)")
        e = try failure(model + "[quantize]\nshrink = 1.5\n[output]\npath = '/tmp/x'\n")
        #expect(e.contains("--shrink 1.5: expected β in [0, 1]") && e.contains("note: --shrink is [quantize] shrink"), "\(e)")
        e = try failure(model + "[quantize]\nact_order = 'yes'\n", ["--out", "/tmp/x"])
        #expect(e.contains("[quantize] act_order: expected true or false (--act-order is a flag), found a string"), "\(e)")
        e = try failure(model + "[cluster]\nranks = 1\njob = 'other.toml'\n", ["--out", "/tmp/x"])
        #expect(e.contains("unknown key 'job' in [cluster]; valid keys there: memory_per_rank, ranks, stages"), "\(e)")
        e = try failure(model + "[quantize]\ntype = 'Q4_0'\n[quantize]\n", ["--out", "/tmp/x"])
        #expect(e.contains("job.toml:6:1: you cannot define a table more than once"), "\(e)")
        // The planned world size against the actual one, both named, before any work.
        e = try failure(np: 2, model + "[calibration]\nnsamples = 8\nseqlen = 32\n[output]\npath = '\(dir.path)/o.gguf'\n[cluster]\nranks = 4\n")
        #expect(e.contains("[cluster] ranks = 4 (\(dir.path)/job.toml:10:1) expects 4 MPI ranks, but this job runs on 2 ranks (mpirun -np 2)"), "\(e)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/o.gguf"))
    }

    /// The example job files in cluster-configs/ parse and validate for both commands: with the model, texts
    /// and stats swapped for ones here, each stops only at its rank check (so every key was taken and validated).
    @Test func clusterConfigExamplesAreValidJobs() throws {
        let configs = TestData.packageRoot.appendingPathComponent("cluster-configs")
        let jobs = try FileManager.default.contentsOfDirectory(atPath: configs.path).filter { $0.hasSuffix(".toml") }.sorted()
        #expect(jobs.count == 3, "\(jobs)")
        for j in jobs {
            for command in ["quantize", "profile"] {
                // --stats only has to exist to pass validation; the rank check stops the job before it is read.
                let extra = command == "quantize" && j.contains("mixed") ? ["--stats", tok] : []
                do {
                    try hessdist(np: 0, [command, "--job", configs.appendingPathComponent(j).path, "--model", stories,
                                         "--tokenizer", tok, "--calib", text, "--ranks", "3", "--out", "/nonexistent/x"] + extra)
                    Issue.record("\(command) --job \(j) ran")
                } catch let e as ProcessFailure {
                    #expect(e.stderr.contains("--ranks 3 expects 3 MPI ranks, but this job runs on 1 rank"), "\(command) \(j): \(e.stderr)")
                }
            }
        }
    }
}
