#!/usr/bin/env bash
# Pipeline stages against replicas for the whole-model passes of `hessdist profile` (Fisher and Hutchinson
# traces): one rank; 2 ranks as 2 replicas (--stages 1: each holds the whole model, sequences split); 2
# ranks as 2 stages (--stages 2: each holds half the blocks, the residual stream and its gradient passed
# between them). One OpenBLAS thread per rank. Checks the three stats files hold the same statistics (cost
# aside) and prints a Markdown section for BENCHMARKS.md: wall time, seconds per Fisher sequence and per
# Hutchinson probe, each rank's peak resident memory after the whole-model passes, and the bytes those
# passes put on the wire.
#
# Usage: scripts/bench-stages.sh   (NSAMPLES=16 SEQLEN=512 FISHER=8 HUTCH=2 PROBES=3 by default)
#   MODEL=path (default SmolLM2-135M-Instruct.Q4_1.gguf, fetched), TOKENIZER=tok.bin for llama2c models,
#   CALIB=text, OUT=dir, HESSDIST_BIN=binary (default: release build).
#   Small check: MODEL=../shared/data/llama2c/stories260K.bin TOKENIZER=../shared/data/llama2c/tok512.bin SEQLEN=64 scripts/bench-stages.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NSAMPLES=${NSAMPLES:-16}; SEQLEN=${SEQLEN:-512}; FISHER=${FISHER:-8}; HUTCH=${HUTCH:-2}; PROBES=${PROBES:-3}
OUT=${OUT:-/tmp/hessdist-bench-stages}; mkdir -p "$OUT"
# shellcheck source=bench-common.sh
source scripts/bench-common.sh bench-stages
ARGS=(profile --model "$MODEL" --calib "$CALIB" --nsamples "$NSAMPLES" --seqlen "$SEQLEN" --traces fisher,hutchinson
      --fisher-samples "$FISHER" --hutchinson-samples "$HUTCH" --max-probes "$PROBES")
[ -n "$TOKENIZER" ] && ARGS+=(--tokenizer "$TOKENIZER")

# run NAME N STAGES: wall seconds in $OUT/NAME.time, stats in $OUT/NAME.safetensors
run() {
  local name=$1 n=$2 stages=$3
  rm -f "$OUT/$name.safetensors"
  /usr/bin/time -f "%e" -o "$OUT/$name.time" \
    scripts/run-local.sh "$n" "${ARGS[@]}" --stages "$stages" --out "$OUT/$name.safetensors" >"$OUT/$name.log" 2>&1 \
    || { echo "bench-stages: $name failed:" >&2; tail -5 "$OUT/$name.log" >&2; exit 1; }
}
run n1 1 1
run r2 2 1
run s2 2 2

echo "### Pipeline stages vs replicas for profile's whole-model passes, $(basename "$MODEL"), $(date -u +%Y-%m-%d), $(nproc) cores"
echo
echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/^Mem:/ {print $2}') GiB. Command: \`NSAMPLES=$NSAMPLES SEQLEN=$SEQLEN FISHER=$FISHER HUTCH=$HUTCH PROBES=$PROBES scripts/bench-stages.sh\`"
echo "(each run: \`scripts/run-local.sh N ${ARGS[*]} --stages S --out F\`, one OpenBLAS thread per rank)."
echo
python3 - "$OUT" <<'PY'
import json, struct, sys
out = sys.argv[1]
def load(name):
    b = open(f"{out}/{name}.safetensors", "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    meta = json.loads(json.loads(b[8:8 + n])["__metadata__"]["hessdist.stats"])
    cost = meta.pop("cost")
    return meta, b[8 + n:], cost, float(open(f"{out}/{name}.time").read().split()[-1])
runs = [("n1", "1 rank"), ("r2", "2 ranks, --stages 1 (2 replicas)"), ("s2", "2 ranks, --stages 2 (2 stages)")]
base = load("n1")
print("| run | topology | wall s | Fisher s/sequence | Hutchinson s/probe | peak memory per rank (MiB) | wire bytes | stats = 1 rank's |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for name, label in runs:
    meta, data, cost, wall = load(name)
    same = "yes" if (meta, data) == (base[0], base[1]) else "**no**"
    peaks = ", ".join(f"{p / 1048576:.0f}" for p in cost.get("peakResidentBytesByRank") or [])
    print(f"| {label} | {cost.get('topology', '-')} | {wall:.1f} | {cost['fisherSecondsPerSequence']:.2f} | "
          f"{cost['hutchinsonSecondsPerProbe']:.2f} | {peaks} | {cost.get('wireBytes', 0):,} | {same} |")
PY
