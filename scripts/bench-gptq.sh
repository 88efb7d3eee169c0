#!/usr/bin/env bash
# GPTQ speed per module shape of SmolLM2-135M against the cost model (GPTQ.flops: accumulate 2·N·d_col²,
# invert 4/3·d_col³, sweep d_row·d_col²) and the sgemm peak measured in the same run. Synthetic correlated
# inputs (timing does not depend on the values). Prints Markdown for BENCHMARKS.md.
# Usage: scripts/bench-gptq.sh [GRID...]   (default: q4_0 int4-g64; 576 columns take no 128-groups); TOKENS=65536 (128 × 512 calibration)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
export OPENBLAS_NUM_THREADS=$THREADS
TOKENS=${TOKENS:-65536}
GRIDS=("$@"); [ ${#GRIDS[@]} -gt 0 ] || GRIDS=(q4_0 int4-g64)
swift build -c release -j 2 >/dev/null
BIN=.build/release/hessdist
PEAK=$($BIN bench sgemm --shapes "2048,2048,2048" | python3 scripts/bench_format.py peak)
echo "### GPTQ speed per module, SmolLM2-135M shapes, $(date -u +%Y-%m-%d), $(nproc) cores, OPENBLAS_NUM_THREADS=$THREADS"
echo
echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'). Command: \`TOKENS=$TOKENS scripts/bench-gptq.sh ${GRIDS[*]}\`."
echo "sgemm 2048³ in the same run: $PEAK GFLOP/s ($($BIN bench sgemm --shapes 64,64,64 | python3 scripts/bench_format.py core) kernels). Each phase: seconds (cost-model GFLOP/s, % of that peak)."
echo
echo '| module rows×cols | grid | tokens | accumulate XᵀX | invert (damp + 3 factorizations) | sweep | prepare s | metrics s | total s |'
echo '| --- | --- | --- | --- | --- | --- | --- | --- | --- |'
for G in "${GRIDS[@]}"; do
  $BIN bench gptq --grid "$G" --tokens "$TOKENS" | python3 scripts/bench_format.py gptq "$PEAK"
done
