// Row permutation of q/k projections between RoPE layouts: HF half-split <-> GGUF/llama2.c interleaved.
// This is llama.cpp convert_hf_to_gguf.py's `permute` (and its inverse), applied per head. Not RoPE itself.

/// Permutes the rows of a q or k projection `w` (rows, cols), row-major, in place, from one RoPE layout
/// to the other. Within each head of `headDim` rows, half-split row `j * headDim/2 + i` (j in 0...1)
/// and interleaved row `2i + j` hold the same weights:
/// halfSplit -> interleaved is numpy's `w.reshape(n_head, 2, headDim/2, cols).swapaxes(1, 2)`.
/// `rows` must be a multiple of `headDim` (use `nHeads * headDim` for q, `nKVHeads * headDim` for k).
public func permuteRopeRows(_ w: UnsafeMutableBufferPointer<Float>, rows: Int, cols: Int, headDim: Int,
                            from: RopeLayout, to: RopeLayout) {
    precondition(headDim > 0 && headDim % 2 == 0, "headDim \(headDim) must be positive and even")
    precondition(rows % headDim == 0, "rows \(rows) must be a multiple of headDim \(headDim)")
    precondition(w.count == rows * cols, "buffer of \(w.count) floats for (\(rows), \(cols))")
    guard from != to, cols > 0 else { return }
    let half = headDim / 2
    let headFloats = headDim * cols
    var head = [Float](repeating: 0, count: headFloats)
    head.withUnsafeMutableBufferPointer { tmp in
        for h in 0..<(rows / headDim) {
            let base = h * headFloats
            _ = tmp.initialize(from: w[base..<(base + headFloats)])
            for i in 0..<half {
                for j in 0..<2 {
                    let interleaved = 2 * i + j, split = j * half + i
                    let (src, dst) = from == .halfSplit ? (split, interleaved) : (interleaved, split)
                    let d = base + dst * cols
                    UnsafeMutableBufferPointer(rebasing: w[d..<(d + cols)])
                        .update(fromContentsOf: tmp[(src * cols)..<(src * cols + cols)])
                }
            }
        }
    }
}

/// The same permutation as an index map over rows, for data that moves with its rows without being
/// floats (quantized codes, per-row scales and zero points): row `r` of the output is row `result[r]` of
/// the input. `permuteRopeRows` on floats equals gathering rows by this map.
public func ropeRowPermutation(rows: Int, headDim: Int, from: RopeLayout, to: RopeLayout) -> [Int] {
    precondition(headDim > 0 && headDim % 2 == 0, "headDim \(headDim) must be positive and even")
    precondition(rows % headDim == 0, "rows \(rows) must be a multiple of headDim \(headDim)")
    var out = Array(0..<rows)
    guard from != to else { return out }
    let half = headDim / 2
    for h in 0..<(rows / headDim) {
        for i in 0..<half {
            for j in 0..<2 {
                let interleaved = h * headDim + 2 * i + j, split = h * headDim + j * half + i
                if from == .halfSplit { out[interleaved] = split } else { out[split] = interleaved }
            }
        }
    }
    return out
}

/// Gathers rows of a row-major (rows, rowLength) array: row `r` of the result is row `permutation[r]`.
public func gatherRows<T>(_ a: [T], rowLength: Int, permutation: [Int]) -> [T] {
    precondition(a.count == permutation.count * rowLength, "\(a.count) values for \(permutation.count) rows of \(rowLength)")
    var out: [T] = []
    out.reserveCapacity(a.count)
    for src in permutation { out += a[(src * rowLength)..<((src + 1) * rowLength)] }
    return out
}
