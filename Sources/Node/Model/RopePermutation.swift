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
