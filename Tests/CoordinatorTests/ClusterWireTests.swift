import Foundation
import HessianDist
import Testing
import Wire
@testable import Coordinator

/// The Hessian chain (running sum rank to rank) gives the bits of one process summing every micro-shard in
/// order, for any rank count, through the real wire encoding; and its messages decode strictly.
@Suite struct HessianChainTests {
    let columns = 24
    let T = 5

    /// Micro-shard k's rows, with magnitudes (up to 2^24 apart between micro-shards) that make even
    /// double additions order-sensitive.
    func partial(_ k: Int, _ shards: MicroShards) -> LayerHessian {
        var g = SplitMix(seed: UInt64(k + 1))
        let scale = Float(1 << ((k * 7) % 5 * 6))
        let x = (0..<(shards.range(k).count * T * columns)).map { _ in Float(g.unit() * 2 - 1) * scale * (g.unit() < 0.1 ? 1000 : 1) }
        let h = LayerHessian(columns: columns)
        x.withUnsafeBufferPointer { h.accumulate($0.baseAddress!, rows: x.count / columns) }
        return h
    }

    /// The definition: an empty sum, then micro-shards 0, 1, 2, … (the single-process code).
    func sequential(_ shards: MicroShards) -> LayerHessian {
        let ref = LayerHessian(columns: columns)
        for k in 0..<shards.count { ref.merge(partial(k, shards)) }
        return ref
    }

    /// Every rank of the chain as SequentialQuantizer runs it, with each hop encoded and decoded strictly.
    func chained(_ shards: MicroShards, size: Int, stats: inout WireStats) throws -> LayerHessian {
        var bytes: [UInt8]? = nil
        var prev = -1
        let chain = shards.chain(size: size)
        for (pos, r) in chain.enumerated() {
            let mine = shards.owned(rank: r, size: size)
            var part = HessianChainPart(columns: columns, first: pos == 0)
            for k in mine { part.append(partial(k, shards)) }
            var incoming: LayerHessian? = nil
            if let b = bytes {
                let ids = MessageIDs(layer: 3, module: 2, shard: UInt32(mine[0]), sender: UInt32(prev))
                let (h, messages) = try HessianWire.decode(b, columns: columns, count: shards.rowsBefore(mine[0], seqlen: T),
                                                           ids: ids, rank: r, operation: "test chain")
                for (m, n) in messages { stats.record(m, wireBytes: n) }
                incoming = h
            }
            let total = part.finish(incoming: incoming)
            if pos == chain.count - 1 { return total }
            bytes = try HessianWire.encode(total, ids: MessageIDs(layer: 3, module: 2, shard: UInt32(mine.last! + 1), sender: UInt32(r))).bytes
            prev = r
        }
        fatalError("empty chain")
    }

    @Test(arguments: [(11, 3), (16, 1), (7, 2), (1, 1)])
    func sameBitsAsOneProcessForAnyRankCount(samples: Int, microBatch: Int) throws {
        let shards = MicroShards(samples: samples, microBatch: microBatch)
        let ref = sequential(shards)
        for size in [1, 2, 3, 4, 5, 8] {
            var stats = WireStats()
            let h = try chained(shards, size: size, stats: &stats)
            #expect(h.count == ref.count, "size \(size)")
            let same = h.sum().map(\.bitPattern) == ref.sum().map(\.bitPattern)
            #expect(same, "size \(size): different bits")
            // One hop per pair of consecutive ranks on the chain.
            #expect((stats.byKind[.hessian]?.messages ?? 0) == shards.chain(size: size).count - 1)
        }
    }

    /// What the test guards against: each rank pre-summing its own micro-shards and adding the incoming
    /// sum once (a natural, cheaper-looking variant) gives different bits on this data.
    @Test func preSummingPerRankWouldChangeTheBits() {
        let shards = MicroShards(samples: 16, microBatch: 1)
        let ref = sequential(shards)
        let left = LayerHessian(columns: columns), right = LayerHessian(columns: columns)
        for k in 0..<8 { left.merge(partial(k, shards)) }
        for k in 8..<16 { right.merge(partial(k, shards)) }
        left.merge(right)
        let same = left.sum().map(\.bitPattern) == ref.sum().map(\.bitPattern)
        #expect(!same)
    }

    @Test func onePartialTravelsAsExactFloatsASumAsDoubles() throws {
        let shards = MicroShards(samples: 4, microBatch: 1)
        let one = partial(0, shards)
        // A waiting partial is kept as its float triangle; a sum of several is not exact in floats.
        #expect(one.exactFloatUpper()?.count == columns * (columns + 1) / 2)
        #expect(sequential(shards).exactFloatUpper() == nil)
        let ids = MessageIDs(layer: 1, module: 0, shard: 1, sender: 1)
        let (b1, m1) = try HessianWire.encode(one, ids: ids)
        #expect(m1[0].0.dtype == .f32)
        let sum = sequential(shards)
        let (b2, m2) = try HessianWire.encode(sum, ids: ids)
        #expect(m2[0].0.dtype == .f64)
        #expect(m1.map(\.1).reduce(0, +) == b1.count && m2.map(\.1).reduce(0, +) == b2.count)
        for (h, b) in [(one, b1), (sum, b2)] {
            let (back, _) = try HessianWire.decode(b, columns: columns, count: h.count, ids: ids, rank: 0, operation: "t")
            #expect(back.sum().map(\.bitPattern) == h.sum().map(\.bitPattern) && back.count == h.count)
        }
    }

