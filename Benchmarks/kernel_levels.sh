#!/usr/bin/env bash
# Loom's own C kernels at each instruction-set level this CPU runs (LOOM_CPU_KERNELS=avx512,
# avx2, portable), one after another in the same run on SmolLM2-135M-Instruct (fetched from
# PyPI like the other SmolLM2 checks):
#   - the quantized dot products: Q8_0 and Q4_1, prompt processing and decoding at batch 1;
#   - the batch-invariant products `loom serve` runs: F32 with --batch-invariant, 16 sequences
#     prefilled together (8-row tiles and wider) and decoded together.
# The levels give the same bits (tests), so only the speed differs. On a CPU without AVX-512 it
# compares AVX2 with the portable C code. Writes Benchmarks/results/kernel_levels.txt.
#
#   Benchmarks/kernel_levels.sh
#
# Environment: THREADS="1 2", PROMPT=128, TOKENS=128, REPEATS=2 (best of), LOOM=.build/release/loom,
# PYTHON=.venv-ref/bin/python (to fetch the model).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads="${THREADS:-1 2}"
prompt="${PROMPT:-128}"
tokens="${TOKENS:-128}"
repeats="${REPEATS:-2}"
loom="${LOOM:-.build/release/loom}"
py="${PYTHON:-.venv-ref/bin/python}"
out="Benchmarks/results/kernel_levels.txt"
work=".build/kernel-levels"
[[ -x "$loom" ]] || swift build -c release --product loom
[[ -x "$py" ]] || scripts/setup_python.sh "$(dirname "$(dirname "$py")")" >/dev/null

LOOM="$loom" PYTHON="$py" Benchmarks/smollm2_weight_types.sh "$work"

json_field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
# The levels this CPU runs, widest first (a level it cannot run stops loom with exit status 2).
levels=()
for level in avx512 avx2 portable; do
    if LOOM_CPU_KERNELS=$level "$loom" bench generate --threads 1 --prompt-length 2 --tokens 1 >/dev/null 2>&1; then levels+=("$level"); fi
done

{
echo "# Benchmarks/kernel_levels.sh (PROMPT=$prompt TOKENS=$tokens REPEATS=$repeats, greedy), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; cpuid: $(grep -o -w 'avx2\|fma\|avx512f\|avx512bw\|avx512vl\|avx512dq\|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "levels this CPU runs: ${levels[*]}; binary: $loom"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '{ exit !($1 > 1.0) }' /proc/loadavg && echo "NOTE: load average above 1 before the run: other work shared the cores, so the figures are indications, not claims."
echo
printf "%-40s %3s %-9s %-11s | %10s %10s\n" "model" thr level "kernel" prefill/s decode/s
for t in $threads; do
    for case in "q8_0 1" "q4_1 1" "f32 16"; do
        read -r type batch <<<"$case"
        flags=(--model "$work/$type" --threads "$t" --prompt-length "$prompt" --tokens "$tokens" --repeats "$repeats" --json)
        label="SmolLM2 $type, batch $batch"
        if [[ $type == f32 ]]; then flags+=(--batch-invariant --batch "$batch"); label="$label, batch-invariant"; fi
        for level in "${levels[@]}"; do
            result=$(LOOM_CPU_KERNELS=$level "$loom" bench generate "${flags[@]}")
            kernel=$(echo "$result" | json_field kernel_level)
            [[ $type == f32 ]] || kernel=$(echo "$result" | json_field quantized_kernel)
            printf "%-40s %3s %-9s %-11s | %10.0f %10.1f\n" "$label" "$t" "$level" "$kernel" \
                   "$(echo "$result" | json_field prefill_tokens_per_second)" "$(echo "$result" | json_field decode_tokens_per_second)"
        done
    done
done
echo
echo "kernel: the quantized kernel (Q8_0, Q4_1 rows) or the batch-invariant products' level (F32 rows) that ran."
echo "prefill/s: prompt tokens per second (batch x PROMPT tokens); decode/s: generated tokens per second over the batch."
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out.partial"
# Only a finished run replaces the results file: a run stopped half-way leaves the last one as it was.
mv "$out.partial" "$out"
