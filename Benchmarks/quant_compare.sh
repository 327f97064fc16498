#!/usr/bin/env bash
# Quantized generation beside llama.cpp and transformers, in one run on one machine:
# SmolLM2-135M-Instruct in F32, Q8_0 and Q4_1; prompt processing (PROMPT tokens) and greedy
# decoding (TOKENS tokens) at batch 1, with 1 and 2 threads. Loom and llama.cpp read the same
# GGUF files (Loom's quantized directories hold llama.cpp GGUF files: DIR/model.gguf; the F32
# model is `loom export gguf --type f32` of the imported directory); transformers runs fp32
# from the F32 directory. Writes Benchmarks/results/quant_compare.txt.
#
#   scripts/setup_bench.sh && Benchmarks/quant_compare.sh
#
# Environment: THREADS="1 2", PROMPT=128, TOKENS=128, REPEATS=2 (best of), LOOM=.build/release/loom,
# BENCH_PYTHON=.venv-bench/bin/python (llama-cpp-python), PYTHON=.venv-ref/bin/python (transformers).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads="${THREADS:-1 2}"
prompt="${PROMPT:-128}"
tokens="${TOKENS:-128}"
repeats="${REPEATS:-2}"
loom="${LOOM:-.build/release/loom}"
bench_py="${BENCH_PYTHON:-.venv-bench/bin/python}"
py="${PYTHON:-.venv-ref/bin/python}"
out="Benchmarks/results/quant_compare.txt"
work=".build/quant-bench"
[[ -x "$loom" ]] || swift build -c release --product loom
[[ -x "$bench_py" ]] || scripts/setup_bench.sh "$(dirname "$(dirname "$bench_py")")"
[[ -x "$py" ]] || scripts/setup_python.sh "$(dirname "$(dirname "$py")")" >/dev/null

LOOM="$loom" PYTHON="$py" Benchmarks/smollm2_weight_types.sh "$work"
"$loom" export gguf "$work/f32" --out "$work/f32.gguf" --type f32 >/dev/null

json_field() { "$py" -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }
ratio() { "$py" -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }

{
echo "# Benchmarks/quant_compare.sh (PROMPT=$prompt TOKENS=$tokens REPEATS=$repeats, batch 1, greedy), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; loom quantized kernel: $("$loom" bench generate --model "$work/q8_0" --threads 1 --prompt-length 8 --tokens 2 --json | json_field quantized_kernel) (cpuid: $(grep -o -w 'avx2\|avx512f\|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' '))"
echo "peers: $("$bench_py" -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__)'); $("$py" -c 'import torch, transformers; print("transformers", transformers.__version__, "torch", torch.__version__)')"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
awk '{ exit !($1 > 1.0) }' /proc/loadavg && echo "NOTE: load average above 1 before the run: other work shared the cores, so the figures are indications, not claims."
echo
printf "%-5s %3s | %9s %9s %6s | %9s %9s %6s | %9s %7s\n" type thr loom_pp llama_pp ratio loom_dec llama_dec ratio hf_dec loom/hf
for t in $threads; do
    hf_json=$(OMP_NUM_THREADS=$t "$py" Benchmarks/quant_peers.py transformers --model "$work/f32" --threads "$t" \
              --prompt-length "$prompt" --tokens "$tokens" --repeats "$repeats" --json)
    hf_decode=$(echo "$hf_json" | json_field decode_tokens_per_second)
    hf_prompt=$(echo "$hf_json" | json_field prompt_tokens_per_second)
    for type in f32 q8_0 q4_1; do
        if [[ $type == f32 ]]; then file="$work/f32.gguf"; else file="$work/$type/model.gguf"; fi
        loom_json=$("$loom" bench generate --model "$work/$type" --threads "$t" --prompt-length "$prompt" --tokens "$tokens" --repeats "$repeats" --json)
        llama_json=$("$bench_py" Benchmarks/quant_peers.py llama_cpp --model "$file" --threads "$t" \
                     --prompt-length "$prompt" --tokens "$tokens" --repeats "$repeats" --json)
        lp=$(echo "$loom_json" | json_field prefill_tokens_per_second); ld=$(echo "$loom_json" | json_field decode_tokens_per_second)
        cp=$(echo "$llama_json" | json_field prompt_tokens_per_second); cd_=$(echo "$llama_json" | json_field decode_tokens_per_second)
        printf "%-5s %3s | %9.0f %9.0f %5sx | %9.1f %9.1f %5sx | %9.1f %6sx\n" "$type" "$t" "$lp" "$cp" "$(ratio "$lp" "$cp")" \
               "$ld" "$cd_" "$(ratio "$ld" "$cd_")" "$hf_decode" "$(ratio "$ld" "$hf_decode")"
    done
    printf "      transformers fp32, %s thread(s): prompt %.0f tok/s, decode %.1f tok/s\n" "$t" "$hf_prompt" "$hf_decode"
done
echo
echo "pp = prompt processing ($prompt tokens, tok/s); dec = decoding ($tokens tokens, tok/s); ratio = Loom ÷ llama.cpp; loom/hf = Loom decode ÷ transformers fp32 decode."
echo "Loom Q8_0 = loom quantize of the F32 import (embedding Q8_0 too); Q4_1 = SmolLM2's own Q4_1 GGUF imported with --dtype keep (210 Q4_1, embedding Q8_0)."
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out.partial"
# Only a finished run replaces the results file: a run stopped half-way leaves the last one as it was.
mv "$out.partial" "$out"
