#!/usr/bin/env python3
"""Reads a GGUF our writer produced with gguf-py's GGUFReader, the independent reference.

Usage:
  gguf_read_written.py dump FILE OUTDIR
      OUTDIR/meta.json: {"version", "alignment", "data_offset", "kv": [[key, value]...] in file order,
      "tensors": [{"name", "type", "ne", "offset", "n_bytes"}...] in file order}. Values are typed
      JSON: {"type": name, "value": v}, arrays {"type": "array", "elem": name, "value": [typed...]};
      integers are decimal strings, float32/float64 their bit patterns as decimal strings (exact).
      OUTDIR/<i>.f32: gguf.quants.dequantize of tensor i, little-endian float32.
  gguf_read_written.py compare SOURCE COPY
      Asserts both files hold the same tensors (names, types, shapes, order, bytes) and the same
      tokenizer.* metadata; prints "ok <n tensors>".
Nested arrays: gguf-py's ReaderField.contents() does not decode them, so values are rebuilt from
field.parts (the reader's own split of the bytes), walking the types it recorded.
"""
import json
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFValueType as V

NAMES = {V.UINT8: "uint8", V.INT8: "int8", V.UINT16: "uint16", V.INT16: "int16", V.UINT32: "uint32",
         V.INT32: "int32", V.FLOAT32: "float32", V.BOOL: "bool", V.STRING: "string", V.ARRAY: "array",
         V.UINT64: "uint64", V.INT64: "int64", V.FLOAT64: "float64"}


def scalar(vtype, part):
    x = part[0]
    if vtype == V.FLOAT32:
        return str(int(np.asarray(x, dtype="<f4").view("<u4")))
    if vtype == V.FLOAT64:
        return str(int(np.asarray(x, dtype="<f8").view("<u8")))
    if vtype == V.BOOL:
        return bool(x)
    return str(int(x))


def walk(parts, i, vtype):
    """Typed value starting at parts[i]; returns (value, next index)."""
    if vtype == V.STRING:
        return {"type": "string", "value": bytes(parts[i + 1]).decode("utf-8")}, i + 2
    if vtype == V.ARRAY:
        elem = V(int(parts[i][0]))
        n = int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(n):
            v, i = walk(parts, i, elem)
            items.append(v)
        return {"type": "array", "elem": NAMES[elem], "value": items}, i
    return {"type": NAMES[vtype], "value": scalar(vtype, parts[i])}, i + 1


def dump(path, outdir):
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    r = gguf.GGUFReader(path)
    kv = []
    version = None
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            if f.name == "GGUF.version":
                version = int(f.parts[-1][0])
            continue
        # parts: key length, key bytes, value type, then the value's parts.
        vtype = V(int(f.parts[2][0]))
        value, end = walk(f.parts, 3, vtype)
        assert end == len(f.parts), f"{f.name}: {end} of {len(f.parts)} parts used"
        kv.append([f.name, value])
    tensors = []
    for i, t in enumerate(r.tensors):
        tensors.append({"name": t.name, "type": int(t.tensor_type), "ne": [int(x) for x in t.shape],
                        "offset": int(t.data_offset), "n_bytes": int(t.n_bytes)})
        values = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype("<f4", copy=False)
        assert values.size == int(np.prod(t.shape)), t.name
        values.ravel().tofile(out / f"{i}.f32")
    meta = {"version": version, "alignment": int(r.alignment), "data_offset": int(r.data_offset),
            "kv": kv, "tensors": tensors}
    (out / "meta.json").write_text(json.dumps(meta))
    print(len(tensors))


def compare(source, copy):
    a, b = gguf.GGUFReader(source), gguf.GGUFReader(copy)
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors], "tensor names/order"
    for x, y in zip(a.tensors, b.tensors):
        assert x.tensor_type == y.tensor_type, f"{x.name}: type {x.tensor_type} vs {y.tensor_type}"
        assert list(x.shape) == list(y.shape), f"{x.name}: shape {x.shape} vs {y.shape}"
        assert x.n_bytes == y.n_bytes, f"{x.name}: {x.n_bytes} vs {y.n_bytes} bytes"
        assert np.asarray(x.data).tobytes() == np.asarray(y.data).tobytes(), f"{x.name}: bytes differ"
    keys = [k for k in a.fields if k.startswith("tokenizer.")]
    assert keys, "no tokenizer metadata in the source"
    for k in keys:
        fa, fb = a.fields[k], b.fields.get(k)
        assert fb is not None, f"{k} missing in the copy"
        assert fa.types == fb.types, f"{k}: types {fa.types} vs {fb.types}"
        assert fa.contents() == fb.contents(), f"{k}: values differ"
    print("ok", len(a.tensors), len(keys))


if __name__ == "__main__":
    if sys.argv[1] == "dump":
        dump(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
