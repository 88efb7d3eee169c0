// Checkpoints of `hessdist quantize` for `--resume`: the on-disk format and its checks. After each
// completed block rank 0 writes that block's quantized linears to `<out>.partial-ckpt/block-NNNN.bin`;
// `manifest.json` beside them holds the job's fingerprint. Not the resume logic of the quantizer
// (`SequentialQuantizer.restoreBlock`) nor how the fingerprint is assembled (`QuantizeJob+Resume.swift`).
//
// What is stored, and why not the calibration state: the next block's inputs X live split over the
// ranks (each holds its own micro-shards), so a checkpoint of X would tie a resume to the rank count
// and cost samples × seqlen × dim floats per block. Instead a resume re-runs the completed blocks'
// forwards with their quantized weights over the calibration; the forward is deterministic and runs
// the same kernels on the same micro-batches as the interrupted run, so X comes out bit for bit the
// same, for any rank count. The weights a block continued with are recomputed from each linear's
// codes or ggml bytes; rank 0 checks that recomputation against the weights it actually holds when it
// writes the block, and stores the f32 weights explicitly in the rare case they differ (e.g. a −0
// that the dequantizer gives and the grid does not), so the resumed forward is exact either way.
import Foundation
import HessianDist
import Node
import Wire

/// One input of a quantize job's output bytes, as the manifest records it.
public struct FingerprintField: Sendable, Codable, Equatable {
    /// What it is, named as the user would change it ("--shrink", "model", "calibration tokens").
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A refused or unreadable checkpoint: which file or field, what was expected and found, what to do.
public enum CheckpointError: Error, CustomStringConvertible, Sendable {
    /// The checkpoint was written by a job that differs in `field`.
    case mismatch(directory: String, field: String, checkpoint: String, job: String)
    /// A file of the checkpoint cannot be read or parsed.
    case unreadable(path: String, reason: String, hint: String)

    public var description: String {
        switch self {
        case .mismatch(let dir, let field, let ckpt, let job):
            return "--resume: the checkpoint \(dir) was written by a different job: \(field) is \(job), the checkpoint has \(ckpt) "
                + "(hint: rerun with the same \(field) as the interrupted job to resume it, or run without --resume to start over; "
                + "the checkpoint is then replaced)"
        case .unreadable(let path, let reason, let hint):
            return "\(path): \(reason) (hint: \(hint))"
        }
    }
}

/// A completed block as read back from its checkpoint file: its linears in the order the run produced
/// them (`sequentialGroups` order) and, per linear, the weights the model continued with.
public struct CheckpointBlock: Sendable {
    public var block: Int
    public var linears: [QuantizedLinear]
    /// Per linear: the dequantized weights (rows × cols), or nil when the job has no calibration (RTN
    /// without an importance fit: nothing runs forward through a quantized block).
    public var weights: [[Float]?]
}

/// The checkpoint directory of one job. Writes are atomic (`PartialFile`: temp file + fsync + rename),
/// so a kill leaves either a complete file or none; a block file that is still corrupt (disk damage, a
/// copy cut short) fails its checksum, is reported, and that block and every later one are redone.
public final class QuantizeCheckpoint {
    public static let manifestName = "manifest.json"
    /// Block files start with this (`HDCK` in file order) and end with a CRC32C of everything before it.
    static let magic: UInt32 = 0x4B43_4448
    static let version: UInt32 = 1

    /// The manifest: format version, the fingerprint, and the block count of the model.
    struct Manifest: Codable {
        var format = "hessdist-quantize-checkpoint"
        var version = 1
        var blocks: Int
        var fingerprint: [FingerprintField]
    }

    /// How a block file gives a linear's continued weights.
    enum WeightsMode: UInt8 {
        /// Recomputed from the linear (`continuedWeights`): checked equal when written.
        case recomputed = 0
        /// Stored as an f32 `tensorBytes` message after the linear.
        case stored = 1
        /// Not needed: the job has no calibration.
        case none = 2
    }

    public let directory: String
    public let fingerprint: [FingerprintField]
    /// CRC32C of the fingerprint: every block file carries it, so a block from another job is never loaded.
    public let digest: UInt32
    /// Linears whose weights were stored explicitly because the recomputation differed (for tests and logs).
    public private(set) var storedWeights = 0

    /// `<out>.partial-ckpt`: beside the output, so it is on the same file system and found from `--out` alone.
    public static func directory(forOutput out: String) -> String { out + ".partial-ckpt" }

    init(directory: String, fingerprint: [FingerprintField]) {
        self.directory = directory
        self.fingerprint = fingerprint
        var w = ByteWriter()
        for f in fingerprint { writeLong(&w, f.name); writeLong(&w, f.value) }
        digest = crc32c(w.bytes)
    }

    // MARK: Starting and resuming

