#!/usr/bin/env bash
# The main job for now: perplexity of SmolLM2-135M-Instruct (Q4_1 GGUF) on WikiText-2, llama.cpp protocol,
# context 512, first 40 chunks. Override with TEXT=..., CHUNKS=..., MODEL=...
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${HESSDIST_MODELS:-$HOME/.cache/hessdist/models}
MODEL=${MODEL:-$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf}
TEXT=${TEXT:-../shared/data/text/wikitext2_test_joined.txt}
CHUNKS=${CHUNKS:-40}
[ -f "$TEXT" ] || { echo "main-job: no text at $TEXT (set TEXT=/path/to/wiki.test.raw)" >&2; exit 1; }
.build/release/hessdist inspect "$MODEL" | head -n 4
exec .build/release/hessdist eval --model "$MODEL" --text "$TEXT" --ctx 512 --chunks "$CHUNKS"
