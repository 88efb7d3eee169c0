import Foundation
import Testing
import TestSupport

/// `hessdist quantize --resume`: a job killed after block k (`HESSDIST_FAULT=RANK:k+1:0:kill`, a real
/// SIGKILL) and resumed writes the same bytes as an uninterrupted run — GGUF, GPTQ safetensors, mixed
/// precision, RTN, under mpirun and with another rank count at resume time; a changed option is refused
/// naming it; a damaged block file is redone; the checkpoint is gone after success. Serialized: 2 cores.
@Suite(.serialized) struct ResumeTests {
    static let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OPENBLAS_NUM_THREADS": "1"]
    let stories = TestData.shared("llama2c/stories260K.bin")
    let tok = TestData.shared("llama2c/tok512.bin")
    static let calib = ["--calib", TestData.shared("text/tinystories_valid_sample.txt"), "--nsamples", "8", "--seqlen", "64",
                        "--micro-batch", "2"]

    /// Runs quantize writing `out` on `np` ranks (0: no mpirun) with `fault` as HESSDIST_FAULT; returns
    /// stdout, or the failure when the job fails.
    @discardableResult
    func quantize(np: Int = 0, out: URL, _ args: [String], fault: String? = nil) throws -> String {
        var env = Self.env
        if let fault { env["HESSDIST_FAULT"] = fault }
        return try runHessdist(np: np, ["quantize", "--model", stories, "--tokenizer", tok, "--out", out.path] + args,
                               env: env, forward: fault == nil ? [] : ["HESSDIST_FAULT"])
    }

    /// Runs a job that must fail (a kill or a refusal); returns its failure.
    func failing(np: Int = 0, out: URL, _ args: [String], fault: String? = nil) throws -> ProcessFailure {
        var failure: ProcessFailure?
        do { try quantize(np: np, out: out, args, fault: fault) } catch let e as ProcessFailure { failure = e }
        return try #require(failure, "the job must exit non-zero")
    }

