#!/usr/bin/env bash
# Data-parallel GPTQ on one machine: `hessdist quantize` (GPTQ, TYPE) under scripts/run-local.sh with N=1 and
# N=2 ranks at one OpenBLAS thread per rank, and N=1 with 2 BLAS threads (the best single process on 2 cores).
# Checks that N=1 and N=2 wrote the same bytes (sha256), and prints a Markdown section for BENCHMARKS.md:
# wall time per run, speed-up, the bytes on the wire per message kind (from the report's `wire` rows: raw =
# decoded payloads, wire = encoded with headers), the Hessian bytes against a dense fp32 all-reduce, and
# how long they would take at 10 and 100 Gb/s.
#
# The dense fp32 all-reduce it compares with: for every sequential group (q/k/v, o, gate/up, down of each
# block) an all-reduce of the n×n fp32 Hessian (n = the group's input columns) with the bandwidth-optimal
# ring algorithm, in which each of N ranks sends 2(N−1)/N·n²·4 bytes: 2(N−1)·n²·4 bytes on the wire per
# group in all. That is what MPI_Allreduce / NCCL move for a dense matrix, and what a "sum the Hessians on
# every rank" design would cost; at N=2 it equals every rank sending its whole n×n fp32 matrix once.
# Hessian traffic here = the `hessian` and `scalars` rows (each Hessian travels with its 8-byte row count).
#
# Usage: scripts/bench-cluster.sh    (NSAMPLES=128 SEQLEN=512 MICRO_BATCH=4 TYPE=q4_0 by default)
#   MODEL=path (default SmolLM2-135M-Instruct.Q4_1.gguf, fetched), TOKENIZER=tok.bin for llama2c models,
#   CALIB=text, EXTRA='more quantize flags', OUT=dir, HESSDIST_BIN=binary (default: release build).
#   Small check: NSAMPLES=8 SEQLEN=64 scripts/bench-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NSAMPLES=${NSAMPLES:-128}; SEQLEN=${SEQLEN:-512}; MICRO_BATCH=${MICRO_BATCH:-4}; TYPE=${TYPE:-q4_0}; EXTRA=${EXTRA:-}
OUT=${OUT:-/tmp/hessdist-bench-cluster}; mkdir -p "$OUT"
# shellcheck source=bench-common.sh
source scripts/bench-common.sh bench-cluster
ARGS=(quantize --model "$MODEL" --calib "$CALIB" --nsamples "$NSAMPLES" --seqlen "$SEQLEN" --micro-batch "$MICRO_BATCH"
      --method gptq --format gguf --type "$TYPE")
[ -n "$TOKENIZER" ] && ARGS+=(--tokenizer "$TOKENIZER")
# shellcheck disable=SC2206
[ -n "$EXTRA" ] && ARGS+=($EXTRA)

# run NAME N BLAS_THREADS: wall seconds in $OUT/NAME.time, output $OUT/NAME.gguf (+ .report.json)
run() {
  local name=$1 n=$2 threads=$3
  rm -f "$OUT/$name.gguf" "$OUT/$name.gguf.report.json"
  BLAS_THREADS=$threads /usr/bin/time -f "%e" -o "$OUT/$name.time" \
    scripts/run-local.sh "$n" "${ARGS[@]}" --out "$OUT/$name.gguf" >"$OUT/$name.log" 2>&1 \
    || { echo "bench-cluster: $name failed:" >&2; tail -5 "$OUT/$name.log" >&2; exit 1; }
}
run n1 1 1
run n2 2 1
run n1t2 1 2
S1=$(sha256sum "$OUT/n1.gguf" | cut -d' ' -f1); S2=$(sha256sum "$OUT/n2.gguf" | cut -d' ' -f1)

echo "### Data-parallel GPTQ ($TYPE), $(basename "$MODEL"), $(date -u +%Y-%m-%d), $(nproc) cores"
echo
echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/^Mem:/ {print $2}') GiB. Command: \`NSAMPLES=$NSAMPLES SEQLEN=$SEQLEN MICRO_BATCH=$MICRO_BATCH TYPE=$TYPE EXTRA='$EXTRA' scripts/bench-cluster.sh\`"
echo "(each run: \`scripts/run-local.sh N ${ARGS[*]} --out F\`)."
echo "Calibration: $NSAMPLES × $SEQLEN tokens of $(basename "$CALIB") in micro-shards of $MICRO_BATCH samples."
echo
python3 - "$OUT" "$S1" "$S2" <<'PY'
import json, re, sys
out, s1, s2 = sys.argv[1], sys.argv[2], sys.argv[3]
t = {k: float(open("%s/%s.time" % (out, k)).read().split()[-1]) for k in ("n1", "n1t2", "n2")}
r2 = json.load(open(out + "/n2.gguf.report.json"))
print("| run | ranks × BLAS threads | wall s | speed-up vs N=1 (1 thread) | vs best single process (2 threads) |")
print("| --- | --- | --- | --- | --- |")
for k, label, shape in (("n1", "N=1", "1 × 1"), ("n1t2", "N=1, best single process", "1 × 2"), ("n2", "N=2", "2 × 1")):
    print("| %s | %s | %.2f | %.2f× | %.2f× |" % (label, shape, t[k], t["n1"] / t[k], t["n1t2"] / t[k]))
print()
print("Output bytes: N=1 `%s…`, N=2 `%s…`: %s." % (s1[:16], s2[:16], "**identical**" if s1 == s2 else "**DIFFERENT**"))
print()
print("| message kind (N=2) | messages | raw bytes | wire bytes | raw / wire |")
print("| --- | --- | --- | --- | --- |")
for w in r2["wire"]:
    print("| %s | %d | %d | %d | %.2f× |" % (w["kind"], w["messages"], w["rawBytes"], w["wireBytes"],
                                           w["rawBytes"] / w["wireBytes"] if w["wireBytes"] else 0))
# Each group's Hessian is n×n with n = the input columns of its first module.
N = r2["ranks"]
cols = {m["name"]: m["cols"] for m in r2["modules"]}
dense = 0
groups = 0
for name, n in cols.items():
    if re.search(r"\.(attn_q|attn_output|ffn_gate|ffn_down)\.weight$", name):
        dense += 2 * (N - 1) * n * n * 4
        groups += 1
hess = sum(w["wireBytes"] for w in r2["wire"] if w["kind"] in ("hessian", "scalars"))
hraw = sum(w["rawBytes"] for w in r2["wire"] if w["kind"] in ("hessian", "scalars"))
print()
print("Hessian traffic at N=%d over %d groups: %d bytes on the wire (%d raw) against %d for the dense fp32 ring"
      " all-reduce (2(N−1)·n²·4 per group): **%.3f** of it (target ≤ 0.45; raw %.3f)." % (
      N, groups, hess, hraw, dense, hess / dense, hraw / dense))
total = sum(w["wireBytes"] for w in r2["wire"])
for gbps in (10, 100):
    print("At %d Gb/s: Hessians %.3f s, all traffic %.3f s (dense all-reduce %.3f s)." % (
        gbps, hess * 8 / (gbps * 1e9), total * 8 / (gbps * 1e9), dense * 8 / (gbps * 1e9)))
PY
[ "$S1" = "$S2" ] || { echo "bench-cluster: N=1 and N=2 outputs differ" >&2; exit 1; }
