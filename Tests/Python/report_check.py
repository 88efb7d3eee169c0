"""Checks a `hessdist report` / `allocate --html` page against the statistics and allocation it shows,
read independently (the stats with the `safetensors` package, the allocation from its JSON):

- the page is well-formed XML;
- every heatmap cell's value is the statistic of its tensor (Fisher trace per weight; the input energy is
  the sum of the tensor's imatrix as stored), the colours rise in lightness with the values (viridis),
  the extremes take the palette's ends;
- every frontier point, uniform point and the plan sit where the axes' own ticks put their values
  (x linear in bits/weight, y linear or logarithmic in the cost as the page says), with the allocation's
  bytes and costs; a uniform point is every tensor at that type, summed from the allocation's candidates;
- the type map shows the allocation's choice for every tensor.

- each `--eval` result sits in the measured plot at its file's bits/weight and perplexity, its error bar
  one standard error either side.

usage: report_check.py PAGE.html STATS.safetensors [ALLOCATION.json] [--eval EVAL.json …]   (prints "ok …")"""
import json
import math
import sys
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
from safetensors import safe_open

SVG = "{http://www.w3.org/2000/svg}"
args = sys.argv[1:]
evals = [json.load(open(args[i + 1])) for i, a in enumerate(args) if a == "--eval"]
args = [a for i, a in enumerate(args) if a != "--eval" and (i == 0 or args[i - 1] != "--eval")]
page, stats_path = args[0], args[1]
alloc = None
if len(args) > 2:
    alloc = json.load(open(args[2]))
    if "modules" in alloc:  # a quantize report holds it under "allocation"
        alloc = alloc["allocation"]
        assert alloc is not None, "a quantize report without an allocation"

root = ET.parse(page).getroot()
with safe_open(stats_path, "np") as f:
    stats = json.loads(f.metadata()["hessdist.stats"])
    imatrix = {k[: -len(".imatrix")]: f.get_tensor(k) for k in f.keys()}
params = stats["parameters"]
svgs = {s.get("id"): s for s in root.iter(SVG + "svg")}


def close(a, b, rel=2e-5):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-30)


def luminance(hex_colour):
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def check_heatmap(svg_id, expected, rel=1e-12):
    cells = [c for c in svgs[svg_id].iter(SVG + "rect") if c.get("class") == "cell"]
    assert Counter(c.get("data-tensor") for c in cells) == Counter(t["name"] for t in stats["tensors"]), svg_id
    shown = []
    for c in cells:
        name = c.get("data-tensor")
        if name not in expected:
            assert c.get("data-value") is None, (svg_id, name)
            continue
        v = float(c.get("data-value"))
        assert close(v, expected[name], rel), (svg_id, name, v, expected[name])
        shown.append((v, c.get("fill")))
    assert len(shown) == len(expected), (svg_id, len(shown), len(expected))
    log = svgs[svg_id].get("data-scale") == "log"
    on_scale = sorted((v, fill) for v, fill in shown if v > 0 or not log)
    for (v0, f0), (v1, f1) in zip(on_scale, on_scale[1:]):
        # Colours are rounded to whole RGB steps: allow that much.
        assert luminance(f1) >= luminance(f0) - 0.005, (svg_id, v0, f0, v1, f1)
    if on_scale[0][0] == on_scale[-1][0]:  # one value everywhere: the middle of the palette
        assert all(f == "#21918c" for _, f in on_scale), (svg_id, on_scale[0])
    else:
        assert on_scale[0][1] == "#440154" and on_scale[-1][1] == "#fde725", (svg_id, on_scale[0], on_scale[-1])


per_weight = lambda e, t: e["mean"] / math.prod(t["shape"])
fisher = {t["name"]: per_weight(t["fisher"], t) for t in stats["tensors"] if t.get("fisher")}
if fisher:
    check_heatmap("heat-fisher", fisher)
hutchinson = {t["name"]: per_weight(t["hutchinson"], t) for t in stats["tensors"] if t.get("hutchinson")}
if hutchinson:
    check_heatmap("heat-hutchinson", hutchinson)
sampled = {t["name"]: per_weight(t["sampledFisher"], t) for t in stats["tensors"] if t.get("sampledFisher")}
if sampled:
    check_heatmap("heat-sampled-fisher", sampled)
if imatrix:
    # The stored imatrix is f32 and summed here in f64: the JSON's inputTrace agrees to f32 rounding.
    check_heatmap("heat-input", {n: float(m.astype(np.float64).sum()) for n, m in imatrix.items()}, 2e-5)
if alloc is not None:
    check_heatmap("heat-cost", {t["name"]: next(c["cost"] for c in t["candidates"] if c["type"] == t["chosen"]) for t in alloc["tensors"]})
checked = ["heatmaps"]

# Row-block Fisher traces (--fisher-row-block): one heatmap per role, a cell per run of output rows.
runs = {}
for t in stats["tensors"]:
    for e in t.get("fisherRowBlocks") or []:
        lo, hi = e["rows"]
        runs["%s[rows %d..<%d]" % (t["name"], lo, hi)] = e["mean"] / ((hi - lo) * t["shape"][1])
        role = t["name"].split(".")[2] if t["name"].startswith("blk.") else t["name"]
        runs.setdefault(("role", role), 0)
if runs:
    cells = {}
    for sid, svg in svgs.items():
        if sid.startswith("rows-"):
            for c in svg.iter(SVG + "rect"):
                if c.get("class") == "cell":
                    cells[c.get("data-tensor")] = float(c.get("data-value"))
    want = {k: v for k, v in runs.items() if isinstance(k, str)}
    assert cells.keys() == want.keys(), (len(cells), len(want))
    assert all(close(cells[k], want[k], 1e-12) for k in want)
    assert sum(1 for k in runs if not isinstance(k, str)) == sum(1 for sid in svgs if sid.startswith("rows-"))
    checked.append("row blocks %d" % len(want))

