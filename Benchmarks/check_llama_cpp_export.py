#!/usr/bin/env python3
"""Checks that llama.cpp runs what `loom export gguf` writes: for each export type, the exported
file is loaded by llama.cpp (llama-cpp-python, the benchmark environment's) and by Loom (the same
file imported with `--dtype keep`, so both run the same weights), and their greedy continuations
of a few prompts are compared token for token (as text).

    BENCH=.venv-bench/bin/python
    $BENCH Benchmarks/check_llama_cpp_export.py --loom .build/release/loom --model models/smollm2

--model is a float32 Loom model directory (e.g. `loom import gguf` of SmolLM2-135M-Instruct).
Exits 1 when llama.cpp cannot load an export, or when a float export (f32, f16) continues
differently. Quantized exports run different arithmetic on each side (llama.cpp quantizes
activations with half-precision scales and keeps an f16 KV cache; Loom uses float scales and a
float32 cache), so where two candidates are nearly tied the continuations can part: for those
types the report shows where, beside the continuation of the same weights dequantized to
float32 (`import --dtype f32`), which tells whose arithmetic stayed closer to the weights.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village,",
]


def loom_continuation(loom: str, model: str, prompt: str, tokens: int) -> str:
    result = subprocess.run([loom, "generate", "--model", model, "--prompt", prompt, "--max-tokens", str(tokens),
                             "--temperature", "0", "--threads", "2"], capture_output=True, text=True, check=True)
    # `loom generate` ends its output with one newline of its own; the continuation may end with more.
    return result.stdout[:-1] if result.stdout.endswith("\n") else result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loom", default=".build/release/loom")
    parser.add_argument("--model", required=True, help="a float32 Loom model directory")
    parser.add_argument("--types", default="f32,f16,q8_0,q4_0,q4_1")
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    from llama_cpp import Llama, __version__

    failures = 0
    print(f"llama-cpp-python {__version__}; model {args.model}; {args.tokens} greedy tokens per prompt")
    with tempfile.TemporaryDirectory(prefix="loom-llama-export-") as work:
        for export_type in args.types.split(","):
            path = os.path.join(work, f"model-{export_type}.gguf")
            subprocess.run([args.loom, "export", "gguf", args.model, "--out", path, "--type", export_type],
                           capture_output=True, text=True, check=True)
            loom_model = os.path.join(work, f"loom-{export_type}")
            subprocess.run([args.loom, "import", "gguf", path, "--out", loom_model, "--dtype", "keep"],
                           capture_output=True, text=True, check=True)
            try:
                llama = Llama(model_path=path, n_ctx=256, n_threads=2, verbose=False)
            except Exception as error:  # llama.cpp refused the file
                print(f"{export_type}: llama.cpp could not load the export: {error}")
                failures += 1
                continue
            quantized = export_type not in ("f32", "f16")
            dequantized_model = os.path.join(work, f"loom-{export_type}-f32")
            if quantized:
                subprocess.run([args.loom, "import", "gguf", path, "--out", dequantized_model, "--dtype", "f32"],
                               capture_output=True, text=True, check=True)
            for prompt in PROMPTS:
                theirs = llama.create_completion(prompt, max_tokens=args.tokens, temperature=0.0, top_k=1)["choices"][0]["text"]
                ours = loom_continuation(args.loom, loom_model, prompt, args.tokens)
                if ours == theirs:
                    print(f"{export_type} {prompt!r}: same text ({len(ours)} characters): {ours[:60]!r}")
                    continue
                common = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
                if not quantized:
                    failures += 1
                    print(f"{export_type} {prompt!r}: DIFFERENT after {common} characters\n  loom:      {ours!r}\n  llama.cpp: {theirs!r}")
                    continue
                exact = loom_continuation(args.loom, dequantized_model, prompt, args.tokens)
                closer = ("loom" if exact == ours else "llama.cpp" if exact == theirs else
                          "loom" if len(os.path.commonprefix([exact, ours])) > len(os.path.commonprefix([exact, theirs])) else "llama.cpp")
                print(f"{export_type} {prompt!r}: parts after {common} characters "
                      f"the dequantized float32 run follows {closer} for longer\n  loom:      {ours!r}\n  llama.cpp: {theirs!r}\n  float32:   {exact!r}")
            del llama
    print(f"llama.cpp export check: {'passed' if failures == 0 else f'{failures} FAILED'}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
