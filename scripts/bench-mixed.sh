#!/usr/bin/env bash
# Mixed precision on SmolLM2-135M-Instruct (or MODEL): WikiText-2 PPL (ctx CTX, first CHUNKS chunks) against file
# bits/weight. One `hessdist profile` (layer Hessians, Fisher and Hutchinson traces) serves every budget and
# sensitivity model: each row is `quantize --stats … --target-bpw B --sensitivity S` (GPTQ on the chosen
# types). Beside them, uniform GPTQ types (UNIFORM, TYPE or TYPE:EMBEDDING_TYPE) and llama.cpp's own mixes
# (PEERS, `llama-quantize --imatrix` with llama-imatrix on the same calibration text, `llama-perplexity`).
# Calibration: tiny shakespeare, NSAMPLES × SEQLEN.
# Usage: scripts/bench-mixed.sh [BPW...]   (default 4.0 4.5 5.0 5.5)
#   SENSITIVITIES="size-only hessian-error fisher hutchinson kfac kl" (kl needs PROFILE_ARGS="--kl-samples 2",
#   and "--gptq-errors" to measure GPTQ's results; S:rtn prices by round-to-nearest errors
#   instead of GPTQ's, e.g. fisher:rtn)  UNIFORM="Q4_0:Q4_0 Q4_0 Q4_1 Q5_0 Q8_0"
#   PEERS="Q3_K_M Q4_K_S Q4_K_M Q5_K_S"  STATS=file (reuse a profile)  PROFILE_ARGS (e.g. "--max-probes 20")
#   KEEP=1 reuses GGUF files already in OUT (same names: same command) and only evaluates them again.
#   Another model: MODEL=path TOKENIZER=path (if the model has none) PARAMS=weights NAME=file prefix
#   TEXT=evaluation text CTX=context CHUNKS=all, e.g. the fp32 stories260K, whose uniform types all lose something.
# After the table: each mixed plan against every uniform GPTQ type of equal or larger size in this run,
# paired over the evaluation chunks (mean NLL difference ± its standard error over the chunks), since the
# PPL's own standard error (±0.8 here) is mostly text difficulty shared by both models.
# Last, $OUT/report.html: the profile, the first mixed plan's allocation and every row's measured PPL
# (`hessdist report`; skipped, with a note, for a HESSDIST_BIN without that command).
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${HESSDIST_MODELS:-$HOME/.cache/hessdist/models}
MODEL=${MODEL:-$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf}
TOK=(); [ -z "${TOKENIZER:-}" ] || TOK=(--tokenizer "$TOKENIZER")
NAME=${NAME:-smol}; CTX=${CTX:-512}
F32=$MODELS/SmolLM2-135M-Instruct.F32.gguf
TEXT=${TEXT:-../shared/data/text/wikitext2_test_joined.txt}
CALIB=${CALIB:-../shared/data/text/tinyshakespeare_input.txt}
NSAMPLES=${NSAMPLES:-128}; SEQLEN=${SEQLEN:-512}; CHUNKS=${CHUNKS:-40}
SENSITIVITIES=${SENSITIVITIES:-size-only hessian-error fisher hutchinson}
UNIFORM=${UNIFORM-Q4_0:Q4_0 Q4_0 Q4_1 Q5_0 Q8_0}
PEERS=${PEERS-Q3_K_M Q4_K_S Q4_K_M Q5_K_S}
PROFILE_ARGS=${PROFILE_ARGS:-}
BPWS=("$@"); [ ${#BPWS[@]} -gt 0 ] || BPWS=(4.0 4.5 5.0 5.5)
OUT=${OUT:-/tmp/hessdist-bench-mixed}; mkdir -p "$OUT"
scripts/fetch-model.sh
[ -n "${HESSDIST_BIN:-}" ] || swift build -c release -j 2 >/dev/null  # a given binary is used as it is
BIN=${HESSDIST_BIN:-.build/release/hessdist}
PARAMS=${PARAMS:-134515008}
CAL=("${TOK[@]}" --calib "$CALIB" --nsamples "$NSAMPLES" --seqlen "$SEQLEN")
CHUNKARGS=(--chunks "$CHUNKS"); [ "$CHUNKS" != all ] || CHUNKARGS=()
STATS=${STATS:-$OUT/stats-$NSAMPLES-$SEQLEN.safetensors}
if [ ! -f "$STATS" ]; then
  TRACES=fisher; [[ " $SENSITIVITIES " == *" hutchinson "* ]] && TRACES=fisher,hutchinson
  $BIN profile --model "$MODEL" "${CAL[@]}" --traces "$TRACES" $PROFILE_ARGS --out "$STATS" > "$OUT/profile.out" 2>"$OUT/profile.err" \
    || { echo "profile failed: $(tail -1 "$OUT/profile.err")" >&2; exit 1; }
fi
bpw() { python3 -c "print('%.3f' % ($1*8/$PARAMS))"; }
ROWS=$OUT/rows.tsv; : > "$ROWS"
eval_row() { # model label -> "PPL ± se | KL"; the evaluation kept in model.eval.json, listed in rows.tsv
  $BIN eval --model "$1" "${TOK[@]}" --text "$TEXT" --ctx "$CTX" "${CHUNKARGS[@]}" --reference "$MODEL" --json 2>/dev/null > "$1.eval.json"
  printf '%s\t%s\t%s\n' "$2" "$(stat -c %s "$1")" "$1.eval.json" >> "$ROWS"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.4f ± %.4f | %.5f" % (r["perplexity"], r["standardError"], r["reference"]["meanKL"]))' "$1.eval.json"
}
# quantize_to FILE ARGS…: quantize unless KEEP=1 and FILE exists; wall seconds in $OUT/q
quantize_to() {
  local f=$1; shift
  if [ "${KEEP:-0}" = 1 ] && [ -f "$f" ] && [ -f "$f.report.json" ]; then echo "kept" > "$OUT/q"; return 0; fi
  /usr/bin/time -f "%e" -o "$OUT/q" $BIN quantize --model "$MODEL" "${CAL[@]}" "$@" --out "$f" >/dev/null 2>"$OUT/q.err"
}
echo "### Mixed precision against uniform types, $(basename "$MODEL"), $(date -u +%Y-%m-%d), $(nproc) cores"
echo
echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'). Command: \`$([ "$NAME" = smol ] || echo "MODEL=$MODEL ${TOKENIZER:+TOKENIZER=$TOKENIZER }NAME=$NAME PARAMS=$PARAMS TEXT=$TEXT CTX=$CTX ")NSAMPLES=$NSAMPLES SEQLEN=$SEQLEN CHUNKS=$CHUNKS SENSITIVITIES='$SENSITIVITIES' UNIFORM='$UNIFORM' PEERS='$PEERS' PROFILE_ARGS='$PROFILE_ARGS' scripts/bench-mixed.sh ${BPWS[*]}\`."
echo "Calibration: $NSAMPLES × $SEQLEN tokens of $(basename "$CALIB"); evaluation: $(basename "$TEXT"), ctx $CTX, $CHUNKS chunks; GPTQ defaults."
echo
python3 - "$STATS" <<'PY'
import json, sys
from safetensors import safe_open
with safe_open(sys.argv[1], "np") as f:
    s = json.loads(f.metadata()["hessdist.stats"])
c = s["cost"]
line = "Profile (%s): %.0f s in all; one forward of one %d-token sequence %.2f s" % (
    s["calibration"].split(" from ")[0], c["totalSeconds"], s["seqlen"], c["forwardSeconds"])
if c.get("fisherSecondsPerSequence"):
    line += "; Fisher %.2f s per sequence = %.1f forwards (%d sequences)" % (
        c["fisherSecondsPerSequence"], c["fisherSecondsPerSequence"] / c["forwardSeconds"], s["fisherSamples"])
if c.get("hutchinsonSecondsPerProbe"):
    n = s["hutchinsonSamples"]
    probes = max(t["hutchinson"]["samples"] for t in s["tensors"] if t.get("hutchinson"))
    conv = sum(1 for t in s["tensors"] if t.get("hutchinson", {}).get("converged"))
    line += "; Hutchinson %.1f s per probe over %d sequences = %.1f forwards per sequence, %d probes, %d/%d tensors converged" % (
        c["hutchinsonSecondsPerProbe"], n, c["hutchinsonSecondsPerProbe"] / n / c["forwardSeconds"], probes, conv, len(s["tensors"]))
if c.get("klMeasurements"):
    line += "; KL damage %d measurements on %d sequences, %.2f s each = %.1f forwards" % (
        c["klMeasurements"], c["klSequences"], c["klSecondsPerMeasurement"], c["klSecondsPerMeasurement"] / c["forwardSeconds"])
print(line + "; layer Hessians and pricing every candidate %.0f s%s." % (c["layerPassSeconds"], " (KL measurements included)" if c.get("klMeasurements") else ""))
PY
echo
echo '| plan | file bytes | bits/weight | types | PPL | mean KL vs original | quantize s |'
echo '| --- | --- | --- | --- | --- | --- | --- |'
for B in "${BPWS[@]}"; do
  for S in $SENSITIVITIES; do
    F="$OUT/$NAME-mixed-$B-${S/:/-}.gguf"
    ERR=(); [[ $S == *:* ]] && ERR=(--errors "${S##*:}")
    quantize_to "$F" --stats "$STATS" --target-bpw "$B" --sensitivity "${S%%:*}" "${ERR[@]}" \
      || { echo "| mixed $B, $S | failed: $(tail -1 "$OUT/q.err") | | | | | |"; continue; }
    MIX=$(python3 -c '
import json, sys
a = json.load(open(sys.argv[1]))["allocation"]
errors = a.get("errors", "rtn")
types = {}
for t in a["tensors"]:
    types[t["chosen"]] = types.get(t["chosen"], 0) + 1
emb = [t["chosen"] for t in a["tensors"] if t["name"] == "token_embd.weight"]
print(", ".join("%s×%d" % kv for kv in sorted(types.items())) + ("; embedding " + emb[0] if emb else "") + "; " + errors + " errors")' "$F.report.json")
    SIZE=$(stat -c %s "$F")
    echo "| mixed $B, $S | $SIZE | $(bpw $SIZE) | $MIX | $(eval_row "$F" "mixed $B, $S") | $(cat "$OUT/q") |"
  done
done
for U in $UNIFORM; do
  T=${U%%:*}; E=(); [[ $U == *:* ]] && E=(--embedding-type "${U##*:}")
  F="$OUT/$NAME-uniform-${U/:/-}.gguf"
  quantize_to "$F" --type "$T" "${E[@]}"
  SIZE=$(stat -c %s "$F")
  EMB=$(python3 -c 'import json,sys; print([t["type"] for t in json.load(open(sys.argv[1]))["types"] if t["name"]=="token_embd.weight"][0])' "$F.report.json")
  echo "| uniform GPTQ $T | $SIZE | $(bpw $SIZE) | all block linears $T; embedding $EMB | $(eval_row "$F" "uniform GPTQ $T, embedding $EMB") | $(cat "$OUT/q") |"
done
python3 - "$ROWS" "$PARAMS" <<'PY'
import json, math, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
params = int(sys.argv[2])
def chunks(path):
    # Per-chunk mean NLL from the running perplexity (every chunk scores the same number of tokens).
    rp = [math.log(x) for x in json.load(open(path))["runningPerplexity"]]
    return [(k + 1) * rp[k] - k * rp[k - 1] if k else rp[0] for k in range(len(rp))]
mixed = [r for r in rows if r[0].startswith("mixed")]
uniform = [r for r in rows if r[0].startswith("uniform")]
pairs = [(m, u) for m in mixed for u in uniform if int(u[1]) >= int(m[1])]
if pairs:
    print()
    print("| mixed plan (bits/weight) | against (equal or larger) | ΔNLL per token, mixed − uniform (paired over chunks) | ΔPPL |")
    print("| --- | --- | --- | --- |")
    for m, u in pairs:
        a, b = chunks(m[2]), chunks(u[2])
        d = [x - y for x, y in zip(a, b)]
        mean = sum(d) / len(d)
        se = (sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d)) ** 0.5
        bpw = lambda r: int(r[1]) * 8 / params
        print(f"| {m[0]} ({bpw(m):.3f}) | {u[0]} ({bpw(u):.3f}) | {mean:+.4f} ± {se:.4f} | {100 * (math.exp(mean) - 1):+.2f} % |")
PY
# The readable report of the run: every evaluated row on one perplexity axis, the first mixed plan's choices.
EVALS=(); while IFS=$'\t' read -r _ _ e; do EVALS+=(--eval "$e"); done < "$ROWS"
PLAN=$(ls "$OUT"/$NAME-mixed-*.gguf.report.json 2>/dev/null | head -1 || true)
if ! $BIN --help 2>/dev/null | grep -q '^  report '; then
  echo "(no report.html: $BIN has no report command)" >&2
elif [ ${#EVALS[@]} -gt 0 ]; then
  $BIN report --stats "$STATS" ${PLAN:+--allocation "$PLAN"} "${EVALS[@]}" --out "$OUT/report.html" >&2 \
    || echo "report.html failed (evaluations written before eval --json recorded file sizes?)" >&2
fi
if [ -n "$PEERS" ]; then
  PEER=$(scripts/build-peer.sh)
  [ -f "$F32" ] || { "$PEER/bin/llama-quantize" --allow-requantize "$MODEL" "$F32.partial" F32 >/dev/null 2>&1 && mv "$F32.partial" "$F32"; }
  IMATRIX=${IMATRIX:-$OUT/imatrix-$NSAMPLES-$SEQLEN.gguf}
  [ -f "$IMATRIX" ] || "$PEER/bin/llama-imatrix" -m "$F32" -f "$CALIB" -c "$SEQLEN" --chunks "$NSAMPLES" -t 2 -o "$IMATRIX" \
    > "$OUT/imatrix.log" 2>&1 || { echo "llama-imatrix failed, see $OUT/imatrix.log" >&2; exit 1; }
  for P in $PEERS; do
    F="$OUT/smol-llamacpp-$P.gguf"
    "$PEER/bin/llama-quantize" --imatrix "$IMATRIX" "$F32" "$F" "$P" > "$OUT/lq.log" 2>&1
    MIX=$(python3 - "$F" <<'PY'
import sys
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
types = {}
for t in r.tensors:
    if len(t.shape) == 2 or t.name == "token_embd.weight":
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
emb = [t.tensor_type.name for t in r.tensors if t.name == "token_embd.weight"]
print(", ".join("%s×%d" % kv for kv in sorted(types.items())) + "; embedding " + emb[0])
PY
)
    "$PEER/bin/llama-perplexity" -m "$F" -f "$TEXT" -c 512 --chunks "$CHUNKS" -t 2 -b 512 > "$OUT/p.log" 2>&1
    PPL=$(grep -o 'Final estimate: PPL = [0-9.]* +/- [0-9.]*' "$OUT/p.log" | sed 's/Final estimate: PPL = //; s/+\/-/±/')
    SIZE=$(stat -c %s "$F")
    echo "| llama.cpp $P --imatrix (llama-perplexity) | $SIZE | $(bpw $SIZE) | $MIX | $PPL | | |"
  done
fi