    /// A fresh checkpoint: removes an earlier one in `directory` (only if every entry is a checkpoint
    /// file, so an unrelated directory of that name is never deleted), creates it and writes the manifest.
    public static func start(directory: String, fingerprint: [FingerprintField], blocks: Int) throws -> QuantizeCheckpoint {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: directory, isDirectory: &isDir) {
            let entries = isDir.boolValue ? try fm.contentsOfDirectory(atPath: directory) : ["(a file)"]
            let foreign = entries.filter { !isCheckpointEntry($0) }
            guard foreign.isEmpty else {
                throw CheckpointError.unreadable(path: directory, reason: "exists and is not a quantize checkpoint (holds \(foreign.prefix(3).joined(separator: ", ")))",
                                                 hint: "move it away or choose another --out; the checkpoint goes to <out>.partial-ckpt")
            }
            try fm.removeItem(atPath: directory)
        }
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: false)
        let ckpt = QuantizeCheckpoint(directory: directory, fingerprint: fingerprint)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let f = try PartialFile(path: directory + "/" + manifestName)
        try f.write(Array(try enc.encode(Manifest(blocks: blocks, fingerprint: fingerprint))))
        try f.commit()
        return ckpt
    }

    static func isCheckpointEntry(_ name: String) -> Bool {
        name == manifestName || name.hasPrefix(manifestName + ".partial-")
            || (name.hasPrefix("block-") && (name.hasSuffix(".bin") || name.contains(".bin.partial-")))
    }

    /// The fingerprint recorded in `directory`, or nil when there is no checkpoint there (a `--resume`
    /// then starts fresh). A manifest that exists but cannot be parsed is an error: starting over would
    /// silently throw away the completed blocks.
    public static func recordedFingerprint(directory: String) throws -> (fields: [FingerprintField], blocks: Int)? {
        let path = directory + "/" + manifestName
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError.unreadable(path: path, reason: "cannot read the manifest", hint: "check its permissions")
        }
        let m: Manifest
        do { m = try JSONDecoder().decode(Manifest.self, from: data) } catch {
            throw CheckpointError.unreadable(path: path, reason: "not a checkpoint manifest: \(error)",
                                             hint: "delete \(directory), or run without --resume, to start over")
        }
        guard m.format == Manifest(blocks: 0, fingerprint: []).format, m.version == Int(version) else {
            throw CheckpointError.unreadable(path: path, reason: "checkpoint format \(m.format) version \(m.version), this build writes version \(version)",
                                             hint: "resume with the build that wrote it, or run without --resume to start over")
        }
        return (m.fingerprint, m.blocks)
    }

    /// Throws `CheckpointError.mismatch` naming the first field of `job` that the checkpoint records
    /// differently (or not at all); with `complete`, also a field the checkpoint has and the job lacks.
    /// Checked in two steps by the job: the fields known before calibration first, so a wrong option is
    /// refused before minutes of data-free sampling or profiling, then all of them.
    public static func check(_ job: [FingerprintField], against recorded: [FingerprintField], directory: String,
                             complete: Bool) throws {
        for f in job {
            let r = recorded.first { $0.name == f.name }
            guard r?.value == f.value else {
                throw CheckpointError.mismatch(directory: directory, field: f.name, checkpoint: r?.value ?? "no such field", job: f.value)
            }
        }
        if complete, let extra = recorded.first(where: { r in !job.contains { $0.name == r.name } }) {
            throw CheckpointError.mismatch(directory: directory, field: extra.name, checkpoint: extra.value, job: "not recorded by this build")
        }
    }

    /// Reopens a checkpoint whose fingerprint was checked equal to `fingerprint`.
    public static func reopen(directory: String, fingerprint: [FingerprintField]) -> QuantizeCheckpoint {
        QuantizeCheckpoint(directory: directory, fingerprint: fingerprint)
    }

    func blockPath(_ l: Int) -> String { directory + "/" + String(format: "block-%04d.bin", l) }

    /// The longest run of valid block files 0, 1, 2, … (`expected(l)`: the names and targets of block
    /// l's linears, in run order). Stops at the first missing block; a block file that fails to load is
    /// deleted with every later one (they were computed from it) and described in `note`.
    public func loadBlocks(count: Int, withWeights: Bool,
                           expected: (Int) throws -> [(name: String, rows: Int, cols: Int, target: StorageTarget)])
        throws -> (blocks: [CheckpointBlock], note: String?) {
        var out: [CheckpointBlock] = []
        var note: String? = nil
        for l in 0..<count {
            let path = blockPath(l)
            guard FileManager.default.fileExists(atPath: path) else { break }
            do {
                out.append(try readBlock(l, path: path, withWeights: withWeights, expected: try expected(l)))
            } catch {
                note = "\(path): \(error); redoing blocks \(l)...\(count - 1)"
                for k in l..<count { try? FileManager.default.removeItem(atPath: blockPath(k)) }
                break
            }
        }
        return (out, note)
    }

    /// Removes the whole checkpoint (after the final output is in place).
    public func remove() throws {
        try FileManager.default.removeItem(atPath: directory)
    }

    // MARK: Block files

    /// Block file: u64-length-prefixed frames, then a u32 CRC32C of all bytes before it.
    /// Frame 0: a `manifest` WireMessage (u8): magic, version, block, fingerprint digest, linear count,
    /// then per linear its name and `WeightsMode`. Then per linear: its `wireBytes` (ids: layer = block,
    /// module = index, sender 0) and, for `.stored`, one f32 `tensorBytes` message of its weights.
    /// `weights(name)`: the weights the model continues with (nil: the job has no calibration).
    public func write(block l: Int, linears: [QuantizedLinear], weights: (String) -> [Float]?) throws {
        var header = ByteWriter()
        header.write(Self.magic)
        header.write(Self.version)
        header.write(UInt32(l))
        header.write(digest)
        header.write(UInt32(linears.count))
        var frames: [[UInt8]] = []
        for (i, q) in linears.enumerated() {
            var mode = WeightsMode.none
            var stored: [UInt8]? = nil
            if let w = weights(q.name) {
                let again = try continuedWeights(q)
                // Bit patterns, not ==: a −0 for +0 or a NaN would change later bits.
                if again.count == w.count && zip(again, w).allSatisfy({ $0.bitPattern == $1.bitPattern }) {
                    mode = .recomputed
                } else {
                    mode = .stored
                    storedWeights += 1
                    stored = try WireMessage(kind: .tensorBytes, shape: [q.rows, q.cols], floats: w, codec: .shuffleZstd(),
                                             ids: MessageIDs(layer: UInt32(l), module: UInt32(i))).encode()
                }
            }
            writeString(&header, q.name)
            header.write(mode.rawValue)
            frames.append(try q.wireBytes(ids: MessageIDs(layer: UInt32(l), module: UInt32(i), sender: 0)).bytes)
            if let stored { frames.append(stored) }
        }
        let head = try WireMessage(kind: .manifest, dtype: .u8, shape: [header.bytes.count], payload: header.bytes).encode()
        var file: [UInt8] = []
        for f in [head] + frames { Framing.append(f, to: &file) }
        var crc = ByteWriter(capacity: 4)
        crc.write(crc32c(file))
        file += crc.bytes
        let out = try PartialFile(path: blockPath(l))
        try out.write(file)
        try out.commit()
    }

    func readBlock(_ l: Int, path: String, withWeights: Bool,
                   expected: [(name: String, rows: Int, cols: Int, target: StorageTarget)]) throws -> CheckpointBlock {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WireError(.truncated, field: "block file", expected: "readable", found: "unreadable")
        }
        let bytes = [UInt8](data)
        guard bytes.count >= 4 else { throw WireError(.truncated, field: "block file", expected: "at least 4 bytes", found: "\(bytes.count)") }
        let body = Array(bytes[..<(bytes.count - 4)])
        let stored = bytes[(bytes.count - 4)...].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
        guard crc32c(body) == stored else {
            throw WireError(.checksumMismatch, field: "block file CRC32C", expected: String(format: "0x%08x", stored),
                            found: String(format: "0x%08x (torn or damaged file)", crc32c(body)))
        }
        let frames = try Framing.split(body)
        guard let first = frames.first else { throw WireError(.truncated, field: "block header", expected: "a frame", found: "none") }
        let head = try WireMessage.decode(first)
        guard head.kind == .manifest, head.dtype == .u8 else {
            throw WireError(.unknownValue, field: "block header", expected: "a u8 manifest", found: "\(head.kind) \(head.dtype)")
        }
        let entries: [(String, WeightsMode)] = try head.payload.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let magic = try r.read(UInt32.self, "magic"), v = try r.read(UInt32.self, "version")
            guard magic == Self.magic, v == Self.version else {
                throw WireError(.unsupportedVersion, field: "block header", expected: "HDCK version \(Self.version)", found: String(format: "0x%08x version %d", magic, v))
            }
            let b = Int(try r.read(UInt32.self, "block")), d = try r.read(UInt32.self, "fingerprint digest")
            guard b == l, d == digest else {
                throw WireError(.sizeMismatch, field: "block header", expected: String(format: "block %d of fingerprint 0x%08x", l, digest),
                                found: String(format: "block %d of fingerprint 0x%08x (from another job)", b, d))
            }
            let n = Int(try r.read(UInt32.self, "linears"))
            var entries: [(String, WeightsMode)] = []
            for i in 0..<n {
                let name = try readString(&r, "name of linear \(i)")
                let m = try r.read(UInt8.self, "weights mode of \(name)")
                guard let mode = WeightsMode(rawValue: m) else {
                    throw WireError(.unknownValue, field: "weights mode of \(name)", expected: "0, 1 or 2", found: "\(m)")
                }
                entries.append((name, mode))
            }
            guard r.remaining == 0 else { throw WireError(.trailingBytes, field: "block header", expected: "end", found: "\(r.remaining) bytes") }
            return entries
        }
        guard entries.map(\.0) == expected.map(\.name) else {
            throw WireError(.sizeMismatch, field: "linears", expected: "\(expected.map(\.name))", found: "\(entries.map(\.0))")
        }
        var block = CheckpointBlock(block: l, linears: [], weights: [])
        var next = 1
        func frame(_ what: String) throws -> [UInt8] {
            guard next < frames.count else { throw WireError(.truncated, field: what, expected: "a frame", found: "end of file") }
            next += 1
            return frames[next - 1]
        }
        for (i, (e, mode)) in zip(expected, entries.map(\.1)).enumerated() {
            let q = try QuantizedLinear(wire: try frame(e.name), name: e.name, rows: e.rows, cols: e.cols, target: e.target,
                                        ids: MessageIDs(layer: UInt32(l), module: UInt32(i), sender: 0), rank: 0)
            var w: [Float]? = nil
            switch mode {
            case .recomputed: w = try continuedWeights(q)
            case .stored:
                let m = try WireMessage.decode(try frame("weights of \(e.name)"))
                guard m.kind == .tensorBytes, m.dtype == .f32, m.shape == [e.rows, e.cols] else {
                    throw WireError(.sizeMismatch, field: "weights of \(e.name)", expected: "f32 [\(e.rows), \(e.cols)]",
                                    found: "\(m.kind) \(m.dtype) \(m.shape)")
                }
                w = try m.floats()
            case .none: break
            }
            guard !withWeights || w != nil else {
                throw WireError(.unknownValue, field: "weights of \(e.name)", expected: "present (the job calibrates)", found: "none")
            }
            block.linears.append(q)
            block.weights.append(withWeights ? w : nil)
        }
        guard next == frames.count else { throw WireError(.trailingBytes, field: "block file", expected: "\(next) frames", found: "\(frames.count)") }
        return block
    }
}

