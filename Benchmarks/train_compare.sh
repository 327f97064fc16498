#!/usr/bin/env bash
# Loom versus PyTorch on the same model, batch and thread count, in one run.
#
#   Benchmarks/train_compare.sh [config ...]      # default: configs/tiny.json configs/small.json
#
# Environment: THREADS="1 2" (thread counts), STEPS=5 (measured steps), LOOM=.build/release/loom,
# PYTHON=.venv-ref/bin/python (scripts/setup_python.sh makes it), COMPILE=1 to add torch.compile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
configs=("$@"); (( ${#configs[@]} )) || configs=(configs/tiny.json configs/small.json)
threads="${THREADS:-1 2}"
steps="${STEPS:-5}"
loom="${LOOM:-.build/release/loom}"
py="${PYTHON:-.venv-ref/bin/python}"
[[ -x "$loom" ]] || swift build -c release --product loom
[[ -x "$py" ]] || scripts/setup_python.sh .venv-ref >/dev/null

field() { "$py" -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d.get('$1', 'nan'))"; }
# What the figures stand on: CPU, BLAS core (chosen by Loom unless LOOM_BLAS_CORETYPE or
# OPENBLAS_CORETYPE is set), sgemm rate, and how busy the machine was.
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p')"
"$loom" bench sgemm
echo "LOOM_BLAS_CORETYPE=${LOOM_BLAS_CORETYPE:-unset} OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-20s %7s %12s %12s %12s %8s %10s %10s\n" config threads loom_tok/s torch_tok/s compile_tok/s "MFU" "vs eager" "vs compile"
for config in "${configs[@]}"; do
  for t in $threads; do
    loom_json=$("$loom" bench train --config "$config" --threads "$t" --steps "$steps" --json)
    eager_json=$(OMP_NUM_THREADS=$t "$py" Benchmarks/torch_train.py --config "$config" --threads "$t" --steps "$steps" --json)
    loom_tps=$(echo "$loom_json" | field tokens_per_second)
    mfu=$(echo "$loom_json" | field mfu)
    eager_tps=$(echo "$eager_json" | field tokens_per_second)
    compile_tps=nan
    if [[ "${COMPILE:-1}" == "1" ]]; then
      compile_json=$(OMP_NUM_THREADS=$t "$py" Benchmarks/torch_train.py --config "$config" --threads "$t" --steps "$steps" --compile --json 2>/dev/null || echo '{}')
      compile_tps=$(echo "$compile_json" | field tokens_per_second)
    fi
    "$py" - "$config" "$t" "$loom_tps" "$eager_tps" "$compile_tps" "$mfu" <<'PY'
import sys, math
config, t, loom, eager, comp, mfu = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
ratio = lambda a, b: f"{a / b:.2f}x" if b and not math.isnan(b) else "n/a"
print(f"{config:<20} {t:>7} {loom:>12.0f} {eager:>12.0f} {comp:>12.0f} {mfu*100:>7.1f}% {ratio(loom, eager):>10} {ratio(loom, comp):>10}")
PY
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
