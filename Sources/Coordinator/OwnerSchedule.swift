// Which rank solves which module of a sequential group: a cost model of one GPTQ solve and the
// longest-processing-time-first assignment, plus the schedule's wire form (rank 0 decides, every rank
// follows). Not the solving or the transfers themselves: see `SequentialQuantizer`.
import Foundation
import HessianDist
import Node
import Wire

/// The work of quantizing one module, in multiply-adds (only ratios matter: LPT compares them).
///
/// GPTQ (`GPTQ.solve`): damping plus three factorizations of the d_col × d_col Hessian ≈ 4/3·d_col³;
/// the sweep's lazy-block updates ≈ d_row·d_col²; the two layer-wise errors tr(ΔW H ΔWᵀ) (GPTQ and
/// RTN) ≈ 2·d_row·d_col². bench-gptq (BENCHMARKS.md, "GPTQ speed per module") measured the metrics
/// phase at about the sweep's time, which is why they count. RTN (with an imatrix) is one pass over
/// the weights with llama.cpp's scale search, ≈ 20 candidate scales per weight. A plain-float target
/// (the profiling pass keeps F32) solves nothing: cost 0, so it stays on rank 0, where the Hessian
/// already is.
public func moduleCost(rows: Int, cols: Int, target: StorageTarget, method: QuantMethod) -> Double {
    if case .ggml(let t) = target, !t.isQuantizable { return 0 }
    let r = Double(rows), c = Double(cols)
    switch method {
    case .gptq: return 4.0 / 3.0 * c * c * c + 3 * r * c * c
    case .rtn: return 20 * r * c
    }
}

/// Longest-processing-time-first: modules in descending cost (ties: by name), each to the rank with
/// the least work so far (ties: the lowest rank, so rank 0 — which holds the Hessian — first).
/// Deterministic: the same modules and costs give the same owners on any machine.
public func lptOwners(_ modules: [(name: String, cost: Double)], ranks: Int) -> [String: Int] {
    precondition(ranks > 0, "at least one rank")
    var load = [Double](repeating: 0, count: ranks)
    var owners: [String: Int] = [:]
    for m in modules.sorted(by: { $0.cost > $1.cost || ($0.cost == $1.cost && $0.name < $1.name) }) {
        let r = load.indices.min { load[$0] < load[$1] || (load[$0] == load[$1] && $0 < $1) }!
        owners[m.name] = r
        load[r] += m.cost
    }
    return owners
}

/// Every block linear's owner rank and storage target, decided on rank 0 (only rank 0 knows a mixed
/// precision plan) and broadcast once, so that owners quantize to rank 0's types.
public struct OwnerSchedule: Equatable {
    public struct Entry: Equatable {
        public var name: String
        public var owner: Int
        public var target: StorageTarget
    }
    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    /// LPT within each sequential group of every block.
    public init(groups: [[String]], ranks: Int, method: QuantMethod, shape: (String) throws -> (rows: Int, cols: Int),
                target: (String) -> StorageTarget) throws {
        var entries: [Entry] = []
        for group in groups {
            var costs: [(name: String, cost: Double)] = []
            for name in group {
                let s = try shape(name)
                costs.append((name, moduleCost(rows: s.rows, cols: s.cols, target: target(name), method: method)))
            }
            let owners = lptOwners(costs, ranks: ranks)
            for name in group { entries.append(Entry(name: name, owner: owners[name]!, target: target(name))) }
        }
        self.entries = entries
    }

