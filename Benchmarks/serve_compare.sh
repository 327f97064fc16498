#!/usr/bin/env bash
# Serving speed: `loom serve` beside llama-cpp-python's OpenAI-compatible server
# (`python -m llama_cpp.server`) on the same weights (by default SmolLM2-135M-Instruct Q4_1, fetched by
# scripts/fetch_smollm2.sh), the same threads and the same client script (Benchmarks/serve_load.py,
# levels phase: streaming clients back to back), in one run. Writes the aggregate decode tokens/s,
# p50/p99 time to first token and p50 latency at 1, 4 and 16 clients, with the CPU's model name,
# to Benchmarks/results/serve_compare.txt (RESULT=... to write elsewhere).
#
#   Benchmarks/serve_compare.sh
#
# Environment: THREADS=2, LEVELS=1,4,16, LEVEL_SECONDS=30, MAX_TOKENS=128, PARALLEL=16 (loom's
# slots), CONTEXT=2048 (llama.cpp's n_ctx), LOOM=.build/release/loom (built when missing),
# BENCH_PYTHON=.venv-bench/bin/python (scripts/setup_bench.sh creates it with llama-cpp-python),
# PYTHON=python3 (runs the client; standard library only), REF_PYTHON=.venv-ref/bin/python (has `gguf`),
# LOOM_DTYPE=keep (or f32),
# MODEL_DIR= (a Loom model directory, e.g. the pipeline's runs/demo/sft, served in float32 by both:
# llama.cpp gets its `loom export gguf --type f32`; empty: SmolLM2).
# llama.cpp's server runs with --interrupt_requests False: by default it aborts the running stream
# whenever another request arrives, so concurrent clients would measure that policy, not serving.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads="${THREADS:-2}"
levels="${LEVELS:-1,4,16}"
level_seconds="${LEVEL_SECONDS:-30}"
max_tokens="${MAX_TOKENS:-128}"
parallel="${PARALLEL:-16}"
context="${CONTEXT:-2048}"
loom="${LOOM:-.build/release/loom}"
bench_py="${BENCH_PYTHON:-.venv-bench/bin/python}"
py="${PYTHON:-python3}"
result="${RESULT:-Benchmarks/results/serve_compare.txt}"

if ! "$bench_py" -c "import llama_cpp, llama_cpp.server" 2>/dev/null; then
    echo "error: $bench_py cannot import llama_cpp.server; run scripts/setup_bench.sh (or set BENCH_PYTHON)" >&2
    exit 1
fi
[[ -x "$loom" ]] || swift build -c release --product loom
gguf="$(scripts/fetch_smollm2.sh)"
work=".build/serve-compare"
# LOOM_DTYPE=keep (default): Loom serves the GGUF's own Q4_1 blocks, the weights llama.cpp runs;
# f32: dequantized.
dtype="${LOOM_DTYPE:-keep}"
mkdir -p "$work"
if [[ -n "${MODEL_DIR:-}" ]]; then
    # A Loom model: both servers run it in float32 (llama.cpp from its GGUF export).
    dtype=f32
    model="$MODEL_DIR"
    peer_gguf="$work/$(basename "$MODEL_DIR")-f32.gguf"
    "$loom" export gguf "$model" --out "$peer_gguf" --type f32 >/dev/null
    # llama.cpp refuses the pre-tokenizer name "loom" (Loom's own split rule); for this speed
    # comparison its copy names the closest rule it has, qwen2 (Benchmarks/gguf_set_pre.py).
    "${REF_PYTHON:-.venv-ref/bin/python}" Benchmarks/gguf_set_pre.py "$peer_gguf" "$peer_gguf.qwen2" qwen2
    peer_gguf="$peer_gguf.qwen2"
    described="$MODEL_DIR (a Loom model), float32 on both sides (llama.cpp: its \`loom export gguf --type f32\`, tokenizer.ggml.pre set to qwen2 in its copy)"
else
    model="$work/smollm2-135m-instruct-$dtype"
    [[ -s "$model/config.json" ]] || "$loom" import gguf "$gguf" --out "$model" --dtype "$dtype" >/dev/null
    if [[ $dtype == keep ]]; then
        peer_gguf="$gguf"
        described="$gguf (SmolLM2-135M-Instruct Q4_1): loom serves its blocks as they are (--dtype keep), llama.cpp the GGUF"
    else
        peer_gguf="$work/smollm2-135m-instruct-f32.gguf"
        [[ -s "$peer_gguf" ]] || "$loom" export gguf "$model" --out "$peer_gguf" --type f32 >/dev/null
        described="SmolLM2-135M-Instruct dequantized to float32 on both sides (llama.cpp: \`loom export gguf --type f32\` of loom's import)"
    fi
fi

