#!/usr/bin/env bash
# Kill storm: SIGKILL `loom pretrain`, `loom sft` and `loom ppo` at random moments and, with
# LOOM_FAULT_CHECKPOINT, after each file of a checkpoint save; resume after every kill; check
# that each stage ends with the weights, optimizer state (and PPO's critic and statistics) and
# metrics of an uninterrupted run, byte for byte. metrics.jsonl is compared without its
# wall-clock fields (elapsed, tokens_per_second), which no two runs share.
#
#   Benchmarks/kill_storm.sh [KILLS_PER_STAGE (30)] [WORK_DIR (/tmp/loom-kill-storm)]
#
# Writes its summary to Benchmarks/results/kill_storm.txt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
kills=${1:-30}
work=${2:-/tmp/loom-kill-storm}
results=Benchmarks/results/kill_storm.txt
scripts/install_dependencies.sh
swift build -c release --product loom >/dev/null
loom=$PWD/.build/release/loom
rm -rf "$work"; mkdir -p "$work"
RANDOM=2026
log() { echo "$*" | tee -a "$work/summary.txt"; }

# A small model and corpus so that steps are short and saves frequent.
"$loom" prepare --input data/pretrain --out "$work/data" --vocab-size 512 >/dev/null 2>&1
cat > "$work/config.json" <<'JSON'
{"model": {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128, "tie_word_embeddings": true},
 "train": {"batch_size": 8, "context_length": 128, "steps": 2000, "learning_rate": 0.003, "min_learning_rate": 0.0003,
           "warmup_steps": 10, "eval_interval": 100, "eval_batches": 2, "checkpoint_interval": 10, "seed": 7}}
JSON

# The runs being compared, as functions of their output directory.
pretrain() { "$loom" pretrain --config "$work/config.json" --data "$work/data" --out "$1" --threads 1 "${@:2}"; }
sft() {
    "$loom" sft --model "$work/pretrain-ref" --data data/alignment/faq_python.jsonl --out "$1" --steps 1500 --batch-size 8 \
        --checkpoint-interval 5 --eval-interval 50 --threads 1 "${@:2}"
}
ppo() {
    "$loom" ppo --policy "$work/sft-ref" --reward "$work/reward" --prompts "$work/tasks/prompts_train.jsonl" --out "$1" \
        --steps 400 --batch-size 8 --checkpoint-interval 3 --eval-interval 0 --max-new-tokens 8 --threads 1 "${@:2}"
}

# Uninterrupted references (and the reward model PPO needs).
pretrain "$work/pretrain-ref" 2>/dev/null
sft "$work/sft-ref" 2>/dev/null
"$loom" tasks --out "$work/tasks" --train 200 --dev 20 --test 20 --seed 1 >/dev/null 2>&1
"$loom" reward --model "$work/sft-ref" --data "$work/tasks/rankings_train.jsonl" --out "$work/reward" --steps 20 --threads 1 >/dev/null 2>&1
ppo "$work/ppo-ref" 2>/dev/null

# Runs `$stage OUT` until it finishes: first `faults` launches each killed by
# LOOM_FAULT_CHECKPOINT=k right after file k of its first save, then launches each killed after
# a random 0.1–2.0 s until `kills` random kills have landed, then one that runs to the end.
# Each launch after the first resumes (or, before any checkpoint exists, starts over with
# --overwrite, as a user would).
storm() {
    local stage=$1 out=$2 faults=$3 launched=0 random_kills=0 status k
    launch_mode() {
        mode=()
        if (( launched > 0 )); then
            if [[ -f "$out/checkpoints/latest" ]]; then mode=(--resume); else mode=(--overwrite); fi
        fi
    }
    for (( k = 1; k <= faults; k++ )); do
        launch_mode
        set +e; LOOM_FAULT_CHECKPOINT=$k "$stage" "$out" "${mode[@]}" 2>>"$out.log"; status=$?; set -e
        launched=$((launched + 1))
        if (( status != 137 )); then log "$stage: fault point $k: exit $status, expected a SIGKILL (137)"; tail -n 5 "$out.log"; return 1; fi
    done
    while (( random_kills < kills )); do
        launch_mode
        "$stage" "$out" "${mode[@]}" 2>>"$out.log" &
        local pid=$!
        sleep "$((RANDOM % 2)).$(printf '%03d' $((100 + RANDOM % 900)))"
        # $pid is the subshell running the stage function: kill the loom process it started.
        pkill -9 -P "$pid" 2>/dev/null || true
        set +e; wait "$pid"; status=$?; set -e
        launched=$((launched + 1))
        if (( status == 137 )); then random_kills=$((random_kills + 1))
        elif (( status == 0 )); then log "$stage: the run finished after $random_kills random kills (make it longer for more)"; break
        else log "$stage: launch $launched exited $status (not a kill):"; tail -n 5 "$out.log"; return 1
        fi
    done
    if (( status != 0 )); then
        launch_mode
        set +e; "$stage" "$out" "${mode[@]}" 2>>"$out.log"; status=$?; set -e
        launched=$((launched + 1))
        if (( status != 0 )); then log "$stage: the final resume exited $status:"; tail -n 5 "$out.log"; return 1; fi
    fi
    log "$stage: $faults kills inside checkpoint saves (fault injection, every file), $random_kills at random moments, $launched launches"
}

# Byte equality of the final model and the latest checkpoint's files, and of the metrics less time.
compare() {
    local reference=$1 run=$2; shift 2
    local ok=1
    cmp -s "$reference/model.safetensors" "$run/model.safetensors" || { log "  model.safetensors differs"; ok=0; }
    local a b
    a=$(cat "$reference/checkpoints/latest"); b=$(cat "$run/checkpoints/latest")
    [[ "$a" == "$b" ]] || { log "  latest checkpoint $a vs $b"; ok=0; }
    for f in "$@"; do
        cmp -s "$reference/checkpoints/$a/$f" "$run/checkpoints/$b/$f" || { log "  $f differs"; ok=0; }
    done
    python3 - "$reference/metrics.jsonl" "$run/metrics.jsonl" <<'PY' || ok=0
import json, sys
def rows(path):
    out = []
    for line in open(path):
        r = json.loads(line)
        for k in ("elapsed", "tokens_per_second"): r.pop(k, None)
        out.append(json.dumps(r, sort_keys=True))
    return out
a, b = rows(sys.argv[1]), rows(sys.argv[2])
if a != b:
    print(f"  metrics differ: {len(a)} vs {len(b)} records", file=sys.stderr); sys.exit(1)
PY
    local leftovers
    leftovers=$(find "$run" \( -name '.staging-*' -o -name '.*.tmp-*' \) | wc -l)
    (( leftovers == 0 )) || { log "  $leftovers temporary files left behind"; ok=0; }
    (( ok )) && log "  identical to the uninterrupted run: weights, $*, metrics" || return 1
}

: > "$work/summary.txt"
log "kill storm, $(date -u +%Y-%m-%dT%H:%MZ), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
storm pretrain "$work/pretrain-storm" 6
compare "$work/pretrain-ref" "$work/pretrain-storm" optimizer.safetensors trainer_state.json
storm sft "$work/sft-storm" 6
compare "$work/sft-ref" "$work/sft-storm" optimizer.safetensors trainer_state.json
storm ppo "$work/ppo-storm" 11
compare "$work/ppo-ref" "$work/ppo-storm" optimizer.safetensors trainer_state.json ppo_state.json critic/model.safetensors critic/optimizer.safetensors
cp "$work/summary.txt" "$results"
echo "summary in $results"
