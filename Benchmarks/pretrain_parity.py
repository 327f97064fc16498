#!/usr/bin/env python3
"""Training-dynamics parity: Loom's `loom pretrain` against PyTorch (transformers
LlamaForCausalLM) on the same configuration, initial weights, data order and schedule.

Two subcommands (Benchmarks/pretrain_parity.sh runs both around `loom pretrain`):

    # 1. the shared initial weights: a float32 LlamaForCausalLM saved in Hugging Face format,
    #    which `loom pretrain --init-from DIR` loads too
    python Benchmarks/pretrain_parity.py init --config configs/tiny.json --out /tmp/parity/init

    # 2. train the same model in PyTorch and compare with Loom's metrics.jsonl
    python Benchmarks/pretrain_parity.py train --config configs/tiny.json --data /tmp/parity/data \
        --init /tmp/parity/init --loom-out /tmp/parity/loom --steps 200 --threads 2

What is replicated from Loom (Sources/LoomTrain/Pretrain.swift and AdamW.swift):

* data order: `SeededRandom(seed: train.seed + 1)` (xoshiro256** seeded by SplitMix64, bit-exact
  here with Python ints), each step draws `batch_size` window starts with
  `next() % (count - context - 1)`; inputs are the window's first `context` tokens, targets the
  next ones (one draw per micro-batch with gradient accumulation);
* the loss: mean next-token cross-entropy over every position;
* the schedule: linear warmup `peak * (step + 1) / warmup`, then cosine to `min_learning_rate`
  over `train.steps - warmup`, evaluated in float32 as Loom does; it spans `train.steps` of the
  config whatever `--steps` says;
* gradient clipping by global L2 norm (torch's clip_grad_norm_, which Loom copies);
* AdamW (torch.optim.AdamW, single-tensor path), weight decay on parameters with >= 2 dims;
* validation: `windows = min(eval_batches * batch, max(1, (count - 1) / context))` windows evenly
  strided through the val split, mean loss over all their positions, at every `eval_interval`
  step and at the last step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MASK = (1 << 64) - 1
MODEL_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_parameters",
    "tie_word_embeddings", "head_dim", "hidden_act", "attention_bias", "mlp_bias",
)
# Loom's TrainSettings defaults (Sources/LoomTrain/TrainingConfiguration.swift).
TRAIN_DEFAULTS = dict(batch_size=8, context_length=128, steps=100, learning_rate=1e-3, warmup_steps=10,
                      weight_decay=0.1, beta1=0.9, beta2=0.95, eps=1e-8, grad_clip=1.0, gradient_accumulation=1,
                      eval_interval=50, eval_batches=4, checkpoint_interval=100, seed=1337)


# ---------------------------------------------------------------------------------------------
# Loom's SeededRandom (Sources/LoomTensor/Random.swift), bit-exact.

class SeededRandom:
    def __init__(self, seed: int):
        s = seed & MASK
        state = []
        for _ in range(4):
            s = (s + 0x9E3779B97F4A7C15) & MASK
            z = s
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            state.append(z ^ (z >> 31))
        self.s = state

    @staticmethod
    def _rotl(x: int, k: int) -> int:
        return ((x << k) | (x >> (64 - k))) & MASK

    def next(self) -> int:
        s = self.s
        result = (self._rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def next_int(self, bound: int) -> int:
        assert bound > 0
        return self.next() % bound


def check_rng() -> None:
    # Printed by Swift: SeededRandom(seed: 0).next().
    got = SeededRandom(0).next()
    assert got == 11091344671253066420, f"SeededRandom(0).next() = {got}, Loom gives 11091344671253066420"


# ---------------------------------------------------------------------------------------------
# Loom's token shards (Sources/LoomData/TokenShard.swift).

def read_split(data: Path, split: str):
    import numpy as np
    manifest_path = data / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if split not in manifest["splits"]:
            return None
        files = [s["file"] for s in manifest["splits"][split]["shards"]]
    else:
        files = sorted(p.name for p in data.glob(f"{split}_*.bin"))
    parts = []
    for name in files:
        raw = (data / name).read_bytes()
        magic, version, dtype, count = struct.unpack_from("<8sIIQ", raw, 0)
        if magic != b"LOOMTOK1" or version != 1 or dtype not in (2, 4):
            raise SystemExit(f"{data / name}: not a Loom token shard (magic {magic!r}, version {version}, dtype {dtype})")
        np_dtype = np.dtype("<u2") if dtype == 2 else np.dtype("<u4")
        if len(raw) - 24 != count * dtype:
            raise SystemExit(f"{data / name}: header says {count} tokens, file holds {(len(raw) - 24) / dtype}")
        parts.append(np.frombuffer(raw, dtype=np_dtype, offset=24, count=count).astype(np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Configuration, schedule.

def load_config(path: str):
    with open(path) as f:
        config = json.load(f)
    train = {**TRAIN_DEFAULTS, **config.get("train", {})}
    train.setdefault("min_learning_rate", train["learning_rate"] / 10)
    return config["model"], train


def learning_rate(step: int, train: dict, total_steps: int) -> float:
    """Loom's LearningRateSchedule.learningRate(at:), in float32 arithmetic (as Swift's Float)."""
    import numpy as np
    f = np.float32
    peak, minimum, warmup = f(train["learning_rate"]), f(train["min_learning_rate"]), int(train["warmup_steps"])
    if step < warmup:
        return float(f(peak * f(step + 1)) / f(warmup))
    if step >= total_steps:
        return float(minimum)
    progress = f(step - warmup) / f(max(1, total_steps - warmup))
    cosine = f(np.cos(f(f(np.pi) * progress)))
    return float(minimum + f(f(f(0.5) * f(peak - minimum)) * f(f(1) + cosine)))


def build_model(model_cfg: dict):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    hf_config = LlamaConfig(**{k: v for k, v in model_cfg.items() if k in MODEL_FIELDS}, attn_implementation="eager")
    model = LlamaForCausalLM(hf_config).to(torch.float32)
    model.config.use_cache = False
    return model


# ---------------------------------------------------------------------------------------------
# init: the shared starting weights.

def cmd_init(args) -> int:
    import torch
    model_cfg, _ = load_config(args.config)
    torch.manual_seed(args.seed)
    model = build_model(model_cfg)
    # Loom's own scheme (LlamaModel.initializeWeights), drawn with torch's generator: N(0, 0.02)
    # matrices, the residual-output projections scaled by 1/sqrt(2 * layers), norms at 1.
    layers = int(model_cfg["num_hidden_layers"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.fill_(1.0)
            elif name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                p.normal_(0.0, 0.02 / math.sqrt(2 * layers))
            else:
                p.normal_(0.0, 0.02)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr() or not model.config.tie_word_embeddings
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    print(f"init: {n} parameters (seed {args.seed}) saved to {out}")
    return 0


# ---------------------------------------------------------------------------------------------
# train: PyTorch run + comparison.

def read_loom_metrics(path: Path):
    rows = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                rows[int(r["step"])] = r
    return rows


def write_svg(path: Path, loom: dict, torch_rows: dict, title: str) -> None:
    """Two panels: per-step training loss and validation loss, Loom vs PyTorch."""
    W, H, pad_l, pad_r, pad_t, pad_b, gap = 900, 380, 60, 20, 40, 45, 70
    panel_w = (W - pad_l - pad_r - gap) / 2
    panel_h = H - pad_t - pad_b
    steps = sorted(set(loom) | set(torch_rows))
    max_step = max(steps)
    colors = {"loom": "#d62728", "torch": "#1f77b4"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>']

    def panel(x0: float, key: str, label: str, markers: bool):
        series = {"loom": [(s, loom[s][key]) for s in sorted(loom) if loom[s].get(key) is not None],
                  "torch": [(s, torch_rows[s][key]) for s in sorted(torch_rows) if torch_rows[s].get(key) is not None]}
        values = [v for pts in series.values() for _, v in pts]
        if not values:
            return
        lo, hi = min(values), max(values)
        span = hi - lo or 1.0
        lo -= 0.05 * span
        hi += 0.05 * span
        X = lambda s: x0 + panel_w * s / max_step
        Y = lambda v: pad_t + panel_h * (1 - (v - lo) / (hi - lo))
        out.append(f'<rect x="{x0}" y="{pad_t}" width="{panel_w}" height="{panel_h}" fill="none" stroke="#888"/>')
        for i in range(6):
            v = lo + (hi - lo) * i / 5
            out.append(f'<line x1="{x0}" x2="{x0 + panel_w}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#eee"/>')
            out.append(f'<text x="{x0 - 5}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
        for i in range(5):
            s = round(max_step * i / 4)
            out.append(f'<text x="{X(s):.1f}" y="{pad_t + panel_h + 15}" text-anchor="middle">{s}</text>')
        out.append(f'<text x="{x0 + panel_w / 2}" y="{pad_t + panel_h + 32}" text-anchor="middle">step</text>')
        out.append(f'<text x="{x0 + panel_w / 2}" y="{pad_t - 6}" text-anchor="middle">{label}</text>')
        for name, pts in series.items():
            d = " ".join(f"{X(s):.1f},{Y(v):.1f}" for s, v in pts)
            dash = ' stroke-dasharray="5,3"' if name == "torch" else ""
            out.append(f'<polyline points="{d}" fill="none" stroke="{colors[name]}" stroke-width="1.5"{dash}/>')
            if markers:
                for s, v in pts:
                    out.append(f'<circle cx="{X(s):.1f}" cy="{Y(v):.1f}" r="3" fill="{colors[name]}"/>')

    panel(pad_l, "loss", "training loss (per step)", False)
    panel(pad_l + panel_w + gap, "val_loss", "validation loss", True)
    lx = pad_l + panel_w - 270  # top right of the training panel, clear of the curves
    for i, (name, label) in enumerate((("loom", "Loom"), ("torch", "PyTorch (transformers LlamaForCausalLM)"))):
        y = pad_t + 15 + 16 * i
        dash = ' stroke-dasharray="5,3"' if name == "torch" else ""
        out.append(f'<line x1="{lx}" x2="{lx + 25}" y1="{y}" y2="{y}" stroke="{colors[name]}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{lx + 30}" y="{y + 4}">{label}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def cmd_train(args) -> int:
    import numpy as np
    import torch
    import torch.nn.functional as F

    check_rng()
    torch.set_num_threads(args.threads)
    model_cfg, train = load_config(args.config)
    B, T = int(train["batch_size"]), int(train["context_length"])
    accum = int(train["gradient_accumulation"])
    schedule_steps = args.schedule_steps or int(train["steps"])
    total = args.steps or int(train["steps"])
    eval_interval, eval_batches = int(train["eval_interval"]), int(train["eval_batches"])

    data = Path(args.data)
    train_tokens = read_split(data, "train")
    val_tokens = read_split(data, "val")
    if len(train_tokens) <= T + 1:
        raise SystemExit(f"{data}: train split holds {len(train_tokens)} tokens, fewer than one window")

    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM.from_pretrained(args.init, torch_dtype=torch.float32, attn_implementation="eager")
    model.config.use_cache = False
    model.train()
    vocab = model.config.vocab_size
    if int(train_tokens.max()) >= vocab:
        raise SystemExit(f"token id {int(train_tokens.max())} >= vocab_size {vocab}")

    params = [p for p in model.parameters() if p.requires_grad]  # a tied matrix appears once
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": float(train["weight_decay"])},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=float(train["learning_rate"]),
                                  betas=(float(train["beta1"]), float(train["beta2"])), eps=float(train["eps"]),
                                  foreach=False, fused=False)
    grad_clip = float(train["grad_clip"])

    rng = SeededRandom(int(train["seed"]) + 1)
    bound = len(train_tokens) - T - 1
    offsets = np.arange(T + 1)

    def sample():
        starts = np.array([rng.next_int(bound) for _ in range(B)], dtype=np.int64)
        windows = torch.from_numpy(train_tokens[starts[:, None] + offsets[None, :]])
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()

    def lm_loss(inputs, targets):
        logits = model(input_ids=inputs).logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))

    def evaluate():
        if val_tokens is None or len(val_tokens) <= T + 1:
            return None
        count = len(val_tokens)
        windows = min(eval_batches * B, max(1, (count - 1) // T))
        stride = max(T, (count - T - 1) // max(windows, 1))
        total_nats, total_tokens, w = 0.0, 0, 0
        model.eval()
        with torch.no_grad():
            while w < windows:
                rows = min(B, windows - w)
                starts = np.array([min((w + r) * stride, count - T - 1) for r in range(rows)], dtype=np.int64)
                win = torch.from_numpy(val_tokens[starts[:, None] + offsets[None, :]])
                loss = lm_loss(win[:, :-1], win[:, 1:])
                total_nats += float(loss.item()) * rows * T
                total_tokens += rows * T
                w += rows
        model.train()
        return total_nats / max(total_tokens, 1)

    print(f"torch: {sum(p.numel() for p in params)} parameters, {total} steps x {B}x{T}x{accum} tokens, "
          f"schedule over {schedule_steps} steps, {args.threads} thread(s)", flush=True)
    rows = {}
    start = time.time()
    for step in range(total):
        lr = learning_rate(step, train, schedule_steps)
        for g in optimizer.param_groups:
            g["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(accum):
            inputs, targets = sample()
            loss = lm_loss(inputs, targets)
            (loss / accum).backward()
            step_loss += float(loss.item()) / accum
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else float("inf"),
                                                         foreach=False))
        optimizer.step()
        n = step + 1
        row = {"step": n, "loss": step_loss, "lr": lr, "grad_norm": grad_norm, "elapsed": time.time() - start}
        if eval_interval > 0 and (n % eval_interval == 0 or n == total):
            v = evaluate()
            if v is not None:
                row["val_loss"] = v
        rows[n] = row
        if n % args.log_interval == 0 or "val_loss" in row or n <= 3:
            extra = f" | val {row['val_loss']:.4f}" if "val_loss" in row else ""
            print(f"torch step {n}/{total} | loss {step_loss:.6f} | lr {lr:.3e} | grad {grad_norm:.5f} | "
                  f"{time.time() - start:.0f}s{extra}", flush=True)
    torch_seconds = time.time() - start

    # ---- comparison with Loom's metrics.jsonl
    loom_dir = Path(args.loom_out)
    loom = read_loom_metrics(loom_dir / "metrics.jsonl")
    missing = [s for s in rows if s not in loom]
    if missing:
        raise SystemExit(f"{loom_dir}/metrics.jsonl lacks steps {missing[:5]}... (did loom run {total} steps?)")
    loom_seconds = max(r.get("elapsed", 0.0) for r in loom.values())
    rel = lambda a, b: abs(a - b) / abs(b)

    print()
    print(f"{'step':>5} | {'loom train':>11} | {'torch train':>11} | {'loom val':>9} | {'torch val':>9} | {'rel diff':>9}")
    print("-" * 67)
    for s in sorted(rows):
        r, l = rows[s], loom[s]
        is_eval = "val_loss" in r
        if not (is_eval or s <= 5 or s % args.table_every == 0):
            continue
        lv = f"{l['val_loss']:9.4f}" if "val_loss" in l else " " * 9
        tv = f"{r['val_loss']:9.4f}" if is_eval else " " * 9
        rd = f"{100 * rel(l['val_loss'], r['val_loss']):8.3f}%" if is_eval and "val_loss" in l else " " * 9
        print(f"{s:>5} | {l['loss']:11.6f} | {r['loss']:11.6f} | {lv} | {tv} | {rd}")

    val_steps = [s for s in sorted(rows) if "val_loss" in rows[s] and "val_loss" in loom[s]]
    val_rel = {s: rel(loom[s]["val_loss"], rows[s]["val_loss"]) for s in val_steps}
    max_val_rel = max(val_rel.values()) if val_rel else float("nan")
    train_rel = [rel(loom[s]["loss"], rows[s]["loss"]) for s in sorted(rows)]
    lr_diff = max(abs(loom[s]["lr"] - rows[s]["lr"]) / rows[s]["lr"] for s in rows)
    first = {"loom_loss": loom[1]["loss"], "torch_loss": rows[1]["loss"],
             "abs_loss_diff": abs(loom[1]["loss"] - rows[1]["loss"]),
             "loom_grad_norm": loom[1]["grad_norm"], "torch_grad_norm": rows[1]["grad_norm"],
             "rel_grad_norm_diff": rel(loom[1]["grad_norm"], rows[1]["grad_norm"])}
    print()
    print(f"step 1: loss loom {first['loom_loss']:.7f} torch {first['torch_loss']:.7f} "
          f"(|diff| {first['abs_loss_diff']:.2e}); grad norm loom {first['loom_grad_norm']:.6f} "
          f"torch {first['torch_grad_norm']:.6f} (rel {first['rel_grad_norm_diff']:.2e})")
    print(f"learning rate: max relative difference over all steps {lr_diff:.2e}")
    print(f"train loss: max relative difference {100 * max(train_rel):.3f}% "
          f"(first 10 steps {100 * max(train_rel[:10]):.4f}%)")
    print(f"validation loss: max relative difference {100 * max_val_rel:.3f}% over steps {val_steps} "
          f"({'PASS' if max_val_rel <= args.tolerance else 'FAIL'} at {100 * args.tolerance:g}%)")
    print(f"time: loom {loom_seconds:.0f}s (metrics elapsed), torch {torch_seconds:.0f}s")

    result = {
        "config": args.config, "effective_train": {k: train[k] for k in sorted(train)},
        "model": model_cfg, "steps": total, "schedule_steps": schedule_steps, "threads": args.threads,
        "init": "torch.manual_seed(%d); N(0,0.02) matrices, o_proj/down_proj N(0,0.02/sqrt(2L)), norms 1" % args.init_seed,
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "train_tokens": int(len(train_tokens)), "val_tokens": int(len(val_tokens)) if val_tokens is not None else 0,
        "step1": first, "max_rel_lr_diff": lr_diff,
        "max_rel_train_loss_diff": max(train_rel), "max_rel_val_loss_diff": max_val_rel,
        "val_rel_diff": {str(s): v for s, v in val_rel.items()},
        "tolerance": args.tolerance, "pass": bool(max_val_rel <= args.tolerance),
        "seconds": {"loom": loom_seconds, "torch": torch_seconds},
        "curves": {
            "loom": [{k: loom[s][k] for k in ("step", "loss", "lr", "grad_norm", "val_loss") if k in loom[s]} for s in sorted(rows)],
            "torch": [{k: rows[s][k] for k in ("step", "loss", "lr", "grad_norm", "val_loss") if k in rows[s]} for s in sorted(rows)],
        },
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.svg:
        title = (f"Loom vs PyTorch: {Path(args.config).name}, {total} steps, batch {B}x{T}; "
                 f"max val-loss diff {100 * max_val_rel:.2f}%")
        write_svg(Path(args.svg), loom, rows, title)
        print(f"wrote {args.svg}")
    return 0 if max_val_rel <= args.tolerance else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init", help="save the shared initial weights (Hugging Face format)")
    i.add_argument("--config", required=True)
    i.add_argument("--out", required=True)
    i.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("train", help="train in PyTorch and compare with Loom's metrics.jsonl")
    t.add_argument("--config", required=True)
    t.add_argument("--data", required=True, help="prepared dataset (loom prepare --out)")
    t.add_argument("--init", required=True, help="the directory `init` wrote (also loom's --init-from)")
    t.add_argument("--loom-out", required=True, help="loom pretrain --out (holds metrics.jsonl)")
    t.add_argument("--steps", type=int, help="steps to run (default train.steps)")
    t.add_argument("--schedule-steps", type=int, help="schedule length (default train.steps, as loom)")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--init-seed", type=int, default=0, help="recorded in the JSON only")
    t.add_argument("--tolerance", type=float, default=0.02, help="allowed relative val-loss difference")
    t.add_argument("--json", help="write both curves and the summary here")
    t.add_argument("--svg", help="write a chart of both curves here")
    t.add_argument("--log-interval", type=int, default=10)
    t.add_argument("--table-every", type=int, default=10, help="table rows: every N steps plus eval steps")
    args = p.parse_args()
    return cmd_init(args) if args.command == "init" else cmd_train(args)


if __name__ == "__main__":
    sys.exit(main())
