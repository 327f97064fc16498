#!/usr/bin/env bash
# What packing costs the bf16 kernel, beside OpenBLAS's fp32 sgemm of the same product on one
# thread, in one run (Benchmarks/bf16_packing.c says what it measures). The packers run on any CPU
# with AVX2, so this is measurable where vdpbf16ps itself is not; on an AVX512-BF16 CPU set it
# beside `Benchmarks/bf16_compare.sh`'s speeds. OpenBLAS runs the core Loom chooses from cpuid.
#
#   Benchmarks/bf16_packing.sh
#
# Environment: LOOM=.build/release/loom (built if missing; only to name the core), CC=cc.
# Writes Benchmarks/results/bf16_packing.txt.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
loom="${LOOM:-.build/release/loom}"
[[ -x "$loom" ]] || swift build -c release --product loom
grep -qw avx2 /proc/cpuinfo || { echo "bf16_packing.sh: the bf16 packers need AVX2, which this CPU lacks" >&2; exit 1; }
blas=$("$loom" bench sgemm | sed -n 's/^blas: //p')
core=$(sed -n 's/.*, core \([A-Za-z0-9]*\) .*/\1/p' <<< "$blas")
binary=$(mktemp)
trap 'rm -f "$binary"' EXIT
# As SwiftPM builds CLoomCPU (-O2, no -march: the packers carry their own target attributes).
"${CC:-cc}" -O2 -I Sources/CLoomCPU/include Benchmarks/bf16_packing.c -lopenblas -lm -o "$binary"
results=Benchmarks/results/bf16_packing.txt
{
  echo "# Benchmarks/bf16_packing.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
  echo "blas: $blas; OPENBLAS_CORETYPE=$core OPENBLAS_NUM_THREADS=1"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  OPENBLAS_CORETYPE="$core" OPENBLAS_NUM_THREADS=1 "$binary"
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "pack A / pack B: op(A) and op(B) as the vdpbf16ps code packs them (bfloat16 pairs), best of 5, ns per element of the"
  echo "operand; sgemm: OpenBLAS's fp32 product of the same shape, best of 5; pack/sgemm = (pack A + pack B) / sgemm."
} | tee "$results.partial"
mv "$results.partial" "$results"
