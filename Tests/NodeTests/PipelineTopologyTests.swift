import Testing
import TestSupport
import HessianDist
@testable import Node

/// The stage split: exactly optimal against brute force, a partition of the model's tensors, and a
/// memory estimate that matches what a stage really allocates.
@Suite struct PipelineTopologyTests {
    /// Every contiguous split of `costs` into `S` non-empty ranges: the smallest costliest stage.
    static func bruteForce(_ costs: [Double], extra: Double, S: Int) -> Double {
        func go(_ a: Int, _ s: Int) -> Double {
            let stageExtra = s == 0 ? extra : 0
            if s == S - 1 { return costs[a...].reduce(0, +) + stageExtra }
            var best = Double.infinity
            for b in (a + 1)...(costs.count - (S - 1 - s)) {
                best = min(best, max(costs[a..<b].reduce(0, +) + stageExtra, go(b, s + 1)))
            }
            return best
        }
        return go(0, 0)
    }

    @Test func balanceIsOptimalAgainstBruteForce() {
        var rng = SeededRandom(seed: 5)
        for trial in 0..<200 {
            let L = 1 + Int(rng.next() % 9), S = 1 + Int(rng.next() % UInt64(L))
            let costs = (0..<L).map { _ in Double(1 + rng.next() % 20) }
            let extra = Double(rng.next() % 40)
            let split = PipelineTopology.balance(blockCosts: costs, firstStageExtra: extra, stages: S)
            #expect(split.count == S && split.first?.lowerBound == 0 && split.last?.upperBound == L, "trial \(trial)")
            #expect(zip(split, split.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound } && split.allSatisfy { !$0.isEmpty })
            let worst = split.enumerated().map { costs[$1].reduce(0, +) + ($0 == 0 ? extra : 0) }.max()!
            #expect(worst == Self.bruteForce(costs, extra: extra, S: S), "trial \(trial): \(costs) + \(extra) in \(S): \(split)")
        }
    }

    @Test func stagesPartitionTheTensorsAndRanksAreReplicaMajor() throws {
        let c = RandomWeights.tinyConfig(tied: false, layers: 5)
        let t = try PipelineTopology(ranks: 6, stages: 3, config: c, seqlen: 8)
        #expect(t.replicas == 2 && t.blocks.count == 3)
        let names = (0..<3).flatMap { t.tensorNames(stage: $0, config: c) }
        #expect(names.sorted() == c.expectedShapes().map(\.name).sorted())
        #expect(t.tensorNames(stage: 0, config: c).contains(TensorName.output))
        #expect((0..<6).map { t.stage(ofRank: $0) } == [0, 1, 2, 0, 1, 2] && t.rank(stage: 1, replica: 1) == 4)
        #expect(throws: TopologyError.self) { try PipelineTopology(ranks: 6, stages: 4, config: c, seqlen: 8) }
        #expect(throws: TopologyError.self) { try PipelineTopology(ranks: 6, stages: 6, config: c, seqlen: 8) }
    }

    /// The estimate is the stage's real allocation: weights, `vectors` arenas like them, and the activations.
    @Test func trainingBytesAreWhatAStageAllocates() throws {
        let c = RandomWeights.tinyConfig(layers: 4)
        let src = RandomWeights(config: c, seed: 9)
        let t = try PipelineTopology(ranks: 2, stages: 2, config: c, seqlen: 8)
        for s in 0..<2 {
            let m = try LlamaModel(source: src, layers: t.blocks[s], embedding: s == 0, head: s == 0)
            let acts = TrainingActivations(config: c, layers: m.layers.count, B: 1, T: 8, head: m.hasHead)
            // Each arena's views are 16-float aligned, so the real size is at least the estimate and at most
            // one alignment pad per view more.
            let real = m.parameterBytes * 3 + acts.bytes
            let est = t.trainingBytes(stage: s, config: c, seqlen: 8, vectors: 2)
            #expect(est <= real && real - est <= 64 * 60, "stage \(s): estimate \(est), allocated \(real)")
        }
    }

    @Test func automaticStagesOnlyWhenTheWholeModelDoesNotFit() throws {
        let c = RandomWeights.tinyConfig(layers: 4)
        let whole = PipelineTopology.dataParallel(ranks: 4, config: c).trainingBytes(stage: 0, config: c, seqlen: 8, vectors: 5)
        #expect(PipelineTopology.automatic(ranks: 4, config: c, seqlen: 8, vectors: 5, memoryPerRank: whole).stages == 1)
        let two = PipelineTopology.automatic(ranks: 4, config: c, seqlen: 8, vectors: 5, memoryPerRank: whole - 1)
        #expect(two.stages == 2 && two.replicas == 2)
        #expect((0..<2).allSatisfy { two.trainingBytes(stage: $0, config: c, seqlen: 8, vectors: 5) < whole })
        #expect(PipelineTopology.automatic(ranks: 4, config: c, seqlen: 8, vectors: 5, memoryPerRank: 1).stages == 4)
        #expect(PipelineTopology.automatic(ranks: 3, config: c, seqlen: 8, vectors: 5, memoryPerRank: 1).stages == 3)
    }
}
