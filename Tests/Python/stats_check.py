"""Reads a `hessdist profile` statistics file with the `safetensors` package (an independent reader):
checks the metadata, that every profiled tensor has its imatrix of the right shape, and that the JSON's
inputTrace is the imatrix's sum; prints "ok N". With --rewrite-parameters OUT, writes a copy whose
parameter count is off by one (a stats file of "another model") for the error test."""
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

path = sys.argv[1]
with safe_open(path, "np") as f:
    meta = f.metadata()
    tensors = {k: f.get_tensor(k) for k in f.keys()}
assert meta["format"] == "hessdist-stats", meta.get("format")
stats = json.loads(meta["hessdist.stats"])
for t in stats["tensors"]:
    m = tensors[t["name"] + ".imatrix"]
    assert m.dtype == np.float32 and m.shape == (t["shape"][1],), (t["name"], m.dtype, m.shape)
    assert (m >= 0).all(), t["name"]
    s = float(m.astype(np.float64).sum())
    assert abs(s - t["inputTrace"]) <= 1e-5 * max(1.0, abs(s)), (t["name"], s, t["inputTrace"])
    assert t["candidates"], t["name"]
    for c in t["candidates"]:
        assert c["bytes"] > 0 and c["layerError"] >= 0 and c["squaredError"] >= 0, (t["name"], c)
assert len(tensors) == len(stats["tensors"])
if "--rewrite-parameters" in sys.argv:
    stats["parameters"] += 1
    meta["hessdist.stats"] = json.dumps(stats)
    save_file(tensors, sys.argv[sys.argv.index("--rewrite-parameters") + 1], metadata=meta)
print("ok", len(stats["tensors"]))
