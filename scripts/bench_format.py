#!/usr/bin/env python3
"""Formats the JSON of `hessdist bench ...` and `hessdist eval --json` as Markdown table rows."""
import json
import sys

kind = sys.argv[1]
data = json.load(sys.stdin)
if kind == "sgemm":
    for m in data:
        print("| %d×%d×%d | %.1f |" % (m["m"], m["n"], m["k"], m["gflops"]))
elif kind == "peak":
    print("%.3f" % data[0]["gflops"])
elif kind == "core":
    print(data[0]["core"])
elif kind == "forward":
    peak, label = float(sys.argv[2]), sys.argv[3]
    g, s = data["gflops"], data["seconds"]
    print("| %s | %.0f | %.3f | %.1f (%.0f %%) | %.3f | %.3f | %.1f |" % (
        label, data["tokensPerSecond"], data["secondsPerPass"], g["gemm"], 100 * g["gemm"] / peak,
        s["attention"], s["norm"], g["head"]))
elif kind == "eval":
    label, wall = sys.argv[2], sys.argv[3]
    print("| %s | %.4f ± %.4f | %s s |" % (label, data["perplexity"], data["standardError"], wall))
elif kind == "gptq":
    peak = float(sys.argv[2])
    for m in data:
        s, g = m["seconds"], m["gflops"]
        total = sum(s[k] for k in ("accumulate", "prepare", "invert", "sweep", "metrics"))
        print("| %d×%d | %s | %d | %.3f (%.1f, %.0f %%) | %.3f (%.1f, %.0f %%) | %.3f (%.1f, %.0f %%) | %.3f | %.3f | %.3f |" % (
            m["rows"], m["cols"], m["grid"], m["tokens"],
            s["accumulate"], g["accumulate"], 100 * g["accumulate"] / peak,
            s["invert"], g["invert"], 100 * g["invert"] / peak,
            s["sweep"], g["sweep"], 100 * g["sweep"] / peak,
            s["prepare"], s["metrics"], total))
