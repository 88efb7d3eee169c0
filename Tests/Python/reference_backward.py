#!/usr/bin/env python3
"""NumPy reference of the mean next-token cross-entropy and its gradient w.r.t. every parameter,
written by hand (forward, then a manual backward) in float64; independent of the Swift code.

usage: reference_backward.py MODEL.bin OUT.f32 SEQS
  MODEL: llama2.c v0 .bin (read by reference_forward.load_llama2c).
  SEQS: sequences separated by ';', each comma-separated token ids, all of one length T.
Loss = mean over every sequence's positions 0..T-2 of -log softmax(logits_t)[token_{t+1}].
Writes float32: the loss, then the gradients in canonical GGUF order (token_embd, per block attn_norm,
attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down, then output_norm, then
output if the classifier is not shared). Before writing, checks its own gradient against float64
central differences at a few entries of every tensor and exits non-zero if they disagree.
"""
import sys
import numpy as np
from reference_forward import load_llama2c


def rmsnorm_fwd(x, w, eps):
    r = 1.0 / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
    return x * r * w, r


def rmsnorm_bwd(dy, x, w, r):
    # y = x r w, r = (mean x^2 + eps)^-1/2: dx = r (dy w) - x r^3 <dy w, x> / C
    C = x.shape[-1]
    dyw = dy * w
    dx = r * dyw - x * r ** 3 * (dyw * x).sum(-1, keepdims=True) / C
    dw = (dy * x * r).sum(0)
    return dx, dw


def rope(x, theta, interleaved, sign=1.0):
    # x (T, nh, hs); sign -1 rotates by -angle (the transpose of the rotation)
    T, nh, hs = x.shape
    half = hs // 2
    freq = theta ** (-2.0 * np.arange(half) / hs)
    ang = np.arange(T)[:, None] * freq[None, :]
    c, s = np.cos(ang)[:, None, :], sign * np.sin(ang)[:, None, :]
    a, b = (x[..., 0::2], x[..., 1::2]) if interleaved else (x[..., :half], x[..., half:])
    y = np.empty_like(x)
    ra, rb = a * c - b * s, a * s + b * c
    if interleaved:
        y[..., 0::2], y[..., 1::2] = ra, rb
    else:
        y[..., :half], y[..., half:] = ra, rb
    return y


def params_of(model):
    cfg, emb, layers, out_norm, out = model
    p = {"token_embd.weight": emb.copy()}
    names = [("attn_norm", "attn_norm"), ("attn_q", "wq"), ("attn_k", "wk"), ("attn_v", "wv"),
             ("attn_output", "wo"), ("ffn_norm", "ffn_norm"), ("ffn_gate", "w1"), ("ffn_up", "w3"),
             ("ffn_down", "w2")]
    for l, ly in enumerate(layers):
        for gg, ours in names:
            p[f"blk.{l}.{gg}.weight"] = ly[ours].copy()
    p["output_norm.weight"] = out_norm.copy()
    shared = out is emb
    if not shared:
        p["output.weight"] = out.copy()
    return cfg, p, shared


