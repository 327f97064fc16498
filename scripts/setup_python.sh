#!/usr/bin/env bash
# Creates the Python environment for the reference side of Loom: PyTorch (CPU) and the
# Hugging Face libraries (and llama.cpp's `gguf` package) that produce the parity references
# in Tests/Reference and run the peer benchmark in Benchmarks/torch_train.py, and the `openai`
# client and `selenium` for the checks of `loom serve` in Tests/Serve.
#
#   scripts/setup_python.sh            # venv in .venv-ref at the repository root
#   scripts/setup_python.sh /tmp/venv  # venv elsewhere
#
# torch is pinned to 2.13.0 because the committed references were generated with it
# (Tests/Reference/make_llama_reference.py --check compares to 1e-6). Where PIP_FIND_LINKS
# points at a folder holding a CPU-only wheel, pip picks it up from there; otherwise pip
# resolves torch from its configured index. Running the script again skips what is present.
set -euo pipefail

TORCH_VERSION="2.13.0"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo_root/.venv-ref}"
python_bin="${PYTHON:-python3}"

if ! command -v "$python_bin" >/dev/null 2>&1; then
    echo "error: $python_bin not found; install Python 3 (with the venv module) first" >&2
    exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating virtual environment in $venv"
    "$python_bin" -m venv "$venv"
else
    echo "using existing virtual environment in $venv"
fi
py="$venv/bin/python"

if [[ -n "${PIP_FIND_LINKS:-}" ]]; then
    echo "PIP_FIND_LINKS=$PIP_FIND_LINKS (local wheels are preferred there)"
fi

# Installed version of a distribution, or nothing.
installed_version() {
    "$py" - "$1" <<'PY'
import sys
from importlib import metadata
try:
    print(metadata.version(sys.argv[1]))
except metadata.PackageNotFoundError:
    pass
PY
}

torch_have="$(installed_version torch)"
if [[ "${torch_have%%+*}" == "$TORCH_VERSION" ]]; then
    echo "torch $torch_have already installed"
else
    echo "installing torch==$TORCH_VERSION${torch_have:+ (found $torch_have)}"
    "$py" -m pip install --disable-pip-version-check "torch==$TORCH_VERSION"
fi

missing=()
# accelerate: transformers needs it to load GGUF files. openai and selenium: the checks of
# `loom serve` (Tests/Serve: the official client, and the chat page in headless Chromium).
for pkg in transformers safetensors tokenizers numpy gguf accelerate openai selenium; do
    have="$(installed_version "$pkg")"
    if [[ -n "$have" ]]; then
        echo "$pkg $have already installed"
    else
        missing+=("$pkg")
    fi
done
if (( ${#missing[@]} > 0 )); then
    echo "installing ${missing[*]}"
    # torch is listed so that the resolver keeps the pinned version rather than replacing it.
    "$py" -m pip install --disable-pip-version-check "torch==$TORCH_VERSION" "${missing[@]}"
fi

"$py" - <<'PY'
import torch, transformers, safetensors, tokenizers, numpy, gguf, openai, selenium
from importlib import metadata
print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
      f"safetensors {safetensors.__version__}, tokenizers {tokenizers.__version__}, numpy {numpy.__version__}, "
      f"gguf {metadata.version('gguf')}, openai {openai.__version__}, selenium {selenium.__version__}")
PY
echo "python: $py"
