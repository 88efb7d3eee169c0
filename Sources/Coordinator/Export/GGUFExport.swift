// Writes a quantized model as GGUF: block linears from the sequential quantizer (GPTQ or RTN bytes),
// every other tensor quantized here by llama.cpp's reference quantizers per the type plan, metadata copied
// from a GGUF source or built from the config and tokenizer. Tensors stream one at a time.
import Foundation
import HessianDist
import Node

public func exportGGUF(path: String, source: WeightSource, tokenizer: Tokenizer?, plan: TypePlan,
                       linears: [QuantizedLinear], fileType: Int) throws {
    let byName = Dictionary(uniqueKeysWithValues: linears.map { ($0.name, $0) })
    let metadata = try exportMetadata(source: source, tokenizer: tokenizer, fileType: fileType)
    let c = source.config
    // GGUF's llama layout rotates interleaved pairs: half-split (HF) q/k rows are permuted into it.
    let permuteQK = c.ropeLayout == .halfSplit
    var tensors: [(info: GGUFTensorSpec, bytes: () throws -> [UInt8])] = []
    for t in source.tensors {
        guard let type = plan.types[t.name] else { continue }
        let rows = t.shape.count == 1 ? 1 : t.shape[0], cols = t.shape.last!
        let isQK = t.name.hasSuffix("attn_q.weight") || t.name.hasSuffix("attn_k.weight")
        tensors.append((GGUFTensorSpec(name: t.name, shape: t.shape, type: type), {
            var bytes: [UInt8]
            if let q = byName[t.name] {
                guard let b = q.ggmlBytes, case .ggml(let qt) = q.target, qt == type else {
                    throw ExportError.mismatch("\(t.name): quantized as \(q.report.storage), the plan says \(type)")
                }
                bytes = b
            } else {
                var values = try source.dequantize(t.name)
                if permuteQK && isQK {
                    values.withUnsafeMutableBufferPointer {
                        permuteRopeRows($0, rows: rows, cols: cols, headDim: c.headDim, from: .halfSplit, to: .interleaved)
                    }
                }
                let importance = plan.importance[t.name]
                bytes = try values.withUnsafeBufferPointer { v in
                    try importance.map { try quantizeTensor(type, rows: rows, cols: cols, from: v.baseAddress!, importance: $0) }
                        ?? encodeTensor(type, rows: rows, cols: cols, v.baseAddress!)
                }
                return bytes
            }
            if permuteQK && isQK { bytes = permuteRows(bytes, rows: rows, headDim: c.headDim) }
            return bytes
        }))
    }
    try writeGGUF(path: path, metadata: metadata, tensors: tensors)
}

/// The metadata `exportGGUF` writes: copied from a GGUF source, else built from the config and tokenizer.
func exportMetadata(source: WeightSource, tokenizer: Tokenizer?, fileType: Int) throws -> [(String, GGUFValue)] {
    if let g = source as? GGUFModel { return ggufMetadata(copying: g.gguf.metadata, fileType: fileType) }
    return try ggufMetadata(for: source.config, tokenizer: tokenizer,
                            name: URL(fileURLWithPath: source.path).deletingPathExtension().lastPathComponent,
                            fileType: fileType)
}

/// The layout of the file `exportGGUF` writes for this source, whatever the types: every tensor of the
/// source is written, in source order.
func exportLayout(source: WeightSource, tokenizer: Tokenizer?) throws -> GGUFLayout {
    GGUFLayout(metadata: try exportMetadata(source: source, tokenizer: tokenizer, fileType: 0),
               tensors: source.tensors.map { ($0.name, $0.shape) })
}

/// fp32 values to a ggml type's bytes (plain floats included).
func encodeTensor(_ type: GGMLType, rows: Int, cols: Int, _ x: UnsafePointer<Float>) throws -> [UInt8] {
    switch type {
    case .f32:
        return Array(UnsafeRawBufferPointer(start: x, count: rows * cols * 4))
    case .f16:
        var out = [UInt8](repeating: 0, count: rows * cols * 2)
        out.withUnsafeMutableBytes { o in
            for i in 0..<(rows * cols) { o.storeBytes(of: Float16(x[i]).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        }
        return out
    default:
        return try quantizeTensor(type, rows: rows, cols: cols, from: x)
    }
}

/// Moves whole rows of quantized bytes with the half-split → interleaved RoPE permutation of each head.
func permuteRows(_ bytes: [UInt8], rows: Int, headDim: Int) -> [UInt8] {
    let rowBytes = bytes.count / rows
    // Permute row indices by running the float permutation on the index values themselves.
    var index = (0..<rows).map { Float($0) }
    index.withUnsafeMutableBufferPointer {
        permuteRopeRows($0, rows: rows, cols: 1, headDim: headDim, from: .halfSplit, to: .interleaved)
    }
    var out = [UInt8](repeating: 0, count: bytes.count)
    for r in 0..<rows {
        let src = Int(index[r])
        out.replaceSubrange((r * rowBytes)..<((r + 1) * rowBytes), with: bytes[(src * rowBytes)..<((src + 1) * rowBytes)])
    }
    return out
}

public enum ExportError: Error, CustomStringConvertible {
    case mismatch(String)
    public var description: String {
        switch self { case .mismatch(let s): return "export: \(s)" }
    }
}
