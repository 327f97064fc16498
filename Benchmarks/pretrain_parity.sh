#!/usr/bin/env bash
# Training-dynamics parity: `loom pretrain` against PyTorch (transformers LlamaForCausalLM) on
# the same config, initial weights, data order, schedule and hyperparameters; compares the
# validation loss (pass: within 2 %) and writes both curves.
#
#   Benchmarks/pretrain_parity.sh [--steps 200] [--config configs/tiny.json] [--batch-size N]
#
# --batch-size N trains both sides with train.batch_size = N through a temporary copy of the
# config (everything else unchanged). Output: Benchmarks/results/pretrain_parity_<config>.json
# and .svg. Environment: LOOM (default .build-parity/release/loom, built if missing), PYTHON
# (default /tmp/refvenv/bin/python, else scripts/setup_python.sh makes .venv-ref), WORK (scratch
# folder, default /tmp/parity), THREADS (default 2, both sides), DATA_INPUT (default data/pretrain).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

steps=200
config=configs/tiny.json
batch=""
while (( $# )); do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

threads="${THREADS:-2}"
work="${WORK:-/tmp/parity}"
loom="${LOOM:-.build-parity/release/loom}"
py="${PYTHON:-/tmp/refvenv/bin/python}"
input="${DATA_INPUT:-data/pretrain}"
name="$(basename "$config" .json)"
results=Benchmarks/results
mkdir -p "$work" "$results"

if [[ ! -x "$loom" ]]; then
  swift build -c release --scratch-path "$(dirname "$(dirname "$loom")")" --product loom
fi
if [[ ! -x "$py" ]]; then
  py=.venv-ref/bin/python
  [[ -x "$py" ]] || scripts/setup_python.sh .venv-ref >/dev/null
fi

run_config="$config"
if [[ -n "$batch" ]]; then
  run_config="$work/${name}_batch${batch}.json"
  "$py" - "$config" "$batch" "$run_config" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["train"]["batch_size"] = int(sys.argv[2])
json.dump(c, open(sys.argv[3], "w"), indent=2)
PY
  echo "using $run_config (train.batch_size = $batch for both sides)"
fi

data="$work/data"
if [[ ! -f "$data/manifest.json" ]]; then
  echo "== loom prepare → $data"
  "$loom" prepare --input "$input" --out "$data"
fi

init="$work/init_$name"
echo "== initial weights → $init"
"$py" Benchmarks/pretrain_parity.py init --config "$run_config" --out "$init"

loom_out="$work/loom_$name"
rm -rf "$loom_out"
echo "== loom pretrain ($steps steps, $threads threads)"
t0=$(date +%s)
"$loom" pretrain --config "$run_config" --data "$data" --out "$loom_out" --init-from "$init" \
  --steps "$steps" --threads "$threads"
echo "loom wall time: $(( $(date +%s) - t0 ))s"

echo "== PyTorch ($steps steps, $threads threads)"
t0=$(date +%s)
status=0
OMP_NUM_THREADS="$threads" "$py" Benchmarks/pretrain_parity.py train --config "$run_config" --data "$data" \
  --init "$init" --loom-out "$loom_out" --steps "$steps" --threads "$threads" \
  --json "$results/pretrain_parity_$name.json" --svg "$results/pretrain_parity_$name.svg" || status=$?
echo "torch wall time: $(( $(date +%s) - t0 ))s"
exit "$status"
