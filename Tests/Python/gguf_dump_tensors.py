#!/usr/bin/env python3
"""Dequantizes tensors of a GGUF file with gguf-py (the reference) into little-endian float32 files.

Usage: gguf_dump_tensors.py MODEL.gguf OUTDIR NAME[:ROWS] ...
Writes OUTDIR/NAME.f32 holding the first ROWS rows (outermost dimension; all rows when omitted).
"""
import sys
from pathlib import Path

import numpy as np
import gguf

model, out = sys.argv[1], Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
r = gguf.GGUFReader(model)
by_name = {t.name: t for t in r.tensors}
for spec in sys.argv[3:]:
    name, _, rows = spec.partition(":")
    t = by_name[name]
    data = np.asarray(t.data)  # rows first: (rows, bytes per row) for quantized types
    if rows:
        data = data[: int(rows)]
    values = gguf.quants.dequantize(data, t.tensor_type).astype("<f4", copy=False)
    values.ravel().tofile(out / f"{name}.f32")
