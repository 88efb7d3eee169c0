import Foundation
import HessianDist
import Testing
import Wire
@testable import Coordinator

/// Micro-shard ownership: contiguous blocks, the last for rank 0, every sample owned once. (That the rank
/// chain sums them into the same bits as one process is in ClusterWireTests.)
@Suite struct DataParallelHessianTests {
    let shards = MicroShards(samples: 11, microBatch: 3)  // 3, 3, 3, 2 samples
    let T = 5

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
