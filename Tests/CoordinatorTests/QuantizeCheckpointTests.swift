import Foundation
import HessianDist
import Node
import Testing
import TestSupport
import Wire
@testable import Coordinator

/// The checkpoint files of `quantize --resume`: the weights a block continued with are recomputed bit
/// for bit from its linears for every kind of target (or stored when they are not), block files round-trip,
/// and a damaged file, a block of another job, a changed fingerprint field and a foreign directory are
/// each caught and named.
@Suite struct QuantizeCheckpointTests {
    let path = TestData.shared("llama2c/stories260K.bin")
    let fingerprint = [FingerprintField("model", "stories"), FingerprintField("--shrink", "0.8")]

    /// A calibrated sequential run of stories260K onto `target`, checkpointing into a fresh directory.
    func runWithCheckpoint(method: QuantMethod = .gptq, actOrder: Bool = false,
                           target: @escaping (String) -> StorageTarget) throws -> (QuantizeCheckpoint, [QuantizedLinear], WeightSource) {
        let source = try openModel(path: path)
        let tok = try openTokenizer(for: source, path: TestData.shared("llama2c/tok512.bin"))
        var wire = WireStats()
        let (cal, _) = try buildCalibration(source: source, tokenizer: tok, text: TestData.shared("text/tinystories_valid_sample.txt"),
                                            nsamples: 4, seqlen: 32, seed: 0, comm: .single, wire: &wire, progress: nil)
        var options = SequentialOptions()
        options.method = method
        options.actOrder = actOrder
        options.importanceFit = true
        options.microBatch = 2
        let dir = try TestData.tempDir("ckpt").appendingPathComponent("out.partial-ckpt").path
        let ckpt = try QuantizeCheckpoint.start(directory: dir, fingerprint: fingerprint, blocks: source.config.nLayers)
        let q = SequentialQuantizer(source: source, options: options, target: target)
        q.checkpoint = ckpt
        return (ckpt, try q.run(calibration: cal), source)
    }

    func expected(_ source: WeightSource, _ target: @escaping (String) -> StorageTarget) -> (Int) throws -> [(name: String, rows: Int, cols: Int, target: StorageTarget)] {
        { l in try sequentialGroups(l).flatMap { $0 }.map { n in let s = try source.info(n).shape; return (n, s[0], s[1], target(n)) } }
    }