def axes(svg):
    """The plot's value → pixel maps, fitted to its own tick lines (and checked against all of them)."""

    def axis(cls, coord):
        ticks = [(float(l.get("data-value")), float(l.get(coord))) for l in svg.iter(SVG + "line") if l.get("class") == cls]
        assert len(ticks) >= 2, (cls, ticks)
        return ticks

    def fit(ticks, transform):
        (v0, p0), (v1, p1) = ticks[0], ticks[-1]
        slope = (p1 - p0) / (transform(v1) - transform(v0))
        for v, p in ticks:
            assert abs(p0 + slope * (transform(v) - transform(v0)) - p) < 0.02, (v, p)
        return lambda v: p0 + slope * (transform(v) - transform(v0)), slope

    x_of, xs = fit(axis("x-tick", "x1"), lambda v: v)
    y_of, ys = fit(axis("y-tick", "y1"), math.log10 if svg.get("data-yscale") == "log" else (lambda v: v))
    assert xs > 0 and ys < 0, (xs, ys)  # more bits to the right, more damage (or perplexity) up
    (area,) = [r for r in svg.iter(SVG + "rect") if r.get("class") == "plot-area"]
    floor = float(area.get("y")) + float(area.get("height"))
    return x_of, y_of, floor


if evals:
    ms = svgs["measured"]
    x_of, y_of, _ = axes(ms)
    points = [c for c in ms.iter(SVG + "circle") if c.get("class") == "measured-point"]
    bars = [l for l in ms.iter(SVG + "line") if l.get("class") == "error-bar"]
    assert len(points) == len(evals) == len(bars), (len(points), len(evals), len(bars))
    unmatched = list(points)
    for e in evals:
        c = next(c for c in unmatched if int(c.get("data-bytes")) == e["fileBytes"] and close(float(c.get("data-ppl")), e["perplexity"], 1e-12))
        unmatched.remove(c)
        bpw = e["fileBytes"] * 8 / params
        assert e["parameters"] == params and abs(float(c.get("cx")) - x_of(bpw)) < 0.05 and abs(float(c.get("cy")) - y_of(e["perplexity"])) < 0.05, e["model"]
        (bar,) = [l for l in bars if abs(float(l.get("x1")) - float(c.get("cx"))) < 1e-9 and
                  abs((float(l.get("y1")) + float(l.get("y2"))) / 2 - float(c.get("cy"))) < 0.02]
        assert abs(float(bar.get("y1")) - y_of(e["perplexity"] - e["standardError"])) < 0.05, e["model"]
    checked.append("measured %d" % len(evals))

if alloc is not None:
    fr = svgs["frontier"]
    ylog = fr.get("data-yscale") == "log"
    x_of, y_of, floor = axes(fr)

    def marks(tag, cls):
        return [m for m in fr.iter(SVG + tag) if (m.get("class") or "-").split()[0] == cls]

    def centre(m):
        if m.tag == SVG + "circle":
            return float(m.get("cx")), float(m.get("cy"))
        return float(m.get("x")) + float(m.get("width")) / 2, float(m.get("y")) + float(m.get("height")) / 2

    def placed(m):
        b, cost = int(m.get("data-bytes")), float(m.get("data-cost"))
        bpw = float(m.get("data-bpw"))
        assert close(bpw, b * 8 / params, 1e-12), (b, bpw)
        cx, cy = centre(m)
        assert abs(cx - x_of(b * 8 / params)) < 0.05, ("x", b, cx, x_of(b * 8 / params))
        if cost > 0 or not ylog:
            assert abs(cy - y_of(cost)) < 0.05, ("y", b, cost, cy, y_of(cost))
        else:  # nothing to take the log of: on the floor of the plot
            assert abs(cy - floor) < 0.05, ("zero cost off the floor", b, cy, floor)
        return b, cost

    points = sorted(placed(m) for m in marks("circle", "frontier-point"))
    want = sorted((p["fileBytes"], p["cost"]) for p in alloc["frontier"])
    assert len(points) == len(want) and all(b == wb and close(c, wc, 1e-12) for (b, c), (wb, wc) in zip(points, want)), (points, want)
    (plan,) = marks("circle", "plan-point")
    b, cost = placed(plan)
    assert b == alloc["plannedFileBytes"] and close(cost, alloc["totalCost"], 1e-12), (b, cost)
    tensors = alloc["tensors"]
    uniform = 0
    for m in marks("rect", "uniform-point"):
        b, cost = placed(m)
        picks = [next(c for c in t["candidates"] if c["type"] == m.get("data-type")) for t in tensors]
        if stats.get("format", "gguf") == "gguf":  # GPTQ's headers vary with the plan: laid out, not summed
            assert b == alloc["fixedBytes"] + sum(c["bytes"] for c in picks), (m.get("data-type"), b)
        assert close(cost, sum(c["cost"] for c in picks), 1e-12), (m.get("data-type"), cost)
        uniform += 1
    everywhere = set.intersection(*(set(c["type"] for c in t["candidates"]) for t in tensors)) if tensors else set()
    assert uniform == len(everywhere), (uniform, everywhere)
    chosen = {t["name"]: t["chosen"] for t in tensors}
    cells = [c for c in svgs["types"].iter(SVG + "rect") if c.get("class") == "cell"]
    assert {c.get("data-tensor"): c.get("data-type") for c in cells if c.get("data-tensor") in chosen} == chosen
    checked += ["frontier %d points" % len(points), "uniform %d" % uniform, "types %d" % len(chosen)]

print("ok", ", ".join(checked))
