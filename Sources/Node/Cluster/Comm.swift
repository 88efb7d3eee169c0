// The MPI communicator: one-time runtime setup/teardown, and a rank-valued `Comm` whose collectives
// are no-ops for a single rank. Every MPI return code is checked and thrown as `ClusterError`.
// Not here: what is reduced (Coordinator) or how messages are encoded (Wire).
import CMPI
import Foundation
import Wire

/// An MPI failure (or a cluster protocol disagreement), naming the rank that saw it.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    public let rank: Int
    public let operation: String
    /// The MPI error code, when the failure came from MPI.
    public let code: Int32?
    public let message: String
    public init(rank: Int, operation: String, code: Int32? = nil, message: String) {
        self.rank = rank
        self.operation = operation
        self.code = code
        self.message = message
    }
    public var description: String {
        "rank \(rank): \(operation) failed" + (code.map { " (MPI error \($0))" } ?? "") + ": \(message)"
    }
}

// Distinct Swift types over OpenMPI's handles, which all import as the same OpaquePointer.
struct MPICommHandle: @unchecked Sendable { let raw: OpaquePointer }
struct MPIDatatypeHandle: @unchecked Sendable {
    let raw: OpaquePointer
    static var byte: Self { Self(raw: hd_mpi_byte()) }
    static var double: Self { Self(raw: hd_mpi_double()) }
    static var int64: Self { Self(raw: hd_mpi_int64()) }
}
struct MPIOpHandle: @unchecked Sendable {
    let raw: OpaquePointer
    static var sum: Self { Self(raw: hd_mpi_sum()) }
    static var max: Self { Self(raw: hd_mpi_max()) }
}

