#!/usr/bin/env python3
"""A NumPy GPTQ written from the paper (Frantar et al. 2022, Algorithm 1) for GPTQTests.

Not the IST-DASLab code and not our Swift solver's structure: no lazy batches (every column's error is
pushed onto all later columns at once, which the paper shows is the same result), float64 linear algebra.
The grid arithmetic (min-max fit, fp16 scale, nearest code, Q = scale*q + offset) is done in float32 with
the same operations as IntegerGroupGrid / QuantGrid.nearestCode, so codes can match bit for bit.

usage: gptq_reference.py W.f32 X.f32 rows cols N bits groupsize sym actorder static damp shrink out_prefix
  writes out_prefix.codes.f32, out_prefix.q.f32 (rows*cols, natural order) and out_prefix.err.f32
  ([gptq error, rtn error] as tr(dW H dW^T) with H = 2/N X^T X).
usage: gptq_reference.py --xtx X.f32 N cols out.f32   writes X^T X (float64 math, stored float32).
"""
import sys
import numpy as np

F32 = np.float32


def fit(w, bits, sym):
    """w (rows, gs) float32 -> per-row (scale, offset) float32, as IntegerGroupGrid.fit."""
    maxq = F32((1 << bits) - 1)
    xmin = np.minimum(w.min(axis=1), F32(0))
    xmax = np.maximum(w.max(axis=1), F32(0))
    if sym:
        xmax = np.maximum(np.abs(xmin), xmax)
        xmin = np.where(xmin < 0, -xmax, xmin)
    both = xmin == xmax
    xmin = np.where(both, F32(-1), xmin)
    xmax = np.where(both, F32(1), xmax)
    s = ((xmax - xmin) / maxq).astype(F32)
    s = np.minimum(s, F32(65504)).astype(np.float16).astype(F32)
    s = np.maximum(s, F32(np.finfo(np.float16).smallest_subnormal))
    if sym:
        z = np.full_like(s, F32(((1 << bits) - 1 + 1) // 2))
    else:
        z = np.clip(np.round(-xmin / s), F32(0), maxq).astype(F32)
        # GPTQ v1 stores zero - 1: a zero of 0 is refitted as scale = xmax / (maxq - 1), zero = 1.
        low = z == 0
        s2 = (xmax / (maxq - F32(1))).astype(F32)
        s2 = np.minimum(s2, F32(65504)).astype(np.float16).astype(F32)
        s2 = np.maximum(s2, F32(np.finfo(np.float16).smallest_subnormal))
        s = np.where(low, s2, s).astype(F32)
        z = np.where(low, F32(1), z).astype(F32)
    return s, (-(s * z)).astype(F32)


def nearest(w, s, o, bits):
    """float32 codes and values: q = clamp(round((w - offset) / scale)), Q = scale*q + offset."""
    q = np.clip(np.round((w - o) / s), F32(0), F32((1 << bits) - 1)).astype(F32)
    return q, (s * q + o).astype(F32)


def layer_error(W, Q, H):
    D = W.astype(np.float64) - Q.astype(np.float64)
    return float(np.einsum("ij,jk,ik->", D, H, D))


def gptq(W, X, bits, gs, sym, actorder, static, damp, shrink):
    rows, n = W.shape
    H0 = 2.0 / X.shape[0] * (X.astype(np.float64).T @ X.astype(np.float64))
    H = H0.copy()
    W = W.astype(np.float64)
    # dead columns
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    # shrinkage toward the diagonal: (1 - shrink) H + shrink diag(H)
    H = (1.0 - shrink) * H + shrink * np.diag(np.diag(H))
    # static groups from the (dead-zeroed) W in natural order
    S = np.zeros((rows, n), F32)
    O = np.zeros((rows, n), F32)
    if actorder and static:
        for g in range(0, n, gs):
            s, o = fit(W[:, g:g + gs].astype(F32), bits, sym)
            S[:, g:g + gs] = s[:, None]
            O[:, g:g + gs] = o[:, None]
    perm = np.arange(n)
    if actorder:
        perm = np.argsort(-np.diag(H), kind="stable")
        W, H, S, O = W[:, perm], H[perm][:, perm], S[:, perm], O[:, perm]
    # damping, Hinv = upper Cholesky factor of H^-1
    H[np.diag_indices(n)] += damp * np.mean(np.diag(H))
    Hinv = np.linalg.cholesky(np.linalg.inv(H)).T
    Qp = np.zeros((rows, n), F32)
    codes = np.zeros((rows, n), F32)
    for i in range(n):
        if not (actorder and static) and i % gs == 0:
            s, o = fit(W[:, i:i + gs].astype(F32), bits, sym)
            S[:, i:i + gs] = s[:, None]
            O[:, i:i + gs] = o[:, None]
        q, v = nearest(W[:, i].astype(F32), S[:, i], O[:, i], bits)
        codes[:, i], Qp[:, i] = q, v
        err = (W[:, i] - v.astype(np.float64)) / Hinv[i, i]
        W[:, i + 1:] -= np.outer(err, Hinv[i, i + 1:])
    Q = np.zeros_like(Qp)
    C = np.zeros_like(codes)
    Q[:, perm] = Qp
    C[:, perm] = codes
    return C, Q, H0


def main():
    a = sys.argv[1:]
    if a[0] == "--xtx":
        N, cols = int(a[2]), int(a[3])
        X = np.fromfile(a[1], dtype="<f4").reshape(N, cols).astype(np.float64)
        (X.T @ X).astype("<f4").tofile(a[4])
        return
    rows, cols, N, bits, gs = (int(v) for v in a[2:7])
    sym, actorder, static = (v == "1" for v in a[7:10])
    damp, shrink = float(a[10]), float(a[11])
    W = np.fromfile(a[0], dtype="<f4").reshape(rows, cols)
    X = np.fromfile(a[1], dtype="<f4").reshape(N, cols)
    C, Q, H0 = gptq(W, X, bits, gs, sym, actorder, static, damp, shrink)
    # RTN on the same grid from the original W
    R = np.zeros_like(W)
    for g in range(0, cols, gs):
        s, o = fit(W[:, g:g + gs], bits, sym)
        _, R[:, g:g + gs] = nearest(W[:, g:g + gs], s[:, None], o[:, None], bits)
    C.astype("<f4").tofile(a[12] + ".codes.f32")
    Q.astype("<f4").tofile(a[12] + ".q.f32")
    np.array([layer_error(W, Q, H0), layer_error(W, R, H0)], "<f4").tofile(a[12] + ".err.f32")


if __name__ == "__main__":
    main()
