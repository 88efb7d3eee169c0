#!/usr/bin/env bash
# GPTQ vs RTN vs llama.cpp on SmolLM2-135M-Instruct: file size, bits/weight (file bytes × 8 / parameters),
# WikiText-2 PPL (ctx 512, first 40 chunks, llama-perplexity protocol), and wall time per type.
# Per type: hessdist GPTQ (defaults), hessdist RTN (= llama-quantize), hessdist RTN with the calibration
# imatrix (= llama-quantize --imatrix given the same imatrix), llama.cpp llama-quantize, and llama.cpp
# llama-quantize --imatrix with llama-imatrix run on the same calibration text (NSAMPLES chunks of SEQLEN).
# Calibration: tiny shakespeare, NSAMPLES × SEQLEN tokens (defaults 128 × 512). Prints Markdown.
# Usage: scripts/bench-quantize.sh [TYPES...]   (default: q4_0 q4_1 q5_0 q8_0)
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${HESSDIST_MODELS:-$HOME/.cache/hessdist/models}
MODEL=$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf
F32=$MODELS/SmolLM2-135M-Instruct.F32.gguf
TEXT=${TEXT:-../shared/data/text/wikitext2_test_joined.txt}
CALIB=${CALIB:-../shared/data/text/tinyshakespeare_input.txt}
NSAMPLES=${NSAMPLES:-128}; SEQLEN=${SEQLEN:-512}; DAMP=${DAMP:-0.01}; EXTRA=${EXTRA:-}
TYPES=("$@"); [ ${#TYPES[@]} -gt 0 ] || TYPES=(q4_0 q4_1 q5_0 q8_0)
OUT=${OUT:-/tmp/hessdist-bench-quantize}; mkdir -p "$OUT"
scripts/fetch-model.sh
swift build -c release -j 2 >/dev/null
BIN=.build/release/hessdist
PEER=$(scripts/build-peer.sh)
IMATRIX=$OUT/imatrix-$NSAMPLES-$SEQLEN.gguf
[ -f "$F32" ] || { "$PEER/bin/llama-quantize" --allow-requantize "$MODEL" "$F32.partial" F32 >/dev/null 2>&1 && mv "$F32.partial" "$F32"; }
PARAMS=134515008
/usr/bin/time -f "%e" -o "$OUT/im" "$PEER/bin/llama-imatrix" -m "$F32" -f "$CALIB" -c "$SEQLEN" --chunks "$NSAMPLES" -t 2 \
  -o "$IMATRIX" > "$OUT/imatrix.log" 2>&1 || { echo "llama-imatrix failed, see $OUT/imatrix.log" >&2; exit 1; }

echo "### Quantization quality, SmolLM2-135M-Instruct, $(date -u +%Y-%m-%d), $(nproc) cores"
echo
echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'). Command: \`NSAMPLES=$NSAMPLES SEQLEN=$SEQLEN DAMP=$DAMP EXTRA='$EXTRA' scripts/bench-quantize.sh ${TYPES[*]}\`."
echo "Calibration: $NSAMPLES × $SEQLEN tokens of $(basename "$CALIB"); evaluation: $(basename "$TEXT"), ctx 512, 40 chunks."
echo
echo '| type | method | file bytes | bits/weight | PPL | mean KL vs original | quantize s | eval s |'
echo '| --- | --- | --- | --- | --- | --- | --- | --- |'
ppl_of() { # model -> "PPL ± se|KL|seconds"
  /usr/bin/time -f "%e" -o "$OUT/t" $BIN eval --model "$1" --text "$TEXT" --ctx 512 --chunks 40 --reference "$MODEL" --json 2>/dev/null > "$OUT/e.json"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.4f ± %.4f|%.5f" % (r["perplexity"], r["standardError"], r["reference"]["meanKL"]))' "$OUT/e.json"
}
for T in "${TYPES[@]}"; do
  for METHOD in gptq rtn rtn-imatrix; do
    F="$OUT/smol-$METHOD-$T.gguf"
    case $METHOD in
      gptq) ARGS=(--method gptq) ;;
      rtn) ARGS=(--method rtn) ;;
      rtn-imatrix) ARGS=(--method rtn --importance-fit) ;;
    esac
    /usr/bin/time -f "%e" -o "$OUT/q" $BIN quantize --model "$MODEL" --calib "$CALIB" --nsamples "$NSAMPLES" --seqlen "$SEQLEN" \
      --damp "$DAMP" $EXTRA --type "$T" "${ARGS[@]}" --out "$F" >/dev/null 2>&1
    QS=$(cat "$OUT/q"); R=$(ppl_of "$F"); ES=$(cat "$OUT/t"); SIZE=$(stat -c %s "$F")
    echo "| ${T^^} | hessdist $METHOD | $SIZE | $(python3 -c "print('%.3f' % ($SIZE*8/$PARAMS))") | ${R%%|*} | ${R##*|} | $QS | $ES |"
  done
  for PEERQ in plain imatrix; do
    F="$OUT/smol-llamacpp-$PEERQ-$T.gguf"
    IM=(); [ $PEERQ = imatrix ] && IM=(--imatrix "$IMATRIX")
    /usr/bin/time -f "%e" -o "$OUT/q" "$PEER/bin/llama-quantize" "${IM[@]}" "$F32" "$F" "${T^^}" >/dev/null 2>&1
    QS=$(cat "$OUT/q"); SIZE=$(stat -c %s "$F")
    [ $PEERQ = imatrix ] && QS="$QS + $(cat "$OUT/im") imatrix"
    /usr/bin/time -f "%e" -o "$OUT/t" "$PEER/bin/llama-perplexity" -m "$F" -f "$TEXT" -c 512 --chunks 40 -t 2 -b 512 > "$OUT/p.log" 2>&1
    PPL=$(grep -o 'Final estimate: PPL = [0-9.]* +/- [0-9.]*' "$OUT/p.log" | sed 's/Final estimate: PPL = //; s/+\/-/±/')
    R=$(ppl_of "$F"); KL=${R##*|}
    echo "| ${T^^} | llama.cpp llama-quantize${IM:+ --imatrix} + llama-perplexity | $SIZE | $(python3 -c "print('%.3f' % ($SIZE*8/$PARAMS))") | $PPL | $KL | $QS | $(cat "$OUT/t") |"
  done
done
