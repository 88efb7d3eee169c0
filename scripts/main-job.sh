#!/usr/bin/env bash
# The main job: quantize SmolLM2-135M-Instruct (Q4_1 GGUF) to Q4_0 with GPTQ, calibrated on text sampled from
# the model itself (data-free: nothing but the model is needed), then evaluate the original and the quantized
# model on WikiText-2 (llama.cpp's perplexity protocol, context 512, first CHUNKS chunks) with the KL divergence
# of the quantized model's next-token distributions from the original's.
# Override with MODEL=..., TEXT=..., CHUNKS=..., TYPE=q4_0, NSAMPLES=32, CALIB=/path/to/text (instead of data-free),
# OUT=/tmp/hessdist-main-job.
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${HESSDIST_MODELS:-$HOME/.cache/hessdist/models}
MODEL=${MODEL:-$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf}
TEXT=${TEXT:-../shared/data/text/wikitext2_test_joined.txt}
CHUNKS=${CHUNKS:-40}; TYPE=${TYPE:-q4_0}; NSAMPLES=${NSAMPLES:-32}
OUT=${OUT:-/tmp/hessdist-main-job}; mkdir -p "$OUT"
[ -f "$TEXT" ] || { echo "main-job: no text at $TEXT (set TEXT=/path/to/wiki.test.raw)" >&2; exit 1; }
BIN=.build/release/hessdist
CAL=(); [ -n "${CALIB:-}" ] && CAL=(--calib "$CALIB")
$BIN inspect "$MODEL" > "$OUT/inspect.txt" && head -n 4 "$OUT/inspect.txt"
echo "== original: $MODEL"
$BIN eval --model "$MODEL" --text "$TEXT" --ctx 512 --chunks "$CHUNKS"
Q="$OUT/$(basename "${MODEL%.gguf}").$TYPE.gguf"
echo "== quantize: GPTQ $TYPE, ${CALIB:-data-free} calibration, $NSAMPLES × 512 tokens"
$BIN quantize --model "$MODEL" "${CAL[@]}" --nsamples "$NSAMPLES" --seqlen 512 --type "$TYPE" --out "$Q"
echo "== quantized: $Q"
exec $BIN eval --model "$Q" --text "$TEXT" --ctx 512 --chunks "$CHUNKS" --reference "$MODEL"