    /// Q4_0 (ffn_down falls back to F16: 172 columns), Q4_K (K-quant fallbacks), RTN with an imatrix, and
    /// integer grids with and without act-order: no block needed its weights stored, and every block
    /// reads back with the same linears and the weights recomputed from them.
    @Test(arguments: ["q4_0", "q4_K", "rtn q5_1", "int4 g32 act-order", "int8 row sym"])
    func weightsAreRecomputedExactly(kind: String) throws {
        let grids: (Int) throws -> StorageTarget = { cols in
            kind.hasPrefix("int4") ? .integer(try IntegerGroupGrid(bits: 4, groupSize: cols % 32 == 0 ? 32 : -1, columns: cols))
                : .integer(try IntegerGroupGrid(bits: 8, groupSize: -1, columns: cols, symmetric: true))
        }
        let source = try openModel(path: path)
        var targets: [String: StorageTarget] = [:]
        for t in source.tensors where t.shape.count == 2 && t.name.hasPrefix("blk.") {
            let cols = t.shape[1]
            switch kind {
            case "q4_0": targets[t.name] = .ggml(cols % 32 == 0 ? .q4_0 : .f16)
            case "q4_K": targets[t.name] = .ggml(cols % 256 == 0 ? .q4_K : cols % 32 == 0 ? .q5_0 : .f16)
            case "rtn q5_1": targets[t.name] = .ggml(cols % 32 == 0 ? .q5_1 : .f16)
            default: targets[t.name] = try grids(cols)
            }
        }
        let target: (String) -> StorageTarget = { targets[$0]! }
        let (ckpt, linears, src) = try runWithCheckpoint(method: kind.hasPrefix("rtn") ? .rtn : .gptq,
                                                         actOrder: kind.contains("act-order"), target: target)
        #expect(ckpt.storedWeights == 0, "\(kind): \(ckpt.storedWeights) linears needed their weights stored")
        let (blocks, note) = try ckpt.loadBlocks(count: src.config.nLayers, withWeights: true, expected: expected(src, target))
        #expect(note == nil)
        #expect(blocks.count == src.config.nLayers)
        let loaded = blocks.flatMap(\.linears)
        #expect(loaded.map(\.name) == linears.map(\.name))
        for (a, b) in zip(loaded, linears) {
            #expect(a.codes == b.codes && a.parameters == b.parameters && a.ggmlBytes == b.ggmlBytes
                    && a.permutation == b.permutation && a.groupIndex == b.groupIndex && a.report.gptqError == b.report.gptqError, "\(a.name)")
        }
        #expect(blocks.allSatisfy { $0.weights.allSatisfy { $0 != nil } })
    }

    /// Weights that the linear does not reproduce (here one value nudged) are stored and read back exactly.
    @Test func differingWeightsAreStored() throws {
        let target: (String) -> StorageTarget = { _ in .ggml(.q8_0) }
        let (ckpt, linears, src) = try runWithCheckpoint { n in n.contains("ffn_down") ? .ggml(.f16) : .ggml(.q8_0) }
        let block0 = Array(linears.prefix(7))
        var nudged: [String: [Float]] = [:]
        for q in block0 {
            var w = try continuedWeights(q)
            w[3] = w[3].nextUp
            nudged[q.name] = w
        }
        try ckpt.write(block: 0, linears: block0) { nudged[$0] }
        #expect(ckpt.storedWeights == 7)
        let t: (String) -> StorageTarget = { n in n.contains("ffn_down") ? .ggml(.f16) : target(n) }
        let (blocks, note) = try ckpt.loadBlocks(count: 1, withWeights: true, expected: expected(src, t))
        #expect(note == nil && blocks.count == 1)
        for (q, w) in zip(block0, blocks[0].weights) {
            #expect(w?.map(\.bitPattern) == nudged[q.name]!.map(\.bitPattern), "\(q.name)")
        }
    }

    /// A flipped byte fails the file's CRC32C: that block and the later ones are dropped (deleted), the
    /// earlier ones load. A block file of another job (another fingerprint) is refused the same way.
    @Test func damagedOrForeignBlocksAreRedone() throws {
        let target: (String) -> StorageTarget = { n in n.contains("ffn_down") ? .ggml(.f16) : .ggml(.q4_0) }
        let (ckpt, _, src) = try runWithCheckpoint(target: target)
        let n = src.config.nLayers
        let p2 = ckpt.blockPath(2)
        var d = try Data(contentsOf: URL(fileURLWithPath: p2))
        d[100] ^= 1
        try d.write(to: URL(fileURLWithPath: p2))
        let (blocks, note) = try ckpt.loadBlocks(count: n, withWeights: true, expected: expected(src, target))
        #expect(blocks.map(\.block) == [0, 1])
        #expect(note?.contains("CRC32C") == true && note?.contains("redoing blocks 2...\(n - 1)") == true, "\(note ?? "")")
        #expect((2..<n).allSatisfy { !FileManager.default.fileExists(atPath: ckpt.blockPath($0)) })

        let other = QuantizeCheckpoint.reopen(directory: ckpt.directory, fingerprint: [FingerprintField("model", "another")])
        let (none, why) = try other.loadBlocks(count: n, withWeights: true, expected: expected(src, target))
        #expect(none.isEmpty)
        #expect(why?.contains("from another job") == true, "\(why ?? "")")
    }

    @Test func fingerprintCheckNamesTheField() throws {
        let job = [FingerprintField("model", "stories"), FingerprintField("--shrink", "0.5")]
        #expect { try QuantizeCheckpoint.check(job, against: fingerprint, directory: "d", complete: false) } throws: { e in
            "\(e)".contains("--shrink is 0.5, the checkpoint has 0.8") && "\(e)".contains("hint:")
        }
        // With `complete`, a recorded field the job lacks is a difference too; the early check skips it.
        try QuantizeCheckpoint.check([fingerprint[0]], against: fingerprint, directory: "d", complete: false)
        #expect { try QuantizeCheckpoint.check([fingerprint[0]], against: fingerprint, directory: "d", complete: true) } throws: { e in
            "\(e)".contains("--shrink is not recorded by this build")
        }
        try QuantizeCheckpoint.check(fingerprint, against: fingerprint, directory: "d", complete: true)
    }

    /// `start` replaces an old checkpoint but never deletes a directory holding anything else.
    @Test func startRefusesAForeignDirectory() throws {
        let dir = try TestData.tempDir("ckpt-foreign").appendingPathComponent("x.partial-ckpt")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: dir.appendingPathComponent("notes.txt"))
        #expect { try QuantizeCheckpoint.start(directory: dir.path, fingerprint: fingerprint, blocks: 1) } throws: { e in
            "\(e)".contains("not a quantize checkpoint") && "\(e)".contains("notes.txt")
        }
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("notes.txt").path))
        try FileManager.default.removeItem(at: dir.appendingPathComponent("notes.txt"))
        try Data("x".utf8).write(to: dir.appendingPathComponent("block-0000.bin"))
        let c = try QuantizeCheckpoint.start(directory: dir.path, fingerprint: fingerprint, blocks: 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: c.directory) == [QuantizeCheckpoint.manifestName])
        #expect(try QuantizeCheckpoint.recordedFingerprint(directory: c.directory)?.fields == fingerprint)
    }
}
