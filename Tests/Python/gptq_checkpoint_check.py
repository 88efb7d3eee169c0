#!/usr/bin/env python3
"""Test reference: check a GPTQ checkpoint directory against what transformers' LlamaForCausalLM + GPTQ
(and GPTQModel / vLLM) expect, without torch: config.json fields, quantize_config.json agreeing with
`quantization_config`, every tensor name / dtype / shape (quantized Linears: qweight, qzeros, scales, g_idx;
everything else fp16 as in the unquantized model; a `-:` dynamic rule keeps a Linear's plain `weight`),
per-module bits and group size from GPTQModel `dynamic` overrides (first match wins; the summary lists each
quantized module's bits), and, when sharded, the index (every tensor in exactly the file it names, total_size = sum of tensor bytes).
Exits non-zero listing every problem; prints a JSON summary otherwise."""
import json
import os
import re
import sys

from safetensors import safe_open

d = sys.argv[1]
problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)


cfg = json.load(open(os.path.join(d, "config.json")))
qc = cfg["quantization_config"]
qc2 = json.load(open(os.path.join(d, "quantize_config.json")))
check(qc == qc2, f"quantize_config.json differs from quantization_config: {qc2} vs {qc}")
for k, v in {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "torch_dtype": "float16",
             "hidden_act": "silu"}.items():
    check(cfg.get(k) == v, f"config {k} = {cfg.get(k)!r}, expected {v!r}")
for k in ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
          "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings", "head_dim"]:
    check(k in cfg, f"config lacks {k}")
check(qc.get("quant_method") == "gptq", "quant_method")
check(qc.get("checkpoint_format") == "gptq", "checkpoint_format")
check(qc.get("bits") in (2, 3, 4, 8), f"bits {qc.get('bits')}")
check(qc.get("group_size") == -1 or (isinstance(qc.get("group_size"), int) and qc["group_size"] > 0), "group_size")
for k in ["desc_act", "sym", "true_sequential"]:
    check(isinstance(qc.get(k), bool), f"quantization_config {k} not a bool")
check(isinstance(qc.get("damp_percent"), float), "damp_percent")


def override(module):
    """(quantized?, bits, group_size) after `dynamic`, first match wins."""
    for pat, over in (qc.get("dynamic") or {}).items():
        if pat.startswith("-:"):
            if re.match(pat[2:], module):
                return False, None, None
        elif re.match(pat.removeprefix("+:"), module):
            return True, over.get("bits", qc["bits"]), over.get("group_size", qc["group_size"])
    return True, qc["bits"], qc["group_size"]


idx_path = os.path.join(d, "model.safetensors.index.json")
sharded = os.path.exists(idx_path)
files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
found = {}  # name -> (dtype, shape, file, nbytes)
for f in files:
    with safe_open(os.path.join(d, f), framework="numpy") as h:
        check(h.metadata() == {"format": "pt"}, f"{f}: metadata {h.metadata()}")
        for k in h.keys():
            t = h.get_tensor(k)
            check(k not in found, f"{k} in two files")
            found[k] = (str(t.dtype), list(t.shape), f, t.nbytes)
if sharded:
    idx = json.load(open(idx_path))
    wm = idx["weight_map"]
    check(set(wm) == set(found), f"index names differ: {set(wm) ^ set(found)}")
    for k, f in wm.items():
        check(k in found and found[k][2] == f, f"index puts {k} in {f}, found in {found.get(k, (0, 0, None))[2]}")
    check(idx["metadata"]["total_size"] == sum(v[3] for v in found.values()), "total_size")
    check(set(wm.values()) == set(files), f"shard files {files} vs index {sorted(set(wm.values()))}")
    n = len(files)
    check(files == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)], f"shard names {files}")
else:
    check(files == ["model.safetensors"], f"files {files}")

C, H, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
hd = cfg["head_dim"]
q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
expect = {"model.embed_tokens.weight": ("float16", [cfg["vocab_size"], C]), "model.norm.weight": ("float16", [C])}
if not cfg["tie_word_embeddings"]:
    expect["lm_head.weight"] = ("float16", [cfg["vocab_size"], C])
quantized = 0
module_bits = {}  # quantized module -> bits after `dynamic`, for callers checking a mixed plan
for l in range(L):
    p = f"model.layers.{l}."
    expect[p + "input_layernorm.weight"] = ("float16", [C])
    expect[p + "post_attention_layernorm.weight"] = ("float16", [C])
    for m, (out_f, in_f) in {"self_attn.q_proj": (q, C), "self_attn.k_proj": (kv, C), "self_attn.v_proj": (kv, C),
                             "self_attn.o_proj": (C, q), "mlp.gate_proj": (H, C), "mlp.up_proj": (H, C),
                             "mlp.down_proj": (C, H)}.items():
        name = p + m
        isq, bits, gs = override(name)
        if not isq:
            expect[name + ".weight"] = ("float16", [out_f, in_f])
            continue
        quantized += 1
        check(bits in (2, 3, 4, 8), f"{name}: bits {bits} after dynamic")
        module_bits[name] = bits
        groups = 1 if gs == -1 else in_f // gs
        check(gs == -1 or in_f % gs == 0, f"{name}: group_size {gs} does not divide {in_f}")
        expect[name + ".qweight"] = ("int32", [in_f * bits // 32, out_f])
        expect[name + ".qzeros"] = ("int32", [groups, out_f * bits // 32])
        expect[name + ".scales"] = ("float16", [groups, out_f])
        expect[name + ".g_idx"] = ("int32", [in_f])
check(set(expect) == set(found), f"names: missing {sorted(set(expect) - set(found))}, extra {sorted(set(found) - set(expect))}")
for k, (dt, sh) in expect.items():
    if k in found:
        check(found[k][:2] == (dt, sh), f"{k}: {found[k][:2]}, expected {(dt, sh)}")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print(json.dumps({"files": files, "tensors": len(found), "quantized_modules": quantized,
                  "dynamic": qc.get("dynamic") or {}, "module_bits": module_bits}))