free_port() { "$py" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid"
        for _ in $(seq 1 30); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
trap stop_server EXIT INT TERM
wait_health() {
    local url="$1" log="$2"
    for _ in $(seq 1 600); do
        if ! kill -0 "$server_pid" 2>/dev/null; then echo "error: the server exited; log $log:" >&2; tail -20 "$log" >&2; exit 1; fi
        # /v1/models: llama_cpp.server has no /health.
        "$py" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/v1/models', timeout=2)" "$url" 2>/dev/null && return 0
        sleep 0.5
    done
    echo "error: $url/v1/models did not answer; log $log" >&2; exit 1
}
# measure LABEL COMMAND...: starts the server (COMMAND gets --port appended), runs the client, stops it.
measure() {
    local label="$1"; shift
    local port; port="$(free_port)"
    local log="$work/$label.log"
    echo "== $label: $* --port $port" >&2
    "$@" --port "$port" >"$log" 2>&1 &
    server_pid=$!
    wait_health "http://127.0.0.1:$port" "$log"
    "$py" Benchmarks/serve_load.py --url "http://127.0.0.1:$port" --pid "$server_pid" --phases levels \
        --levels "$levels" --level-seconds "$level_seconds" --max-tokens "$max_tokens" --label "$label" \
        --json "$work/$label.json" >&2
    stop_server
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
measure loom "$loom" serve --model "$model" --host 127.0.0.1 --parallel "$parallel" --threads "$threads"
measure llama.cpp env OMP_NUM_THREADS="$threads" "$bench_py" -m llama_cpp.server --model "$peer_gguf" --host 127.0.0.1 \
    --n_threads "$threads" --n_threads_batch "$threads" --n_ctx "$context" --interrupt_requests False --verbose False
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

mkdir -p "$(dirname "$result")"
"$py" - "$work/loom.json" "$work/llama.cpp.json" > "$result" <<PY
import json, subprocess, sys
loom, peer = (json.load(open(path)) for path in sys.argv[1:3])
cpu = next((line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")), "unknown")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
llama_version = subprocess.run(["$bench_py", "-c", "import llama_cpp; print(llama_cpp.__version__)"],
                               capture_output=True, text=True).stdout.strip()
print(f"# Benchmarks/serve_compare.sh, {subprocess.run(['date', '-u', '+%Y-%m-%d %H:%M UTC'], capture_output=True, text=True).stdout.strip()}, commit {commit}")
print(f"# CPU: {cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores; THREADS=$threads for both servers")
print(f"# model: $described")
print(f"#   llama-cpp-python {llama_version}, n_ctx $context")
print(f"# loom serve --parallel $parallel --threads $threads; python -m llama_cpp.server --n_threads $threads --n_threads_batch $threads --interrupt_requests False")
print(f"# client: Benchmarks/serve_load.py --phases levels --levels $levels --level-seconds $level_seconds --max-tokens $max_tokens")
print(f"#   (streaming chat requests back to back per client, temperature 0.8, seeded; tokens/s = completion tokens of all")
print(f"#   finished requests / the level's wall time; TTFT and latency measured at the client)")
print(f"# load average before: $load_before; after: $load_after")
print()
print(f"{'clients':>7} | {'loom tok/s':>10} {'TTFT p50':>8} {'TTFT p99':>8} {'lat p50':>8} | "
      f"{'llama.cpp tok/s':>15} {'TTFT p50':>8} {'TTFT p99':>8} {'lat p50':>8} | {'tok/s ratio':>11}")
def s(value):
    return "-" if value is None else f"{value:.2f}"
for a, b in zip(loom["levels"], peer["levels"]):
    ratio = a["aggregate_tokens_per_s"] / b["aggregate_tokens_per_s"] if a["aggregate_tokens_per_s"] and b["aggregate_tokens_per_s"] else None
    print(f"{a['clients']:>7} | {a['aggregate_tokens_per_s'] or 0:>10.1f} {s(a['ttft_p50_s']):>8} {s(a['ttft_p99_s']):>8} {s(a['latency_p50_s']):>8} | "
          f"{b['aggregate_tokens_per_s'] or 0:>15.1f} {s(b['ttft_p50_s']):>8} {s(b['ttft_p99_s']):>8} {s(b['latency_p50_s']):>8} | "
          f"{('-' if ratio is None else f'{ratio:.2f}x'):>11}")
failed = [(label, level["clients"], level["failed"]) for label, run in (("loom", loom), ("llama.cpp", peer))
          for level in run["levels"] if level["failed"]]
print()
print("failed requests: " + (", ".join(f"{label} {clients} clients: {count}" for label, clients, count in failed) if failed else "none"))
print("requests per level (loom / llama.cpp): " + ", ".join(f"{a['clients']}: {a['requests']} / {b['requests']}"
                                                           for a, b in zip(loom["levels"], peer["levels"])))
PY
cat "$result"
