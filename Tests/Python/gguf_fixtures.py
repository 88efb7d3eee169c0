#!/usr/bin/env python3
"""Writes the GGUF fixtures the Swift GGUF/dequantizer tests read, with gguf-py as the reference.

Usage: gguf_fixtures.py OUTDIR

OUTDIR/fixtures.gguf holds (alignment 64, to exercise a non-default general.alignment):
  - metadata of every GGUF value type, arrays of several element types and a nested array;
  - one tensor per ggml type we decode. Q4_0..Q8_0 appear twice: quantized from random data with
    gguf.quants.quantize ("<type>.quantized") and as random block bytes ("<type>.random"). The K types,
    IQ4_NL, IQ4_XS and MXFP4 are random block bytes. In random blocks every f16 scale field is a random *finite* half, every
    other byte is arbitrary: dequantization is defined for any bit pattern.
OUTDIR/<tensor name>.f32 is gguf.quants.dequantize of that tensor's bytes, little-endian float32.
The Swift test (GGUFFixtureTests) hardcodes the metadata written here; keep them in step.
"""
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(1234)

# Byte offsets of the f16 fields (scales, mins) inside one block, per type.
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208], T.IQ4_NL: [0], T.IQ4_XS: [0],
    T.MXFP4: [],  # an E8M0 exponent byte: every value is finite
}


def finite_f16_bits(n: int) -> np.ndarray:
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    inf_or_nan = (bits & 0x7C00) == 0x7C00
    bits[inf_or_nan] ^= 0x4000  # clear the top exponent bit: finite, same sign and mantissa
    return bits


def random_blocks(qtype: T, rows: int, blocks_per_row: int) -> np.ndarray:
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(rows, blocks_per_row, type_size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        raw[:, :, off:off + 2] = finite_f16_bits(rows * blocks_per_row).view(np.uint8).reshape(rows, blocks_per_row, 2)
    return raw.reshape(rows, blocks_per_row * type_size)


w = gguf.GGUFWriter(str(out / "fixtures.gguf"), arch="llama")
w.add_custom_alignment(64)
w.add_uint8("test.u8", 200)
w.add_int8("test.i8", -100)
w.add_uint16("test.u16", 60000)
w.add_int16("test.i16", -30000)
w.add_uint32("test.u32", 4000000000)
w.add_int32("test.i32", -2000000000)
w.add_float32("test.f32", 1.5)
w.add_bool("test.bool", True)
w.add_string("test.string", "h\u00e9llo w\u00f6rld \u2713")
w.add_uint64("test.u64", (1 << 63) + 5)
w.add_int64("test.i64", -(1 << 62))
w.add_float64("test.f64", -0.1)
w.add_array("test.array.i32", [1, -2, 3])
w.add_array("test.array.f32", [0.25, -8.0])
w.add_array("test.array.bool", [True, False, True])
w.add_array("test.array.str", ["a", "bc", ""])
w.add_key_value("test.array.u8", [7, 255], V.ARRAY, sub_type=V.UINT8)
w.add_array("test.array.nested", [[1, 2], [3]])
w.add_array("test.array.nested_str", [["x"], ["y", "z"]])

tensors: dict[str, tuple[np.ndarray, T]] = {}

f32 = rng.standard_normal((2, 3, 5)).astype(np.float32)  # 3-D: ne = [5, 3, 2]
tensors["f32"] = (f32, T.F32)
f16_bits = rng.integers(0, 1 << 16, size=(3, 7), dtype=np.uint16)  # includes infs and NaNs
f16_bits[0, :4] = [0x7C00, 0xFC00, 0x7E01, 0x0001]  # +inf, -inf, a NaN, the smallest subnormal
tensors["f16"] = (f16_bits.view(np.float16), T.F16)
bf16_bits = rng.integers(0, 1 << 16, size=(3, 7), dtype=np.uint16)
tensors["bf16"] = (bf16_bits.view(np.uint8), T.BF16)

for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
    name = qtype.name.lower()
    data = rng.standard_normal((3, 96)).astype(np.float32)
    data[1] *= 1e-3  # a row with tiny values
    data[2, :32] = 0  # an all-zero block (d == 0)
    tensors[f"{name}.quantized"] = (gguf.quants.quantize(data, qtype), qtype)
    tensors[f"{name}.random"] = (random_blocks(qtype, 2, 3), qtype)

for qtype in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_NL, T.IQ4_XS, T.MXFP4):
    tensors[qtype.name.lower()] = (random_blocks(qtype, 3, 2), qtype)

for name, (data, qtype) in tensors.items():
    if qtype in (T.F32, T.F16):
        w.add_tensor(name, data)
    else:
        w.add_tensor(name, data, raw_dtype=qtype)

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

# Expected values, from the file as written (so the reference sees exactly the stored bytes).
r = gguf.GGUFReader(str(out / "fixtures.gguf"))
assert {t.name for t in r.tensors} == set(tensors), "tensor set"
for t in r.tensors:
    values = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype("<f4", copy=False)
    assert values.size == int(np.prod(t.shape)), t.name
    values.ravel().tofile(out / f"{t.name}.f32")
print(len(r.tensors))
