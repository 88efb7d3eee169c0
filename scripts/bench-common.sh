# Sourced by the cluster benchmarks (bench-cluster.sh, bench-stages.sh) after their own defaults:
# MODEL (default SmolLM2-135M-Instruct.Q4_1.gguf, fetched), TOKENIZER, CALIB and the release binary in
# HESSDIST_BIN (built unless given). $1: the script's name for messages.
MODELS=${HESSDIST_MODELS:-$HOME/.cache/hessdist/models}
MODEL=${MODEL:-$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf}
TOKENIZER=${TOKENIZER:-}
CALIB=${CALIB:-../shared/data/text/tinyshakespeare_input.txt}
case "$MODEL" in *SmolLM2-135M-Instruct.Q4_1.gguf) scripts/fetch-model.sh ;; esac
[ -f "$MODEL" ] || { echo "$1: no model at $MODEL" >&2; exit 1; }
if [ -z "${HESSDIST_BIN:-}" ]; then
  swift build -c release -j 2 >/dev/null
  export HESSDIST_BIN=$PWD/.build/release/hessdist
fi
