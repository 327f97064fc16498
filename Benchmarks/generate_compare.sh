#!/usr/bin/env bash
# Decoding at batch 1: `loom bench generate` beside transformers' `generate`, in one run, on
# randomly initialised models of the same shape (greedy, KV cache, no stop token).
#
#   Benchmarks/generate_compare.sh [config ...]     # default: configs/tiny.json configs/small.json
#
# Environment: THREADS="1 2", TOKENS=200 (generated tokens), PROMPT=32 (prompt tokens),
# REPEATS=3 (best of), LOOM=.build/release/loom, PYTHON=.venv-ref/bin/python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
configs=("$@"); (( ${#configs[@]} )) || configs=(configs/tiny.json configs/small.json)
threads="${THREADS:-1 2}"
tokens="${TOKENS:-200}"
prompt="${PROMPT:-32}"
repeats="${REPEATS:-3}"
loom="${LOOM:-.build/release/loom}"
py="${PYTHON:-.venv-ref/bin/python}"
[[ -x "$loom" ]] || swift build -c release --product loom
[[ -x "$py" ]] || scripts/setup_python.sh .venv-ref >/dev/null

field() { "$py" -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d.get('$1', 'nan'))"; }
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p')"
echo "$("$loom" bench sgemm)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-20s %7s %14s %14s %8s\n" config threads loom_decode/s hf_decode/s ratio
for config in "${configs[@]}"; do
  for t in $threads; do
    loom_json=$("$loom" bench generate --config "$config" --threads "$t" --tokens "$tokens" --prompt-length "$prompt" --repeats "$repeats" --json)
    hf_json=$(OMP_NUM_THREADS=$t "$py" Benchmarks/torch_generate.py --config "$config" --threads "$t" --tokens "$tokens" --prompt-length "$prompt" --repeats "$repeats" --json)
    loom_rate=$(echo "$loom_json" | field decode_tokens_per_second)
    hf_rate=$(echo "$hf_json" | field decode_tokens_per_second)
    "$py" -c "import sys; c,t,a,b=sys.argv[1],sys.argv[2],float(sys.argv[3]),float(sys.argv[4]); print(f'{c:<20} {t:>7} {a:>14.0f} {b:>14.0f} {a/b:>7.2f}x')" "$config" "$t" "$loom_rate" "$hf_rate"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
