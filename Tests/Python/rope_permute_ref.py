#!/usr/bin/env python3
"""Reference for RoPE row permutation: convert_hf_to_gguf.py's `permute` (HF half-split -> GGUF interleaved).

Usage: rope_permute_ref.py OUT_DIR N_HEAD HEAD_DIM COLS
Writes OUT_DIR/input.f32 (rows = N_HEAD * HEAD_DIM, row-major) and OUT_DIR/permuted.f32 (little-endian float32).
"""
import os
import sys

import numpy as np


def permute(weights, n_head):
    # convert_hf_to_gguf.py LlamaModel.permute, with n_head_kv already folded into n_head.
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def main():
    out, n_head, head_dim, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = np.random.default_rng(1234)
    w = rng.standard_normal((n_head * head_dim, cols)).astype(np.float32)
    os.makedirs(out, exist_ok=True)
    w.astype("<f4").tofile(os.path.join(out, "input.f32"))
    permute(w, n_head).astype("<f4").tofile(os.path.join(out, "permuted.f32"))


if __name__ == "__main__":
    main()
