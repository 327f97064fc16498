#!/usr/bin/env bash
# Replication of the pipeline's RL stages over seeds: the base, SFT and reward models of one
# finished pipeline run are kept, and PPO-ptx, DPO and GRPO are trained again with each seed
# (`loom pipeline --recipe RUN_DIR/recipe.json --resume --rl-seed S`: finished stages are kept), then
# every model is evaluated on the test split. Prints each seed's test accuracy minus SFT per
# stage and mean ± standard deviation, and writes them to Benchmarks/results/pipeline/replication.json.
# With INCLUDE_RUN=1 the run itself (its RL stages trained with the recipe's own seeds) is one
# more seed of the table, labelled "recipe".
#
#   Benchmarks/replicate_rl.sh RUN_DIR [SEEDS (default "1 2 3")]
#
# RUN_DIR is a finished `loom pipeline --out RUN_DIR` (the default recipe); each seed's run goes
# to RUN_DIR-rl-seed-S.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
run=${1:?usage: Benchmarks/replicate_rl.sh RUN_DIR [SEEDS]}
seeds=${2:-1 2 3}
[[ -f "$run/report.json" ]] || { echo "error: $run/report.json not found: run loom pipeline --out $run first" >&2; exit 1; }
loom=${LOOM:-.build/release/loom}
[[ -x "$loom" ]] || { swift build -c release --product loom >/dev/null; loom=.build/release/loom; }
reports=()
[[ "${INCLUDE_RUN:-0}" == 1 ]] && reports+=("$run/report.json")
# Each seed runs at RUN_DIR's own path, then moves to RUN_DIR-rl-seed-S (run_at_own_path.sh).
source Benchmarks/run_at_own_path.sh
for seed in $seeds; do
    out="$run-rl-seed-$seed"
    rm -rf "$out"
    set_aside
    # The stages before RL, as they were; PPO, DPO and GRPO start afresh with this seed.
    for part in tasks data data-ptx base sft reward; do cp -a "$kept/$part" "$run/$part"; done
    echo "== RL stages with seed $seed → $out" >&2
    # The run's own recipe (not configs/pipeline.json), with only the RL seed changed.
    "$loom" pipeline --recipe "$kept/recipe.json" --out "$run" --resume --rl-seed "$seed" 2>"$out.log"
    put_back "$out"
    reports+=("$out/report.json")
done
python3 - "$run" "${reports[@]}" <<'PY'
import json, statistics, sys, os
run, paths = sys.argv[1], sys.argv[2:]
table = {}
for path in paths:
    report = json.load(open(path))
    seed = path.split("-rl-seed-")[1].split("/")[0] if "-rl-seed-" in path else "recipe"
    for stage in ("ppo", "dpo", "grpo"):
        table.setdefault(stage, {})[seed] = {
            "test_accuracy": report[stage]["test_accuracy"],
            "test_accuracy_minus_sft": report[stage]["test_accuracy_minus_sft"],
            "ci95": report[stage]["test_accuracy_minus_sft_ci95"],
        }
summary = {"sft_test_accuracy": json.load(open(paths[0]))["sft"]["test_accuracy"], "stages": {}}
for stage, by_seed in table.items():
    gains = [v["test_accuracy_minus_sft"] for v in by_seed.values()]
    summary["stages"][stage] = {
        "seeds": by_seed,
        "mean_minus_sft": statistics.mean(gains),
        "sd_minus_sft": statistics.stdev(gains) if len(gains) > 1 else 0.0,
    }
    print(f"{stage}: minus SFT {100 * statistics.mean(gains):+.1f} ± {100 * summary['stages'][stage]['sd_minus_sft']:.1f} points "
          f"(seeds: {', '.join(f'{s} {100 * v:+.1f}' for s, v in zip(by_seed, gains))})")
os.makedirs("Benchmarks/results/pipeline", exist_ok=True)
json.dump(summary, open("Benchmarks/results/pipeline/replication.json", "w"), indent=2, sort_keys=True)
PY
