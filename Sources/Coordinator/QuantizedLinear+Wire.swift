// A `QuantizedLinear` on the wire, from the owner rank that solved it to rank 0 (which exports it):
// six length-prefixed `quantizedLinear` messages — a header (name, shape, target, report), then codes,
// grid parameters, act-order permutation, group index and ggml bytes — with strict decoding that
// checks every size against the shape and the target rank 0 asked for. Not the transfer itself.
import Foundation
import HessianDist
import Node
import Wire

extension QuantizedLinear {
    /// Format version of the header payload.
    static let wireVersion: UInt32 = 1
    /// Parts after the header, in order (the `shard` id of each message is its index, header 0).
    static let wireParts = ["codes", "parameters", "permutation", "groupIndex", "ggmlBytes"]

    /// The framed messages; `ids.shard` is overwritten with each part's index.
    public func wireBytes(ids: MessageIDs) throws -> (bytes: [UInt8], messages: [(WireMessage, Int)]) {
        guard report.name == name, report.rows == rows, report.cols == cols else {
            throw WireError(.invalidArgument, field: "report of \(name)", expected: "\(name) \(rows)×\(cols)",
                            found: "\(report.name) \(report.rows)×\(report.cols)")
        }
        var h = ByteWriter()
        h.write(Self.wireVersion)
        writeString(&h, name)
        h.write(UInt32(rows))
        h.write(UInt32(cols))
        writeTarget(&h, target)
        h.write(UInt8((permutation != nil ? 1 : 0) | (groupIndex != nil ? 2 : 0) | (ggmlBytes != nil ? 4 : 0)))
        writeString(&h, report.storage)
        writeString(&h, report.method)
        for v in [report.gptqError, report.rtnError, report.damping] {
            h.write(UInt8(v == nil ? 0 : 1))
            h.write(v ?? 0)
        }
        h.write(UInt8(report.fallback == nil ? 0 : 1))
        writeString(&h, report.fallback ?? "")
        h.write(report.seconds)

        func ints(_ a: [Int]?) -> [UInt8] {
            var w = ByteWriter(capacity: (a?.count ?? 0) * 8)
            for v in a ?? [] { w.write(Int64(v)) }
            return w.bytes
        }
        var ids = ids
        var parts: [WireMessage] = []
        ids.shard = 0
        parts.append(try WireMessage(kind: .quantizedLinear, dtype: .u8, shape: [h.bytes.count], payload: h.bytes, codec: .raw, ids: ids))
        // Codes and ggml blocks compress somewhat (4-bit codes in bytes, repeated scales); integers shuffle.
        let payloads: [(DType, [UInt8], Codec)] = [(.u8, codes, .zstd()), (.u8, parameters, .zstd()),
                                                   (.i64, ints(permutation), .shuffleZstd()), (.i64, ints(groupIndex), .shuffleZstd()),
                                                   (.u8, ggmlBytes ?? [], .zstd())]
        for (i, p) in payloads.enumerated() {
            ids.shard = UInt32(i + 1)
            parts.append(try WireMessage(kind: .quantizedLinear, dtype: p.0, shape: [p.1.count / p.0.size], payload: p.1, codec: p.2, ids: ids))
        }
        var bytes: [UInt8] = []
        var messages: [(WireMessage, Int)] = []
        for m in parts {
            let e = m.encode()
            Framing.append(e, to: &bytes)
            messages.append((m, e.count + 8))
        }
        return (bytes, messages)
    }