/// The process's MPI runtime: initialised at most once (MPI allows one MPI_Init per process),
/// finalised at most once.
///
/// Lifecycle: `Comm.world()` initialises on first use (MPI_Init_thread, FUNNELED: only the thread
/// that initialised calls MPI). The CLI calls `MPIRuntime.shutdown()` once before a normal exit —
/// without MPI_Finalize, mpirun reports the job as failed — and `MPIRuntime.abort` on an error
/// path, so the whole job fails loudly instead of the other ranks waiting forever in a collective.
/// Libraries never call either.
public final class MPIRuntime: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// The thread level MPI granted (`MPI_THREAD_*`).
    public let threadLevel: Int32

    private static let lock = NSLock()
    nonisolated(unsafe) private static var current: MPIRuntime?
    nonisolated(unsafe) private static var finalized = false

    private init(rank: Int, size: Int, threadLevel: Int32) {
        self.rank = rank
        self.size = size
        self.threadLevel = threadLevel
    }

    /// The runtime, initialising MPI on first call. Throws after `shutdown()` (MPI cannot restart).
    public static func shared() throws -> MPIRuntime {
        lock.lock()
        defer { lock.unlock() }
        if let c = current { return c }
        guard !finalized else {
            throw ClusterError(rank: -1, operation: "MPI_Init", message: "MPI was already finalised in this process; it cannot be restarted")
        }
        var flag: Int32 = 0
        try check(MPI_Initialized(&flag), "MPI_Initialized", rank: -1)
        var provided: Int32 = 0
        if flag == 0 {
            try check(MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided), "MPI_Init_thread", rank: -1)
        } else {
            try check(MPI_Query_thread(&provided), "MPI_Query_thread", rank: -1)
        }
        let world = hd_mpi_comm_world()
        // Return codes instead of the default abort-inside-MPI, so failures become ClusterError.
        try check(MPI_Comm_set_errhandler(world, hd_mpi_errors_return()), "MPI_Comm_set_errhandler", rank: -1)
        var r: Int32 = 0, s: Int32 = 0
        try check(MPI_Comm_rank(world, &r), "MPI_Comm_rank", rank: -1)
        try check(MPI_Comm_size(world, &s), "MPI_Comm_size", rank: Int(r))
        let rt = MPIRuntime(rank: Int(r), size: Int(s), threadLevel: provided)
        current = rt
        return rt
    }

    /// Whether MPI is initialised and not yet finalised by us (the CLI's error path uses this to choose
    /// between `abort` and a plain exit).
    public static var isActive: Bool {
        lock.lock()
        defer { lock.unlock() }
        return current != nil && !finalized
    }

    /// The active runtime, if any (no initialisation).
    public static var active: MPIRuntime? {
        lock.lock()
        defer { lock.unlock() }
        return finalized ? nil : current
    }

    /// MPI_Finalize, once; a no-op if MPI was never initialised here or is already finalised.
    /// Call it once at the end of `main` on the success path.
    public static func shutdown() {
        lock.lock()
        defer { lock.unlock() }
        guard current != nil, !finalized else { return }
        var done: Int32 = 0
        MPI_Finalized(&done)
        if done == 0 { MPI_Finalize() }
        finalized = true
    }

    /// Writes `message` to stderr and aborts every rank of the job with `code` (MPI_Abort on the
    /// world communicator); exits the process directly if MPI is not active. Never returns.
    public static func abort(code: Int32 = 1, message: String) -> Never {
        FileHandle.standardError.write(Data((message.hasSuffix("\n") ? message : message + "\n").utf8))
        if isActive {
            MPI_Abort(hd_mpi_comm_world(), code)
        }
        exit(code)
    }

    static func check(_ rc: Int32, _ op: String, rank: Int) throws {
        guard rc != MPI_SUCCESS else { return }
        throw ClusterError(rank: rank, operation: op, code: rc, message: errorString(rc))
    }

    static func errorString(_ rc: Int32) -> String {
        var buf = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var len: Int32 = 0
        guard MPI_Error_string(rc, &buf, &len) == MPI_SUCCESS else { return "unknown MPI error \(rc)" }
        return String(decoding: buf.prefix(Int(max(0, len))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A rank within a communicator. `Comm.single` (rank 0 of 1) makes no MPI calls at all: every
/// collective is a no-op or the identity, so single-machine code paths need no MPI runtime.
/// Collectives must be called by every rank in the same order (bulk-synchronous).
public struct Comm: Sendable {
    public let rank: Int
    public let size: Int
    let handle: MPICommHandle?

    /// Rank 0 of 1, no MPI.
    public static let single = Comm(rank: 0, size: 1, handle: nil)

    init(rank: Int, size: Int, handle: MPICommHandle?) {
        self.rank = rank
        self.size = size
        self.handle = handle
    }

    /// MPI_COMM_WORLD, initialising MPI if needed (a singleton of size 1 without mpirun).
    public static func world() throws -> Comm {
        let rt = try MPIRuntime.shared()
        return Comm(rank: rt.rank, size: rt.size, handle: MPICommHandle(raw: hd_mpi_comm_world()))
    }

    public var isRoot: Bool { rank == 0 }

    /// Prints on rank 0 only (to stderr: stdout is for results).
    public func log0(_ s: @autoclosure () -> String) {
        if rank == 0 { FileHandle.standardError.write(Data((s() + "\n").utf8)) }
    }

    /// Messages at most this large (MPI counts are Int32).
    public static let maxMessageBytes = Int(Int32.max)

    // MARK: Point to point

    /// Blocking send of `bytes` to rank `to` with `tag` (0...32767, the minimum MPI_TAG_UB).
    public func send(bytes: [UInt8], to dest: Int, tag: Int = 0) throws {
        try checkPeer(dest, "MPI_Send")
        try checkTag(tag, "MPI_Send")
        try checkCount(bytes.count, "MPI_Send")
        guard let h = handle else { throw noPeer("MPI_Send") }
        try bytes.withUnsafeBytes { b in
            try check(MPI_Send(b.baseAddress, Int32(b.count), MPIDatatypeHandle.byte.raw, Int32(dest), Int32(tag), h.raw), "MPI_Send to rank \(dest)")
        }
    }

    /// Blocking receive from rank `from` with `tag`: probes for the size first, then receives exactly
    /// that many bytes (at most `maxBytes`).
    public func recv(from source: Int, tag: Int = 0, maxBytes: Int = Comm.maxMessageBytes) throws -> [UInt8] {
        try checkPeer(source, "MPI_Recv")
        try checkTag(tag, "MPI_Recv")
        guard let h = handle else { throw noPeer("MPI_Recv") }
        var status = MPI_Status()
        try check(MPI_Probe(Int32(source), Int32(tag), h.raw, &status), "MPI_Probe from rank \(source)")
        var count: Int32 = 0
        try check(MPI_Get_count(&status, MPIDatatypeHandle.byte.raw, &count), "MPI_Get_count")
        guard count != MPI_UNDEFINED, count >= 0, Int(count) <= maxBytes else {
            throw ClusterError(rank: rank, operation: "MPI_Recv from rank \(source)",
                               message: "probed message of \(count) bytes; expected 0...\(maxBytes)")
        }
        var out = [UInt8](repeating: 0, count: Int(count))
        var st2 = MPI_Status()
        try out.withUnsafeMutableBytes { b in
            try check(MPI_Recv(b.baseAddress, count, MPIDatatypeHandle.byte.raw, Int32(source), Int32(tag), h.raw, &st2),
                      "MPI_Recv from rank \(source)")
        }
        var got: Int32 = 0
        try check(MPI_Get_count(&st2, MPIDatatypeHandle.byte.raw, &got), "MPI_Get_count")
        guard got == count else {
            throw ClusterError(rank: rank, operation: "MPI_Recv from rank \(source)", message: "received \(got) bytes, probed \(count)")
        }
        return out
    }

    // MARK: Collectives

    public func barrier() throws {
        guard size > 1, let h = handle else { return }
        try check(MPI_Barrier(h.raw), "MPI_Barrier")
    }

    /// Root's `bytes` on every rank (other ranks' `bytes` are ignored). Length first, then the bytes.
    public func broadcast(bytes: [UInt8], root: Int = 0) throws -> [UInt8] {
        try checkPeer(root, "MPI_Bcast")
        guard size > 1, let h = handle else { return bytes }
        var n = Int64(rank == root ? bytes.count : 0)
        try check(MPI_Bcast(&n, 1, MPIDatatypeHandle.int64.raw, Int32(root), h.raw), "MPI_Bcast (length)")
        try checkCount(Int(n), "MPI_Bcast")
        var buf = rank == root ? bytes : [UInt8](repeating: 0, count: Int(n))
        try buf.withUnsafeMutableBytes { b in
            try check(MPI_Bcast(b.baseAddress, Int32(n), MPIDatatypeHandle.byte.raw, Int32(root), h.raw), "MPI_Bcast (\(n) bytes)")
        }
        return buf
    }

    /// Every rank's `bytes`, in rank order, on `root`; nil on the other ranks. Sizes may differ.
    public func gather(bytes: [UInt8], root: Int = 0) throws -> [[UInt8]]? {
        try checkPeer(root, "MPI_Gatherv")
        try checkCount(bytes.count, "MPI_Gatherv")
        guard size > 1, let h = handle else { return [bytes] }
        var mine = Int32(bytes.count)
        var counts = [Int32](repeating: 0, count: rank == root ? size : 1)
        try check(MPI_Gather(&mine, 1, hd_mpi_int(), &counts, 1, hd_mpi_int(), Int32(root), h.raw), "MPI_Gather (sizes)")
        var displs = [Int32](repeating: 0, count: counts.count)
        var total = 0
        if rank == root {
            for r in 0..<size {
                displs[r] = Int32(total)
                total += Int(counts[r])
                guard counts[r] >= 0, total <= Comm.maxMessageBytes else {
                    throw ClusterError(rank: rank, operation: "MPI_Gatherv",
                                       message: "gathered size \(total) bytes (rank \(r) sent \(counts[r])) exceeds \(Comm.maxMessageBytes)")
                }
            }
        }
        var all = [UInt8](repeating: 0, count: total)
        try bytes.withUnsafeBytes { s in
            try all.withUnsafeMutableBytes { d in
                try check(MPI_Gatherv(s.baseAddress, mine, MPIDatatypeHandle.byte.raw, d.baseAddress, &counts, &displs,
                                      MPIDatatypeHandle.byte.raw, Int32(root), h.raw), "MPI_Gatherv")
            }
        }
        guard rank == root else { return nil }
        return (0..<size).map { r in Array(all[Int(displs[r])..<(Int(displs[r]) + Int(counts[r]))]) }
    }

    /// Element-wise sum over ranks, result on every rank. All ranks must pass the same length:
    /// checked first (one small allreduce), so a mismatch is an error naming the lengths, not a hang
    /// or a buffer overrun.
    public func allreduceSum(_ x: inout [Double]) throws {
        guard size > 1, let h = handle else { return }
        try checkCount(x.count, "MPI_Allreduce")
        // max(n) and max(-n) = -min(n) in one call.
        var lens: [Int64] = [Int64(x.count), -Int64(x.count)]
        try check(MPI_Allreduce(hd_mpi_in_place(), &lens, 2, MPIDatatypeHandle.int64.raw, MPIOpHandle.max.raw, h.raw),
                  "MPI_Allreduce (lengths)")
        guard lens[0] == -lens[1] else {
            throw ClusterError(rank: rank, operation: "allreduceSum",
                               message: "ranks disagree on the length: between \(-lens[1]) and \(lens[0]); this rank has \(x.count)")
        }
        let n = x.count
        try x.withUnsafeMutableBytes { b in
            try check(MPI_Allreduce(hd_mpi_in_place(), b.baseAddress, Int32(n), MPIDatatypeHandle.double.raw,
                                    MPIOpHandle.sum.raw, h.raw), "MPI_Allreduce (\(n) doubles)")
        }
    }

    /// Gathers every rank's encoded `msg` to `root` and folds them in rank order:
    /// `combine(combine(m0, m1), m2) ...`. The order is fixed, so the result has the same bits whatever
    /// order the messages arrived in. Before combining, the root checks that all messages agree on
    /// kind, dtype and shape and names both ranks if not. Returns the result on root, nil elsewhere.
    /// With one rank, returns `msg` (no MPI, no encoding unless `stats` asks for byte counts).
    public func reduceMessages(_ msg: WireMessage, root: Int = 0, stats: inout WireStats,
                               combine: (WireMessage, WireMessage) throws -> WireMessage) throws -> WireMessage? {
        try checkPeer(root, "reduceMessages")
        if size == 1 {
            stats.record(msg, wireBytes: msg.encode().count)
            return msg
        }
        guard let parts = try gather(bytes: msg.encode(), root: root) else { return nil }
        var messages: [WireMessage] = []
        messages.reserveCapacity(size)
        for (r, bytes) in parts.enumerated() {
            let m: WireMessage
            do { m = try WireMessage.decode(bytes) } catch {
                throw ClusterError(rank: rank, operation: "reduceMessages", message: "message from rank \(r): \(error)")
            }
            if let first = messages.first, first.kind != m.kind || first.dtype != m.dtype || first.shape != m.shape {
                throw ClusterError(rank: rank, operation: "reduceMessages",
                                   message: "rank 0 sent \(first.kind) \(first.dtype) \(first.shape) but rank \(r) sent \(m.kind) \(m.dtype) \(m.shape)")
            }
            stats.record(m, wireBytes: bytes.count)
            messages.append(m)
        }
        var acc = messages[0]
        for m in messages.dropFirst() { acc = try combine(acc, m) }
        return acc
    }

    /// `reduceMessages` without byte counts.
    public func reduceMessages(_ msg: WireMessage, root: Int = 0,
                               combine: (WireMessage, WireMessage) throws -> WireMessage) throws -> WireMessage? {
        var s = WireStats()
        return try reduceMessages(msg, root: root, stats: &s, combine: combine)
    }

    // MARK: Checks

    func check(_ rc: Int32, _ op: String) throws {
        try MPIRuntime.check(rc, op, rank: rank)
    }

    func checkPeer(_ r: Int, _ op: String) throws {
        guard r >= 0, r < size else {
            throw ClusterError(rank: rank, operation: op, message: "rank \(r) out of range 0..<\(size)")
        }
    }

    func checkTag(_ t: Int, _ op: String) throws {
        guard (0...32767).contains(t) else {
            throw ClusterError(rank: rank, operation: op, message: "tag \(t) out of range 0...32767")
        }
    }

    func checkCount(_ n: Int, _ op: String) throws {
        guard n >= 0, n <= Comm.maxMessageBytes else {
            throw ClusterError(rank: rank, operation: op, message: "\(n) elements; at most \(Comm.maxMessageBytes) per MPI call")
        }
    }

    func noPeer(_ op: String) -> ClusterError {
        ClusterError(rank: rank, operation: op, message: "a single-rank communicator has no peer to talk to")
    }
}

extension WireMessage {
    /// Element-wise float32 sum of two messages of the same kind and shape (codec and ids of `a`).
    /// A `combine` for `Comm.reduceMessages`.
    public static func sumF32(_ a: WireMessage, _ b: WireMessage) throws -> WireMessage {
        guard a.shape == b.shape, a.dtype == .f32, b.dtype == .f32 else {
            throw WireError(.sizeMismatch, field: "sumF32 operands", expected: "two f32 \(a.shape)", found: "\(b.dtype) \(b.shape)")
        }
        let x = try a.floats(), y = try b.floats()
        var s = [Float](repeating: 0, count: x.count)
        for i in 0..<x.count { s[i] = x[i] + y[i] }
        return try WireMessage(kind: a.kind, shape: a.shape, floats: s, codec: a.codec, ids: a.ids)
    }
}
