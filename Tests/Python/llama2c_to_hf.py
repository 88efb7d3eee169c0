#!/usr/bin/env python3
"""Test fixture: convert a llama2.c v0 checkpoint into a Hugging Face llama checkpoint directory.

Writes config.json (model_type llama, tie_word_embeddings as in the checkpoint) and model.safetensors,
or two shards + model.safetensors.index.json. q/k rows are un-permuted from llama2.c's interleaved RoPE
layout to HF's half-split layout, as HF's convert_llama_weights_to_hf.py does
(view(n_head, head_dim // 2, 2, cols).transpose(1, 2)). F32 and F16 files are written with the
safetensors library itself; BF16 (which numpy lacks) with the small writer below.

--expect PATH additionally writes an F32 safetensors file of numpy's own round trip of every stored value
(x -> dtype -> float32), under the same HF names: the reference the Swift reader must match bit-exactly.
Not a general converter: llama2.c v0 files only, no tokenizer.
"""
import argparse
import json
import os
import struct

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file


def read_llama2c(path):
    raw = open(path, "rb").read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    f = np.frombuffer(raw, dtype="<f4", offset=28)
    head_dim = dim // n_heads
    kv_dim = n_kv * head_dim
    at = 0

    def take(*shape):
        nonlocal at
        n = int(np.prod(shape))
        a = f[at:at + n].reshape(shape).copy()
        at += n
        return a

    w = {"tok": take(vocab, dim), "att_norm": take(n_layers, dim), "wq": take(n_layers, dim, dim),
         "wk": take(n_layers, kv_dim, dim), "wv": take(n_layers, kv_dim, dim), "wo": take(n_layers, dim, dim),
         "ffn_norm": take(n_layers, dim), "w1": take(n_layers, hidden, dim), "w2": take(n_layers, dim, hidden),
         "w3": take(n_layers, hidden, dim), "norm": take(dim)}
    at += seq_len * head_dim // 2 * 2  # freq_cis_real, freq_cis_imag
    if not shared:
        w["cls"] = take(vocab, dim)
    assert at == f.size, "file size does not match the header"
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv, vocab=vocab,
               seq_len=seq_len, shared=shared, head_dim=head_dim)
    return cfg, w


def interleaved_to_half_split(w, n_head):
    """Inverse of convert_hf_to_gguf.py's permute: GGUF/llama2.c interleaved rows -> HF half-split rows."""
    rows, cols = w.shape
    return w.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def hf_tensors(cfg, w):
    t = {"model.embed_tokens.weight": w["tok"]}
    for l in range(cfg["n_layers"]):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = w["att_norm"][l]
        t[p + "self_attn.q_proj.weight"] = interleaved_to_half_split(w["wq"][l], cfg["n_heads"])
        t[p + "self_attn.k_proj.weight"] = interleaved_to_half_split(w["wk"][l], cfg["n_kv"])
        t[p + "self_attn.v_proj.weight"] = w["wv"][l]
        t[p + "self_attn.o_proj.weight"] = w["wo"][l]
        t[p + "post_attention_layernorm.weight"] = w["ffn_norm"][l]
        t[p + "mlp.gate_proj.weight"] = w["w1"][l]
        t[p + "mlp.down_proj.weight"] = w["w2"][l]
        t[p + "mlp.up_proj.weight"] = w["w3"][l]
    t["model.norm.weight"] = w["norm"]
    if not cfg["shared"]:
        t["lm_head.weight"] = w["cls"]
    # An extra buffer some exports carry; readers must ignore it.
    hd = cfg["head_dim"]
    t["model.layers.0.self_attn.rotary_emb.inv_freq"] = (
        1.0 / (10000.0 ** (np.arange(0, hd, 2, dtype=np.float32) / hd))).astype(np.float32)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in t.items()}


def to_bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even (as torch's .to(torch.bfloat16))."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_bits_to_f32(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def write_bf16_safetensors(path, tensors, metadata):
    """Minimal safetensors writer for uint16 bfloat16 bit arrays (and float32 arrays), packed in order."""
    header, blobs, at = {"__metadata__": metadata}, [], 0
    for name, a in tensors.items():
        dtype = "BF16" if a.dtype == np.uint16 else "F32"
        b = a.astype("<u2" if dtype == "BF16" else "<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("out_dir")
    ap.add_argument("--dtype", choices=["F32", "F16", "BF16"], default="F32")
    ap.add_argument("--shards", type=int, choices=[1, 2], default=1)
    ap.add_argument("--expect", help="write numpy's round-tripped float32 values here")
    a = ap.parse_args()

    cfg, w = read_llama2c(a.checkpoint)
    t = hf_tensors(cfg, w)
    os.makedirs(a.out_dir, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": cfg["dim"], "intermediate_size": cfg["hidden"], "num_hidden_layers": cfg["n_layers"],
        "num_attention_heads": cfg["n_heads"], "num_key_value_heads": cfg["n_kv"], "vocab_size": cfg["vocab"],
        "max_position_embeddings": cfg["seq_len"], "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "rope_scaling": None, "tie_word_embeddings": cfg["shared"],
        "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[a.dtype],
    }
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    # Stored arrays (the rotary buffer stays F32, as real exports keep buffers in float32).
    stored, roundtrip = {}, {}
    for k, v in t.items():
        if a.dtype == "F32" or k.endswith("inv_freq"):
            stored[k] = v
            roundtrip[k] = v
        elif a.dtype == "F16":
            stored[k] = v.astype(np.float16)
            roundtrip[k] = stored[k].astype(np.float32)
        else:
            stored[k] = to_bf16_bits(v)
            roundtrip[k] = bf16_bits_to_f32(stored[k])

    meta = {"format": "pt"}
    names = list(stored)
    parts = [names] if a.shards == 1 else [names[:len(names) // 2], names[len(names) // 2:]]
    files = ["model.safetensors"] if a.shards == 1 else \
        [f"model-{i + 1:05d}-of-{a.shards:05d}.safetensors" for i in range(a.shards)]
    for part, fname in zip(parts, files):
        sub = {k: stored[k] for k in part}
        path = os.path.join(a.out_dir, fname)
        if a.dtype == "BF16":
            write_bf16_safetensors(path, sub, meta)
            with safe_open(path, framework="numpy") as f:  # the reference library accepts our writer
                assert sorted(f.keys()) == sorted(sub), "safetensors rejected the BF16 file"
        else:
            save_file(sub, path, metadata=meta)
    if a.shards > 1:
        total = sum(v.nbytes for v in stored.values())
        index = {"metadata": {"total_size": total},
                 "weight_map": {k: fname for part, fname in zip(parts, files) for k in part}}
        with open(os.path.join(a.out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
    if a.expect:
        save_file(roundtrip, a.expect, metadata=meta)


if __name__ == "__main__":
    main()
