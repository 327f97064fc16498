#!/usr/bin/env bash
# The benchmark environment for llama.cpp: a virtual environment (default .venv-bench/,
# git-ignored) with llama-cpp-python, which builds llama.cpp from source on install (needs
# cmake and a C++ compiler; several minutes on 2 cores, then pip's wheel cache makes later
# installs quick). The transformers peer runs from the reference environment (.venv-ref,
# scripts/setup_python.sh). Never used by the test run.
#
#   scripts/setup_bench.sh [VENV]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${1:-.venv-bench}"
python_bin="${PYTHON:-python3}"
if ! command -v cmake >/dev/null || ! command -v c++ >/dev/null; then
    apt-get install -y cmake build-essential >/dev/null
fi
[[ -x "$venv/bin/python" ]] || "$python_bin" -m venv "$venv"
py="$venv/bin/python"
if ! "$py" -c "import llama_cpp, numpy" 2>/dev/null; then
    "$py" -m pip install --disable-pip-version-check -q numpy "llama-cpp-python[server]"
fi
"$py" -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__)"