    public func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }

    /// One `manifest` message: u32 count, then per module its name (u16 length + UTF-8), owner (u32) and target.
    public func message() throws -> WireMessage {
        var w = ByteWriter()
        w.write(UInt32(entries.count))
        for e in entries {
            writeString(&w, e.name)
            w.write(UInt32(e.owner))
            writeTarget(&w, e.target)
        }
        return try WireMessage(kind: .manifest, dtype: .u8, shape: [w.bytes.count], payload: w.bytes, codec: .zstd())
    }

    /// Strict: a `manifest` of u8, every field in range, owners below `ranks`, nothing left over.
    public init(message m: WireMessage, ranks: Int) throws {
        guard m.kind == .manifest, m.dtype == .u8, m.shape.count == 1 else {
            throw WireError(.unknownValue, field: "owner schedule", expected: "a u8 manifest", found: "\(m.kind) \(m.dtype) \(m.shape)")
        }
        self.entries = try m.payload.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            let n = Int(try r.read(UInt32.self, "schedule count"))
            var out: [Entry] = []
            for _ in 0..<n {
                let name = try readString(&r, "module name")
                let owner = Int(try r.read(UInt32.self, "owner of \(name)"))
                guard owner < ranks else {
                    throw WireError(.unknownValue, field: "owner of \(name)", expected: "a rank below \(ranks)", found: "\(owner)")
                }
                out.append(Entry(name: name, owner: owner, target: try readTarget(&r, name)))
            }
            guard r.remaining == 0 else {
                throw WireError(.trailingBytes, field: "owner schedule", expected: "\(n) entries", found: "\(r.remaining) more bytes")
            }
            return out
        }
    }
}

extension StorageTarget: Equatable {
    public static func == (a: StorageTarget, b: StorageTarget) -> Bool {
        switch (a, b) {
        case (.ggml(let x), .ggml(let y)): x == y
        case (.integer(let x), .integer(let y)):
            x.bits == y.bits && x.groupSize == y.groupSize && x.symmetric == y.symmetric && x.scaleFormat == y.scaleFormat
        default: false
        }
    }
}

// MARK: Field encodings shared by the schedule and the quantized-linear messages

func writeString(_ w: inout ByteWriter, _ s: String) {
    let u = Array(s.utf8)
    w.write(UInt16(u.count))
    w.write(bytes: u)
}

func readString(_ r: inout ByteReader, _ what: String) throws -> String {
    let n = Int(try r.read(UInt16.self, "\(what) length"))
    let b = try r.readBytes(n, what)
    guard let s = String(validating: b, as: UTF8.self) else {
        throw WireError(.corruptPayload, field: what, expected: "UTF-8", found: "\(n) other bytes")
    }
    return s
}

/// u8 tag (1 ggml: u32 type id; 2 integer grid: u8 bits, u32 group size, u8 symmetric, u8 scale format 0 f16 / 1 f32).
func writeTarget(_ w: inout ByteWriter, _ t: StorageTarget) {
    switch t {
    case .ggml(let type):
        w.write(UInt8(1))
        w.write(type.rawValue)
    case .integer(let g):
        w.write(UInt8(2))
        w.write(UInt8(g.bits))
        w.write(UInt32(g.groupSize))
        w.write(UInt8(g.symmetric ? 1 : 0))
        w.write(UInt8(g.scaleFormat == .f16 ? 0 : 1))
    }
}

func readTarget(_ r: inout ByteReader, _ name: String) throws -> StorageTarget {
    let tag = try r.read(UInt8.self, "target of \(name)")
    switch tag {
    case 1:
        let id = try r.read(UInt32.self, "ggml type of \(name)")
        guard let type = GGMLType(rawValue: id) else {
            throw WireError(.unknownValue, field: "ggml type of \(name)", expected: "a ggml type id", found: "\(id)")
        }
        return .ggml(type)
    case 2:
        let bits = Int(try r.read(UInt8.self, "bits of \(name)"))
        let gs = Int(try r.read(UInt32.self, "group size of \(name)"))
        let sym = try r.read(UInt8.self, "symmetric flag of \(name)")
        let sf = try r.read(UInt8.self, "scale format of \(name)")
        guard sym <= 1, sf <= 1 else {
            throw WireError(.unknownValue, field: "integer grid of \(name)", expected: "flags 0 or 1", found: "\(sym), \(sf)")
        }
        do {
            // The group size divides the row (it came from a valid grid), so it is its own column count here.
            return .integer(try IntegerGroupGrid(bits: bits, groupSize: gs, columns: max(1, gs), symmetric: sym == 1,
                                                 scaleFormat: sf == 0 ? .f16 : .f32))
        } catch {
            throw WireError(.unknownValue, field: "integer grid of \(name)", expected: "a valid grid", found: "\(error)")
        }
    default:
        throw WireError(.unknownValue, field: "target of \(name)", expected: "1 (ggml) or 2 (integer)", found: "\(tag)")
    }
}
