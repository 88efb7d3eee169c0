#!/usr/bin/env python3
"""Test reference: dequantize every GPTQ v1 Linear of a checkpoint directory with NumPy, as the loaders do.

Reads config.json (`quantization_config`, with GPTQModel `dynamic` overrides: "+:regex" changes bits /
group_size, "-:regex" leaves a module unquantized) and the safetensors file(s) with the `safetensors`
package. For each module with a `qweight` it unpacks codes along the input dimension and zeros along the
output dimension (2/4/8 bits: 32/bits fields per int32, lowest bits first; 3 bits: AutoGPTQ's layout of
32 codes in 3 int32s, fields straddling word boundaries), then computes, like transformers/GPTQModel's
torch kernel for checkpoint_format "gptq" (v1):  W^T = scales[g_idx] * (w - (zeros + 1)).

Writes OUT/<module>.f32 (W as [out, in] float32, product in float32: exact) and OUT/<module>.f16.f32 (the
product in float16 as the kernel does with fp16 activations, widened to float32), and prints a JSON list
of the modules with their bits and shapes. Not the production loader: no kernels, no bias, CPU only.
"""
import json
import os
import re
import sys

import numpy as np
from safetensors import safe_open


def open_tensors(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    out = {}
    for f in files:
        with safe_open(os.path.join(d, f), framework="numpy") as h:
            for k in h.keys():
                out[k] = h.get_tensor(k)
    return out


def module_bits(qc, module):
    """The default bits, overridden by the first matching positive `dynamic` rule (as vLLM/GPTQModel)."""
    bits = qc["bits"]
    for pat, over in (qc.get("dynamic") or {}).items():
        if pat.startswith("-:"):
            if re.match(pat[2:], module):
                return None
        elif re.match(pat.removeprefix("+:"), module):
            return over.get("bits", bits)
    return bits


def unpack(packed, bits, axis_len):
    """int32 words [..., n] holding a little-endian bit stream of `axis_len` b-bit fields -> [..., axis_len]."""
    u = packed.astype(np.uint32).astype(np.uint64)
    maxq = (1 << bits) - 1
    if bits in (2, 4, 8):
        per = 32 // bits
        shifts = np.arange(0, 32, bits, dtype=np.uint64)
        f = (u[..., :, None] >> shifts) & maxq            # [..., words, per]
        return f.reshape(*u.shape[:-1], u.shape[-1] * per)[..., :axis_len].astype(np.int32)
    assert bits == 3, bits
    # 32 codes per 3 words: code k sits at bit 3k of the 96-bit group, straddling words 0/1 (k = 10) and 1/2 (k = 21).
    g = u.reshape(*u.shape[:-1], u.shape[-1] // 3, 3)
    stream = g[..., 0] | (g[..., 1] << np.uint64(32))     # bits 0..63
    hi = g[..., 2]                                       # bits 64..95
    codes = []
    for k in range(32):
        p = 3 * k
        if p + 3 <= 64:
            codes.append((stream >> np.uint64(p)) & maxq)
        elif p >= 64:
            codes.append((hi >> np.uint64(p - 64)) & maxq)
        else:  # k = 21: bit 63 from word 1, bits 64..65 from word 2
            codes.append(((stream >> np.uint64(p)) | (hi << np.uint64(64 - p))) & maxq)
    return np.stack(codes, axis=-1).reshape(*u.shape[:-1], -1)[..., :axis_len].astype(np.int32)


def dequantize(t, prefix, bits):
    qweight, qzeros, scales, g_idx = (t[prefix + s] for s in (".qweight", ".qzeros", ".scales", ".g_idx"))
    assert qweight.dtype == np.int32 and qzeros.dtype == np.int32 and g_idx.dtype == np.int32, prefix
    assert scales.dtype == np.float16, prefix
    groups, rows = scales.shape
    cols = g_idx.shape[0]
    assert qweight.shape == (cols * bits // 32, rows), (prefix, qweight.shape)
    assert qzeros.shape == (groups, rows * bits // 32), (prefix, qzeros.shape)
    w = unpack(qweight.T, bits, cols).T                  # [cols, rows]: unpack along the input dimension
    zeros = unpack(qzeros, bits, rows)                    # [groups, rows]
    gi = g_idx.astype(np.int64)
    diff = w - (zeros[gi] + 1)                            # v1: stored zero - 1
    exact = (scales[gi].astype(np.float32) * diff.astype(np.float32)).T
    half = (scales[gi] * diff.astype(np.float16)).astype(np.float32).T
    return np.ascontiguousarray(exact), np.ascontiguousarray(half)


def main():
    d, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    qc = json.load(open(os.path.join(d, "config.json")))["quantization_config"]
    assert qc["quant_method"] == "gptq" and qc.get("checkpoint_format", "gptq") == "gptq", qc
    t = open_tensors(d)
    report = []
    for prefix in sorted(k[:-len(".qweight")] for k in t if k.endswith(".qweight")):
        bits = module_bits(qc, prefix)
        assert bits is not None, f"{prefix} is quantized but excluded by dynamic"
        exact, half = dequantize(t, prefix, bits)
        exact.astype("<f4").tofile(os.path.join(out, prefix + ".f32"))
        half.astype("<f4").tofile(os.path.join(out, prefix + ".f16.f32"))
        report.append({"module": prefix, "bits": bits, "shape": list(exact.shape)})
    print(json.dumps(report))


if __name__ == "__main__":
    main()
