"""A NumPy port of llama.cpp's reference quantizers (ggml-quants.c `quantize_row_*_ref`), written for
the test suite: every float operation is one IEEE single rounding in the C source's order (NumPy float32
scalars and element-wise float32 arrays; sums are sequential `cumsum`s starting from 0, as the C loops
accumulate). No fused multiply-add: ggml-base is built for x86-64 without FMA.

gguf-py (0.17) implements only Q4_0..Q8_0, and emulates FMA for Q4_0/Q5_0 (its FIXME); the K-quants
(Q2_K..Q6_K) have no Python quantizer at all, hence this file. Not a fast quantizer: one block at a time.
"""
import numpy as np

f32 = np.float32
GROUP_MAX_EPS = f32(1e-15)


def seqsum(a, from_first: bool = False) -> np.float32:
    """`float s = 0; for (...) s += a[i];` — a sequential float32 sum from +0 (or, `from_first`, the C
    idiom `float s = a[0]; for (i = 1; ...) s += a[i];`, which differs only in the sign of a zero)."""
    a = np.asarray(a, dtype=f32)
    return np.cumsum(a if from_first else np.concatenate([np.zeros(1, f32), a]), dtype=f32)[-1]


def nearest_int(v):
    """ggml's nearest_int: add 1.5*2^23, read the mantissa (round half to even)."""
    a = np.atleast_1d(np.asarray(v, dtype=f32)) + f32(12582912.0)
    r = (a.view(np.int32) & 0x007FFFFF) - 0x00400000
    return r if np.ndim(v) else int(r[0])


def f16_bits(v) -> int:
    return int(np.array([v], dtype=f32).astype(np.float16).view(np.uint16)[0])


def f16_value(v) -> np.float32:
    return f32(np.array([v], dtype=f32).astype(np.float16)[0])


def c_trunc_i32(v: np.ndarray) -> np.ndarray:
    """(int)v as cvttss2si: toward zero; NaN / out of range give INT_MIN."""
    v = np.asarray(v, dtype=f32)
    ok = np.isfinite(v) & (v > f32(-2147483904.0)) & (v < f32(2147483648.0))
    out = np.full(v.shape, -(1 << 31), dtype=np.int64)
    out[ok] = np.trunc(v[ok]).astype(np.int64)
    return out


def as_i8(v: np.ndarray) -> np.ndarray:
    return ((np.asarray(v, dtype=np.int64) + 128) % 256) - 128


def first_absmax(x: np.ndarray) -> np.float32:
    """`if (amax < fabsf(v)) { amax = fabsf(v); max = v; }` from amax = max = 0."""
    amax, mx = f32(0), f32(0)
    for v in x:
        if amax < abs(v):
            amax, mx = abs(v), v
    return mx


# ---------------------------------------------------------------- 32-weight blocks

def q4_0(x: np.ndarray) -> bytes:
    mx = first_absmax(x)
    d = mx / f32(-8)
    idv = f32(1) / d if d != 0 else f32(0)
    q = np.minimum(15, as_i8(c_trunc_i32(x * idv + f32(8.5)))) & 0xFF
    return np.uint16(f16_bits(d)).tobytes() + bytes((q[:16] | (q[16:] << 4)).astype(np.uint8))


def _min_max(x):
    lo, hi = f32(np.finfo(f32).max), f32(-np.finfo(f32).max)
    for v in x:
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    return lo, hi


def q4_1(x: np.ndarray) -> bytes:
    lo, hi = _min_max(x)
    d = (hi - lo) / f32(15)
    idv = f32(1) / d if d != 0 else f32(0)
    q = np.minimum(15, as_i8(c_trunc_i32((x - lo) * idv + f32(0.5)))) & 0xFF
    return (np.uint16(f16_bits(d)).tobytes() + np.uint16(f16_bits(lo)).tobytes()
            + bytes((q[:16] | (q[16:] << 4)).astype(np.uint8)))


def _qh(q: np.ndarray) -> bytes:
    qh = 0
    for j in range(32):
        qh |= ((int(q[j]) >> 4) & 1) << j
    return np.uint32(qh).tobytes()


def q5_0(x: np.ndarray) -> bytes:
    mx = first_absmax(x)
    d = mx / f32(-16)
    idv = f32(1) / d if d != 0 else f32(0)
    q = np.minimum(31, as_i8(c_trunc_i32(x * idv + f32(16.5)))) & 0xFF
    return np.uint16(f16_bits(d)).tobytes() + _qh(q) + bytes(((q[:16] & 15) | ((q[16:] & 15) << 4)).astype(np.uint8))


def q5_1(x: np.ndarray) -> bytes:
    lo, hi = _min_max(x)
    d = (hi - lo) / f32(31)
    idv = f32(1) / d if d != 0 else f32(0)
    q = c_trunc_i32((x - lo) * idv + f32(0.5)) & 0xFF
    return (np.uint16(f16_bits(d)).tobytes() + np.uint16(f16_bits(lo)).tobytes() + _qh(q)
            + bytes(((q[:16] & 15) | ((q[16:] & 15) << 4)).astype(np.uint8)))


