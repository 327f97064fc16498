#!/usr/bin/env python3
"""Peers of `loom bench generate --model DIR` for Benchmarks/quant_compare.sh: prompt
processing and greedy decoding at batch 1 on a real model, in llama.cpp (llama-cpp-python, a
GGUF file) or transformers (fp32, a Hugging Face model directory).

    python Benchmarks/quant_peers.py llama_cpp --model model.gguf --threads 1 --json
    python Benchmarks/quant_peers.py transformers --model DIR --threads 1 --json

Both take `--prompt-length` random token ids (seeded) and produce `--tokens` greedy tokens with
no stop token; the best of `--repeats` runs is reported, as `loom bench generate` does.
llama.cpp: prompt time = one `eval` of the whole prompt (n_batch ≥ prompt); decode = the
following `eval`s of one token each, the next token the argmax of the last logits.
transformers: prompt time = one forward pass over the prompt; decode tokens/s =
(tokens − 1) ÷ (time of `generate` for `tokens` tokens − time of `generate` for 1 token).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def llama_cpp_rates(args: argparse.Namespace) -> tuple[float, float, str]:
    import numpy as np
    import llama_cpp

    llm = llama_cpp.Llama(model_path=args.model, n_ctx=args.prompt_length + args.tokens + 8, n_batch=512,
                          n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    rng = np.random.default_rng(3)
    prompt = [int(t) for t in rng.integers(0, llm.n_vocab(), size=args.prompt_length)]
    best_prompt = best_decode = 0.0
    for _ in range(args.repeats):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        prompt_seconds = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.tokens):
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            llm.eval([token])
        decode_seconds = time.perf_counter() - start
        best_prompt = max(best_prompt, args.prompt_length / prompt_seconds)
        best_decode = max(best_decode, args.tokens / decode_seconds)
    return best_prompt, best_decode, f"llama-cpp-python {llama_cpp.__version__}"


def transformers_rates(args: argparse.Namespace) -> tuple[float, float, str]:
    import torch
    import transformers
    from transformers import LlamaForCausalLM

    torch.set_num_threads(args.threads)
    model = LlamaForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    prompt = torch.randint(0, vocab, (1, args.prompt_length), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(prompt)

    def generate(new_tokens: int) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(prompt, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                           do_sample=False, use_cache=True, pad_token_id=0, eos_token_id=None)
        return time.perf_counter() - start

    best_prompt = best_decode = 0.0
    for _ in range(args.repeats):
        start = time.perf_counter()
        with torch.inference_mode():
            model(prompt, attention_mask=mask)
        best_prompt = max(best_prompt, args.prompt_length / (time.perf_counter() - start))
        one = generate(1)
        full = generate(args.tokens)
        best_decode = max(best_decode, (args.tokens - 1) / max(full - one, 1e-9))
    return best_prompt, best_decode, f"transformers {transformers.__version__}, torch {torch.__version__}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("framework", choices=["llama_cpp", "transformers"])
    p.add_argument("--model", required=True, help="GGUF file (llama_cpp) or model directory (transformers)")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--prompt-length", type=int, default=128)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.tokens < 2 or args.prompt_length < 1 or args.threads < 1 or args.repeats < 1:
        print("error: --tokens must be ≥ 2; --prompt-length, --threads and --repeats ≥ 1", file=sys.stderr)
        return 2
    if not os.path.exists(args.model):
        print(f"error: {args.model} does not exist", file=sys.stderr)
        return 2
    rates = llama_cpp_rates(args) if args.framework == "llama_cpp" else transformers_rates(args)
    result = {"framework": args.framework, "model": args.model, "threads": args.threads,
              "prompt_tokens_per_second": rates[0], "decode_tokens_per_second": rates[1], "version": rates[2]}
    print(json.dumps(result) if args.json else
          f"{args.framework}: prompt {rates[0]:.0f} tok/s, decode {rates[1]:.1f} tok/s ({args.threads} thread(s); {rates[2]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
