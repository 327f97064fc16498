#!/usr/bin/env bash
# Peak memory and seconds per step of `loom sft` with and without LoRA, same model, data, batch,
# steps and threads, in one run, on SmolLM2-135M-Instruct (imported from its GGUF).
#
#   Benchmarks/lora_memory.sh            # environment: STEPS=10, BATCH=8, THREADS=2, RANK=8, LOOM=.build/release/loom
#
# Peak memory is the process's maximum resident set (GNU time); seconds per step the mean of
# steps 2…STEPS from metrics.jsonl (step 1 includes the first touch of every buffer).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps="${STEPS:-10}"; batch="${BATCH:-8}"; threads="${THREADS:-2}"; rank="${RANK:-8}"
loom="${LOOM:-.build/release/loom}"
[[ -x "$loom" ]] || swift build -c release --product loom
[[ -x /usr/bin/time ]] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
gguf=$(scripts/fetch_smollm2.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$loom" import gguf "$gguf" --out "$work/smol" >/dev/null
"$loom" tasks --out "$work/tasks" --train 200 --dev 20 --test 20 --seed 1 >/dev/null
echo "CPU: $(lscpu | sed -nE 's/^Model name: +//p'), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-10s %14s %10s\n" mode "peak RSS (MB)" "s/step"
for mode in full lora; do
  flag=(); [[ $mode == lora ]] && flag=(--lora-rank "$rank")
  /usr/bin/time -v "$loom" sft --model "$work/smol" --data "$work/tasks/sft_train.jsonl" --out "$work/sft-$mode" --steps "$steps" \
    --batch-size "$batch" --threads "$threads" --eval-interval 0 --checkpoint-interval 0 --log-interval 100000 --warmup-steps 1 \
    --learning-rate 1e-4 "${flag[@]}" >"$work/$mode.log" 2>&1
  rss=$(sed -nE 's/.*Maximum resident set size \(kbytes\): ([0-9]+)/\1/p' "$work/$mode.log")
  per_step=$(python3 -c 'import json,sys; e=[json.loads(l)["elapsed"] for l in open(sys.argv[1])]; print(f"{(e[-1]-e[0])/(len(e)-1):.2f}")' "$work/sft-$mode/metrics.jsonl")
  printf "%-10s %14.0f %10s\n" "$mode" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$per_step"
done
