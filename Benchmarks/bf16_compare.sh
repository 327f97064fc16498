#!/usr/bin/env bash
# bf16 matrix products (`--precision bf16`) against fp32, in one run:
#
# 1. Loss curves: `loom pretrain` on configs/tiny.json (300 steps, the bundled data) in fp32 and
#    in bf16, same seed and data order; the validation loss at every evaluation, and whether the
#    final one is within 1 % of fp32's. On a CPU without AVX512-BF16 the bf16 run uses
#    LOOM_BF16_EMULATION=1: the same rounding and the same order of float32 additions as the
#    vdpbf16ps kernel, so the same curve up to subnormal partial sums (the native kernel flushes
#    them), at emulation's speed.
# 2. Speed, only where the CPU has AVX512-BF16: `loom bench train` fp32 and bf16 beside PyTorch
#    eager fp32 and PyTorch under torch.autocast("cpu", dtype=torch.bfloat16), tiny and small,
#    1 and 2 threads. Elsewhere, for reference, the emulation's speed against fp32 on tiny.
#
#   Benchmarks/bf16_compare.sh
#
# Environment: STEPS=300, THREADS (training threads for the curves, default 2), SPEED_THREADS="1 2",
# LOOM=.build/release/loom (built if missing), PYTHON=.venv-ref/bin/python (scripts/setup_python.sh
# makes it), WORK=/tmp/bf16_compare, DATA_INPUT=data/pretrain. Writes
# Benchmarks/results/bf16_compare.txt (through a .partial file, moved into place at the end).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps="${STEPS:-300}"
threads="${THREADS:-2}"
speed_threads="${SPEED_THREADS:-1 2}"
loom="${LOOM:-.build/release/loom}"
py="${PYTHON:-.venv-ref/bin/python}"
work="${WORK:-/tmp/bf16_compare}"
input="${DATA_INPUT:-data/pretrain}"
results=Benchmarks/results/bf16_compare.txt
[[ -x "$loom" ]] || swift build -c release --product loom
mkdir -p "$work" "$(dirname "$results")"
exec > >(tee "$results.partial") 2>&1

native=1
grep -qw avx512_bf16 /proc/cpuinfo || native=0
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); avx512_bf16: $([[ $native == 1 ]] && echo yes || echo no)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command: Benchmarks/bf16_compare.sh (STEPS=$steps THREADS=$threads)"

data="$work/data"
[[ -f "$data/manifest.json" ]] || "$loom" prepare --input "$input" --out "$data" >/dev/null 2>&1

emulation=()
if [[ $native == 0 ]]; then
  emulation=(env LOOM_BF16_EMULATION=1)
  echo "bf16 products: emulated (LOOM_BF16_EMULATION=1; this CPU has no vdpbf16ps): the curve, not the speed"
fi
for precision in fp32 bf16; do
  out="$work/tiny_$precision"
  start=$(date +%s)
  prefix=()
  [[ $precision == bf16 ]] && prefix=("${emulation[@]}")
  "${prefix[@]}" "$loom" pretrain --config configs/tiny.json --data "$data" --out "$out" --steps "$steps" \
    --threads "$threads" --precision "$precision" --overwrite --log-interval 100 2>&1 | grep -E "^pretraining|done" || true
  echo "$precision: $(( $(date +%s) - start )) s wall"
done

python3 - "$work/tiny_fp32/metrics.jsonl" "$work/tiny_bf16/metrics.jsonl" <<'PY'
import json, sys
def curve(path):
    points = {}
    for line in open(path):
        r = json.loads(line)
        if "val_loss" in r:
            points[r["step"]] = r["val_loss"]
    return points
fp32, bf16 = curve(sys.argv[1]), curve(sys.argv[2])
print(f"{'step':>6} {'fp32 val loss':>14} {'bf16 val loss':>14} {'bf16 / fp32':>12}")
for step in sorted(fp32):
    if step in bf16:
        print(f"{step:>6} {fp32[step]:>14.4f} {bf16[step]:>14.4f} {bf16[step] / fp32[step]:>12.4f}")
last = max(step for step in fp32 if step in bf16)
gap = abs(bf16[last] / fp32[last] - 1)
print(f"final validation loss (step {last}): bf16 within {gap * 100:.2f} % of fp32: {'PASS' if gap <= 0.01 else 'FAIL'} (limit 1 %)")
PY

if [[ $native == 1 ]]; then
  [[ -x "$py" ]] || scripts/setup_python.sh .venv-ref >/dev/null
  field() { "$py" -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d.get('$1', 'nan'))"; }
  printf "%-20s %7s %10s %10s %10s %10s %9s %12s\n" config threads loom_fp32 loom_bf16 torch_fp32 torch_bf16 "bf16/fp32" "vs autocast"
  for config in configs/tiny.json configs/small.json; do
    for t in $speed_threads; do
      l32=$("$loom" bench train --config "$config" --threads "$t" --steps 5 --no-sweep-cores --json | field tokens_per_second)
      l16=$("$loom" bench train --config "$config" --threads "$t" --steps 5 --no-sweep-cores --precision bf16 --json | field tokens_per_second)
      t32=$(OMP_NUM_THREADS=$t "$py" Benchmarks/torch_train.py --config "$config" --threads "$t" --steps 5 --json | field tokens_per_second)
      t16=$(OMP_NUM_THREADS=$t "$py" Benchmarks/torch_train.py --config "$config" --threads "$t" --steps 5 --autocast bf16 --json | field tokens_per_second)
      python3 -c "import sys; c,t,a,b,x,y=sys.argv[1:3]+list(map(float,sys.argv[3:])); print(f'{c:<20} {t:>7} {a:>10.0f} {b:>10.0f} {x:>10.0f} {y:>10.0f} {b/a:>8.2f}x {b/y:>11.2f}x')" \
        "$config" "$t" "$l32" "$l16" "$t32" "$t16"
    done
  done
else
  echo "speed of bf16: not measured (no AVX512-BF16 here). For reference, the emulation's own speed, which is not bf16's:"
  field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(d.get('$1', 'nan'))"; }
  l32=$("$loom" bench train --config configs/tiny.json --threads "$threads" --steps 3 --no-sweep-cores --json | field tokens_per_second)
  l16=$(LOOM_BF16_EMULATION=1 "$loom" bench train --config configs/tiny.json --threads "$threads" --steps 3 --no-sweep-cores --precision bf16 --json | field tokens_per_second)
  python3 -c "import sys; a,b=map(float,sys.argv[1:]); print(f'  configs/tiny.json, $threads threads: fp32 {a:.0f} tok/s, bf16 emulated {b:.0f} tok/s ({b/a:.2f}x)')" "$l32" "$l16"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
mv "$results.partial" "$results"
