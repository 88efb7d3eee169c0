// llama2.c "legacy" (version 0) checkpoints: 7 int32 header, then fp32 tensors in a fixed order.
// Negative vocab_size means an untied classifier follows the RoPE tables. Not the v1/v2 exports.
import HessianDist
import Wire

public final class Llama2cCheckpoint: WeightSource {
    public let path: String
    public var format: String { "llama2.c v0" }
    public let config: ModelConfig
    public let tensors: [TensorInfo]
    private let file: MappedFile
    /// Byte offset of each tensor's fp32 data.
    private let offsets: [String: Int]

    public static let headerBytes = 7 * 4

    public init(path: String, file: MappedFile? = nil) throws {
        self.path = path
        let file = try file ?? MappedFile(path: path)
        self.file = file
        let h: [Int32] = try file.withBytes(offset: 0, length: Self.headerBytes, field: "header (7 x int32)") { raw in
            var r = ByteReader(raw)
            return try (0..<7).map { _ in try r.read(Int32.self, "header") }
        }
        let (dim, hidden, layers, heads, kvHeads, vocabSigned, seqLen) =
            (Int(h[0]), Int(h[1]), Int(h[2]), Int(h[3]), Int(h[4]), Int(h[5]), Int(h[6]))
        let shared = vocabSigned > 0
        var config = ModelConfig(dim: dim, hiddenDim: hidden, nLayers: layers, nHeads: heads, nKVHeads: kvHeads,
                                 vocabSize: abs(vocabSigned), contextLength: seqLen, ropeTheta: 10000,
                                 normEps: 1e-5, tiedEmbeddings: shared, ropeLayout: .interleaved)
        config.architecture = "llama"
        try config.validate(file: path)
        if seqLen > 1 << 20 {
            throw ModelFormatError(file: path, field: "seq_len", expected: "<= 1048576", found: "\(seqLen)")
        }
        self.config = config

        // The file order of llama2.c's run.c `memory_map_weights`; all layers of one kind are contiguous.
        let L = layers, C = dim, H = hidden, kv = config.kvDim, hs = config.headDim, V = config.vocabSize
        var infos: [TensorInfo] = []
        var offs: [String: Int] = [:]
        var at = Self.headerBytes
        func add(_ name: String, _ shape: [Int]) {
            infos.append(TensorInfo(name: name, shape: shape, type: .f32))
            offs[name] = at
            at += shape.reduce(1, *) * 4
        }
        func addLayers(_ name: (Int) -> String, _ shape: [Int]) { for l in 0..<L { add(name(l), shape) } }
        add(TensorName.tokenEmbedding, [V, C])
        addLayers(TensorName.attnNorm, [C])
        addLayers(TensorName.attnQ, [config.qDim, C])
        addLayers(TensorName.attnK, [kv, C])
        addLayers(TensorName.attnV, [kv, C])
        addLayers(TensorName.attnOutput, [C, config.qDim])
        addLayers(TensorName.ffnNorm, [C])
        addLayers(TensorName.ffnGate, [H, C])   // w1
        addLayers(TensorName.ffnDown, [C, H])   // w2
        addLayers(TensorName.ffnUp, [H, C])     // w3
        add(TensorName.outputNorm, [C])
        at += seqLen * hs / 2 * 4 * 2           // freq_cis_real, freq_cis_imag: recomputed, not read
        if !shared { add(TensorName.output, [V, C]) }
        guard at == file.count else {
            throw ModelFormatError(file: path, field: "file size",
                                   expected: "\(at) bytes for the header's dimensions", found: "\(file.count) bytes",
                                   hint: at > file.count ? "the file is truncated" : "not a version-0 llama2.c checkpoint, or a header that contradicts the data")
        }
        // Canonical order: layer by layer, as GGUF lists them.
        let order = Dictionary(uniqueKeysWithValues: config.expectedShapes().enumerated().map { ($1.name, $0) })
        self.tensors = infos.sorted { order[$0.name, default: .max] < order[$1.name, default: .max] }
        self.offsets = offs
    }

    public func dequantize(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws {
        let t = try info(name)
        guard out.count == t.elementCount, let off = offsets[name] else {
            throw ModelFormatError(file: path, field: "tensor \(name)", expected: "\(t.elementCount) floats",
                                   found: "a buffer of \(out.count)")
        }
        try file.withBytes(offset: off, length: out.count * 4, field: "tensor \(name) data") { raw in
            // llama2.c writes native little-endian floats; we run on little-endian hosts only.
            UnsafeMutableRawBufferPointer(out).copyMemory(from: raw)
        }
    }
}
