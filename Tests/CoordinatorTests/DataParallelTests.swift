import Foundation
import HessianDist
import Testing
import Wire
@testable import Coordinator

/// Per-micro-shard partial Hessians merged on "rank 0" in micro-shard order give the same bits however
/// the micro-shards are spread over ranks, and the same bits as one Hessian accumulating every
/// micro-batch in order (the single-process code before data parallelism).
@Suite struct DataParallelHessianTests {
    let columns = 24
    let shards = MicroShards(samples: 11, microBatch: 3)  // 3, 3, 3, 2 samples
    let T = 5

    /// Deterministic activations of micro-shard k: (samples · T) rows of `columns`, with magnitudes that
    /// make float additions order-sensitive.
    func rows(_ k: Int) -> [Float] {
        var g = SplitMix(seed: UInt64(k + 1))
        let n = shards.range(k).count * T * columns
        return (0..<n).map { _ in Float(g.unit() * 2 - 1) * (g.unit() < 0.1 ? 1000 : 1) }
    }

    /// What each simulated rank sends, then rank 0's merge.
    func merged(size: Int, stats: inout WireStats) throws -> LayerHessian {
        let gathered: [[UInt8]] = try (0..<size).map { r in
            var p = HessianPartials(layer: 2, group: 1, sender: r)
            for k in shards.owned(rank: r, size: size) {
                let h = LayerHessian(columns: columns)
                let x = rows(k)
                x.withUnsafeBufferPointer { h.accumulate($0.baseAddress!, rows: x.count / columns) }
                try p.append(shard: k, h)
            }
            return p.bytes
        }
        return try mergeHessianPartials(gathered, columns: columns, layer: 2, group: 1, shards: shards,
                                        rows: { shards.range($0).count * T }, stats: &stats)
    }

    @Test func sameBitsForOneTwoThreeRanks() throws {
        // The reference: one hessian, every micro-batch accumulated in order.
        let ref = LayerHessian(columns: columns)
        for k in 0..<shards.count {
            let x = rows(k)
            x.withUnsafeBufferPointer { ref.accumulate($0.baseAddress!, rows: x.count / columns) }
        }
        for size in [1, 2, 3, 5] {
            var stats = WireStats()
            let h = try merged(size: size, stats: &stats)
            #expect(h.count == ref.count, "size \(size)")
            #expect(h.sum().map(\.bitPattern) == ref.sum().map(\.bitPattern), "size \(size): different bits")
            // Only other ranks' micro-shards count as wire traffic: a hessian and a row count each.
            let remote = (0..<shards.count).filter { shards.owner(of: $0, size: size) != 0 }.count
            #expect((stats.byKind[.hessian]?.messages ?? 0) == remote)
            #expect((stats.byKind[.scalars]?.messages ?? 0) == remote)
        }
    }

    @Test func ownershipIsContiguousReversedAndCoversEverySample() {
        #expect(shards.count == 4)
        // 4 micro-shards over 3 ranks: blocks [0], [1], [2, 3]; block j belongs to rank 2 − j.
        #expect(shards.owned(rank: 2, size: 3) == [0])
        #expect(shards.owned(rank: 1, size: 3) == [1])
        #expect(shards.owned(rank: 0, size: 3) == [2, 3])
        #expect(shards.chain(size: 3) == [2, 1, 0])
        #expect(shards.owner(of: 3, size: 3) == 0)
        // Fewer micro-shards than ranks: some own nothing and are not on the chain, which still ends on 0.
        #expect(shards.owned(rank: 4, size: 5) == [])
        #expect(shards.chain(size: 5) == [3, 2, 1, 0])
        #expect(shards.local(rank: 0, size: 3).map(\.localFirst) == [0, 3])
        #expect(shards.local(rank: 0, size: 3).map(\.range) == [6..<9, 9..<11])
        #expect(shards.rowsBefore(2, seqlen: T) == 6 * T)
        #expect(shards.rowsBefore(4, seqlen: T) == 11 * T)
        for size in 1...5 {
            #expect((0..<size).map { shards.localSamples(rank: $0, size: size) }.reduce(0, +) == 11)
            // Every micro-shard has exactly one owner, and the chain visits them in micro-shard order.
            #expect(shards.chain(size: size).flatMap { shards.owned(rank: $0, size: size) } == Array(0..<shards.count))
        }
    }

    @Test func missingOrForeignShardsAreErrors() throws {
        var stats = WireStats()
        // Rank 1 of 2 sends micro-shard 0, which rank 0 owns.
        var p = HessianPartials(layer: 0, group: 0, sender: 1)
        let h = LayerHessian(columns: columns)
        let x = rows(0)
        x.withUnsafeBufferPointer { h.accumulate($0.baseAddress!, rows: x.count / columns) }
        try p.append(shard: 0, h)
        #expect(throws: (any Error).self) {
            try mergeHessianPartials([[], p.bytes], columns: columns, layer: 0, group: 0, shards: shards,
                                     rows: { shards.range($0).count * T }, stats: &stats)
        }
        // Nobody sends anything: micro-shard 0 is missing.
        #expect { try mergeHessianPartials([[], []], columns: columns, layer: 0, group: 0, shards: shards,
                                           rows: { _ in 0 }, stats: &stats) } throws: { "\($0)".contains("micro-shard 0 missing") }
    }
}

/// A tiny deterministic generator for test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
