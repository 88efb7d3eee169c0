"""Dumps a TOML file as JSON, every scalar tagged with its type (as toml-test does), for cross-checking
HessianDist's TOML reader against Python's tomllib.

Usage: python3 toml_to_json.py FILE   -> JSON on stdout; exit 1 with tomllib's message if FILE is not TOML.
Floats are their IEEE-754 bits in hex (so no decimal printing is involved), NaN of either sign is "nan".
"""
import json
import math
import struct
import sys
import tomllib


def tag(v):
    if isinstance(v, bool):
        return {"type": "bool", "value": "true" if v else "false"}
    if isinstance(v, int):
        return {"type": "integer", "value": str(v)}
    if isinstance(v, float):
        return {"type": "float", "value": "nan" if math.isnan(v) else struct.pack(">d", v).hex()}
    if isinstance(v, str):
        return {"type": "string", "value": v}
    if isinstance(v, list):
        return [tag(x) for x in v]
    if isinstance(v, dict):
        return {k: tag(x) for k, x in v.items()}
    raise TypeError(f"tomllib gave a {type(v).__name__}, which job files do not use: {v!r}")


def main():
    with open(sys.argv[1], "rb") as f:
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            print(f"tomllib: {e}", file=sys.stderr)
            sys.exit(1)
    json.dump(tag(doc), sys.stdout, sort_keys=True, ensure_ascii=False)


if __name__ == "__main__":
    main()
