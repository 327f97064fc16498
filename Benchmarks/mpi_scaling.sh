#!/usr/bin/env bash
# Data-parallel scaling and ZeRO-1 memory on the `small` model (configs/small.json, context and
# batch cut so that a step takes seconds on a 2-core machine), all in one run:
#   1. throughput: 1 process × 1 thread, batch B, against mpirun -np 2 × 1 thread, batch B per
#      rank (weak scaling: twice the global batch); efficiency = tokens/s of 2 ranks / (2 × 1 rank);
#      the 2 ranks both with the all-reduce overlapped with the backward pass (the default) and
#      after it (LOOM_GRADIENT_BUCKET_MB=0);
#   2. memory: peak resident memory of each rank (GNU time) of 2 ranks without and with --zero 1.
# Tokens/s are global (all ranks), measured from metrics.jsonl between the first and the last
# step (the first step's start-up is left out).
#
#   Benchmarks/mpi_scaling.sh [steps]      # default 6; writes Benchmarks/results/mpi_scaling.txt
#
# Environment: LOOM (default: the release build), CONTEXT=256, BATCH=4 (per rank).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps="${1:-6}"
context="${CONTEXT:-256}"; batch="${BATCH:-4}"
loom="$(realpath "${LOOM:-$(swift build -c release --show-bin-path)/loom}")"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
work="$(mktemp -d /tmp/loom-mpi-scaling.XXXXXX)"
trap 'rm -rf "$work"' EXIT

"$loom" prepare --input data/pretrain/shakespeare data/pretrain/kjv_new_testament.txt --out "$work/data" --vocab-size 4096 --quiet
python3 - "$work/config.json" "$context" "$batch" "$steps" <<'PY'
import json, sys
path, context, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
config = json.load(open("configs/small.json"))
config["train"].update(context_length=context, batch_size=batch, steps=steps, warmup_steps=1,
                       eval_interval=0, checkpoint_interval=0)
json.dump(config, open(path, "w"))
PY
rate() {  # global tokens/s between the first and the last step of a run's metrics
    python3 - "$1/metrics.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
first, last = lines[0], lines[-1]
print(f"{(last['tokens'] - first['tokens']) / (last['elapsed'] - first['elapsed']):.1f}")
PY
}
run_args=(pretrain --config "$work/config.json" --data "$work/data" --threads 1 --log-interval 1000)
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
"$loom" "${run_args[@]}" --out "$work/one" 2>/dev/null
mpirun -np 2 --oversubscribe --bind-to none "$loom" "${run_args[@]}" --out "$work/two" 2>/dev/null
LOOM_GRADIENT_BUCKET_MB=0 mpirun -np 2 --oversubscribe --bind-to none -x LOOM_GRADIENT_BUCKET_MB "$loom" "${run_args[@]}" --out "$work/two-after" 2>/dev/null
one=$(rate "$work/one"); two=$(rate "$work/two"); two_after=$(rate "$work/two-after")
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

peak() {  # peak resident MiB of each rank, as "rank0 rank1"
    mpirun -np 2 --oversubscribe --bind-to none sh -c \
        '/usr/bin/time -f "%M" -o "$0.rank$OMPI_COMM_WORLD_RANK" "$@" 2>/dev/null' "$work/rss-$1" \
        "$loom" "${run_args[@]}" --steps 2 --out "$work/mem-$1" --zero "$1"
    echo "$(( $(cat "$work/rss-$1.rank0") / 1024 )) $(( $(cat "$work/rss-$1.rank1") / 1024 ))"
}
zero0=$(peak 0); zero1=$(peak 1)

{
    echo "# Benchmarks/mpi_scaling.sh $steps (CONTEXT=$context BATCH=$batch per rank), $(date -u +%Y-%m-%dT%H:%M:%SZ), loom $(git rev-parse --short HEAD)"
    echo "# CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; Open MPI $(mpirun --version | head -1 | awk '{print $NF}'), shared-memory transport"
    echo "# load average before: $load_before, after: $load_after (above 1 before the run: other work may have shared the cores;"
    echo "# say what it was when quoting these figures)."
    echo "model: configs/small.json (context $context), batch $batch per rank, $steps steps, 1 thread per process"
    echo "1 process x 1 thread:  $one tokens/s"
    echo "2 processes x 1 thread: $two tokens/s (global; all-reduce overlapped with the backward pass, ${LOOM_GRADIENT_BUCKET_MB:-4} MB buckets)"
    echo "2 processes x 1 thread: $two_after tokens/s (global; all-reduce after the backward pass, LOOM_GRADIENT_BUCKET_MB=0)"
    python3 -c "print(f'scaling efficiency: {float($two) / (2 * float($one)) * 100:.1f} % overlapped, {float($two_after) / (2 * float($one)) * 100:.1f} % not (2-rank tokens/s / (2 x 1-process tokens/s))')"
    echo "peak resident memory per rank (MiB), 2 ranks, rank 0 / rank 1:"
    echo "  --zero 0 (AdamW moments whole on every rank): ${zero0/ / / }"
    echo "  --zero 1 (moments sharded, half on each rank): ${zero1/ / / }"
} | tee Benchmarks/results/mpi_scaling.txt
