#!/usr/bin/env python3
"""NumPy reference forward of a LLaMA-family model, independent of the Swift code.

usage: reference_forward.py MODEL OUT.f32 TOKENS [--from K]
  MODEL: llama2.c v0 .bin (read here with numpy) or .gguf (read with llama.cpp's gguf package).
  TOKENS: comma-separated ids, or 'greedy:N' to decode N tokens greedily from BOS=1 (ids printed).
Writes logits (T-K, V) float32 for positions K..T-1, computed in float64.
"""
import sys
import numpy as np


def load_llama2c(path):
    raw = open(path, "rb").read()
    dim, hidden, L, nh, nkv, vocab, seq = np.frombuffer(raw[:28], dtype="<i4")
    shared = vocab > 0
    vocab = abs(int(vocab))
    hs = dim // nh
    kvd = nkv * hs
    f = np.frombuffer(raw[28:], dtype="<f4").astype(np.float64)
    at = 0

    def take(*shape):
        nonlocal at
        n = int(np.prod(shape))
        a = f[at:at + n].reshape(shape)
        at += n
        return a
    w = {}
    w["emb"] = take(vocab, dim)
    w["attn_norm"] = take(L, dim)
    w["wq"] = take(L, dim, dim)
    w["wk"] = take(L, kvd, dim)
    w["wv"] = take(L, kvd, dim)
    w["wo"] = take(L, dim, dim)
    w["ffn_norm"] = take(L, dim)
    w["w1"] = take(L, hidden, dim)
    w["w2"] = take(L, dim, hidden)
    w["w3"] = take(L, hidden, dim)
    w["out_norm"] = take(dim)
    take(seq, hs // 2)
    take(seq, hs // 2)
    w["out"] = w["emb"] if shared else take(vocab, dim)
    cfg = dict(dim=int(dim), L=int(L), nh=int(nh), nkv=int(nkv), theta=10000.0, eps=1e-5, interleaved=True)
    layers = [{k: w[k][l] for k in ["attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3"]} for l in range(L)]
    return cfg, w["emb"], layers, w["out_norm"], w["out"]


def load_gguf(path):
    import gguf
    r = gguf.GGUFReader(path)
    arch = r.fields["general.architecture"].contents()

    def meta(k, default=None):
        f = r.fields.get(f"{arch}.{k}")
        return f.contents() if f is not None else default
    t = {x.name: x for x in r.tensors}

    def get(name):
        x = t[name]
        a = gguf.quants.dequantize(x.data, x.tensor_type)
        return np.asarray(a, dtype=np.float64).reshape([int(d) for d in reversed(x.shape)])
    dim = int(meta("embedding_length"))
    nh = int(meta("attention.head_count"))
    cfg = dict(dim=dim, L=int(meta("block_count")), nh=nh, nkv=int(meta("attention.head_count_kv", nh)),
               theta=float(meta("rope.freq_base", 10000.0)), eps=float(meta("attention.layer_norm_rms_epsilon")),
               interleaved=True)
    layers = []
    for l in range(cfg["L"]):
        p = f"blk.{l}."
        layers.append(dict(attn_norm=get(p + "attn_norm.weight"), wq=get(p + "attn_q.weight"),
                           wk=get(p + "attn_k.weight"), wv=get(p + "attn_v.weight"), wo=get(p + "attn_output.weight"),
                           ffn_norm=get(p + "ffn_norm.weight"), w1=get(p + "ffn_gate.weight"),
                           w2=get(p + "ffn_down.weight"), w3=get(p + "ffn_up.weight")))
    emb = get("token_embd.weight")
    out = get("output.weight") if "output.weight" in t else emb
    return cfg, emb, layers, get("output_norm.weight"), out


def rmsnorm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, theta, interleaved):
    # x (T, nh, hs)
    T, nh, hs = x.shape
    half = hs // 2
    freq = theta ** (-2.0 * np.arange(half) / hs)
    ang = np.arange(T)[:, None] * freq[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
    else:
        a, b = x[..., :half], x[..., half:]
    ra, rb = a * c - b * s, a * s + b * c
    y = np.empty_like(x)
    if interleaved:
        y[..., 0::2], y[..., 1::2] = ra, rb
    else:
        y[..., :half], y[..., half:] = ra, rb
    return y


def forward(model, tokens):
    cfg, emb, layers, out_norm, out = model
    T = len(tokens)
    nh, nkv, dim = cfg["nh"], cfg["nkv"], cfg["dim"]
    hs = dim // nh
    x = emb[np.array(tokens)]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for ly in layers:
        h = rmsnorm(x, ly["attn_norm"], cfg["eps"])
        q = rope((h @ ly["wq"].T).reshape(T, nh, hs), cfg["theta"], cfg["interleaved"])
        k = rope((h @ ly["wk"].T).reshape(T, nkv, hs), cfg["theta"], cfg["interleaved"])
        v = (h @ ly["wv"].T).reshape(T, nkv, hs)
        rep = nh // nkv
        k = np.repeat(k, rep, axis=1)
        v = np.repeat(v, rep, axis=1)
        att = np.einsum("thd,uhd->htu", q, k) / np.sqrt(hs) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = np.einsum("htu,uhd->thd", att, v).reshape(T, dim)
        x = x + y @ ly["wo"].T
        h = rmsnorm(x, ly["ffn_norm"], cfg["eps"])
        g = h @ ly["w1"].T
        x = x + ((g / (1 + np.exp(-g))) * (h @ ly["w3"].T)) @ ly["w2"].T
    return rmsnorm(x, out_norm, cfg["eps"]) @ out.T


def main():
    path, outp, toks = sys.argv[1], sys.argv[2], sys.argv[3]
    start = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--from" else 0
    model = load_gguf(path) if path.endswith(".gguf") else load_llama2c(path)
    if toks.startswith("greedy:"):
        ids = [1]
        for _ in range(int(toks.split(":")[1])):
            ids.append(int(np.argmax(forward(model, ids)[-1])))
        print(",".join(map(str, ids)))
        logits = forward(model, ids)
    else:
        ids = [int(t) for t in toks.split(",")]
        logits = forward(model, ids)
    np.asarray(logits[start:], dtype="<f4").tofile(outp)


if __name__ == "__main__":
    main()
