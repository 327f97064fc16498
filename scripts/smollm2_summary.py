"""Collects the outputs of scripts/run_smollm2.sh into OUT/results.json and OUT/results.md.

    python3 scripts/smollm2_summary.py OUT BEST_K SECONDS
"""
import json
import os
import re
import subprocess
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def peak_mb(path):
    """Maximum resident set of a GNU `time -v` report, in MB."""
    if not os.path.exists(path):
        return None
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(path).read())
    return int(match.group(1)) / 1000 if match else None


def step_rss_mb(path):
    """Largest resident set sampled during the training steps (run_smollm2.sh's `timed`), in MB."""
    if not os.path.exists(path):
        return None
    value = open(path).read().strip()
    return int(value) if value and int(value) > 0 else None


def step_stats(run):
    """Mean seconds per step over steps 2… (step 1 first touches every buffer), and tokens/s
    where the stage logs the tokens of a step (SFT: padded batch tokens)."""
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return None
    rows = [json.loads(line) for line in open(path) if line.strip()]
    rows = [r for r in rows if r.get("step", 0) >= 1 and "elapsed" in r]
    if len(rows) < 2:
        return None
    deltas = [(b["elapsed"] - a["elapsed"], b) for a, b in zip(rows, rows[1:])]
    seconds = sum(d for d, _ in deltas) / len(deltas)
    stats = {"seconds_per_step": seconds, "steps_timed": len(deltas)}
    if all("tokens" in r for _, r in deltas):
        stats["tokens_per_second"] = sum(r["tokens"] for _, r in deltas) / sum(d for d, _ in deltas)
    if all("response_length" in r for _, r in deltas):
        stats["mean_reward_first"] = rows[0].get("reward")
        stats["mean_reward_last"] = rows[-1].get("reward")
    return stats


def main():
    out, best_k, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "unknown")
    base_dev, base_test = load(f"{out}/base_dev.json"), load(f"{out}/base_test.json")
    chosen_sft = open(f"{out}/sft_chosen.txt").read().strip()
    sft_runs = sorted(d for d in os.listdir(out) if d.startswith("sft-lora-") and os.path.isdir(f"{out}/{d}"))
    results = {
        "cpu": cpu, "nproc": os.cpu_count(), "seconds": seconds,
        "load_average_at_end": open("/proc/loadavg").read().split()[:3],
        "base": {"dev_in_context": base_dev["results"], "test_in_context": base_test["results"], "chosen_shots": best_k,
                 "text": load(f"{out}/base_text.json")},
        "sft_lora": {"dev_by_run": {d: load(f"{out}/{d}.dev.json")["accuracy"] for d in sft_runs if os.path.exists(f"{out}/{d}.dev.json")},
                     "chosen": os.path.basename(chosen_sft), "test": load(f"{out}/sft_test.json"),
                     "text": load(f"{out}/sft_text.json"), "step": step_stats(chosen_sft),
                     "peak_mb": peak_mb(f"{out}/{os.path.basename(chosen_sft)}.time"),
                     "step_rss_mb": step_rss_mb(f"{out}/{os.path.basename(chosen_sft)}.step_rss_mb")},
        "sft_full": {"step": step_stats(f"{out}/sft-full"), "peak_mb": peak_mb(f"{out}/sft-full.time"),
                     "step_rss_mb": step_rss_mb(f"{out}/sft-full.step_rss_mb")},
        "grpo_lora": {"test": load(f"{out}/grpo_test.json"), "text": load(f"{out}/grpo_text.json"),
                      "step": step_stats(f"{out}/grpo-lora"), "peak_mb": peak_mb(f"{out}/grpo-lora.time"),
                      "step_rss_mb": step_rss_mb(f"{out}/grpo-lora.step_rss_mb")},
    }
    with open(f"{out}/results.json", "w") as f:
        json.dump(results, f, indent=1)

    pct = lambda x: f"{100 * x:.1f} %"
    pts = lambda x: f"{100 * x:+.1f}"
    base_k = {r["shots"]: r for r in base_test["results"]}
    sft, grpo = results["sft_lora"]["test"], results["grpo_lora"]["test"]
    lines = [f"SmolLM2-135M-Instruct through Loom (scripts/run_smollm2.sh {out}); CPU {cpu}, {os.cpu_count()} cores; "
             f"{seconds} s wall; load average at the end {' '.join(results['load_average_at_end'])}.", "",
             "| model | test exact match | minus baseline (paired 95 % interval) | held-out text loss |", "|---|---|---|---|"]
    for k in sorted(base_k):
        mark = " (dev's pick)" if k == best_k else ""
        lines.append(f"| base, {k}-shot{mark} | {pct(base_k[k]['exact_match'])} | | "
                     f"{results['base']['text']['loss']:.3f} |" if k == best_k else f"| base, {k}-shot | {pct(base_k[k]['exact_match'])} | | |")
    p = sft["paired"]
    lines.append(f"| LoRA SFT ({results['sft_lora']['chosen']}) | {pct(sft['accuracy'])} | {pts(p['minus_baseline'])} points over base {best_k}-shot "
                 f"({pts(p['ci95'][0])} … {pts(p['ci95'][1])}) | {results['sft_lora']['text']['loss']:.3f} |")
    p = grpo["paired"]
    lines.append(f"| LoRA GRPO from it | {pct(grpo['accuracy'])} | {pts(p['minus_baseline'])} points over LoRA SFT "
                 f"({pts(p['ci95'][0])} … {pts(p['ci95'][1])}) | {results['grpo_lora']['text']['loss']:.3f} |")
    lines += ["", "| stage | s/step | tokens/s | peak RSS, whole process (MB) | largest RSS during the steps (MB) |",
              "|---|---|---|---|---|"]
    for name, key in [("SFT, full fine-tuning", "sft_full"), ("SFT, LoRA", "sft_lora"), ("GRPO, LoRA", "grpo_lora")]:
        s = results[key]["step"] or {}
        tps = f"{s['tokens_per_second']:.0f}" if "tokens_per_second" in s else "–"
        sec = f"{s['seconds_per_step']:.1f}" if s else "–"
        mb = f"{results[key]['peak_mb']:.0f}" if results[key]["peak_mb"] else "–"
        steps_mb = f"{results[key]['step_rss_mb']}" if results[key]["step_rss_mb"] else "–"
        lines.append(f"| {name} | {sec} | {tps} | {mb} | {steps_mb} |")
    full, lora = results["sft_full"]["step_rss_mb"], results["sft_lora"]["step_rss_mb"]
    if full and lora:
        lines += ["", f"LoRA SFT steps hold {lora / full:.2f}x the memory of full fine-tuning steps "
                      f"(whole-process peaks: {results['sft_lora']['peak_mb'] / results['sft_full']['peak_mb']:.2f}x)."]
    with open(f"{out}/results.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
