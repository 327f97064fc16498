"""Summary of the reduced, hand-run SmolLM2 experiment (Benchmarks/results/smollm2/reduced_loaded_machine/README.md).

Its test evaluations ran with `loom eval --task exact-match --verbose` (the binary built before
`--answers-out`/`--paired-with` existed), so the paired bootstrap is computed here from the
verbose ✓/✗ lines: the problems resampled with replacement 2,000 times (seed 0), the 2.5 % and
97.5 % quantiles of the mean difference — the method of `ExactMatchResult.difference`.

    python3 Benchmarks/smollm2_reduced_summary.py RUN_DIR
"""
import json
import random
import sys


def graded(path):
    """Prompt → right or wrong, in file order, from `loom eval --verbose` stderr."""
    rows = []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        for mark, right in (("✓ ", True), ("✗ ", False)):
            at = line.find(mark)
            if at >= 0 and " → " in line:
                rows.append((line[at + 2:line.rindex(" → ")], right))
                break
    return rows


def paired(this, baseline, resamples=2000, seed=0):
    assert [p for p, _ in this] == [p for p, _ in baseline], "not the same problems in the same order"
    deltas = [int(a) - int(b) for (_, a), (_, b) in zip(this, baseline)]
    n = len(deltas)
    rng = random.Random(seed)
    means = sorted(sum(deltas[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return {"difference": sum(deltas) / n, "ci95": [means[int(0.025 * (resamples - 1))], means[int(0.975 * (resamples - 1) + 0.999)]],
            "only_baseline": deltas.count(-1), "only_this": deltas.count(1), "problems": n}


def main():
    run = sys.argv[1]
    models = {"base_k0": "base_test_k0", "base_plain5": "base_test_plain5", "sft_lora": "sft_test", "grpo_lora": "grpo_test"}
    answers = {name: graded(f"{run}/{stem}.verbose") for name, stem in models.items()}
    out = {name: {"accuracy": sum(r for _, r in rows) / len(rows), "problems": len(rows)} for name, rows in answers.items()}
    best_base = max(("base_k0", "base_plain5"), key=lambda m: out[m]["accuracy"])
    out["sft_lora"]["minus_base_k0"] = paired(answers["sft_lora"], answers["base_k0"])
    out["sft_lora"]["minus_base_plain5"] = paired(answers["sft_lora"], answers["base_plain5"])
    out["grpo_lora"]["minus_sft_lora"] = paired(answers["grpo_lora"], answers["sft_lora"])
    out["best_base_on_test"] = best_base
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