    /// Strict decoding of `wireBytes`: six frames with `ids` (part index in `shard`), the header naming
    /// `name` with `rows` × `cols` and exactly `target`, and every part sized for them. Errors are
    /// `ClusterError`s of rank `rank` naming the module and the sender.
    public init(wire bytes: [UInt8], name: String, rows: Int, cols: Int, target: StorageTarget,
                ids: MessageIDs, rank: Int) throws {
        func bad(_ what: String) -> ClusterError {
            ClusterError(rank: rank, operation: "receiving quantized \(name)", message: "from rank \(ids.sender): \(what)")
        }
        let frames: [[UInt8]]
        do { frames = try Framing.split(bytes) } catch { throw bad("\(error)") }
        guard frames.count == 1 + Self.wireParts.count else { throw bad("\(frames.count) frames, expected \(1 + Self.wireParts.count)") }
        var msgs: [WireMessage] = []
        for (i, f) in frames.enumerated() {
            let m: WireMessage
            do { m = try WireMessage.decode(f) } catch { throw bad("part \(i): \(error)") }
            var want = ids
            want.shard = UInt32(i)
            guard m.kind == .quantizedLinear, m.ids == want, m.shape.count == 1 else {
                throw bad("part \(i): \(m.kind) \(m.shape) ids \(m.ids), expected quantizedLinear ids \(want)")
            }
            let dtype: DType = (i == 3 || i == 4) ? .i64 : .u8
            guard m.dtype == dtype else { throw bad("part \(i): dtype \(m.dtype), expected \(dtype)") }
            msgs.append(m)
        }
        var report = ModuleReport(name: name, rows: rows, cols: cols, storage: "", method: "", gptqError: nil,
                                  rtnError: nil, damping: nil, fallback: nil, seconds: 0)
        let flags: UInt8
        do {
            flags = try msgs[0].payload.withUnsafeBytes { raw in
                var r = ByteReader(raw)
                let v = try r.read(UInt32.self, "header version")
                guard v == Self.wireVersion else {
                    throw WireError(.unsupportedVersion, field: "quantized linear header", expected: "\(Self.wireVersion)", found: "\(v)")
                }
                let n = try readString(&r, "name")
                let rr = Int(try r.read(UInt32.self, "rows")), cc = Int(try r.read(UInt32.self, "cols"))
                let t = try readTarget(&r, n)
                guard n == name, rr == rows, cc == cols, t == target else {
                    throw WireError(.sizeMismatch, field: "quantized linear header", expected: "\(name) \(rows)×\(cols) \(target)",
                                    found: "\(n) \(rr)×\(cc) \(t)")
                }
                let flags = try r.read(UInt8.self, "flags")
                guard flags < 8 else { throw WireError(.unknownValue, field: "flags", expected: "0...7", found: "\(flags)") }
                report.storage = try readString(&r, "storage")
                report.method = try readString(&r, "method")
                var opt: [Double?] = []
                for f in ["gptqError", "rtnError", "damping"] {
                    let present = try r.read(UInt8.self, f)
                    let x = try r.readDouble(f)
                    guard present <= 1, present == 1 || x.bitPattern == 0 else {
                        throw WireError(.unknownValue, field: f, expected: "flag 0 (value 0) or 1", found: "\(present), \(x)")
                    }
                    opt.append(present == 1 ? x : nil)
                }
                (report.gptqError, report.rtnError, report.damping) = (opt[0], opt[1], opt[2])
                let hasFallback = try r.read(UInt8.self, "fallback flag")
                let fb = try readString(&r, "fallback")
                guard hasFallback <= 1, hasFallback == 1 || fb.isEmpty else {
                    throw WireError(.unknownValue, field: "fallback", expected: "flag 0 (empty) or 1", found: "\(hasFallback), \(fb)")
                }
                report.fallback = hasFallback == 1 ? fb : nil
                report.seconds = try r.readDouble("seconds")
                guard r.remaining == 0 else {
                    throw WireError(.trailingBytes, field: "quantized linear header", expected: "end", found: "\(r.remaining) bytes")
                }
                return flags
            }
        } catch let e as ClusterError { throw e } catch { throw bad("header: \(error)") }

        func ints(_ m: WireMessage) -> [Int] {
            m.payload.withUnsafeBytes { raw in (0..<m.count).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))) } }
        }
        let codes = msgs[1].payload, parameters = msgs[2].payload
        let permutation = flags & 1 != 0 ? ints(msgs[3]) : nil
        let groupIndex = flags & 2 != 0 ? ints(msgs[4]) : nil
        let ggml = flags & 4 != 0 ? msgs[5].payload : nil
        // Sizes from the target: codes are all or nothing, parameters one record per (row, group).
        let groupSize: Int, parameterBytes: Int
        var ggmlSize: Int? = nil
        switch target {
        case .ggml(let type):
            groupSize = type.blockSize
            parameterBytes = type.isQuantizable ? (try? GGMLGrid(type: type).parameterBytes) ?? 0 : 0
            ggmlSize = cols % type.blockSize == 0 ? rows * (cols / type.blockSize) * type.typeSize : nil
        case .integer(let g):
            groupSize = g.groupSize
            parameterBytes = g.parameterBytes
        }
        guard codes.isEmpty || codes.count == rows * cols else { throw bad("\(codes.count) codes for \(rows)×\(cols)") }
        let params = codes.isEmpty ? 0 : rows * ((cols + groupSize - 1) / groupSize) * parameterBytes
        guard parameters.count == params else { throw bad("\(parameters.count) parameter bytes, expected \(params)") }
        guard flags & 1 != 0 || msgs[3].count == 0, flags & 2 != 0 || msgs[4].count == 0, flags & 4 != 0 || msgs[5].count == 0 else {
            throw bad("a part that the header says is absent has data")
        }
        if let p = permutation {
            guard p.count == cols, Set(p) == Set(0..<cols) else { throw bad("permutation is not one of 0..<\(cols)") }
        }
        if let g = groupIndex {
            let groups = (cols + groupSize - 1) / groupSize
            guard g.count == cols, g.allSatisfy({ (0..<groups).contains($0) }) else { throw bad("group index is not \(cols) values in 0..<\(groups)") }
        }
        if let ggml {
            guard let want = ggmlSize, ggml.count == want else { throw bad("\(ggml.count) ggml bytes, expected \(ggmlSize.map(String.init) ?? "none for \(target)")") }
        } else if case .ggml = target {
            throw bad("no ggml bytes for a ggml target")
        }
        self.init(name: name, rows: rows, cols: cols, target: target, codes: codes, parameters: parameters,
                  permutation: permutation, groupIndex: groupIndex, ggmlBytes: ggml, report: report)
    }
}