def q8_0(x: np.ndarray) -> bytes:
    amax = f32(0)
    for v in x:
        amax = amax if amax > abs(v) else abs(v)
    d = amax / f32(127)
    idv = f32(1) / d if d != 0 else f32(0)
    t = x * idv
    a = np.abs(t)
    fl = np.floor(a)
    r = np.sign(t) * (fl + (a - fl >= f32(0.5)))  # roundf: half away from zero (a - fl is exact)
    q = c_trunc_i32(r.astype(f32)) & 0xFF
    return np.uint16(f16_bits(d)).tobytes() + bytes(q.astype(np.uint8))


# ---------------------------------------------------------------- K-quant helpers

def make_qkx2_quants(x, w, nmax, rmin, rdelta, nstep, use_mad):
    """Returns (scale, the_min, L): the affine fit x ~ scale*L - the_min with L in 0..nmax."""
    n = len(x)
    mn, mx = f32(x.min()), f32(x.max())
    sum_w = seqsum(w, from_first=True)
    sum_x = seqsum(w * x, from_first=True)
    if mn > 0:
        mn = f32(0)
    if mx == mn:
        return f32(0), -mn, np.zeros(n, np.int64)
    iscale = f32(nmax) / (mx - mn)
    scale = f32(1) / iscale
    L = np.clip(nearest_int(iscale * (x - mn)), 0, nmax)
    diff = scale * L.astype(f32) + mn - x
    diff = np.abs(diff) if use_mad else diff * diff
    best_error = seqsum(w * diff)
    if nstep < 1:
        return scale, -mn, L
    for is_ in range(nstep + 1):
        iscale = (f32(rmin) + f32(rdelta) * f32(is_) + f32(nmax)) / (mx - mn)
        laux = np.clip(nearest_int(iscale * (x - mn)), 0, nmax)
        lf = laux.astype(f32)
        sum_l = seqsum(w * lf)
        sum_l2 = seqsum(w * lf * lf)
        sum_xl = seqsum(w * lf * x)
        D = sum_w * sum_l2 - sum_l * sum_l
        if D > 0:
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / D
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D
            if this_min > 0:
                this_min = f32(0)
                this_scale = sum_xl / sum_l2
            diff = this_scale * lf + this_min - x
            diff = np.abs(diff) if use_mad else diff * diff
            cur_error = seqsum(w * diff)
            if cur_error < best_error:
                L, best_error, scale, mn = laux, cur_error, this_scale, this_min
    return scale, -mn, L


def make_qx_quants_rmse1(x, nmax, qw=None):
    """make_qx_quants(n, nmax, x, L, rmse_type=1, qw): returns (scale, L in 0..2*nmax-1); weights x*x
    when qw is None."""
    n = len(x)
    mx = first_absmax(x)
    if abs(mx) < GROUP_MAX_EPS:
        return f32(0), np.zeros(n, np.int64)
    w = x * x if qw is None else np.asarray(qw, dtype=f32)

    def trial(iscale):
        l = np.clip(nearest_int(iscale * x), -nmax, nmax - 1)
        lf = l.astype(f32)
        return l, seqsum(w * x * lf), seqsum(w * lf * lf)

    l, sumlx, suml2 = trial(f32(-nmax) / mx)
    L = l + nmax
    scale = sumlx / suml2 if suml2 != 0 else f32(0)
    best = scale * sumlx
    for is_ in range(-9, 10):
        if is_ == 0:
            continue
        l, sumlx, suml2 = trial(-(f32(nmax) + f32(0.1) * f32(is_)) / mx)
        if suml2 > 0 and sumlx * sumlx > best * suml2:
            L = l + nmax
            scale = sumlx / suml2
            best = scale * sumlx
    return scale, L


def make_q3_quants_rmse(x, nmax):
    """make_q3_quants(n, nmax, x, L, do_rmse=true): returns (scale, L); an all-zero group keeps L = 0."""
    n = len(x)
    mx = first_absmax(x)
    if abs(mx) < GROUP_MAX_EPS:
        return f32(0), np.zeros(n, np.int64)
    iscale = f32(-nmax) / mx
    L = np.clip(nearest_int(iscale * x), -nmax, nmax - 1)
    lf = L.astype(f32)
    w = x * x
    sumlx = seqsum(w * x * lf)
    suml2 = seqsum(w * lf * lf)
    for _ in range(5):
        n_changed = 0
        for i in range(n):
            wi = x[i] * x[i]
            slx = sumlx - wi * x[i] * f32(L[i])
            if slx > 0:
                sl2 = suml2 - wi * f32(L[i]) * f32(L[i])
                new_l = min(max(nearest_int(x[i] * sl2 / slx), -nmax), nmax - 1)
                if new_l != L[i]:
                    slx = slx + wi * x[i] * f32(new_l)
                    sl2 = sl2 + wi * f32(new_l) * f32(new_l)
                    if sl2 > 0 and slx * slx * suml2 > sumlx * sumlx * sl2:
                        L[i], sumlx, suml2 = new_l, slx, sl2
                        n_changed += 1
        if not n_changed:
            break
    return (sumlx / suml2 if suml2 > 0 else f32(0)), L + nmax


