import Testing
import Wire
@testable import Node

/// `Comm.single`: collectives are identities and no MPI is initialised (the MPI paths run under
/// mpirun in IntegrationTests/ClusterTests).
@Suite struct CommSingleTests {
    @Test func collectivesAreIdentities() throws {
        let c = Comm.single
        #expect(c.rank == 0 && c.size == 1 && c.isRoot)
        try c.barrier()
        #expect(try c.broadcast(bytes: [1, 2, 3], root: 0) == [1, 2, 3])
        #expect(try c.gather(bytes: [4, 5], root: 0) == [[4, 5]])
        var x: [Double] = [1.5, -2]
        try c.allreduceSum(&x)
        #expect(x == [1.5, -2])
        let m = try WireMessage(kind: .hessian, shape: [2, 2], floats: [1, 2, 2, 3], codec: .triangleShuffleZstd())
        var stats = WireStats()
        let r = try c.reduceMessages(m, root: 0, stats: &stats, combine: WireMessage.sumF32)
        #expect(r == m)
        #expect(stats.byKind[.hessian]?.rawBytes == 16 && stats.byKind[.hessian]?.messages == 1)
        #expect(!MPIRuntime.isActive, "Comm.single must not initialise MPI")
    }

    @Test func badArgumentsThrowClusterErrorNamingTheRank() {
        let c = Comm.single
        #expect { try c.send(bytes: [1], to: 1) } throws: { e in "\(e)".contains("rank 0") && "\(e)".contains("rank 1 out of range") }
        #expect(throws: ClusterError.self) { try c.send(bytes: [1], to: 0) } // no peer in a single-rank comm
        #expect(throws: ClusterError.self) { try c.recv(from: 0, tag: 40000) }
        #expect(throws: ClusterError.self) { _ = try c.broadcast(bytes: [], root: 2) }
    }

    @Test func sumF32AddsAndChecksShapes() throws {
        let a = try WireMessage(kind: .vector, shape: [3], floats: [1, 2, 3], codec: .shuffleZstd())
        let b = try WireMessage(kind: .vector, shape: [3], floats: [0.5, 0.25, -3])
        let s = try WireMessage.sumF32(a, b)
        #expect(try s.floats() == [1.5, 2.25, 0] && s.codec == a.codec)
        let c = try WireMessage(kind: .vector, shape: [2], floats: [1, 2])
        #expect(throws: WireError.self) { try WireMessage.sumF32(a, c) }
    }
}
