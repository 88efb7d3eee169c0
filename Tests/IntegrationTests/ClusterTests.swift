import Foundation
import Testing
import TestSupport

/// `hessdist cluster-selftest` as a user runs it: singleton, and under mpirun with 1, 2 and 4 ranks
/// (one machine, as root: PLATFORM.md flags). Serialized: the machine has 2 cores.
@Suite(.serialized) struct ClusterTests {
    static let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]

    func mpirun(_ np: Int, _ args: [String]) throws -> String {
        var flags = ["30", "mpirun", "-np", "\(np)", "--mca", "btl", "self,vader", "--bind-to", "none"]
        if np > 2 { flags.append("--oversubscribe") }
        // `timeout` so a hang fails the test instead of the run.
        return try run("timeout", flags + [hessdistBinary, "cluster-selftest"] + args, env: Self.env)
    }

    func report(_ out: String) throws -> [String: Any] {
        let line = try #require(out.split(separator: "\n").last { $0.hasPrefix("{") }, "no JSON in: \(out)")
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    func checkReport(_ j: [String: Any], size: Int, n: Int) {
        #expect(j["ok"] as? Bool == true, "\(j)")
        #expect(j["size"] as? Int == size)
        // Every rank sends an n x n f32 Hessian and an n-vector: raw bytes are exact.
        #expect(j["bytesRaw"] as? Int == size * (n * n + n) * 4)
        let enc = j["bytesEncoded"] as? Int ?? 0
        // Triangle packing alone halves the matrix; shuffle+zstd does better on these integers.
        #expect(enc > 0 && enc * 2 < size * (n * n + n) * 4, "encoded \(enc)")
    }

    @Test func singletonWithoutMpirun() throws {
        let out = try run(hessdistBinary, ["cluster-selftest"], env: Self.env)
        checkReport(try report(out), size: 1, n: 64)
    }

    @Test(arguments: [1, 2, 4])
    func underMpirun(np: Int) throws {
        let out = try mpirun(np, ["--n", "77"])
        checkReport(try report(out), size: np, n: 77)
        #expect(out.split(separator: "\n").filter { $0.hasPrefix("{") }.count == 1, "only rank 0 prints: \(out)")
    }

    @Test func failingRankAbortsTheJobQuickly() throws {
        let t0 = Date()
        var failure: ProcessFailure?
        do { _ = try mpirun(2, ["--fail-rank", "1"]) } catch let e as ProcessFailure { failure = e }
        let elapsed = Date().timeIntervalSince(t0)
        let f = try #require(failure, "the job must exit non-zero")
        #expect(f.status != 0 && f.status != 124, "exit \(f.status) (124 = timed out)")
        #expect(elapsed < 20, "took \(elapsed) s")
        #expect(f.stderr.contains("rank 1 of 2 failed") && f.stderr.contains("--fail-rank 1"), "\(f.stderr)")
    }

    @Test func failingSingletonExitsNonZero() throws {
        #expect { try run(hessdistBinary, ["cluster-selftest", "--fail-rank", "0"], env: Self.env) } throws: { e in
            "\(e)".contains("rank 0") && "\(e)".contains("--fail-rank 0")
        }
    }

    @Test func selftestIsHidden() throws {
        #expect(!(try run(hessdistBinary, ["--help"])).contains("cluster-selftest"))
    }
}
