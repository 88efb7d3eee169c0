#!/usr/bin/env bash
# Runs `hessdist ARGS...` on N ranks of this machine with the mpirun flags that work here (PLATFORM.md):
# shared-memory transport, no core binding (ranks would otherwise get one core each and OpenBLAS one
# thread), one OpenBLAS thread per rank (the output bytes depend on it; see README), --oversubscribe when
# N exceeds the cores, and the malloc tunables that keep large buffers mapped.
# Usage: scripts/run-local.sh N quantize --model M --calib T --type q4_0 --out out.gguf
#   HESSDIST_BIN=path overrides the binary (default .build/release/hessdist); BLAS_THREADS=k per rank.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 N hessdist-subcommand [args...]" >&2; exit 2; }
N=$1; shift
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "run-local: N must be a positive integer, got '$N'" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${HESSDIST_BIN:-$ROOT/.build/release/hessdist}
[ -x "$BIN" ] || { echo "run-local: no binary at $BIN (run scripts/setup.sh, or set HESSDIST_BIN)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "run-local: mpirun not found (apt-get install openmpi-bin)" >&2; exit 1; }
FLAGS=(-np "$N" --mca btl self,vader --bind-to none -x "OPENBLAS_NUM_THREADS=${BLAS_THREADS:-1}"
       -x GLIBC_TUNABLES=glibc.malloc.mmap_threshold=2147483647:glibc.malloc.trim_threshold=4294967295)
[ "$N" -gt "$(nproc)" ] && FLAGS+=(--oversubscribe)
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
exec mpirun "${FLAGS[@]}" "$BIN" "$@"
