#!/usr/bin/env python3
"""Writes inputs and expected bytes for the Swift reference-quantizer tests (QuantizeTests).

Usage: quant_fixtures.py OUTDIR

For each type T in Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL IQ4_XS MXFP4:
  OUTDIR/T.in.f32   the blocks (little-endian float32, a whole number of blocks), see `blocks()`;
  OUTDIR/T.ref.bin  ggml_quant_reference.quantize (the NumPy port of quantize_row_*_ref, no FMA);
  OUTDIR/T.gguf.bin gguf.quants.quantize of the same data, for the types gguf-py implements (Q4_0..Q8_0).
gguf-py emulates a fused multiply-add for Q4_0/Q5_0 (`x*id + 8.5` in float64; its FIXME), llama.cpp's
x86-64 build has none: the two may disagree on a weight whose scaled value is within an ulp of a
rounding boundary; and on an all-(-0.0) block ggml keeps the sign of zero in d (and m) where gguf-py
does not. stdout: one line per type, "T blocks=N gguf_mismatch_blocks=[i, ...]".
For Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4 also T.imat.in.f32 (17 x 64), T.imat.w.f32 (64 importances) and
T.imat.ref.bin: ggml_quant_reference.quantize_imatrix, the port of llama.cpp's imatrix quantizers (MXFP4's is ours); for
Q2_K..Q6_K and IQ4_XS the same with 9 rows x 512 (two super-blocks a row, 512 importances).
"""
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as GT

sys.path.insert(0, str(Path(__file__).parent))
import ggml_quant_reference as ref  # noqa: E402

f32 = np.float32


def blocks(bs: int, rng: np.random.Generator) -> np.ndarray:
    """Random normal data, outliers, zeros, all-equal blocks, tiny and huge magnitudes, grid-aligned
    values (ties), one-signed blocks, per-sub-block magnitudes, a ramp."""
    out = [rng.standard_normal(bs) for _ in range(10)]
    for k in range(4):
        b = rng.standard_normal(bs)
        b[rng.integers(0, bs, size=1 + k % 2)] *= rng.uniform(20, 100)
        out.append(b)
    out += [np.zeros(bs), np.full(bs, -0.0), np.full(bs, 0.37), np.full(bs, -2.5), np.full(bs, 1e-3)]
    for mag in (1e-30, 1e-12, 1e-6, 1e6, 1e15, 1e30):
        out.append(rng.standard_normal(bs) * mag)
    out.append(rng.integers(-8, 8, size=bs) * 0.25)       # values on a grid: ties everywhere
    out.append(rng.integers(-16, 16, size=bs) * 0.125)
    out.append(rng.integers(0, 4, size=bs) * 1.0)
    out.append(np.abs(rng.standard_normal(bs)) + 0.5)      # all positive (Q*_1 / K mins)
    out.append(-np.abs(rng.standard_normal(bs)) - 0.5)     # all negative
    b = rng.standard_normal(bs); b[: bs // 2] = 0; out.append(b)
    b = np.zeros(bs); b[bs // 3] = -1.7; out.append(b)    # a single nonzero
    out.append(np.linspace(-1, 3, bs))
    sub = 16 if bs == 256 else 8
    out.append(rng.standard_normal(bs) * np.repeat(10.0 ** rng.uniform(-3, 3, bs // sub), sub))
    b = rng.standard_normal(bs) * np.repeat(rng.integers(0, 2, bs // sub), sub); out.append(b)  # zero sub-blocks
    return np.concatenate(out).astype(f32)


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240613)
    for name, (bs, _) in ref.QUANTIZERS.items():
        x = blocks(bs, rng)
        x.tofile(out / f"{name}.in.f32")
        r = ref.quantize(name, x)
        (out / f"{name}.ref.bin").write_bytes(r)
        line = f"{name} blocks={len(x) // bs}"
        if name in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"):
            with np.errstate(all="ignore"):
                g = gguf.quants.quantize(x.reshape(1, -1), GT[name]).tobytes()
            (out / f"{name}.gguf.bin").write_bytes(g)
            size = len(r) // (len(x) // bs)
            bad = [i for i in range(len(x) // bs) if r[i * size:(i + 1) * size] != g[i * size:(i + 1) * size]]
            line += f" gguf_mismatch_blocks={bad}"
        print(line)
    # Importance-matrix quantization (llama.cpp's quantize_<type> with quant_weights), 17 rows x 64.
    for name in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "MXFP4"):
        x = blocks(32, rng)[:17 * 64].reshape(17, 64)
        imat = (rng.standard_normal(64) ** 2).astype(f32)
        imat[:4] *= 100        # dominant columns
        imat[10] = 0           # a dead column
        x.tofile(out / f"{name}.imat.in.f32")
        imat.tofile(out / f"{name}.imat.w.f32")
        (out / f"{name}.imat.ref.bin").write_bytes(ref.quantize_imatrix(name, x, imat))
    for name in ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"):
        x = blocks(256, rng)[:9 * 512].reshape(9, 512)
        imat = (rng.standard_normal(512) ** 2).astype(f32)
        imat[:8] *= 100        # dominant columns
        imat[10] = 0           # a dead column
        imat[256:272] = 0      # a dead sub-block
        x.tofile(out / f"{name}.imat.in.f32")
        imat.tofile(out / f"{name}.imat.w.f32")
        (out / f"{name}.imat.ref.bin").write_bytes(ref.quantize_imatrix(name, x, imat))


if __name__ == "__main__":
    main()
