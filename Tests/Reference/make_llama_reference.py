#!/usr/bin/env python3
"""Parity references for Loom's Llama: logits, loss, gradients and two AdamW steps from
Hugging Face `transformers` (PyTorch, CPU, float32), written as safetensors that the Swift
tests read (Tests/LoomNNTests/Reference/).

    python Tests/Reference/make_llama_reference.py                 # regenerate the committed files
    python Tests/Reference/make_llama_reference.py --out /tmp/ref  # write elsewhere
    python Tests/Reference/make_llama_reference.py --check         # regenerate into a temp dir and
                                                                   # compare with the committed files

Four cases are written under the output root:

  llama-tiny/       untied embeddings: config.json, model.safetensors, reference.safetensors
                    (input_ids, logits, loss, grad.<name>, adam.losses, adam2.<name>), reference.json
  llama-tiny-tied/  tie_word_embeddings = true: the same without the AdamW steps; the safetensors hold
                    no lm_head.weight, and the gradient of the shared matrix is grad.model.embed_tokens.weight
  llama-tiny-rope-llama3/, llama-tiny-rope-linear/
                    tied, with RoPE scaling (Llama 3.1's, and linear position interpolation) in
                    config.json's rope_parameters, as transformers 5 writes it

Everything is deterministic: a fixed seed, one thread (so reductions happen in one order), and the
same torch version as scripts/setup_python.sh installs; --check therefore expects agreement to 1e-6.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the network

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "Tests" / "LoomNNTests" / "Reference"
CHECK_TOLERANCE = 1e-6
# Parameters after two AdamW steps (lr 0.01): see compare().
ADAM_TOLERANCE = 1e-5

SEED = 1234
BATCH = 2
SEQ_LEN = 16
WEIGHT_STD = 0.1  # HF's default 0.02 leaves activations and gradients too small for a meaningful check
NORM_STD = 0.1  # RMSNorm weights are 1 + NORM_STD * randn so their gradients are exercised

MODEL = dict(
    vocab_size=97,
    hidden_size=64,
    intermediate_size=176,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
)

ADAMW = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
ADAM_STEPS = 2

# RoPE scalings: small original contexts so that, at the 16 positions of the batch, the scaled
# frequencies differ from plain RoPE's in every pair (llama3: pair 0 is blended, the others divided).
ROPE_LLAMA3 = dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=8)
ROPE_LINEAR = dict(rope_type="linear", factor=2.0)

CASES = {
    "llama-tiny": dict(tie_word_embeddings=False, adam=True),
    "llama-tiny-tied": dict(tie_word_embeddings=True, adam=False),
    "llama-tiny-rope-llama3": dict(tie_word_embeddings=True, adam=False, rope_scaling=ROPE_LLAMA3),
    "llama-tiny-rope-linear": dict(tie_word_embeddings=True, adam=False, rope_scaling=ROPE_LINEAR),
}


def build_model(tie: bool, rope_scaling: dict | None = None) -> LlamaForCausalLM:
    extra = {"rope_scaling": dict(rope_scaling)} if rope_scaling else {}
    config = LlamaConfig(**MODEL, tie_word_embeddings=tie, attn_implementation="eager", **extra)
    model = LlamaForCausalLM(config)
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        # named_parameters lists a tied matrix once, so the draw order is stable in both cases.
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.normal_(0.0, WEIGHT_STD)
            else:
                p.copy_(1.0 + NORM_STD * torch.randn_like(p))
    return model.float().train()


def loss_and_logits(model: LlamaForCausalLM, input_ids: torch.Tensor):
    # labels = inputs: transformers shifts internally; the loss is the mean cross entropy
    # over the BATCH * (SEQ_LEN - 1) predicted positions.
    out = model(input_ids=input_ids, labels=input_ids)
    return out.loss, out.logits


def generate_case(out_dir: Path, name: str, tie: bool, adam: bool, rope_scaling: dict | None = None) -> None:
    torch.manual_seed(SEED)
    model = build_model(tie, rope_scaling)
    input_ids = torch.randint(0, MODEL["vocab_size"], (BATCH, SEQ_LEN), dtype=torch.long)

    case_dir = out_dir / name
    case_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(case_dir)  # config.json + model.safetensors (transformers 5 writes safetensors only)
    (case_dir / "generation_config.json").unlink(missing_ok=True)  # not part of a Loom model directory

    params = list(model.named_parameters())
    tensors: dict[str, torch.Tensor] = {"input_ids": input_ids.to(torch.float32)}

    loss, logits = loss_and_logits(model, input_ids)
    loss.backward()
    tensors["logits"] = logits.detach().clone()
    tensors["loss"] = loss.detach().reshape(1).clone()
    for pname, p in params:
        tensors[f"grad.{pname}"] = p.grad.detach().clone()

    if adam:
        # Decay only the 2-D weight matrices, as Loom's AdamW does; norms get none.
        groups = [
            {"params": [p for _, p in params if p.ndim >= 2], "weight_decay": ADAMW["weight_decay"]},
            {"params": [p for _, p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"])
        losses = [loss.item()]
        opt.step()  # step 1 uses the gradients computed above
        for _ in range(ADAM_STEPS - 1):
            opt.zero_grad(set_to_none=True)
            loss, _ = loss_and_logits(model, input_ids)
            losses.append(loss.item())
            loss.backward()
            opt.step()
        with torch.no_grad():
            final_loss, _ = loss_and_logits(model, input_ids)
        losses.append(final_loss.item())
        # Loss before step 1, before step 2, and after step 2.
        tensors["adam.losses"] = torch.tensor(losses, dtype=torch.float32)
        for pname, p in params:
            tensors[f"adam2.{pname}"] = p.detach().clone()

    tensors = {k: v.contiguous() for k, v in tensors.items()}
    # One metadata key only: the safetensors writer orders metadata keys at random, which would
    # change the bytes on every run.
    save_file(tensors, str(case_dir / "reference.safetensors"), metadata={"format": "pt"})

    description = {
        "description": (
            "Random Llama (transformers LlamaForCausalLM, eager attention, float32, CPU, 1 thread). "
            "reference.safetensors holds input_ids (token ids stored as F32), logits [B,T,V], "
            "loss [1] (mean cross entropy with labels = input_ids, shifted inside transformers, "
            "over B*(T-1) positions), grad.<HF name> after loss.backward()"
            + (
                ", adam.losses [3] (loss before step 1, before step 2, after step 2) and adam2.<HF name>: "
                "parameters after 2 AdamW steps on the same batch, weight decay on 2-D matrices only."
                if adam
                else ". Tied embeddings: model.safetensors has no lm_head.weight; the gradient of the shared "
                "matrix (embedding + output projection) is grad.model.embed_tokens.weight."
            )
        ),
        "generator": "Tests/Reference/make_llama_reference.py",
        "rope": "rotate_half (non-interleaved halves), as transformers Llama",
        "seed": SEED,
        "batch_size": BATCH,
        "seq_len": SEQ_LEN,
        "weight_init": f"2-D weights normal(0, {WEIGHT_STD}); RMSNorm weights 1 + {NORM_STD} * randn",
        "model": {**MODEL, "tie_word_embeddings": tie, "attn_implementation": "eager",
                  **({"rope_scaling": rope_scaling} if rope_scaling else {})},
        "parameters": sum(p.numel() for _, p in params),
        "torch_version": torch.__version__,
    }
    if adam:
        description["adamw"] = {
            "lr": ADAMW["lr"],
            "beta1": ADAMW["betas"][0],
            "beta2": ADAMW["betas"][1],
            "eps": ADAMW["eps"],
            "weight_decay": ADAMW["weight_decay"],
            "weight_decay_applies_to": "2-D weight matrices only (norm weights: 0)",
            "steps": ADAM_STEPS,
            "grad_clip": None,
        }
    (case_dir / "reference.json").write_text(json.dumps(description, indent=2) + "\n")
    print(f"wrote {case_dir}: loss {tensors['loss'].item():.6f}, {description['parameters']} parameters")


def generate(out_dir: Path) -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for name, case in CASES.items():
        generate_case(out_dir, name, case["tie_word_embeddings"], case["adam"], case.get("rope_scaling"))


def compare(fresh_root: Path, committed_root: Path, tolerance: float = CHECK_TOLERANCE) -> bool:
    ok = True
    for name in CASES:
        for fname in ("model.safetensors", "reference.safetensors"):
            fresh_path, old_path = fresh_root / name / fname, committed_root / name / fname
            if not old_path.exists():
                print(f"MISSING {old_path}")
                ok = False
                continue
            fresh, old = load_file(str(fresh_path)), load_file(str(old_path))
            if set(fresh) != set(old):
                print(f"MISMATCH {name}/{fname}: names differ: only fresh {sorted(set(fresh) - set(old))}, "
                      f"only committed {sorted(set(old) - set(fresh))}")
                ok = False
            for key in sorted(set(fresh) & set(old)):
                a, b = fresh[key], old[key]
                if a.shape != b.shape or a.dtype != b.dtype:
                    print(f"MISMATCH {name}/{fname} {key}: {tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}")
                    ok = False
                    continue
                diff = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
                # Weights after two AdamW steps amplify rounding: an element whose second moment
                # is tiny moves by about lr · m / sqrt(v), so a 1e-8 change in its gradient (another
                # transformers release, another summation order) can move it by 1e-6. These get
                # ADAM_TOLERANCE; logits, losses and gradients keep `tolerance`.
                limit = max(tolerance, ADAM_TOLERANCE) if key.startswith("adam2.") else tolerance
                status = "ok  " if diff <= limit else "FAIL"
                ok &= diff <= limit
                print(f"{status} {name}/{fname} {key}: max abs diff {diff:.3g}")
        for fname in ("config.json", "reference.json"):
            fresh_json = json.loads((fresh_root / name / fname).read_text())
            old_path = committed_root / name / fname
            if not old_path.exists():
                print(f"MISSING {old_path}")
                ok = False
                continue
            old_json = json.loads(old_path.read_text())
            for volatile in ("transformers_version",):
                fresh_json.pop(volatile, None)
                old_json.pop(volatile, None)
            same = fresh_json == old_json
            ok &= same
            print(f"{'ok  ' if same else 'FAIL'} {name}/{fname}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"root to write llama-tiny/ and llama-tiny-tied/ into (default {DEFAULT_OUT})")
    parser.add_argument("--check", nargs="?", type=Path, const=DEFAULT_OUT, default=None, metavar="DIR",
                        help="regenerate into a temporary dir and compare with the files under DIR "
                             f"(default {DEFAULT_OUT}); exits 1 on any difference above --tolerance")
    parser.add_argument("--tolerance", type=float, default=CHECK_TOLERANCE,
                        help=f"max abs difference --check accepts (default {CHECK_TOLERANCE}: same torch, same CPU "
                             "kind; a CPU with other SIMD units may round matrix products differently)")
    args = parser.parse_args()

    if args.check is not None:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            ok = compare(Path(tmp), args.check, args.tolerance)
        print("reference check passed" if ok else "reference check FAILED", file=sys.stderr if not ok else sys.stdout)
        return 0 if ok else 1
    generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
