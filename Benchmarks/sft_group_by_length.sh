#!/usr/bin/env bash
# SFT with random batches versus length-grouped batches (--group-by-length), same model, data,
# steps and threads, in one run: seconds per step, and greedy held-out exact match after each.
#
#   Benchmarks/sft_group_by_length.sh [RUN_DIR]      # default: runs/demo (from scripts/run_pipeline.sh)
#
# Environment: STEPS=100, THREADS=2, LOOM=.build/release/loom.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
run="${1:-runs/demo}"
steps="${STEPS:-100}"
threads="${THREADS:-2}"
loom="${LOOM:-.build/release/loom}"
[[ -x "$loom" ]] || swift build -c release --product loom
[[ -d "$run/base" && -d "$run/tasks" ]] || { echo "no $run/base or $run/tasks: run scripts/run_pipeline.sh first" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
data=(--data "$run/tasks/sft_train.jsonl" --data data/alignment/faq_python.jsonl --data data/alignment/faq_debian_en.jsonl --data data/alignment/faq_debian_zh.jsonl)
printf "%-14s %6s %9s %9s %12s\n" batches steps seconds "s/step" "exact match"
declare -A secs
for mode in random grouped; do
  flag=(); [[ $mode == grouped ]] && flag=(--group-by-length)
  start=$(date +%s.%N)
  "$loom" sft --model "$run/base" "${data[@]}" --out "$out/$mode" --steps "$steps" --batch-size 32 --learning-rate 1e-3 \
    --min-learning-rate 1e-4 --warmup-steps 20 --eval-interval 0 --log-interval 100000 --threads "$threads" "${flag[@]}" >/dev/null 2>&1
  end=$(date +%s.%N)
  secs[$mode]=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
  acc=$("$loom" eval --model "$out/$mode" --task exact-match --prompts "$run/tasks/prompts_heldout.jsonl" --threads "$threads" | sed -E 's/.*"accuracy": ([0-9.]+).*/\1/')
  printf "%-14s %6d %9.1f %9.3f %12.3f\n" "$mode" "$steps" "${secs[$mode]}" "$(awk -v s="${secs[$mode]}" -v n="$steps" 'BEGIN { print s / n }')" "$acc"
done
printf "grouped is %.2fx as fast per step\n" "$(awk -v a="${secs[random]}" -v b="${secs[grouped]}" 'BEGIN { print a / b }')"