def loss_and_grad(cfg, p, shared, seqs, want_grad=True):
    L, nh, nkv, dim, eps = cfg["L"], cfg["nh"], cfg["nkv"], cfg["dim"], cfg["eps"]
    hs, rep = dim // nh, nh // nkv
    theta, inter = cfg["theta"], cfg["interleaved"]
    emb = p["token_embd.weight"]
    out = emb if shared else p["output.weight"]
    n = sum(len(s) - 1 for s in seqs)
    g = {k: np.zeros_like(v) for k, v in p.items()}
    total = 0.0
    for toks in seqs:
        T = len(toks)
        x = emb[np.array(toks)]
        mask = np.triu(np.full((T, T), -np.inf), 1)
        saved = []
        for l in range(L):
            b = f"blk.{l}."
            x_in = x
            h, r = rmsnorm_fwd(x, p[b + "attn_norm.weight"], eps)
            q = rope((h @ p[b + "attn_q.weight"].T).reshape(T, nh, hs), theta, inter)
            k = rope((h @ p[b + "attn_k.weight"].T).reshape(T, nkv, hs), theta, inter)
            v = (h @ p[b + "attn_v.weight"].T).reshape(T, nkv, hs)
            kr, vr = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
            s = np.einsum("thd,uhd->htu", q, kr) / np.sqrt(hs) + mask
            P = np.exp(s - s.max(-1, keepdims=True))
            P /= P.sum(-1, keepdims=True)
            y = np.einsum("htu,uhd->thd", P, vr).reshape(T, dim)
            x_mid = x + y @ p[b + "attn_output.weight"].T
            h2, r2 = rmsnorm_fwd(x_mid, p[b + "ffn_norm.weight"], eps)
            gt, up = h2 @ p[b + "ffn_gate.weight"].T, h2 @ p[b + "ffn_up.weight"].T
            sig = 1 / (1 + np.exp(-gt))
            a = gt * sig * up
            x = x_mid + a @ p[b + "ffn_down.weight"].T
            saved.append((x_in, h, r, q, kr, vr, P, y, x_mid, h2, r2, gt, up, sig, a))
        hf, rf = rmsnorm_fwd(x, p["output_norm.weight"], eps)
        logits = hf @ out.T
        m = logits.max(-1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(logits - m).sum(-1))
        tgt = np.array(toks[1:])
        total += (lse[:-1] - logits[np.arange(T - 1), tgt]).sum()
        if not want_grad:
            continue
        # backward: the forward reversed
        dlogits = np.exp(logits - lse[:, None])
        dlogits[np.arange(T - 1), tgt] -= 1
        dlogits[T - 1] = 0
        dlogits /= n
        g["token_embd.weight" if shared else "output.weight"] += dlogits.T @ hf
        dhf = dlogits @ out
        dx, dw = rmsnorm_bwd(dhf, x, p["output_norm.weight"], rf)
        g["output_norm.weight"] += dw
        for l in reversed(range(L)):
            b = f"blk.{l}."
            x_in, h, r, q, kr, vr, P, y, x_mid, h2, r2, gt, up, sig, a = saved[l]
            g[b + "ffn_down.weight"] += dx.T @ a
            da = dx @ p[b + "ffn_down.weight"]
            dgt = da * up * sig * (1 + gt * (1 - sig))
            dup = da * gt * sig
            g[b + "ffn_gate.weight"] += dgt.T @ h2
            g[b + "ffn_up.weight"] += dup.T @ h2
            dh2 = dgt @ p[b + "ffn_gate.weight"] + dup @ p[b + "ffn_up.weight"]
            dn, dw = rmsnorm_bwd(dh2, x_mid, p[b + "ffn_norm.weight"], r2)
            g[b + "ffn_norm.weight"] += dw
            dx_mid = dx + dn
            g[b + "attn_output.weight"] += dx_mid.T @ y
            dy = (dx_mid @ p[b + "attn_output.weight"]).reshape(T, nh, hs)
            dP = np.einsum("thd,uhd->htu", dy, vr)
            dvr = np.einsum("htu,thd->uhd", P, dy)
            dS = P * (dP - (P * dP).sum(-1, keepdims=True)) / np.sqrt(hs)
            dq = np.einsum("htu,uhd->thd", dS, kr)
            dkr = np.einsum("htu,thd->uhd", dS, q)
            dk = dkr.reshape(T, nkv, rep, hs).sum(2)
            dv = dvr.reshape(T, nkv, rep, hs).sum(2)
            dq = rope(dq, theta, inter, -1.0).reshape(T, dim)
            dk = rope(dk, theta, inter, -1.0).reshape(T, nkv * hs)
            dv = dv.reshape(T, nkv * hs)
            g[b + "attn_q.weight"] += dq.T @ h
            g[b + "attn_k.weight"] += dk.T @ h
            g[b + "attn_v.weight"] += dv.T @ h
            dh = dq @ p[b + "attn_q.weight"] + dk @ p[b + "attn_k.weight"] + dv @ p[b + "attn_v.weight"]
            dn, dw = rmsnorm_bwd(dh, x_in, p[b + "attn_norm.weight"], r)
            g[b + "attn_norm.weight"] += dw
            dx = dx_mid + dn
        np.add.at(g["token_embd.weight"], np.array(toks), dx)
    return total / n, g


def self_check(cfg, p, shared, seqs, grads, rng):
    """float64 central differences at 2 entries of every tensor must match the manual gradient."""
    worst = 0.0
    for name, w in p.items():
        flat = w.reshape(-1)
        for i in rng.choice(flat.size, size=2, replace=False):
            old = flat[i]
            eps = 1e-5
            flat[i] = old + eps
            lp, _ = loss_and_grad(cfg, p, shared, seqs, want_grad=False)
            flat[i] = old - eps
            lm, _ = loss_and_grad(cfg, p, shared, seqs, want_grad=False)
            flat[i] = old
            fd, an = (lp - lm) / (2 * eps), grads[name].reshape(-1)[i]
            err = abs(fd - an) / max(abs(fd), 1e-6)
            worst = max(worst, err)
            if err > 1e-5 and abs(fd - an) > 1e-9:
                sys.exit(f"self-check failed: {name}[{i}] manual {an} vs central difference {fd}")
    return worst


def canonical_order(cfg, shared):
    names = ["token_embd.weight"]
    for l in range(cfg["L"]):
        names += [f"blk.{l}.{t}.weight" for t in ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                                                   "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]]
    names.append("output_norm.weight")
    if not shared:
        names.append("output.weight")
    return names


def main():
    path, outp, seqs_arg = sys.argv[1], sys.argv[2], sys.argv[3]
    seqs = [[int(t) for t in s.split(",")] for s in seqs_arg.split(";")]
    if len({len(s) for s in seqs}) != 1 or len(seqs[0]) < 2:
        sys.exit("all sequences must have one length T >= 2")
    cfg, p, shared = params_of(load_llama2c(path))
    loss, grads = loss_and_grad(cfg, p, shared, seqs)
    worst = self_check(cfg, p, shared, seqs, grads, np.random.default_rng(0))
    parts = [np.array([loss])] + [grads[n].reshape(-1) for n in canonical_order(cfg, shared)]
    np.concatenate(parts).astype("<f4").tofile(outp)
    print(f"loss {loss:.9f} self-check worst relative error {worst:.2e}")


if __name__ == "__main__":
    main()
