#!/usr/bin/env python3
"""Test reference: read a safetensors file written by our writer with the `safetensors` package and write
the same tensors and metadata again with `safetensors.numpy.save_file`. Prints JSON: per tensor dtype,
shape and a float64 sum, and whether the rewritten file is byte-identical to the input.
Not for BF16 (numpy has no bfloat16)."""
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

src, dst = sys.argv[1], sys.argv[2]
with safe_open(src, framework="numpy") as f:
    meta = f.metadata()
    tensors = {k: f.get_tensor(k) for k in f.keys()}
save_file(tensors, dst, metadata=meta)
same = open(src, "rb").read() == open(dst, "rb").read()
print(json.dumps({"identical": same, "metadata": meta,
                  "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape), "sum": float(v.astype(np.float64).sum())}
                              for k, v in tensors.items()}}))