def _pack2(L: np.ndarray) -> bytes:
    qs = bytearray(64)
    for j in range(0, 256, 128):
        for l in range(32):
            qs[j // 4 + l] = (L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6)) & 0xFF
    return bytes(qs)


# ---------------------------------------------------------------- K-quants

def q2_K(x: np.ndarray) -> bytes:
    scales, mins = np.zeros(16, f32), np.zeros(16, f32)
    L = np.zeros(256, np.int64)
    for j in range(16):
        xs = x[16 * j:16 * j + 16]
        scales[j], mins[j], L[16 * j:16 * j + 16] = make_qkx2_quants(xs, np.abs(xs), 3, -0.5, 0.1, 15, True)
    max_scale = max_min = f32(0)
    for j in range(16):
        if scales[j] > max_scale:
            max_scale = scales[j]
        if mins[j] > max_min:
            max_min = mins[j]
    sc = [0] * 16
    if max_scale > 0:
        iscale = f32(15) / max_scale
        for j in range(16):
            sc[j] = nearest_int(iscale * scales[j]) & 0xFF
        d = f16_bits(max_scale / f32(15))
    else:
        d = f16_bits(f32(0))
    if max_min > 0:
        iscale = f32(15) / max_min
        for j in range(16):
            sc[j] = (sc[j] | (nearest_int(iscale * mins[j]) << 4)) & 0xFF
        dmin = f16_bits(max_min / f32(15))
    else:
        dmin = f16_bits(f32(0))
    return _q2_K_tail(x, L, sc, d, dmin)


def _q2_K_tail(x, L, sc, d, dmin) -> bytes:
    """Codes re-rounded on the stored grid (sub-blocks with d*sc = 0 keep L) and packing."""
    dv, dminv = f32(np.uint16(d).view(np.float16)), f32(np.uint16(dmin).view(np.float16))
    for j in range(16):
        dd = dv * f32(sc[j] & 0xF)
        if dd == 0:
            continue
        dm = dminv * f32(sc[j] >> 4)
        L[16 * j:16 * j + 16] = np.clip(nearest_int((x[16 * j:16 * j + 16] + dm) / dd), 0, 3)
    return bytes(sc) + _pack2(L) + np.uint16(d).tobytes() + np.uint16(dmin).tobytes()


def q3_K(x: np.ndarray) -> bytes:
    scales = np.zeros(16, f32)
    L = np.zeros(256, np.int64)
    for j in range(16):
        scales[j], L[16 * j:16 * j + 16] = make_q3_quants_rmse(x[16 * j:16 * j + 16], 4)
    max_scale = amax = f32(0)
    for j in range(16):
        if abs(scales[j]) > amax:
            amax, max_scale = abs(scales[j]), scales[j]
    sc = [0] * 12
    if max_scale != 0:
        iscale = f32(-32) / max_scale
        for j in range(16):
            l = int(as_i8(nearest_int(iscale * scales[j])))
            l = max(-32, min(31, l)) + 32
            if j < 8:
                sc[j] = l & 0xF
            else:
                sc[j - 8] |= (l & 0xF) << 4
            sc[j % 4 + 8] |= (l >> 4) << (2 * (j // 4))
        d = f16_bits(f32(1) / iscale)
    else:
        d = f16_bits(f32(0))
    return _q3_K_tail(x, L, sc, d)


def _q3_K_tail(x, L, sc, d) -> bytes:
    """Codes re-rounded on the stored grid (sub-blocks with d*sc = 0 keep L), hmask and packing."""
    dv = f32(np.uint16(d).view(np.float16))
    for j in range(16):
        s = (sc[j] & 0xF) if j < 8 else (sc[j - 8] >> 4)
        s = (s | (((sc[8 + j % 4] >> (2 * (j // 4))) & 3) << 4)) - 32
        dd = dv * f32(s)
        if dd == 0:
            continue
        L[16 * j:16 * j + 16] = np.clip(nearest_int(x[16 * j:16 * j + 16] / dd), -4, 3) + 4
    hmask = bytearray(32)
    for j in range(256):
        if L[j] > 3:
            hmask[j % 32] |= 1 << (j // 32)
            L[j] -= 4
    return bytes(hmask) + _pack2(L) + bytes(sc) + np.uint16(d).tobytes()


def _pack_scale_min(ls: list, lm: list) -> bytes:
    s = [0] * 12
    for j in range(8):
        if j < 4:
            s[j], s[j + 4] = ls[j], lm[j]
        else:
            s[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4)
            s[j - 4] |= (ls[j] >> 4) << 6
            s[j] |= (lm[j] >> 4) << 6
    return bytes(v & 0xFF for v in s)


def _scale_min_k4(j, q):
    if j < 4:
        return q[j] & 63, q[j + 4] & 63
    return (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)


def _q45_K(x, nmax, rmin, nstep):
    scales, mins = np.zeros(8, f32), np.zeros(8, f32)
    L = np.zeros(256, np.int64)
    for j in range(8):
        xs = x[32 * j:32 * j + 32]
        av_x = np.sqrt(seqsum(xs * xs) / f32(32))
        scales[j], mins[j], L[32 * j:32 * j + 32] = make_qkx2_quants(xs, av_x + np.abs(xs), nmax, rmin, 0.1, nstep, False)
    max_scale = max_min = f32(0)
    for j in range(8):
        if scales[j] > max_scale:
            max_scale = scales[j]
        if mins[j] > max_min:
            max_min = mins[j]
    inv_scale = f32(63) / max_scale if max_scale > 0 else f32(0)
    inv_min = f32(63) / max_min if max_min > 0 else f32(0)
    ls = [min(63, nearest_int(inv_scale * scales[j]) & 0xFF) for j in range(8)]
    lm = [min(63, nearest_int(inv_min * mins[j]) & 0xFF) for j in range(8)]
    return _q45_K_tail(x, L, ls, lm, f16_bits(max_scale / f32(63)), f16_bits(max_min / f32(63)), nmax)


def _q45_K_tail(x, L, ls, lm, d, dmin, nmax):
    """Packs (ls, lm), re-rounds the codes on the stored grid (sub-blocks with d*sc = 0 keep L); returns
    (d, dmin, scales bytes) and L."""
    packed = _pack_scale_min(ls, lm)
    dv, dminv = f32(np.uint16(d).view(np.float16)), f32(np.uint16(dmin).view(np.float16))
    for j in range(8):
        s, m = _scale_min_k4(j, packed)
        dd = dv * f32(s)
        if dd == 0:
            continue
        dm = dminv * f32(m)
        L[32 * j:32 * j + 32] = np.clip(nearest_int((x[32 * j:32 * j + 32] + dm) / dd), 0, nmax)
    return np.uint16(d).tobytes() + np.uint16(dmin).tobytes() + packed, L


def _q4_K_bytes(head, L) -> bytes:
    qs = bytearray(128)
    for c in range(4):
        for l in range(32):
            qs[32 * c + l] = L[64 * c + l] | (L[64 * c + l + 32] << 4)
    return head + bytes(qs)


def _q5_K_bytes(head, L) -> bytes:
    qh, ql = bytearray(32), bytearray(128)
    for c in range(4):
        for l in range(32):
            l1, l2 = L[64 * c + l], L[64 * c + l + 32]
            if l1 > 15:
                l1 -= 16
                qh[l] |= 1 << (2 * c)
            if l2 > 15:
                l2 -= 16
                qh[l] |= 2 << (2 * c)
            ql[32 * c + l] = l1 | (l2 << 4)
    return head + bytes(qh) + bytes(ql)


def q4_K(x: np.ndarray) -> bytes:
    return _q4_K_bytes(*_q45_K(x, 15, -1.0, 20))


def q5_K(x: np.ndarray) -> bytes:
    return _q5_K_bytes(*_q45_K(x, 31, -0.5, 15))


def q6_K(x: np.ndarray, qw=None) -> bytes:
    """quantize_row_q6_K_ref, or with qw quantize_row_q6_K_impl (make_qx_quants weighted by qw itself)."""
    scales = np.zeros(16, f32)
    L = np.zeros(256, np.int64)
    max_scale = max_abs = f32(0)
    for ib in range(16):
        w = None if qw is None else qw[16 * ib:16 * ib + 16]
        scales[ib], L[16 * ib:16 * ib + 16] = make_qx_quants_rmse1(x[16 * ib:16 * ib + 16], 32, w)
        if abs(scales[ib]) > max_abs:
            max_abs, max_scale = abs(scales[ib]), scales[ib]
    if max_abs < GROUP_MAX_EPS:
        return bytes(210)
    iscale = f32(-128) / max_scale
    d = f16_bits(f32(1) / iscale)
    sc = [int(as_i8(min(127, nearest_int(iscale * scales[ib])))) for ib in range(16)]
    dv = f32(np.uint16(d).view(np.float16))
    for j in range(16):
        dd = dv * f32(sc[j])
        if dd == 0:
            continue
        L[16 * j:16 * j + 16] = np.clip(nearest_int(x[16 * j:16 * j + 16] / dd), -32, 31) + 32
    ql, qh = bytearray(128), bytearray(64)
    for h in range(2):
        j = 128 * h
        for l in range(32):
            q1, q2, q3, q4 = L[j + l], L[j + l + 32], L[j + l + 64], L[j + l + 96]
            ql[64 * h + l] = (q1 & 0xF) | ((q3 & 0xF) << 4)
            ql[64 * h + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4)
            qh[32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
    return bytes(ql) + bytes(qh) + bytes(s & 0xFF for s in sc) + np.uint16(d).tobytes()


# ---------------------------------------------------------------- importance-matrix quantizers

def make_qkx3_quants(x, w, nmax, rmin, rdelta, nstep, use_mad):
    """make_qkx3_quants: returns (scale, the_min, L). As make_qkx2_quants with `max <= min` -> zeros and
    candidate codes nearest_int(min(v, nmax)) for v > 0, else 0."""
    n = len(x)
    mn, mx = f32(x.min()), f32(x.max())
    sum_w = seqsum(w, from_first=True)
    sum_x = seqsum(w * x, from_first=True)
    if mn > 0:
        mn = f32(0)
    if mx <= mn:
        return f32(0), -mn, np.zeros(n, np.int64)
    iscale = f32(nmax) / (mx - mn)
    scale = f32(1) / iscale
    L = np.clip(nearest_int(iscale * (x - mn)), 0, nmax)
    diff = scale * L.astype(f32) + mn - x
    diff = np.abs(diff) if use_mad else diff * diff
    best_error = seqsum(w * diff)
    if nstep < 1:
        return scale, -mn, L
    for is_ in range(nstep + 1):
        iscale = (f32(rmin) + f32(rdelta) * f32(is_) + f32(nmax)) / (mx - mn)
        v = iscale * (x - mn)
        laux = np.where(v > 0, nearest_int(np.minimum(v, f32(nmax))), 0)
        lf = laux.astype(f32)
        sum_l = seqsum(w * lf)
        sum_l2 = seqsum(w * lf * lf)
        sum_xl = seqsum(w * lf * x)
        D = sum_w * sum_l2 - sum_l * sum_l
        if D > 0:
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / D
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D
            if this_min > 0:
                this_min = f32(0)
                this_scale = sum_xl / sum_l2
            diff = this_scale * lf + this_min - x
            diff = np.abs(diff) if use_mad else diff * diff
            cur_error = seqsum(w * diff)
            if cur_error < best_error:
                L, best_error, scale, mn = laux, cur_error, this_scale, this_min
    return scale, -mn, L


def _imatrix_block(name, xb, weight):
    """One block of quantize_row_<name>_impl given the combined weights."""
    if name in ("Q4_0", "Q5_0"):
        nmax = 8 if name == "Q4_0" else 16
        d, L = make_qx_quants_rmse1(xb, nmax, weight)
        head = np.uint16(f16_bits(d)).tobytes()
    else:
        nmax = 15 if name == "Q4_1" else 31
        d, the_min, L = make_qkx3_quants(xb, weight, nmax, -0.9, 0.05, 36, False)
        head = np.uint16(f16_bits(d)).tobytes() + np.uint16(f16_bits(-the_min)).tobytes()
    L = np.asarray(L, dtype=np.int64)
    qs = bytes(int((L[j] & 0xF) | ((L[j + 16] & 0xF) << 4)) for j in range(16))
    if name in ("Q4_0", "Q4_1"):
        return head + qs
    return head + _qh(L) + qs


def make_qp_quants(x, nmax, qw):
    """make_qp_quants(n, nmax, x, L, quant_weights): returns (scale, L as uint8 values)."""
    n = len(x)
    mx = f32(0)
    for v in x:
        mx = mx if mx > v else v
    if mx < GROUP_MAX_EPS:
        return f32(0), np.zeros(n, np.int64)
    iscale = f32(nmax) / mx
    L = nearest_int(iscale * x) & 0xFF
    scale = f32(1) / iscale
    diff = x - scale * L.astype(f32)
    best_mse = seqsum(qw * diff * diff)
    for is_ in range(-4, 5):
        if is_ == 0:
            continue
        iscale_is = (f32(0.1) * f32(is_) + f32(nmax)) / mx
        scale_is = f32(1) / iscale_is
        diff = x - scale_is * np.minimum(nmax, nearest_int(iscale_is * x)).astype(f32)
        mse = seqsum(qw * diff * diff)
        if mse < best_mse:
            best_mse, iscale = mse, iscale_is
    l = np.minimum(nmax, nearest_int(iscale * x))
    L = l & 0xFF
    sumlx = seqsum(qw * x * l.astype(f32))
    suml2 = seqsum(qw * l.astype(f32) * l.astype(f32))
    for _ in range(5):
        n_changed = 0
        for i in range(n):
            w, li = qw[i], f32(L[i])
            slx = sumlx - w * x[i] * li
            sl2 = suml2 - w * li * li
            if slx > 0 and sl2 > 0:
                new_l = min(nmax, nearest_int(x[i] * sl2 / slx))
                if new_l != L[i]:
                    slx = slx + w * x[i] * f32(new_l)
                    sl2 = sl2 + w * f32(new_l) * f32(new_l)
                    if slx * slx * suml2 > sumlx * sumlx * sl2:
                        L[i], sumlx, suml2 = new_l & 0xFF, slx, sl2
                        n_changed += 1
        if not n_changed:
            break
    return (sumlx / suml2 if suml2 > 0 else f32(0)), L


def kquant_imatrix_weights(name: str, xb: np.ndarray, qw: np.ndarray) -> np.ndarray:
    """weight[l] of quantize_row_<name>_impl for one 256-block: qw * sqrtf(sigma2 + x^2) with sigma2 =
    sum(x^2)/256 (Q2_K) or 2*sum(x^2)/256 (Q3_K..Q5_K) over the block; Q6_K uses qw as it is."""
    if name == "Q6_K":
        return np.asarray(qw, dtype=f32)
    sumx2 = seqsum(xb * xb)
    sigma2 = sumx2 / f32(256) if name == "Q2_K" else f32(2) * sumx2 / f32(256)
    return (qw * np.sqrt(sigma2 + xb * xb)).astype(f32)


def _kquant_imatrix_block(name: str, x: np.ndarray, weight: np.ndarray) -> bytes:
    """One 256-block of quantize_row_<name>_impl given the combined weights."""
    if name == "Q6_K":
        return q6_K(x, weight)
    if name == "Q2_K":
        scales, mins, sw = np.zeros(16, f32), np.zeros(16, f32), np.zeros(16, f32)
        L = np.zeros(256, np.int64)
        for j in range(16):
            w = weight[16 * j:16 * j + 16]
            sw[j] = seqsum(w)
            scales[j], mins[j], L[16 * j:16 * j + 16] = make_qkx3_quants(x[16 * j:16 * j + 16], w, 3, -0.9, 0.05, 36, False)
        dm, Ls = make_qp_quants(scales, 15, sw)
        mm, Lm = make_qp_quants(mins, 15, sw)
        sc = [int(Ls[j] | (Lm[j] << 4)) & 0xFF for j in range(16)]
        return _q2_K_tail(x, L, sc, f16_bits(dm), f16_bits(mm))
    if name == "Q3_K":
        scales, sw = np.zeros(16, f32), np.zeros(16, f32)
        L = np.zeros(256, np.int64)
        for j in range(16):
            w = weight[16 * j:16 * j + 16]
            sw[j] = seqsum(w)
            scales[j], L[16 * j:16 * j + 16] = make_qx_quants_rmse1(x[16 * j:16 * j + 16], 4, w)
        d_block, Ls = make_qx_quants_rmse1(scales, 32, sw)
        sc = [0] * 12
        for j in range(16):
            l = int(Ls[j])
            if j < 8:
                sc[j] = l & 0xF
            else:
                sc[j - 8] |= (l & 0xF) << 4
            sc[j % 4 + 8] |= (l >> 4) << (2 * (j // 4))
        return _q3_K_tail(x, L, sc, f16_bits(d_block))
    nmax = 15 if name == "Q4_K" else 31
    scales, mins, sw = np.zeros(8, f32), np.zeros(8, f32), np.zeros(8, f32)
    L = np.zeros(256, np.int64)
    for j in range(8):
        w = weight[32 * j:32 * j + 32]
        sw[j] = seqsum(w)
        scales[j], mins[j], L[32 * j:32 * j + 32] = make_qkx3_quants(x[32 * j:32 * j + 32], w, nmax, -0.9, 0.05, 36, False)
    d_block, Ls = make_qp_quants(scales, 63, sw)
    m_block, Lm = make_qp_quants(mins, 63, sw)
    ls, lm = [int(v) for v in Ls], [int(v) for v in Lm]
    if name == "Q5_K":
        ls, lm = [min(63, v) for v in ls], [min(63, v) for v in lm]
    head, L = _q45_K_tail(x, L, ls, lm, f16_bits(d_block), f16_bits(m_block), nmax)
    return _q4_K_bytes(head, L) if name == "Q4_K" else _q5_K_bytes(head, L)


def quantize_imatrix(name: str, x: np.ndarray, imatrix: np.ndarray) -> bytes:
    """quantize_<name>(src, dst, nrow, n_per_row, quant_weights) for Q4_0/Q4_1/Q5_0/Q5_1: x (rows, cols),
    imatrix (cols,). Per row sigma2 = sum(x^2)/n, weight[j] = qw[j] * sqrtf(sigma2 + x[j]^2). IQ4_NL: the
    same with sigma2 per block (iq4_nl_imatrix_weights), IQ4_XS per 256-block (iq4_xs_imatrix_weights);
    Q2_K..Q6_K: kquant_imatrix_weights per 256-block;
    MXFP4 (ours, not llama.cpp's): the row's weights and mxfp4_weighted."""
    x = np.asarray(x, dtype=f32)
    imatrix = np.asarray(imatrix, dtype=f32)
    out = []
    with np.errstate(all="ignore"):
        for row in x:
            if name.endswith("_K") or name == "IQ4_XS":
                for b in range(len(row) // 256):
                    xb, qw = row[256 * b: 256 * b + 256], imatrix[256 * b: 256 * b + 256]
                    if name == "IQ4_XS":
                        out.append(_iq4xs_block(xb, iq4_xs_imatrix_weights(xb, qw)))
                    else:
                        out.append(_kquant_imatrix_block(name, xb, kquant_imatrix_weights(name, xb, qw)))
                continue
            sigma2 = seqsum(row * row) / f32(len(row))
            for b in range(len(row) // 32):
                xb = row[32 * b: 32 * b + 32]
                if name == "IQ4_NL":
                    out.append(_iq4nl_block(xb, iq4_nl_imatrix_weights(xb, imatrix[32 * b: 32 * b + 32])))
                    continue
                weight = imatrix[32 * b: 32 * b + 32] * np.sqrt(sigma2 + xb * xb)
                out.append(mxfp4_weighted(xb, weight) if name == "MXFP4" else _imatrix_block(name, xb, weight))
    return b"".join(out)


# ---------------------------------------------------------------- non-uniform 32-weight blocks

IQ4NL_VALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], dtype=np.int8)
MXFP4_VALUES = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], dtype=np.int8)


def best_index_int8(val: np.ndarray, x: np.float32) -> int:
    """ggml's best_index_int8 (bisection; the upper level on a tie)."""
    v = [f32(a) for a in val]
    if x <= v[0]:
        return 0
    if x >= v[-1]:
        return len(v) - 1
    ml, mu = 0, len(v) - 1
    while mu - ml > 1:
        mav = (ml + mu) // 2
        if x < v[mav]:
            mu = mav
        else:
            ml = mav
    return mu - 1 if f32(x - v[mu - 1]) < f32(v[mu] - x) else mu


def _iq4nl_scale(xb: np.ndarray, weight: np.ndarray, ntry: int = 7) -> np.float32:
    """quantize_row_iq4_nl_impl(32, 32, ...) up to the scale: the least-squares refit from -max/values[0],
    then starting points (itry + values[0])/max for itry in -ntry..ntry."""
    v = IQ4NL_VALUES
    amax, mx = f32(0), f32(0)
    for a in xb:
        if abs(a) > amax:
            amax, mx = abs(a), a
    if amax < GROUP_MAX_EPS:
        return f32(0)

    def sums(iscale):
        sqx, sq2 = f32(0), f32(0)
        for j in range(32):
            q = f32(v[best_index_int8(v, f32(iscale * xb[j]))])
            sqx = f32(sqx + f32(f32(weight[j] * q) * xb[j]))
            sq2 = f32(sq2 + f32(f32(weight[j] * q) * q))
        return sqx, sq2

    d = f32(-mx / f32(v[0]))
    sqx, sq2 = sums(f32(f32(1) / d))
    d = f32(sqx / sq2) if sq2 > 0 else f32(0)
    best = f32(d * sqx)
    for itry in range(-ntry, ntry + 1):
        sqx, sq2 = sums(f32(f32(itry + int(v[0])) / mx))
        if sq2 > 0 and f32(sqx * sqx) > f32(best * sq2):
            d = f32(sqx / sq2)
            best = f32(d * sqx)
    return d


def _iq4nl_block(xb: np.ndarray, weight: np.ndarray) -> bytes:
    d = _iq4nl_scale(xb, weight)
    iscale = f32(f32(1) / d) if d != 0 else f32(0)
    L = [best_index_int8(IQ4NL_VALUES, f32(iscale * a)) for a in xb]
    return np.uint16(f16_bits(d)).tobytes() + bytes(L[j] | (L[j + 16] << 4) for j in range(16))


def iq4_nl(x: np.ndarray) -> bytes:
    """quantize_iq4_nl(..., quant_weights=NULL), what llama-quantize runs: weight[j] = x[j]^2, ntry 7."""
    return _iq4nl_block(x, (x * x).astype(f32))


def iq4_nl_imatrix_weights(xb: np.ndarray, qw: np.ndarray) -> np.ndarray:
    """quantize_iq4_nl with quant_weights: sigma2 over the block, 2/32 * sum(x^2)."""
    sigma2 = f32(seqsum(xb * xb) * f32(2.0 / 32))
    return (qw * np.sqrt(sigma2 + xb * xb)).astype(f32)


def _iq4xs_block(x: np.ndarray, weight: np.ndarray) -> bytes:
    """quantize_row_iq4_nl_impl(256, 32, ...): the IQ4_NL scale search per 32-weight sub-block, then
    d = -max_scale/32 (max_scale: the sub-block scale of largest |.|), l = nearest_int(scale/d) clamped to
    -32..31 and stored as l + 32 (low 4 bits in scales_l, top 2 in scales_h), codes the nearest levels
    to x/(d*l) with the float d."""
    scales = [f32(0)] * 8
    max_scale, amax_scale = f32(0), f32(0)
    for ib in range(8):
        xb = x[32 * ib:32 * ib + 32]
        scales[ib] = _iq4nl_scale(xb, weight[32 * ib:32 * ib + 32])
        if abs(scales[ib]) > amax_scale:
            amax_scale, max_scale = abs(scales[ib]), scales[ib]
    d = f32(-max_scale / f32(32))
    inv = f32(f32(1) / d) if d != 0 else f32(0)
    L, scales_l, scales_h = [], [0, 0, 0, 0], 0
    for ib in range(8):
        l = max(-32, min(31, nearest_int(f32(inv * scales[ib]))))
        dl = f32(d * f32(l))
        idl = f32(f32(1) / dl) if dl != 0 else f32(0)
        L += [best_index_int8(IQ4NL_VALUES, f32(idl * a)) for a in x[32 * ib:32 * ib + 32]]
        scales_l[ib // 2] |= ((l + 32) & 0xF) << (4 * (ib % 2))
        scales_h |= ((l + 32) >> 4) << (2 * ib)
    qs = bytes(L[32 * i + j] | (L[32 * i + 16 + j] << 4) for i in range(8) for j in range(16))
    return np.uint16(f16_bits(d)).tobytes() + np.uint16(scales_h).tobytes() + bytes(scales_l) + qs


def iq4_xs(x: np.ndarray) -> bytes:
    """quantize_iq4_xs(..., quant_weights=NULL) = quantize_row_iq4_xs_ref: weight[j] = x[j]^2, ntry 7."""
    return _iq4xs_block(x, (x * x).astype(f32))


def iq4_xs_imatrix_weights(xb: np.ndarray, qw: np.ndarray) -> np.ndarray:
    """quantize_iq4_xs with quant_weights: sigma2 over the 256-block, sum(x^2) * (2/256)."""
    sigma2 = f32(seqsum(xb * xb) * f32(2.0 / 256))
    return (qw * np.sqrt(sigma2 + xb * xb)).astype(f32)


def _mxfp4_exponent(x: np.ndarray) -> int:
    amax = f32(0)
    for a in x:
        if amax < abs(a):
            amax = abs(a)
    if amax > 0:
        return int(c_trunc_i32(f32(f32(np.floor(np.log2(amax)) - f32(2)) + f32(127)))) & 0xFF
    return 0


def _mxfp4_codes(x: np.ndarray, e: int):
    """d = 2^(e-128) and the first nearest level of every weight (argmin: best_index_mxfp4's rule)."""
    bits = (0x00200000 << e) if e < 2 else ((e - 1) << 23)
    d = np.array([bits], dtype=np.uint32).view(f32)[0]
    levels = MXFP4_VALUES.astype(f32) * d
    return d, [int(np.argmin(np.abs(levels - a))) for a in x]


def _mxfp4_bytes(e: int, q) -> bytes:
    return bytes([e]) + bytes(q[j] | (q[j + 16] << 4) for j in range(16))


def mxfp4(x: np.ndarray) -> bytes:
    """quantize_row_mxfp4_ref: e = floor(log2(amax)) - 2 + 127, d = 2^(e-128), first nearest level."""
    e = _mxfp4_exponent(x)
    return _mxfp4_bytes(e, _mxfp4_codes(x, e)[1])


def mxfp4_weighted(x: np.ndarray, weight: np.ndarray) -> bytes:
    """Ours (ggml has no imatrix MXFP4): the exponent among e0, e0 + 1 (if <= 255), e0 - 1 with the smallest
    sequential sum of weight * (level*d - x)^2, the earliest on a tie; e0 = 0 is kept as it is."""
    e0 = _mxfp4_exponent(x)
    if e0 == 0:
        return _mxfp4_bytes(0, _mxfp4_codes(x, 0)[1])

    def error(e):
        d, q = _mxfp4_codes(x, e)
        diff = MXFP4_VALUES[q].astype(f32) * d - x
        return seqsum(weight * diff * diff)

    best, best_err = e0, error(e0)
    for e in ([e0 + 1] if e0 < 255 else []) + [e0 - 1]:
        err = error(e)
        if err < best_err:
            best, best_err = e, err
    return _mxfp4_bytes(best, _mxfp4_codes(x, best)[1])


QUANTIZERS = {"Q4_0": (32, q4_0), "Q4_1": (32, q4_1), "Q5_0": (32, q5_0), "Q5_1": (32, q5_1), "Q8_0": (32, q8_0),
              "Q2_K": (256, q2_K), "Q3_K": (256, q3_K), "Q4_K": (256, q4_K), "Q5_K": (256, q5_K), "Q6_K": (256, q6_K),
              "IQ4_NL": (32, iq4_nl), "IQ4_XS": (256, iq4_xs), "MXFP4": (32, mxfp4)}


def quantize(name: str, x: np.ndarray) -> bytes:
    bs, fn = QUANTIZERS[name]
    x = np.asarray(x, dtype=f32).reshape(-1, bs)
    with np.errstate(all="ignore"):
        return b"".join(fn(b) for b in x)
