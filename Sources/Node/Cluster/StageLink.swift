// A rank's two neighbours in its pipeline replica and the residual-stream messages it trades with them.
// Forward, each stage receives from the previous one and sends to the next (round the ring, so stage 0
// gets the last stage's output for the head); backward, the gradient goes the other way: received from
// the next stage, sent to the previous one.
import Wire

public final class StageLink: @unchecked Sendable {
    public let comm: Comm
    public let topology: PipelineTopology
    public let stage: Int
    public let replica: Int
    /// Ranks of the previous and next stage of this replica (the same rank for S = 2).
    let previous: Int, next: Int
    /// Passes so far: every stage of a replica makes the same ones, so a message from another pass
    /// (a desynchronised peer) is caught by its id.
    private var step: UInt32 = 0
    /// Bytes this rank sent.
    public private(set) var wireStats = WireStats()

    static let forwardTag = 11, backwardTag = 12

    public init(comm: Comm, topology: PipelineTopology) throws {
        guard comm.size == topology.stages * topology.replicas else {
            throw TopologyError.invalid("\(topology) needs \(topology.stages * topology.replicas) ranks, the job has \(comm.size)")
        }
        self.comm = comm
        self.topology = topology
        stage = topology.stage(ofRank: comm.rank)
        replica = topology.replica(ofRank: comm.rank)
        let S = topology.stages
        previous = topology.rank(stage: (stage + S - 1) % S, replica: replica)
        next = topology.rank(stage: (stage + 1) % S, replica: replica)
    }

    public var isFirstStage: Bool { stage == 0 }
    var isPipelined: Bool { topology.stages > 1 }

    /// Starts a new pass (forward and backward) of every stage of this replica.
    func beginPass() { step &+= 1 }

    /// Sends (B,T,C) floats forward (to the next stage) or backward (to the previous one).
    func send(_ x: UnsafePointer<Float>, shape: [Int], forward: Bool) throws {
        let n = shape.reduce(1, *)
        let msg = try WireMessage(kind: .activations, shape: shape, floats: Array(UnsafeBufferPointer(start: x, count: n)),
                                  codec: .raw, ids: ids(forward: forward, sender: comm.rank))
        let bytes = msg.encode()
        try comm.send(bytes: bytes, to: forward ? next : previous, tag: forward ? Self.forwardTag : Self.backwardTag)
        wireStats.record(msg, wireBytes: bytes.count)
    }

    /// Receives (B,T,C) floats into `x`: forward from the previous stage, backward from the next one.
    func receive(into x: UnsafeMutablePointer<Float>, shape: [Int], forward: Bool) throws {
        let from = forward ? previous : next
        let bytes = try comm.recv(from: from, tag: forward ? Self.forwardTag : Self.backwardTag)
        let what = forward ? "residual stream" : "residual gradient"
        let m: WireMessage
        do { m = try WireMessage.decode(bytes) } catch {
            throw ClusterError(rank: comm.rank, operation: "pipeline \(what) from rank \(from)", message: "\(error)")
        }
        let want = ids(forward: forward, sender: from)
        guard m.kind == .activations, m.dtype == .f32, m.shape == shape, m.ids == want else {
            throw ClusterError(rank: comm.rank, operation: "pipeline \(what) from rank \(from)",
                               message: "expected f32 activations \(shape) ids \(want), got \(m.kind) \(m.dtype) \(m.shape) ids \(m.ids)")
        }
        let f = try m.floats()
        f.withUnsafeBufferPointer { x.update(from: $0.baseAddress!, count: f.count) }
    }

    private func ids(forward: Bool, sender: Int) -> MessageIDs {
        MessageIDs(layer: UInt32(topology.stage(ofRank: sender)), module: forward ? 0 : 1, shard: step, sender: UInt32(sender))
    }
}