    @Test func decodingIsStrict() throws {
        let shards = MicroShards(samples: 2, microBatch: 1)
        let h = sequential(shards)
        let ids = MessageIDs(layer: 1, module: 2, shard: 2, sender: 3)
        let b = try HessianWire.encode(h, ids: ids).bytes
        func fails(_ bytes: [UInt8], columns: Int? = nil, count: Int? = nil, ids: MessageIDs? = nil, _ text: String) {
            #expect { try HessianWire.decode(bytes, columns: columns ?? self.columns, count: count ?? h.count, ids: ids ?? MessageIDs(layer: 1, module: 2, shard: 2, sender: 3),
                                             rank: 0, operation: "chain") } throws: { e in
                "\(e)".contains(text) && "\(e)".contains("rank 0") && "\(e)".contains("from rank 3")
            }
        }
        fails(b, count: h.count + 1, "rows, expected")
        fails(b, columns: columns + 1, "hessian")
        fails(b, ids: MessageIDs(layer: 2, module: 2, shard: 2, sender: 3), "ids")
        fails(Array(b.dropLast(3)), "left")
        fails(b + b, "4 frames")
        var flipped = b
        flipped[200] ^= 1
        fails(flipped, "checksum")
    }
}

@Suite struct OwnerScheduleTests {
    @Test func longestFirstToTheLeastLoadedRankTiesByNameAndRank() {
        // q/k/v of SmolLM2 (576×576, 192×576, 192×576): q alone, k and v together on two ranks.
        let qkv = ["blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"]
        let rows = [576, 192, 192]
        let costs = zip(qkv, rows).map { ($0, moduleCost(rows: $1, cols: 576, target: .ggml(.q4_0), method: .gptq)) }
        #expect(lptOwners(costs, ranks: 2) == [qkv[0]: 0, qkv[1]: 1, qkv[2]: 1])
        #expect(lptOwners(costs, ranks: 4) == [qkv[0]: 0, qkv[1]: 1, qkv[2]: 2])
        #expect(lptOwners(costs, ranks: 1) == [qkv[0]: 0, qkv[1]: 0, qkv[2]: 0])
        // Equal costs: by name (gate before up), the lowest rank first.
        #expect(lptOwners([("up", 5), ("gate", 5)], ranks: 2) == ["gate": 0, "up": 1])
        // Nothing to solve (the profiling pass keeps F32): cost 0, so everything stays on rank 0.
        #expect(moduleCost(rows: 576, cols: 1536, target: .ggml(.f32), method: .gptq) == 0)
        #expect(lptOwners([("a", 0), ("b", 0)], ranks: 3) == ["a": 0, "b": 0])
        // The down projection (d_col 1536) costs more than gate and up together.
        #expect(moduleCost(rows: 576, cols: 1536, target: .ggml(.q4_0), method: .gptq)
                > 2 * moduleCost(rows: 1536, cols: 576, target: .ggml(.q4_0), method: .gptq))
    }

    @Test func roundTripAndStrictDecoding() throws {
        let grid = try IntegerGroupGrid(bits: 4, groupSize: 64, columns: 576, symmetric: true, scaleFormat: .f32)
        let s = OwnerSchedule(entries: [.init(name: "blk.0.attn_q.weight", owner: 1, target: .ggml(.q4_K)),
                                        .init(name: "blk.0.attn_k.weight", owner: 0, target: .integer(grid))])
        let back = try OwnerSchedule(message: WireMessage.decode(s.message().encode()), ranks: 2)
        #expect(back == s)
        #expect(throws: WireError.self) { try OwnerSchedule(message: s.message(), ranks: 1) }  // owner 1 of 1 rank
        var w = ByteWriter()
        w.write(UInt32(0))
        w.write(UInt8(9))
        let trailing = try WireMessage(kind: .manifest, dtype: .u8, shape: [5], payload: w.bytes)
        #expect(throws: WireError.self) { try OwnerSchedule(message: trailing, ranks: 2) }
        let wrongKind = try WireMessage(kind: .control, dtype: .u8, shape: [4], payload: [0, 0, 0, 0])
        #expect(throws: WireError.self) { try OwnerSchedule(message: wrongKind, ranks: 2) }
    }
}

