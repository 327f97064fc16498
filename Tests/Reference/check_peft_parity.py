#!/usr/bin/env python3
"""Parity of Loom's LoRA with the `peft` package on a random tiny Llama, live (nothing committed).

    python Tests/Reference/check_peft_parity.py [--loom .build/debug/loom]

1. A random `LlamaForCausalLM` (grouped-query attention) is saved as a Hugging Face directory, and
   `peft` adds LoRA (r 4, alpha 8) on all seven linear layers of each block, with B drawn at random
   (PEFT starts B at zero, which would leave A untested). peft saves the adapter; the logits, the
   loss and the gradients of every lora_A / lora_B on a fixed batch are the reference.
2. `swift test --filter LoRAPEFTParityTests` (with LOOM_PEFT_REFERENCE pointing here) loads the base
   and peft's adapter in Loom and compares logits, loss and gradients; then it writes an adapter of
   its own (other rank, alpha and targets) with the logits Loom computes with it, and a byte-level
   BPE tokenizer into the base directory (which `loom merge` needs; the random model has none).
3. peft loads Loom's adapter (`PeftModel.from_pretrained`) on the same base: the same logits.
4. `loom merge` folds Loom's adapter into the base; transformers loads the merged directory: the
   same logits again.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-4
SEED = 4321
MODEL = dict(vocab_size=300, hidden_size=48, intermediate_size=112, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
             tie_word_embeddings=False)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BATCH, SEQ_LEN = 2, 12


def build_base(directory: Path) -> LlamaForCausalLM:
    config = LlamaConfig(**MODEL, attn_implementation="eager")
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.1)
            else:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    model.save_pretrained(directory, safe_serialization=True)
    return model


def load_base(directory: Path) -> LlamaForCausalLM:
    model = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def saved_name(parameter_name: str) -> str:
    """peft's in-memory name (…lora_A.default.weight) as saved in adapter_model.safetensors."""
    return parameter_name.replace(".default", "")


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loom", default=str(REPO_ROOT / ".build" / "debug" / "loom"))
    args = parser.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="loom-peft-") as root:
        out = Path(root)
        base_dir, adapter_dir = out / "base", out / "peft-adapter"
        build_base(base_dir)

        # 1. peft's adapter, its logits, loss and gradients.
        model = get_peft_model(load_base(base_dir), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS,
                                                               task_type="CAUSAL_LM"))
        model.peft_config["default"].base_model_name_or_path = str(base_dir)
        # Loom initialises as peft does: A ~ U(-1/sqrt(in), 1/sqrt(in)) (Kaiming-uniform, a = sqrt 5), B = 0.
        for name, p in model.named_parameters():
            if "lora_A" in name:
                bound = p.shape[1] ** -0.5
                if not (p.abs().max().item() <= bound and p.abs().max().item() > 0.9 * bound):
                    failures.append(f"peft's initial {name} is not U(-1/sqrt(in), 1/sqrt(in)) as Loom assumes")
            if "lora_B" in name and p.abs().max().item() != 0:
                failures.append(f"peft's initial {name} is not zero as Loom assumes")
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0.0, 0.2)
        model.save_pretrained(adapter_dir)
        input_ids = torch.randint(0, MODEL["vocab_size"], (BATCH, SEQ_LEN))
        model.train()  # dropout is 0: train mode only so that gradients flow as in training
        output = model(input_ids=input_ids, labels=input_ids)
        output.loss.backward()
        reference = {"input_ids": input_ids.float(), "logits": output.logits.detach().reshape(BATCH * SEQ_LEN, -1),
                     "loss": output.loss.detach().reshape(1)}
        for name, p in model.named_parameters():
            if "lora_" in name:
                reference["grad." + saved_name(name)] = p.grad.detach().clone()
        save_file({k: v.contiguous() for k, v in reference.items()}, str(out / "reference.safetensors"))

        # 2. Loom against it, and Loom's own adapter.
        env = dict(os.environ, LOOM_PEFT_REFERENCE=str(out))
        result = subprocess.run(["swift", "test", "--skip-build", "--filter", "LoRAPEFTParityTests"], cwd=REPO_ROOT, env=env,
                                capture_output=True, text=True)
        log = result.stdout + result.stderr
        print("\n".join(line for line in log.splitlines() if "LoRAPEFT" in line or "error" in line or "max |" in line))
        if result.returncode != 0 or "Executed 0 tests" in log or "skipped" in log.lower():
            print("PEFT parity FAILED (Swift side)", file=sys.stderr)
            return 1

        # 3. peft loads Loom's adapter.
        loom_adapter = out / "loom-adapter"
        loom_logits = load_file(str(out / "loom-logits.safetensors"))["logits"]
        peft_model = PeftModel.from_pretrained(load_base(base_dir), loom_adapter)
        peft_model.eval()
        with torch.no_grad():
            logits = peft_model(input_ids=input_ids).logits.reshape(BATCH * SEQ_LEN, -1)
        difference = max_difference(logits, loom_logits)
        print(f"peft loading Loom's adapter: max |logit difference| {difference:.2e}")
        if not difference <= TOLERANCE:
            failures.append(f"peft's logits with Loom's adapter differ from Loom's by {difference}")
        with torch.no_grad():
            base_logits = load_base(base_dir)(input_ids=input_ids).logits.reshape(BATCH * SEQ_LEN, -1)
        if max_difference(base_logits, loom_logits) < 1e-2:
            failures.append("Loom's adapter barely changes the logits: the check would not see a wrong adapter")

        # 4. loom merge, loaded by transformers.
        merged_dir = out / "merged"
        merge = subprocess.run([args.loom, "merge", "--model", str(base_dir), "--adapter", str(loom_adapter), "--out", str(merged_dir)],
                               capture_output=True, text=True)
        if merge.returncode != 0:
            failures.append(f"loom merge failed: {merge.stderr.strip()}")
        else:
            with torch.no_grad():
                merged_logits = load_base(merged_dir)(input_ids=input_ids).logits.reshape(BATCH * SEQ_LEN, -1)
            difference = max_difference(merged_logits, loom_logits)
            print(f"transformers loading `loom merge`'s output: max |logit difference| {difference:.2e}")
            if not difference <= TOLERANCE:
                failures.append(f"the merged model's logits differ from Loom's adapted logits by {difference}")

    if failures:
        print("PEFT parity FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print("PEFT parity passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
