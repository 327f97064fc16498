#!/usr/bin/env bash
# Installs the system packages Loom needs on Debian 12 (OpenBLAS for matrix products: Loom
# opens libopenblas.so.0 at run time, see Sources/LoomTensor/BLAS.swift; Open MPI's headers and
# library, which the CMPI target builds against, and mpirun for data-parallel training and its
# check; python3 for the fuzz harness; libsimde-dev, whose portable AVX-512 intrinsics let the
# test suite run Loom's AVX-512 kernels on CPUs without AVX-512; python3-venv for the reference
# checks; chromium and chromium-driver for the chat page's browser check). Safe to run again.
set -euo pipefail
need=()
# (`ls A B` fails when either is missing: test each place on its own.)
compgen -G '/usr/lib/*/libopenblas.so.0' >/dev/null || [[ -e /usr/lib/libopenblas.so.0 ]] || need+=(libopenblas-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
pkg-config --exists ompi-c 2>/dev/null || need+=(libopenmpi-dev)
command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
command -v python3 >/dev/null 2>&1 || need+=(python3)
[[ -e /usr/include/simde/x86/avx512.h ]] || need+=(libsimde-dev)
if [[ "${1:-}" == "--python" ]]; then
    python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
    # A real browser for the chat page's check (Tests/Serve/web_page_check.py, through selenium).
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
fi
if (( ${#need[@]} )); then
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    echo "installing: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
