#!/usr/bin/env bash
# Mixed precision on SmolLM2-135M-Instruct: WikiText-2 PPL (ctx 512, first CHUNKS chunks) against file
# bits/weight for `quantize --target-bpw B` with each sensitivity model, beside the size-only plan at the
# same budget. Calibration: tiny shakespeare, NSAMPLES × SEQLEN. Uniform types: scripts/bench-quantize.sh.
# Usage: scripts/bench-mixed.sh [BPW...]   (default 5.3 5.455 5.6 5.75); SENSITIVITIES="size-only hessian-error fisher hutchinson"
#   The range: below ~5.3 the Q8_0 tied embedding alone makes the budget infeasible (EXTRA='--embedding-type q4_0'
#   reaches ~4.5); at 5.85 every tensor fits Q4_1, the source model's own type, which reproduces it exactly.
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${HESSDIST_MODELS:-$HOME/.cache/hessdist/models}
MODEL=$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf
TEXT=${TEXT:-../shared/data/text/wikitext2_test_joined.txt}
CALIB=${CALIB:-../shared/data/text/tinyshakespeare_input.txt}
NSAMPLES=${NSAMPLES:-128}; SEQLEN=${SEQLEN:-512}; CHUNKS=${CHUNKS:-40}; EXTRA=${EXTRA:-}
SENSITIVITIES=${SENSITIVITIES:-size-only hessian-error fisher hutchinson}
BPWS=("$@"); [ ${#BPWS[@]} -gt 0 ] || BPWS=(5.3 5.455 5.6 5.75)
OUT=${OUT:-/tmp/hessdist-bench-mixed}; mkdir -p "$OUT"
scripts/fetch-model.sh
swift build -c release -j 2 >/dev/null
BIN=.build/release/hessdist
PARAMS=134515008
echo "### Mixed precision, SmolLM2-135M-Instruct, $(date -u +%Y-%m-%d), $(nproc) cores"
echo
echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'). Command: \`NSAMPLES=$NSAMPLES SEQLEN=$SEQLEN CHUNKS=$CHUNKS SENSITIVITIES='$SENSITIVITIES' EXTRA='$EXTRA' scripts/bench-mixed.sh ${BPWS[*]}\`."
echo "Calibration: $NSAMPLES × $SEQLEN tokens of $(basename "$CALIB"); evaluation: $(basename "$TEXT"), ctx 512, $CHUNKS chunks; GPTQ defaults."
echo
echo '| target bpw | sensitivity | file bytes | bits/weight | types (block linears) | PPL | mean KL vs original | profile s | quantize s (total) |'
echo '| --- | --- | --- | --- | --- | --- | --- | --- | --- |'
for B in "${BPWS[@]}"; do
  for S in $SENSITIVITIES; do
    F="$OUT/smol-mixed-$B-$S.gguf"
    /usr/bin/time -f "%e" -o "$OUT/q" $BIN quantize --model "$MODEL" --calib "$CALIB" --nsamples "$NSAMPLES" --seqlen "$SEQLEN" \
      --target-bpw "$B" --sensitivity "$S" $EXTRA --out "$F" >/dev/null 2>"$OUT/q.err" || { echo "| $B | $S | failed: $(tail -1 "$OUT/q.err") |"; continue; }
    $BIN eval --model "$F" --text "$TEXT" --ctx 512 --chunks "$CHUNKS" --reference "$MODEL" --json 2>/dev/null > "$OUT/e.json"
    python3 - "$F.report.json" "$OUT/e.json" "$B" "$S" "$(cat "$OUT/q")" "$PARAMS" <<'PY'
import json, sys
r, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
a = r["allocation"]
types = {}
for t in a["tensors"]:
    types[t["chosen"]] = types.get(t["chosen"], 0) + 1
mix = ", ".join("%s×%d" % (k, v) for k, v in sorted(types.items()))
print("| %s | %s | %d | %.3f | %s | %.4f ± %.4f | %.5f | %.0f | %s |" % (
    sys.argv[3], sys.argv[4], r["fileBytes"], r["fileBytes"] * 8 / int(sys.argv[6]), mix,
    e["perplexity"], e["standardError"], e["reference"]["meanKL"], a["profileSeconds"], sys.argv[5]))
PY
  done
done
