import Foundation
import Testing
import TestSupport
import Node

/// `hessdist quantize` data parallel under mpirun: the output bytes are the same without mpirun and with
/// 1, 2 and 4 ranks (micro-shards fixed by --micro-batch, partial Hessians merged in micro-shard order).
/// Serialized: the machine has 2 cores.
@Suite(.serialized) struct DataParallelQuantizeTests {
    /// One BLAS thread in every run, with and without mpirun: OpenBLAS's summation order depends on its
    /// thread count, and the importance-weighted scale search can flip on the last bit of diag(H).
    static let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OPENBLAS_NUM_THREADS": "1"]
    let stories = TestData.shared("llama2c/stories260K.bin")
    let tok = TestData.shared("llama2c/tok512.bin")

    /// Runs quantize with `np` ranks (0: no mpirun) writing into a fresh directory; returns that directory
    /// and stdout.
    func quantize(np: Int, _ args: [String]) throws -> (dir: URL, stdout: String) {
        let dir = try TestData.tempDir("dp\(np)")
        let cmd = ["quantize", "--model", stories, "--tokenizer", tok, "--out", dir.appendingPathComponent("out").path] + args
        return (dir, try runHessdist(np: np, cmd, env: Self.env))
    }

    /// The bytes of every output file under `dir` (the JSON report excluded: it holds timings), by relative path.
    func digests(_ dir: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let fm = FileManager.default
        for f in try fm.subpathsOfDirectory(atPath: dir.path).sorted() where !f.hasSuffix(".report.json") {
            var isDir: ObjCBool = false
            let p = dir.appendingPathComponent(f).path
            guard fm.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue else { continue }
            out[f] = try Data(contentsOf: URL(fileURLWithPath: p))
        }
        return out
    }

    func sameBytesForAnyRankCount(_ args: [String]) throws {
        let base = try quantize(np: 0, args)
        let expected = try digests(base.dir)
        #expect(!expected.isEmpty)
        for np in [1, 2, 4] {
            let r = try quantize(np: np, args)
            let got = try digests(r.dir)
            #expect(got.keys.sorted() == expected.keys.sorted(), "np \(np) wrote \(got.keys.sorted())")
            for (f, d) in expected { #expect(got[f] == d, "np \(np): \(f) has different bytes") }
            // Rank 0 alone prints the summary and the wire bytes.
            #expect(r.stdout.components(separatedBy: "wrote ").count == 2, "\(r.stdout)")
            if np > 1 {
                #expect(r.stdout.contains("data parallel over \(np) ranks") && r.stdout.contains("hessian"), "\(r.stdout)")
            }
        }
    }

    static let calib = ["--calib", TestData.shared("text/tinystories_valid_sample.txt"), "--nsamples", "8", "--seqlen", "64"]

    @Test func ggufQ4_0() throws {
        // 8 samples in micro-batches of 2: 4 micro-shards, so 4 ranks own one each.
        try sameBytesForAnyRankCount(Self.calib + ["--micro-batch", "2", "--type", "q4_0"])
    }

    @Test func gptqInt8PerRow() throws {
        // Default micro-batch 4: 2 micro-shards, so with 4 ranks two own nothing (and still join every collective).
        try sameBytesForAnyRankCount(Self.calib + ["--format", "gptq", "--bits", "8", "--group-size=-1"])
    }

    @Test func mixedPrecision() throws {
        // The profile's layer Hessians are reduced like GPTQ's; rank 0 allocates and broadcasts the types.
        try sameBytesForAnyRankCount(Self.calib + ["--micro-batch", "2", "--target-bpw", "8.5"])
    }

    @Test func mixedPrecisionGPTQ() throws {
        // GPTQ-format allocation on rank 0, its bit widths broadcast as labels; every rank solves on the same grids.
        try sameBytesForAnyRankCount(Self.calib + ["--micro-batch", "2", "--format", "gptq", "--group-size=-1", "--target-bpw", "9.2"])
    }

    /// `profile` under mpirun: Fisher sequences and Hutchinson per-sequence products split over the replicas
    /// (5 and 3 sequences: uneven for 2 and 4, and idle replicas at 4), only per-tensor scalars gathered;
    /// with pipeline stages the residual stream and its gradient pass between the stages (the tied
    /// embedding / head on stage 0), and the eigenvalues' power iterations run on replica 0's stages; the
    /// GPTQ-priced KL damage is measured on rank 0 beside the layer pass.
    /// Every statistic is the same bits as one process (timings aside).
    @Test func profileStatistics() throws {
        func stats(np: Int, stages: Int = 1) throws -> (json: Data, tensors: [String: Data], traced: Int, eigen: Int, topology: String, kl: Int) {
            let dir = try TestData.tempDir("prof\(np)x\(stages)")
            let out = dir.appendingPathComponent("stats.safetensors").path
            let cmd = ["profile", "--model", stories, "--tokenizer", tok, "--micro-batch", "2", "--traces", "fisher,hutchinson,sampled-fisher",
                       "--fisher-samples", "5", "--fisher-row-block", "16", "--hutchinson-samples", "3", "--max-probes", "12",
                       "--eigenvalues", "blk.1.attn_q,blk.4.attn_k,token_embd", "--eigen-iterations", "4",
                       "--gptq-errors", "--kl-samples", "2", "--stages", "\(stages)", "--out", out,
                       "--html", dir.appendingPathComponent("stats.html").path] + Self.calib
            try runHessdist(np: np, cmd, env: Self.env)
            // Rank 0 writes the readable report; every heatmap mark is the file's statistic.
            let page = try runPython("report_check.py", [dir.appendingPathComponent("stats.html").path, out])
            #expect(page.contains("ok heatmaps, row blocks"), "np \(np): \(page)")
            let f = try SafetensorsFile(path: out)
            var json = try JSONSerialization.jsonObject(with: Data(f.metadata["hessdist.stats"]!.utf8)) as! [String: Any]
            let topology = (json["cost"] as! [String: Any])["topology"] as! String
            json["cost"] = nil
            let list = json["tensors"] as! [[String: Any]]
            let traced = list.filter { $0["hutchinson"] != nil && $0["fisher"] != nil && $0["sampledFisher"] != nil
                && (($0["fisherRowBlocks"] as? [Any])?.count ?? 0) >= 1 }.count
            var tensors: [String: Data] = [:]
            for t in f.tensors { tensors[t.name] = try f.withTensorBytes(t.name) { Data($0) } }
            return (try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), tensors, traced,
                    list.filter { $0["topEigenvalue"] != nil }.count, topology,
                    list.filter { ($0["candidates"] as! [[String: Any]]).allSatisfy { $0["gptqKL"] != nil } }.count)
        }
        let base = try stats(np: 0)
        #expect(base.traced == 31 && base.eigen == 3 && base.kl == 31)
        for (np, stages) in [(1, 1), (2, 1), (4, 1), (2, 2), (4, 2), (4, 4)] {
            let got = try stats(np: np, stages: stages)
            #expect(got.topology.hasPrefix("\(stages) stage"), "np \(np): \(got.topology)")
            #expect(got.json == base.json, "np \(np), \(stages) stages: the statistics differ")
            #expect(got.tensors == base.tensors, "np \(np), \(stages) stages: the imatrices differ")
        }
    }

    @Test func unevenShardsAndDataFree() throws {
        // 7 samples in micro-batches of 3 (3, 3, 1); data-free calibration sampled on rank 0 and broadcast.
        try sameBytesForAnyRankCount(["--nsamples", "7", "--seqlen", "32", "--micro-batch", "3", "--type", "q8_0"])
    }
}
