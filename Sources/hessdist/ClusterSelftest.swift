import ArgumentParser
import Foundation
import Node
import Wire

/// Hidden: checks the MPI path end to end under mpirun (or as a singleton without it).
/// Each rank r builds a symmetric matrix (r+1)·F and a vector r/2 + i, sends them as WireMessages
/// (triangle+shuffle+zstd, shuffle+zstd) through `reduceMessages` to rank 0, which checks the sums
/// against the closed forms; also exercises barrier, broadcast, gather, allreduceSum and send/recv.
/// Rank 0 prints JSON {ok, size, bytesRaw, bytesEncoded}. `--fail-rank K` makes rank K throw.
struct ClusterSelftest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster-selftest",
        abstract: "MPI self-test (run under mpirun); prints JSON on rank 0.",
        shouldDisplay: false)

    @Option(help: "Matrix side n (n x n float32).")
    var n = 64

    @Option(help: "This rank throws before the reduction (tests that a failing rank aborts the job).")
    var failRank: Int?

    func validate() throws {
        guard n >= 1 else { throw ValidationError("--n \(n): expected at least 1") }
    }

    /// F(i, j): symmetric, small multiples of 1/4, so every partial sum is exact in float32.
    static func f(_ i: Int, _ j: Int) -> Float { Float((i * j) % 97 + min(i, j)) / 4 }

    func run() throws {
        let comm = try Comm.world()
        let r = comm.rank, size = comm.size
        if failRank == r {
            throw ClusterError(rank: r, operation: "cluster-selftest", message: "failing on purpose (--fail-rank \(r))")
        }
        var H = [Float](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { H[i * n + j] = Float(r + 1) * Self.f(i, j) } }
        let v = (0..<n).map { Float(r) / 2 + Float($0) }
        let ids = MessageIDs(layer: 0, module: 0, shard: UInt32(r), sender: UInt32(r))
        let hm = try WireMessage(kind: .hessian, shape: [n, n], floats: H, codec: .triangleShuffleZstd(), ids: ids)
        let vm = try WireMessage(kind: .vector, shape: [n], floats: v, codec: .shuffleZstd(), ids: ids)

        var stats = WireStats()
        let hSum = try comm.reduceMessages(hm, root: 0, stats: &stats, combine: WireMessage.sumF32)
        let vSum = try comm.reduceMessages(vm, root: 0, stats: &stats, combine: WireMessage.sumF32)

        // The other primitives, each checked on every rank.
        var problems: [String] = []
        try comm.barrier()
        let b = try comm.broadcast(bytes: r == 0 ? Array("hello from 0".utf8) : [], root: 0)
        if b != Array("hello from 0".utf8) { problems.append("rank \(r): broadcast got \(b.count) bytes") }
        var x = [Double(r + 1), 1]
        try comm.allreduceSum(&x)
        if x != [Double(size * (size + 1) / 2), Double(size)] { problems.append("rank \(r): allreduceSum \(x)") }
        if let g = try comm.gather(bytes: [UInt8](repeating: UInt8(r), count: r + 1), root: 0) {
            if g != (0..<size).map({ [UInt8](repeating: UInt8($0), count: $0 + 1) }) { problems.append("gather: \(g)") }
        }
        if size > 1 {
            // A ring: r sends to r+1, receives from r-1 (even ranks send first, odd receive first).
            let next = (r + 1) % size, prev = (r + size - 1) % size
            let payload = Array("ring \(r)".utf8)
            var got: [UInt8] = []
            if r % 2 == 0 {
                try comm.send(bytes: payload, to: next, tag: 7)
                got = try comm.recv(from: prev, tag: 7)
            } else {
                got = try comm.recv(from: prev, tag: 7)
                try comm.send(bytes: payload, to: next, tag: 7)
            }
            if got != Array("ring \(prev)".utf8) { problems.append("rank \(r): ring got \(String(decoding: got, as: UTF8.self))") }
        }
        // Rank 0 collects everyone's problems.
        let all = try comm.gather(bytes: Array(problems.joined(separator: "; ").utf8), root: 0)

        guard r == 0, let hSum, let vSum, let all else { return }
        let k = Float(size * (size + 1) / 2)
        let Hs = try hSum.floats(), vs = try vSum.floats()
        for i in 0..<n {
            for j in 0..<n where Hs[i * n + j] != k * Self.f(i, j) {
                problems.append("H[\(i),\(j)] = \(Hs[i * n + j]), expected \(k * Self.f(i, j))"); break
            }
            let ve = Float(size * (size - 1)) / 4 + Float(size * i)
            if vs[i] != ve { problems.append("v[\(i)] = \(vs[i]), expected \(ve)") }
            if problems.count > 5 { break }
        }
        problems += all.map { String(decoding: $0, as: UTF8.self) }.filter { !$0.isEmpty }
        let t = stats.total
        let report = SelftestReport(ok: problems.isEmpty, size: size, n: n, bytesRaw: t.rawBytes, bytesEncoded: t.wireBytes,
                                    problems: problems)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        print(String(decoding: try enc.encode(report), as: UTF8.self))
        guard problems.isEmpty else {
            throw ClusterError(rank: 0, operation: "cluster-selftest", message: problems.joined(separator: "; "))
        }
    }
}

struct SelftestReport: Codable {
    var ok: Bool
    var size: Int
    var n: Int
    /// Raw payload bytes of all messages reduced on rank 0, and their encoded size (headers included).
    var bytesRaw: Int
    var bytesEncoded: Int
    var problems: [String]
}
