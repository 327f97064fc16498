#!/usr/bin/env python3
"""transformers peer for `loom bench generate`: greedy decoding at batch 1 with the KV cache
on a randomly initialised LlamaForCausalLM of a Loom config's shape, and its throughput.

    python Benchmarks/torch_generate.py --config configs/tiny.json --threads 1 --tokens 200 --json

The prompt is `--prompt-length` random tokens; generation is greedy with no stop token, so
exactly `--tokens` tokens are produced. Prefill time is one `generate` call for a single new
token; decode tokens/s = (tokens − 1) ÷ (time of the full call − that prefill time), i.e. the
forward passes and greedy picks after the first token, as `loom bench generate` measures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta",
    "tie_word_embeddings", "head_dim",
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--prompt-length", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="best of this many timed runs")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.tokens < 2 or args.prompt_length < 1 or args.threads < 1:
        print("error: --tokens must be ≥ 2, --prompt-length and --threads ≥ 1", file=sys.stderr)
        return 2

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    with open(args.config) as f:
        model_cfg = json.load(f)["model"]
    config = LlamaConfig(**{k: v for k, v in model_cfg.items() if k in MODEL_FIELDS})
    config.bos_token_id = config.eos_token_id = config.pad_token_id = None
    model = LlamaForCausalLM(config).float().eval()
    prompt = torch.randint(0, config.vocab_size, (1, args.prompt_length), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(prompt)

    def run(new_tokens: int) -> tuple[float, int]:
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(prompt, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 do_sample=False, use_cache=True, pad_token_id=0)
        return time.perf_counter() - start, out.shape[1] - prompt.shape[1]

    run(4)  # warm-up
    prefill = min(run(1)[0] for _ in range(args.repeats))
    full, produced = min(run(args.tokens) for _ in range(args.repeats))
    result = {
        "framework": "transformers",
        "threads": args.threads,
        "tokens": produced,
        "prompt_length": args.prompt_length,
        "prefill_tokens_per_second": args.prompt_length / prefill,
        "decode_tokens_per_second": (produced - 1) / max(full - prefill, 1e-9),
        "config": args.config,
        "torch_version": torch.__version__,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"transformers greedy, {args.threads} thread(s): prefill {result['prefill_tokens_per_second']:.0f} tok/s, "
              f"decode {result['decode_tokens_per_second']:.0f} tok/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
