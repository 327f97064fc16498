#!/usr/bin/env bash
# Chooses stage settings on the dev split. From one finished pipeline run (its tasks, data, base
# model and the stages before the tuned one kept as they are), each variant below retrains one
# stage (SFT, PPO-ptx, DPO or GRPO) with one or two settings changed (`loom pipeline --resume
# --dev-only` on a copy of the run: no model of these runs is evaluated on the test split) and
# records that stage's dev accuracy.
# Prints every variant's dev accuracy beside the recipe's own and writes them all to
# Benchmarks/results/pipeline/dev_sweep_STAGES.json (dev_sweep_ppo_dpo_grpo.json by default);
# the recipe (configs/pipeline.json) then takes, for each stage, the variant with the best dev
# accuracy (SFT's variants are cheaper ones, for the time budget: see the README).
#
#   Benchmarks/sweep_rl_dev.sh RUN_DIR [STAGES (default "ppo dpo grpo"; also "sft")]
#
# RUN_DIR is a finished `loom pipeline --out RUN_DIR`. Each variant runs at RUN_DIR's own path
# (checkpoints record their input paths, and a resumed stage refuses changed ones) with the run
# set aside as RUN_DIR.kept meanwhile, then moves to RUN_DIR-dev-S-V and the run is put back
# (also if the variant fails).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
run=${1:?usage: Benchmarks/sweep_rl_dev.sh RUN_DIR [STAGES]}
stages=${2:-ppo dpo grpo}
[[ -f "$run/report.json" && -f "$run/recipe.json" ]] || { echo "error: $run/report.json or recipe.json not found: run loom pipeline --out $run first" >&2; exit 1; }
loom=${LOOM:-.build/release/loom}
[[ -x "$loom" ]] || { swift build -c release --product loom >/dev/null; loom=.build/release/loom; }

# Each variant: a name and the stage's recipe keys it changes (JSON). The recipe's own setting
# is the run in RUN_DIR itself.
variants() {
    case "$1" in
        sft)  echo 'tasks-only {"extra_data": []}'
              echo 'tasks-only-600 {"extra_data": [], "steps": 600}' ;;
        ppo)  echo 'lr3e-5 {"learning_rate": 3e-5}'
              echo 'kl0.1  {"kl_coefficient": 0.1}'
              echo 'ptx0.2 {"ptx_coefficient": 0.2}' ;;
        dpo)  echo 'lr3e-5 {"learning_rate": 3e-5, "min_learning_rate": 3e-6}'
              echo 'beta0.5 {"beta": 0.5}'
              echo 'steps40 {"steps": 40}' ;;
        grpo) echo 'lr3e-5 {"learning_rate": 3e-5}'
              echo 'lr3e-4 {"learning_rate": 3e-4}'
              echo 'kl0.2  {"kl_beta": 0.2}'
              echo 'steps100 {"steps": 100}' ;;
        *) echo "error: unknown stage $1 (sft, ppo, dpo or grpo)" >&2; exit 1 ;;
    esac
}

results=()
source Benchmarks/run_at_own_path.sh
for stage in $stages; do
    while read -r name change; do
        out="$run-dev-$stage-$name"
        rm -rf "$out"
        set_aside
        # Everything but the tuned stage, as it was (the stages before it resume as finished).
        for part in tasks data data-ptx base sft reward ppo dpo grpo; do
            [[ $part == "$stage" ]] || cp -a "$kept/$part" "$run/$part"
        done
        python3 - "$kept/recipe.json" "$run/recipe-variant.json" "$stage" "$change" <<'PY'
import json, sys
recipe = json.load(open(sys.argv[1]))
recipe[sys.argv[3]].update(json.loads(sys.argv[4]))
json.dump(recipe, open(sys.argv[2], "w"), indent=2)
PY
        echo "== $stage $name $change → $out" >&2
        # The stages after the tuned one are not needed: stop after it (GRPO is the last).
        stop=(); [[ $stage == grpo ]] || stop=(--stop-after "$stage")
        "$loom" pipeline --recipe "$run/recipe-variant.json" --out "$run" --resume --dev-only "${stop[@]}" 2>"$out.log"
        put_back "$out"
        results+=("$stage|$name|$change|$out/report.json")
    done < <(variants "$stage")
done

python3 - "$run" "${stages// /_}" "${results[@]}" <<'PY'
import json, os, sys
run, label, entries = sys.argv[1], sys.argv[2], sys.argv[3:]
base = json.load(open(os.path.join(run, "report.json")))
recipe = json.load(open(os.path.join(run, "recipe.json")))
summary = {"run": run, "sft_dev_accuracy": base["sft"]["dev_accuracy"], "stages": {}}
for entry in entries:
    stage, name, change, path = entry.split("|")
    report = json.load(open(path))
    assert report.get("recipe", {}).get("dev_only"), f"{path} is not a dev-only run"
    s = summary["stages"].setdefault(stage, {"recipe": {"settings": recipe[stage], "dev_accuracy": base[stage]["dev_accuracy"]}, "variants": {}})
    s["variants"][name] = {"change": json.loads(change), "dev_accuracy": report[stage]["dev_accuracy"]}
for stage, s in summary["stages"].items():
    options = {"recipe": s["recipe"]["dev_accuracy"], **{n: v["dev_accuracy"] for n, v in s["variants"].items()}}
    best = max(options, key=options.get)
    s["best_on_dev"] = best
    print(f"{stage}: SFT dev {100 * summary['sft_dev_accuracy']:.1f} %; " +
          ", ".join(f"{n} {100 * a:.1f} %" for n, a in options.items()) + f" → best on dev: {best}")
os.makedirs("Benchmarks/results/pipeline", exist_ok=True)
json.dump(summary, open(f"Benchmarks/results/pipeline/dev_sweep_{label}.json", "w"), indent=2, sort_keys=True)
PY
