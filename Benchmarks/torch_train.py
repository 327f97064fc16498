#!/usr/bin/env python3
"""PyTorch peer for `loom bench train`: trains Hugging Face's LlamaForCausalLM on random token
batches with the same model and optimizer settings as a Loom config, and reports throughput.

    python Benchmarks/torch_train.py --config configs/tiny.json --threads 1
    python Benchmarks/torch_train.py --config configs/tiny.json --threads 2 --compile --json
    python Benchmarks/torch_train.py --config configs/small.json --threads 1 --autocast bf16

The config is Loom's format: a "model" object with Hugging Face Llama fields and a "train" object
(batch_size, context_length, learning_rate, weight_decay, beta1, beta2, eps, grad_clip). Each step
is what a Loom training step is: forward, mean cross-entropy loss (labels = inputs, shifted inside
transformers), backward, gradient clipping by global norm, AdamW with weight decay on 2-D weight
matrices only. Tokens per step = batch_size × context_length. The learning-rate schedule is left
out (a constant rate costs the same). With --autocast bf16 the forward pass and the loss run under
torch.autocast("cpu", dtype=torch.bfloat16) (bf16 matrix products, fp32 weights and optimizer),
the peer of `loom bench train --precision bf16`. Set up the environment with scripts/setup_python.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_parameters",
    "tie_word_embeddings", "head_dim", "hidden_act", "attention_bias", "mlp_bias",
)
TRAIN_DEFAULTS = dict(learning_rate=3e-4, weight_decay=0.1, beta1=0.9, beta2=0.95, eps=1e-8, grad_clip=1.0)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="Loom config JSON (e.g. configs/tiny.json)")
    p.add_argument("--threads", type=int, required=True, help="torch.set_num_threads (intra-op threads)")
    p.add_argument("--steps", type=int, default=10, help="measured steps (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2; compilation happens here)")
    p.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    p.add_argument("--attn", choices=("eager", "sdpa"), default="eager", help="attention implementation (default eager)")
    p.add_argument("--sdpa", action="store_true", help="same as --attn sdpa")
    p.add_argument("--batch-size", type=int, help="override train.batch_size")
    p.add_argument("--context-length", type=int, help="override train.context_length")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--autocast", choices=("none", "bf16"), default="none",
                   help="run forward and loss under torch.autocast('cpu', dtype=torch.bfloat16) (default none: fp32)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p.parse_args()


def system_busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (Linux), or None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def fail(args: argparse.Namespace, message: str, mode: str) -> int:
    if args.json:
        print(json.dumps({"framework": "pytorch", "mode": mode, "threads": args.threads, "error": message}))
    else:
        print(f"error: {message}", file=sys.stderr)
    return 1


def main() -> int:
    args = parse_args()
    mode = "compile" if args.compile else "eager"
    attn = "sdpa" if args.sdpa else args.attn
    try:
        with open(args.config) as f:
            config = json.load(f)
        model_cfg = config["model"]
        train_cfg = {**TRAIN_DEFAULTS, **config.get("train", {})}
        batch_size = args.batch_size or int(train_cfg["batch_size"])
        context_length = args.context_length or int(train_cfg["context_length"])
    except (OSError, ValueError, KeyError) as e:
        return fail(args, f"{args.config}: cannot read the config: {e!r}", mode)

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    hf_config = LlamaConfig(**{k: v for k, v in model_cfg.items() if k in MODEL_FIELDS}, attn_implementation=attn)
    model = LlamaForCausalLM(hf_config).float().train()
    model.config.use_cache = False
    n_params = sum(p.numel() for p in model.parameters())  # a tied matrix counts once

    # Decay on 2-D weight matrices only, as Loom's AdamW does.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": float(train_cfg["weight_decay"])},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    adamw = dict(lr=float(train_cfg["learning_rate"]),
                 betas=(float(train_cfg["beta1"]), float(train_cfg["beta2"])), eps=float(train_cfg["eps"]))
    try:
        # The fused kernel: measured on the tiny config, 1.9 ms a step against 10 ms for the
        # default per-tensor loop (1 thread). Loom's AdamW is likewise one fused loop.
        optimizer = torch.optim.AdamW(groups, fused=True, **adamw)
    except (RuntimeError, ValueError):
        optimizer = torch.optim.AdamW(groups, foreach=True, **adamw)
    grad_clip = float(train_cfg.get("grad_clip") or 0.0)

    step_model = model
    if args.compile:
        try:
            step_model = torch.compile(model)
        except Exception as e:  # noqa: BLE001 — report any compile failure as a result
            return fail(args, f"torch.compile failed: {e!r}", mode)

    vocab = int(model_cfg["vocab_size"])
    generator = torch.Generator().manual_seed(args.seed)

    def train_step() -> float:
        tokens = torch.randint(0, vocab, (batch_size, context_length), generator=generator)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast == "bf16"):
            loss = step_model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    step_times: list[float] = []
    try:
        warmup_start = time.perf_counter()
        for _ in range(args.warmup):
            train_step()
        warmup_seconds = time.perf_counter() - warmup_start
        last_loss = float("nan")
        cpu_start = time.process_time()
        busy_start = system_busy_seconds()
        for _ in range(args.steps):
            start = time.perf_counter()
            last_loss = train_step()
            step_times.append(time.perf_counter() - start)
    except Exception as e:  # noqa: BLE001
        if args.compile:
            traceback.print_exc(file=sys.stderr)
            return fail(args, f"training under torch.compile failed: {e!r}", mode)
        raise

    cpu_seconds = time.process_time() - cpu_start
    busy_end = system_busy_seconds()
    total = sum(step_times)
    tokens_per_step = batch_size * context_length
    result = {
        "framework": "pytorch",
        "mode": mode,
        "threads": args.threads,
        "tokens_per_second": tokens_per_step * len(step_times) / total if total > 0 else None,
        "ms_per_step": 1000 * total / max(len(step_times), 1),
        "ms_per_step_median": 1000 * statistics.median(step_times) if step_times else None,
        "parameters": n_params,
        "steps": len(step_times),
        "warmup_steps": args.warmup,
        "warmup_seconds": warmup_seconds,
        "batch_size": batch_size,
        "context_length": context_length,
        "attention": attn,
        "autocast": args.autocast,
        "last_loss": last_loss,
        # CPU time of this process over the measured steps ÷ (wall time × threads): well below 1
        # means the threads waited, often because other work shared the cores.
        "cpu_utilization": cpu_seconds / (total * args.threads) if total > 0 else None,
        # Cores kept busy by everything else on the machine meanwhile (Linux): above ~0.1 the
        # figures are contaminated by contention; rerun on an idle machine.
        "other_cpu_load": (max(0.0, (busy_end - busy_start - cpu_seconds) / total)
                           if busy_start is not None and busy_end is not None and total > 0 else None),
        "config": args.config,
        "torch_version": torch.__version__,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"pytorch {torch.__version__} {mode} ({attn} attention"
              + (", autocast bf16" if args.autocast == "bf16" else "") + f"), {args.threads} thread(s), "
              f"{n_params:,} parameters, batch {batch_size} × {context_length}")
        print(f"  {result['tokens_per_second']:,.0f} tokens/s, {result['ms_per_step']:.1f} ms/step "
              f"(median {result['ms_per_step_median']:.1f}) over {len(step_times)} steps "
              f"after {args.warmup} warmup ({warmup_seconds:.1f} s); last loss {last_loss:.4f}; "
              f"CPU utilization {result['cpu_utilization']:.2f}")
        if result["other_cpu_load"] is not None:
            print(f"  other processes kept {result['other_cpu_load']:.2f} cores busy meanwhile"
                  + (" (contended: rerun on an idle machine)" if result["other_cpu_load"] > 0.1 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
