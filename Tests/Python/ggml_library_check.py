#!/usr/bin/env python3
"""Quantizes the fixtures of quant_fixtures.py with llama.cpp's own libggml-base (ctypes,
ggml_quantize_chunk) and compares with the NumPy port's bytes, so the port the Swift tests rely on is
itself checked against the C implementation.

Usage: ggml_library_check.py LIBGGML_BASE FIXTURE_DIR
For every T.ref.bin (no imatrix) and T.imat.ref.bin (with the imatrix T.imat.w.f32): stdout one line
"T ref|imat blocks=N mismatched=[i, ...]"; exit status 1 if any block differs. MXFP4 with an imatrix is
ours (ggml ignores the imatrix there), so only its reference path is compared.
"""
import ctypes
import sys
from pathlib import Path

import numpy as np

# ggml_type ids (ggml.h) and block sizes.
TYPES = {"Q4_0": (2, 32), "Q4_1": (3, 32), "Q5_0": (6, 32), "Q5_1": (7, 32), "Q8_0": (8, 32),
         "Q2_K": (10, 256), "Q3_K": (11, 256), "Q4_K": (12, 256), "Q5_K": (13, 256), "Q6_K": (14, 256),
         "IQ4_NL": (20, 32), "IQ4_XS": (23, 256), "MXFP4": (39, 32)}


def main() -> int:
    lib = ctypes.CDLL(sys.argv[1])
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    lib.ggml_type_size.restype = ctypes.c_size_t
    lib.ggml_type_size.argtypes = [ctypes.c_int]
    d = Path(sys.argv[2])
    failed = False
    for name, (tid, bs) in TYPES.items():
        size = lib.ggml_type_size(tid)
        cases = [("", d / f"{name}.in.f32", None)]
        if name != "MXFP4" and (d / f"{name}.imat.ref.bin").exists():
            cases.append(("imat.", d / f"{name}.imat.in.f32", d / f"{name}.imat.w.f32"))
        for kind, xin, win in cases:
            x = np.fromfile(xin, dtype=np.float32)
            ref = (d / f"{name}.{kind}ref.bin").read_bytes()
            w = np.fromfile(win, dtype=np.float32) if win else None
            cols = len(w) if w is not None else bs
            rows = len(x) // cols
            dst = ctypes.create_string_buffer(len(ref))
            n = lib.ggml_quantize_chunk(tid, x.ctypes.data, dst, 0, rows, cols,
                                        w.ctypes.data if w is not None else None)
            got = dst.raw[:n]
            bad = [i for i in range(len(ref) // size) if got[i * size:(i + 1) * size] != ref[i * size:(i + 1) * size]]
            if n != len(ref) or bad:
                failed = True
            print(f"{name} {kind or 'ref.'}bin blocks={len(ref) // size} bytes={n}/{len(ref)} mismatched={bad}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