@Suite struct QuantizedLinearWireTests {
    /// A real GPTQ solve of a small random layer onto `grid`, packed the way SequentialQuantizer does.
    func solved(target: StorageTarget, actOrder: Bool) throws -> QuantizedLinear {
        let rows = 8, cols = 64
        var g = SplitMix(seed: 7)
        let W = (0..<(rows * cols)).map { _ in Float(g.unit() * 2 - 1) }
        let x = (0..<(40 * cols)).map { _ in Float(g.unit() * 2 - 1) }
        let H = LayerHessian(columns: cols)
        x.withUnsafeBufferPointer { H.accumulate($0.baseAddress!, rows: 40) }
        let grid: any QuantGrid
        switch target {
        case .ggml(let t): grid = try GGMLGrid(type: t)
        case .integer(let i): grid = i
        }
        let r = try GPTQ(blockSize: 16, dampPercent: 0.01, actOrder: actOrder, shrink: 0).solve(W: W, rows: rows, cols: cols, H: H, grid: grid, importance: nil)
        let report = ModuleReport(name: "blk.1.ffn_up.weight", rows: rows, cols: cols, storage: "x", method: "gptq",
                                  gptqError: r.gptqError, rtnError: r.rtnError, damping: r.damping, fallback: "\(r.fallback)", seconds: 0.25)
        var q = QuantizedLinear(name: "blk.1.ffn_up.weight", rows: rows, cols: cols, target: target, codes: r.codes,
                                parameters: r.parameters, permutation: r.permutation, ggmlBytes: nil, report: report)
        q.groupIndex = r.permutation == nil ? nil : r.groupIndex
        // Any ggml bytes of the right size do for a round trip: llama.cpp's reference quantizer of W.
        if case .ggml(let t) = target { q.ggmlBytes = try W.withUnsafeBufferPointer { try quantizeTensor(t, rows: rows, cols: cols, from: $0.baseAddress!) } }
        return q
    }

    func same(_ a: QuantizedLinear, _ b: QuantizedLinear) {
        #expect(a.name == b.name && a.rows == b.rows && a.cols == b.cols && a.target == b.target)
        #expect(a.codes == b.codes && a.parameters == b.parameters && a.ggmlBytes == b.ggmlBytes)
        #expect(a.permutation == b.permutation && a.groupIndex == b.groupIndex)
        #expect(a.report.gptqError?.bitPattern == b.report.gptqError?.bitPattern && a.report.rtnError == b.report.rtnError)
        #expect(a.report.damping == b.report.damping && a.report.fallback == b.report.fallback)
        #expect(a.report.storage == b.report.storage && a.report.method == b.report.method && a.report.seconds == b.report.seconds)
    }

    @Test func roundTripGGMLAndIntegerWithActOrder() throws {
        let ids = MessageIDs(layer: 1, module: 9, shard: 0, sender: 1)
        let grid = try IntegerGroupGrid(bits: 4, groupSize: 32, columns: 64)
        for (t, act) in [(StorageTarget.ggml(.q4_0), false), (.integer(grid), true)] {
            let q = try solved(target: t, actOrder: act)
            #expect(act == (q.permutation != nil && q.groupIndex != nil))
            let bytes = try q.wireBytes(ids: ids).bytes
            let back = try QuantizedLinear(wire: bytes, name: q.name, rows: q.rows, cols: q.cols, target: t, ids: ids, rank: 0)
            same(q, back)
        }
    }

    @Test func decodingIsStrictAndNamesModuleAndRank() throws {
        let ids = MessageIDs(layer: 1, module: 9, shard: 0, sender: 1)
        let q = try solved(target: .ggml(.q4_0), actOrder: false)
        let bytes = try q.wireBytes(ids: ids).bytes
        func fails(_ b: [UInt8], name: String? = nil, rows: Int? = nil, target: StorageTarget = .ggml(.q4_0),
                   ids: MessageIDs? = nil, _ text: String) {
            #expect { try QuantizedLinear(wire: b, name: name ?? q.name, rows: rows ?? q.rows, cols: q.cols, target: target,
                                          ids: ids ?? MessageIDs(layer: 1, module: 9, shard: 0, sender: 1), rank: 0) } throws: { e in
                "\(e)".contains(text) && "\(e)".contains(name ?? q.name) && "\(e)".contains("rank 1")
            }
        }
        fails(bytes, target: .ggml(.q5_0), "header")                        // rank 0 asked for another type
        fails(bytes, name: "blk.1.ffn_gate.weight", "header")
        fails(bytes, rows: 4, "header")
        fails(bytes, ids: MessageIDs(layer: 2, module: 9, shard: 0, sender: 1), "ids")
        fails(Array(bytes.dropLast(1)), "left")
        // Codes that do not cover the layer, re-encoded validly: caught by the size checks, not the CRC.
        var short = q
        short.codes.removeLast()
        fails(try short.wireBytes(ids: ids).bytes, "codes")
        var noGGML = q
        noGGML.ggmlBytes = nil
        fails(try noGGML.wireBytes(ids: ids).bytes, "no ggml bytes")
        var badPerm = q
        badPerm.permutation = Array(repeating: 0, count: q.cols)
        fails(try badPerm.wireBytes(ids: ids).bytes, "permutation")
    }
}

