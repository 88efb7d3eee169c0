"""Dump a GGUF file's tokenizer.* metadata as typed JSON (read by the Swift tests into a GGUFMetadata).

Usage: gguf_tokenizer_dump.py MODEL.gguf OUT.json
Output: {"keys": [...], "values": {key: {"type": T, "value": V}}}, arrays as {"type": "array", "elem": T, "value": [...]}.
Uses gguf-py's GGUFReader, independent of the Swift GGUF parser.
"""
import json
import sys

from gguf import GGUFReader, GGUFValueType

NAMES = {
    GGUFValueType.UINT8: "uint8", GGUFValueType.INT8: "int8", GGUFValueType.UINT16: "uint16",
    GGUFValueType.INT16: "int16", GGUFValueType.UINT32: "uint32", GGUFValueType.INT32: "int32",
    GGUFValueType.FLOAT32: "float32", GGUFValueType.BOOL: "bool", GGUFValueType.STRING: "string",
    GGUFValueType.UINT64: "uint64", GGUFValueType.INT64: "int64", GGUFValueType.FLOAT64: "float64",
}


def scalar(field, t, part_index):
    part = field.parts[part_index]
    if t == GGUFValueType.STRING:
        return bytes(part).decode("utf-8")
    v = part.tolist()[0]
    return bool(v) if t == GGUFValueType.BOOL else v


def main():
    path, out = sys.argv[1], sys.argv[2]
    r = GGUFReader(path)
    keys, values = [], {}
    for k, f in r.fields.items():
        if not k.startswith("tokenizer.") or k == "tokenizer.chat_template":
            continue
        keys.append(k)
        if f.types[0] == GGUFValueType.ARRAY:
            et = f.types[1]
            values[k] = {"type": "array", "elem": NAMES[et], "value": [scalar(f, et, i) for i in f.data]}
        else:
            values[k] = {"type": NAMES[f.types[0]], "value": scalar(f, f.types[0], f.data[0])}
    with open(out, "w") as fh:
        json.dump({"keys": keys, "values": values}, fh)


if __name__ == "__main__":
    main()
