#!/usr/bin/env bash
# Forward-pass throughput on SmolLM2-135M: sgemm ceiling, our kernels by family, and the whole
# 40-chunk WikiText-2 perplexity run side by side with llama.cpp's llama-perplexity on the same
# weights in F32 (built from source by scripts/build-peer.sh). Prints Markdown for BENCHMARKS.md.
# Usage: scripts/bench-forward.sh [--no-peer]
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${HESSDIST_MODELS:-$HOME/.cache/hessdist/models}
MODEL=$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf
TEXT=${TEXT:-../shared/data/text/wikitext2_test_joined.txt}
THREADS=${THREADS:-2}
export OPENBLAS_NUM_THREADS=$THREADS
scripts/fetch-model.sh
swift build -c release -j 2 >/dev/null
BIN=.build/release/hessdist

echo "### Forward pass, SmolLM2-135M-Instruct (fp32), $(date -u +%Y-%m-%d), $(nproc) cores, OPENBLAS_NUM_THREADS=$THREADS"
echo
echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/ {print $2}') GiB. Command: \`scripts/bench-forward.sh\`."
echo
echo "OpenBLAS kernels: $($BIN bench sgemm --shapes 64,64,64 | python3 scripts/bench_format.py core)${OPENBLAS_CORETYPE:+ (OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE)}."
echo
echo '| sgemm shape (M,N,K), out = A·Bᵀ | GFLOP/s |'
echo '| --- | --- |'
$BIN bench sgemm --shapes "2048,2048,2048;512,576,576;512,192,576;512,1536,576;512,576,1536;1024,1536,576;256,49152,576" |
  python3 scripts/bench_format.py sgemm
echo
PEAK=$($BIN bench sgemm --shapes "2048,2048,2048" | python3 scripts/bench_format.py peak)
echo '| forward (B×512 tokens, logits for the second half) | tokens/s | s/pass | block GEMM GFLOP/s (% of sgemm 2048³) | attention s | norms+elementwise s | head GEMM GFLOP/s |'
echo '| --- | --- | --- | --- | --- | --- | --- |'
for B in 1 2; do
  $BIN bench forward --model "$MODEL" --batch $B --ctx 512 --passes 3 | python3 scripts/bench_format.py forward "$PEAK" "B=$B"
done
echo
echo '| whole eval: WikiText-2, ctx 512, 40 chunks | PPL | wall time |'
echo '| --- | --- | --- |'
for B in 1 2; do
  /usr/bin/time -f "%e" -o /tmp/hd-time $BIN eval --model "$MODEL" --text "$TEXT" --ctx 512 --chunks 40 --batch $B --json 2>/dev/null > /tmp/hd-eval.json
  python3 scripts/bench_format.py eval "hessdist eval --batch $B (fp32, Q4_1 weights dequantized)" "$(cat /tmp/hd-time)" < /tmp/hd-eval.json
done
if [ "${1:-}" != "--no-peer" ]; then
  PEER=$(scripts/build-peer.sh)
  F32=$MODELS/SmolLM2-135M-Instruct.F32.gguf
  [ -f "$F32" ] || "$PEER/bin/llama-quantize" --allow-requantize "$MODEL" "$F32.partial" F32 >/dev/null 2>&1 && mv -f "$F32.partial" "$F32" 2>/dev/null || true
  for M in "$F32" "$MODEL"; do
    /usr/bin/time -f "%e" -o /tmp/hd-time "$PEER/bin/llama-perplexity" -m "$M" -f "$TEXT" -c 512 --chunks 40 -t $THREADS -b 512 > /tmp/peer.log 2>&1
    PPL=$(grep -o 'Final estimate: PPL = [0-9.]* +/- [0-9.]*' /tmp/peer.log | sed 's/Final estimate: PPL = //; s/+\/-/±/')
    echo "| llama.cpp llama-perplexity -t $THREADS on $(basename "$M") | $PPL | $(cat /tmp/hd-time) s |"
  done
fi