/// The weights a quantized linear stands for, as `SequentialQuantizer.quantize` handed them to the model:
/// for GPTQ codes on a grid, `scale · q + offset` exactly as the solver evaluates it (for ggml grids via
/// the dequantizer, which gives the same floats except that its zeros may be −0: normalized to +0);
/// for RTN and plain-float tensors, the dequantizer's output itself.
func continuedWeights(_ q: QuantizedLinear) throws -> [Float] {
    var out = [Float](repeating: 0, count: q.rows * q.cols)
    switch q.target {
    case .ggml(let type):
        guard let bytes = q.ggmlBytes else {
            throw WireError(.sizeMismatch, field: "ggml bytes of \(q.name)", expected: "present", found: "none")
        }
        try bytes.withUnsafeBytes { raw in try out.withUnsafeMutableBufferPointer { try dequantizeRow(type, from: raw, into: $0) } }
        if q.report.method == QuantMethod.gptq.rawValue && type.isQuantizable {
            for i in out.indices where out[i] == 0 { out[i] = 0 }
        }
    case .integer(let grid):
        // Parameters per (row, group) as `IntegerGroupGrid.fit` writes them (`storedGrid` reads them back).
        let groups = (q.cols + grid.groupSize - 1) / grid.groupSize, pb = grid.parameterBytes
        guard q.codes.count == q.rows * q.cols, q.parameters.count == q.rows * groups * pb else {
            throw WireError(.sizeMismatch, field: "codes of \(q.name)", expected: "\(q.rows * q.cols) codes, \(q.rows * groups * pb) parameter bytes",
                            found: "\(q.codes.count), \(q.parameters.count)")
        }
        let gidx = q.groupIndex ?? (0..<q.cols).map { $0 / grid.groupSize }
        q.parameters.withUnsafeBytes { p in
            for r in 0..<q.rows {
                for c in 0..<q.cols {
                    let (s, o) = grid.storedGrid(p.baseAddress! + (r * groups + gidx[c]) * pb)
                    out[r * q.cols + c] = s * Float(q.codes[r * q.cols + c]) + o
                }
            }
        }
    }
    return out
}

/// u32 length + UTF-8: fingerprint values (a tensor table description) may exceed `writeString`'s u16.
private func writeLong(_ w: inout ByteWriter, _ s: String) {
    let u = Array(s.utf8)
    w.write(UInt32(u.count))
    w.write(bytes: u)
}
