#!/usr/bin/env bash
# OpenBLAS (the core Loom chooses) against oneDNN's dnnl_sgemm on every matrix product of a
# training step of configs/tiny.json and configs/small.json (forward, input gradient, weight
# gradient of each linear layer; M = batch × context tokens), at 1 and 2 threads. The question it
# answers (issue 10): is there a faster sgemm per shape on this CPU than the one Loom uses?
#
#   Benchmarks/blas_compare.sh > Benchmarks/results/blas_compare.txt
#
# Needs libopenblas0 and libdnnl2 (apt-get install libopenblas-dev libdnnl-dev).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin="$(mktemp -d)/blas_shapes"
cc -O2 Benchmarks/blas_shapes/blas_shapes.c -ldl -lpthread -o "$bin"
core=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "# Benchmarks/blas_compare.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), CPU: $core, $(nproc) cores"
echo "# OpenBLAS $(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || echo '?'), oneDNN $(dpkg-query -W -f='${Version}' libdnnl2 2>/dev/null || echo '?')"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# name:out:in:count of each linear layer shape (count: how many a step has: q and o; k and v; gate
# and up; per layer), then lm_head (the tied embedding).
tiny="q,o:256:256:8 k,v:128:256:8 gate,up:688:256:8 down:256:688:4 head:4096:256:1"
small="q,o:512:512:16 k,v:256:512:16 gate,up:1376:512:16 down:512:1376:8 head:8192:512:1"
for threads in 1 2; do
    echo
    echo "## configs/tiny.json (M = 16 x 256), $threads thread(s)"
    OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads "$bin" 4096 $tiny
    echo
    echo "## configs/small.json (M = 8 x 512), $threads thread(s)"
    OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads "$bin" 4096 $small
done
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