    /// The bytes of the output (a file, or every file of a directory by relative path).
    func bytes(_ out: URL) throws -> [String: Data] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: out.path, isDirectory: &isDir) else { return [:] }
        guard isDir.boolValue else { return ["": try Data(contentsOf: out)] }
        var r: [String: Data] = [:]
        for f in try FileManager.default.subpathsOfDirectory(atPath: out.path).sorted() {
            r[f] = try Data(contentsOf: out.appendingPathComponent(f))
        }
        return r
    }

    func report(_ out: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out.path + ".report.json"))) as! [String: Any]
    }

    func checkpoint(_ out: URL) -> String { out.path + ".partial-ckpt" }

    func blockFiles(_ out: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: checkpoint(out))) ?? []).filter { $0.hasPrefix("block-") }.sorted()
    }

    /// Uninterrupted on `np`; killed (fault on `faultRank` at the start of block `killAt`) on `np`, then
    /// resumed on `resumeNp`: same bytes, blocks 0..<killAt resumed, no checkpoint left.
    func killAndResume(_ args: [String], name: String, np: Int = 0, resumeNp: Int = 0, faultRank: Int = 0, killAt: Int = 2) throws {
        let dir = try TestData.tempDir("resume")
        let base = dir.appendingPathComponent("base" + name), out = dir.appendingPathComponent("out" + name)
        try quantize(np: np, out: base, args)
        let expected = try bytes(base)
        #expect(!expected.isEmpty)
        let f = try failing(np: np, out: out, args, fault: "\(faultRank):\(killAt):0:kill")
        #expect(f.stderr.contains("killing rank \(faultRank)"), "\(f.stderr)")
        #expect(try bytes(out).isEmpty, "no output from a killed job")
        // Rank 0 writes block k's checkpoint after block k; a fault on another rank may kill rank 0
        // while it writes the last one, which a resume then redoes (same bytes either way).
        let saved = blockFiles(out)
        let want = (0..<killAt).map { String(format: "block-%04d.bin", $0) }
        #expect(faultRank == 0 ? saved == want : want.starts(with: saved) && saved.count >= killAt - 1, "\(saved)")
        let stdout = try quantize(np: resumeNp, out: out, args + ["--resume"])
        #expect(try bytes(out) == expected, "resumed output differs from the uninterrupted run")
        let resumed = try report(out)["resumedBlocks"] as? [Int]
        #expect(resumed == Array(0..<saved.count), "\(resumed ?? [])")
        #expect(stdout.contains("resumed blocks 0...\(saved.count - 1)"), "\(stdout)")
        #expect(!FileManager.default.fileExists(atPath: checkpoint(out)), "the checkpoint is removed after success")
        #expect(!FileManager.default.fileExists(atPath: checkpoint(base)), "an uninterrupted run leaves no checkpoint")
    }

    @Test func ggufQ4_0() throws {
        try killAndResume(Self.calib + ["--type", "q4_0"], name: ".gguf")
    }

    @Test func gptqFormatActOrder() throws {
        try killAndResume(Self.calib + ["--format", "gptq", "--bits", "4", "--group-size", "32", "--act-order"], name: "-gptq", killAt: 3)
    }

    @Test func rtnWithoutCalibration() throws {
        try killAndResume(["--method", "rtn", "--no-importance-fit", "--type", "q5_1"], name: ".gguf", killAt: 4)
    }

    @Test func mixedPrecision() throws {
        try killAndResume(Self.calib + ["--target-bpw", "8.25"], name: ".gguf")
        // GPTQ-format mixed precision: the allocation's grids are in the fingerprint ("block storage").
        try killAndResume(Self.calib + ["--format", "gptq", "--group-size=-1", "--target-bpw", "9.2"], name: "-gptq", killAt: 3)
        // Another budget is refused before profiling runs again.
        let out = try TestData.tempDir("resume-mixed").appendingPathComponent("out.gguf")
        _ = try failing(out: out, Self.calib + ["--target-bpw", "8.25"], fault: "0:1:0:kill")
        let f = try failing(out: out, Self.calib + ["--target-bpw", "8.5", "--resume"])
        #expect(f.stderr.contains("--target-bpw/--target-size is --target-bpw 8.5, the checkpoint has --target-bpw 8.25"), "\(f.stderr)")
    }

    /// Killed under 2 ranks (rank 1 dies), resumed under 2; killed on 2 and resumed on one process; killed
    /// on one and resumed on 2: the calibration state is rebuilt, not read, so the rank count may change.
    @Test func underMpirunAndWithAnotherRankCount() throws {
        try killAndResume(Self.calib + ["--type", "q4_0", "--act-order"], name: ".gguf", np: 2, resumeNp: 2, faultRank: 1, killAt: 3)
        try killAndResume(Self.calib + ["--type", "q4_K"], name: ".gguf", np: 2, resumeNp: 0, faultRank: 0, killAt: 2)
        try killAndResume(Self.calib + ["--format", "gptq", "--bits", "8", "--group-size=-1"], name: "-gptq", np: 0, resumeNp: 2, killAt: 3)
    }

    /// A resume with a changed option or calibration is refused naming it, and the checkpoint survives.
    @Test(arguments: [(["--shrink", "0.5"], "--shrink is 0.5, the checkpoint has 0.8"),
                      (["--seed", "3"], "--seed is 3, the checkpoint has 0"),
                      (["--type", "q5_0"], "--type is Q5_0, the checkpoint has Q4_0"),
                      (["--micro-batch", "4"], "--micro-batch is 4, the checkpoint has 2")])
    func changedOptionIsRefused(change: [String], message: String) throws {
        let dir = try TestData.tempDir("resume-refused")
        let out = dir.appendingPathComponent("out.gguf")
        let args = Self.calib + ["--type", "q4_0"]
        _ = try failing(out: out, args, fault: "0:2:0:kill")
        // The changed option comes last, so it overrides the first value.
        let f = try failing(out: out, args + change + ["--resume"])
        #expect(f.stderr.contains(message) && f.stderr.contains("hint: rerun with the same"), "\(f.stderr)")
        #expect(blockFiles(out).count == 2, "a refused resume keeps the checkpoint")
        #expect(try bytes(out).isEmpty)
    }

    /// A damaged block file fails its checksum: it and every later block are redone, the report says
    /// why, and the bytes are still those of an uninterrupted run.
    @Test func damagedBlockIsRedone() throws {
        let dir = try TestData.tempDir("resume-damaged")
        let base = dir.appendingPathComponent("base.gguf"), out = dir.appendingPathComponent("out.gguf")
        let args = Self.calib + ["--type", "q4_0"]
        try quantize(out: base, args)
        _ = try failing(out: out, args, fault: "0:4:0:kill")
        #expect(blockFiles(out).count == 4)
        let path = checkpoint(out) + "/block-0001.bin"
        var d = try Data(contentsOf: URL(fileURLWithPath: path))
        d[d.count / 2] ^= 0x10
        try d.write(to: URL(fileURLWithPath: path))
        try quantize(out: out, args + ["--resume"])
        #expect(try bytes(out) == bytes(base))
        let r = try report(out)
        #expect(r["resumedBlocks"] as? [Int] == [0])
        let note = r["checkpointNote"] as? String ?? ""
        #expect(note.contains("block-0001.bin") && note.contains("CRC32C") && note.contains("redoing blocks 1...4"), "\(note)")
    }

    /// A job that fails after its last block (here the export: `--out` is a directory) resumes every
    /// block and only exports.
    @Test func failedExportResumesEveryBlock() throws {
        let dir = try TestData.tempDir("resume-export")
        let base = dir.appendingPathComponent("base.gguf"), out = dir.appendingPathComponent("out.gguf")
        let args = Self.calib + ["--type", "q4_0"]
        try quantize(out: base, args)
        try FileManager.default.createDirectory(at: out.appendingPathComponent("x"), withIntermediateDirectories: true)
        let f = try failing(out: out, args)
        #expect(f.stderr.contains("rename"), "\(f.stderr)")
        #expect(blockFiles(out).count == 5)
        try FileManager.default.removeItem(at: out)
        try quantize(out: out, args + ["--resume"])
        #expect(try bytes(out) == bytes(base))
        #expect(try report(out)["resumedBlocks"] as? [Int] == [0, 1, 2, 3, 4])
    }

    /// `--resume` with no checkpoint starts fresh; without `--resume` an existing checkpoint is replaced.
    @Test func resumeWithoutCheckpointAndRunWithoutResume() throws {
        let dir = try TestData.tempDir("resume-fresh")
        let base = dir.appendingPathComponent("base.gguf"), out = dir.appendingPathComponent("out.gguf")
        let args = Self.calib + ["--type", "q4_0"]
        try quantize(out: base, args)
        try quantize(out: out, args + ["--resume"])
        #expect(try bytes(out) == bytes(base))
        var r = try report(out)
        #expect(r["resumedBlocks"] as? [Int] == [])
        #expect((r["checkpointNote"] as? String ?? "").contains("starting fresh"))
        try FileManager.default.removeItem(at: out)
        _ = try failing(out: out, args, fault: "0:3:0:kill")
        #expect(blockFiles(out).count == 3)
        try quantize(out: out, args)
        #expect(try bytes(out) == bytes(base))
        r = try report(out)
        #expect(r["resumedBlocks"] as? [Int] == [])
        #expect((r["checkpointNote"] as? String ?? "").contains("replaced the checkpoint"))
        #expect(!FileManager.default.fileExists(atPath: checkpoint(out)))
    }
}
