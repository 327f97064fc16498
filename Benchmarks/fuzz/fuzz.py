#!/usr/bin/env python3
"""Fuzzes the `loom` command line with inputs mutated from valid ones.

    Benchmarks/fuzz/fuzz.py --loom .build/release/loom --cases 300 --seed 1 --serve-requests 300   # the short run (scripts/test.sh)
    Benchmarks/fuzz/fuzz.py --loom .build/release/loom --cases 3000 --seed 2026 --serve-requests 3000 --summary Benchmarks/results/fuzz/summary.md

First it builds a tiny valid world in a temporary folder (a prepared corpus, a 2-layer model
pretrained for 2 steps, instruction-task JSONL files), then runs

* the fixed cases: every input the issue found crashing, hanging or accepted (flags out of range,
  sizes of 10^12, misspelt keys, out-of-vocabulary token ids, NaN weights, full output streams),
  each of which must be rejected with a message;
* `--cases` mutated inputs: JSONL lines, configuration JSON, token shards, safetensors headers,
  config.json, tokenizer.json, GGUF files, a shard index and numeric flags, derived from the valid
  ones by seeded mutations (config.json and tokenizer.json from the model or, half the time, from
  its Llama 3-shaped copy: rope_scaling, a list eos_token_id, a BOS template, two weight shards). Mutations known to make an input invalid (an id past the vocabulary, a NaN weight, a
  GGUF file cut short, a flag out of range) must be rejected; the others may be accepted or
  rejected. A GGUF file that `loom import gguf` accepts is then used: `loom generate` on the
  imported directory is a case of its own (it may refuse the model, with a message, never crash).

With `--serve-requests N`, it then starts `loom serve` on the fuzz's model (a short context, an API
key) and sends N request bodies mutated from valid ones (chat and text completions with every
sampling field, streamed and not, token-id prompts, /tokenize, /detokenize). A request fails on a
dropped connection, a status other than 200, 400, 413 or 503, or an error status without an OpenAI
error body; after the last one the server must still answer /health.

A case fails on a crash (killed by a signal, or Swift's "Fatal error"), a hang (no exit within
--timeout seconds), an exit 0 for an input that must be rejected, or a rejection without a
message. Failing inputs are kept under --keep for reproduction. The exit status is 1 when any
case failed. Only the Python standard library is used.
"""
import argparse
import http.client
import json
import math
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

# ----------------------------------------------------------------------------------------------
# Running loom


class Outcome:
    def __init__(self, code, stderr, seconds, timed_out):
        self.code, self.stderr, self.seconds, self.timed_out = code, stderr, seconds, timed_out

    @property
    def crashed(self):
        return (self.code is not None and self.code < 0 and self.code != -signal.SIGPIPE) or "Fatal error" in self.stderr


def run_loom(loom, args, timeout, cwd, stdout_path=None, stderr_path=None):
    started = time.time()
    if stdout_path == "closed-pipe":
        # A pipe whose reader has gone (`loom generate | head -c 0`): writes fail with EPIPE.
        read_end, write_end = os.pipe()
        os.close(read_end)
        stdout = os.fdopen(write_end, "wb")
    else:
        stdout = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    err_target = open(stderr_path, "wb") if stderr_path else subprocess.PIPE
    try:
        process = subprocess.run([loom] + args, cwd=cwd, stdout=stdout, stderr=err_target, timeout=timeout,
                                 stdin=subprocess.DEVNULL)
        stderr = process.stderr.decode("utf-8", "replace") if process.stderr is not None else ""
        return Outcome(process.returncode, stderr, time.time() - started, False)
    except subprocess.TimeoutExpired as expired:
        stderr = (expired.stderr or b"").decode("utf-8", "replace") if not stderr_path else ""
        return Outcome(None, stderr, time.time() - started, True)
    finally:
        if stdout_path:
            stdout.close()
        if stderr_path:
            err_target.close()


# ----------------------------------------------------------------------------------------------
# The valid world

CORPUS = "\n".join(
    f"Line {i}: the quick brown fox jumps over the lazy dog; {i * 7} sheep, café, 数字 {i % 10}." for i in range(400))

TINY_CONFIG = {
    "model": {"vocab_size": 320, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 64,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True},
    "train": {"batch_size": 2, "context_length": 32, "steps": 2, "learning_rate": 0.003, "min_learning_rate": 0.0003,
              "warmup_steps": 1, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "grad_clip": 1.0,
              "gradient_accumulation": 1, "eval_interval": 1, "eval_batches": 1, "checkpoint_interval": 2, "seed": 1},
}


def build_world(loom, root, timeout):
    """Valid inputs every case starts from; raises if loom cannot produce them."""
    def must(args, what):
        outcome = run_loom(loom, args, timeout * 4, root)
        if outcome.code != 0:
            raise SystemExit(f"fuzz: setting up ({what}) failed with {outcome.code}:\n{outcome.stderr[-2000:]}")
    # Twenty documents, so that the validation split holds some.
    os.makedirs(os.path.join(root, "corpus"))
    for d in range(20):
        with open(os.path.join(root, "corpus", f"doc{d}.txt"), "w") as f:
            f.write("\n".join(f"Document {d}. " + line for line in CORPUS.splitlines()[d * 20:(d + 1) * 20]))
    write_json(os.path.join(root, "tiny.json"), TINY_CONFIG)
    must(["prepare", "--input", "corpus", "--out", "data", "--vocab-size", "300", "--val-fraction", "0.2",
          "--shard-tokens", "4000", "--quiet", "--min-chars", "1"], "prepare")
    must(["pretrain", "--config", "tiny.json", "--data", "data", "--out", "base", "--threads", "1", "--log-interval", "100"], "pretrain")
    must(["tasks", "--out", "tasks", "--train", "24", "--dev", "8", "--test", "8", "--seed", "3"], "tasks")
    must(["reward", "--model", "base", "--data", "tasks/rankings_train.jsonl", "--out", "rm", "--steps", "1", "--batch-size", "2",
          "--threads", "1"], "reward")
    for kind in GGUF_TYPES:
        must(["export", "gguf", "base", "--out", f"base-{kind}.gguf", "--type", kind], f"export gguf --type {kind}")
    make_llama3_shaped(root)
    must(generate_args(model="llama3"), "generate with the Llama 3-shaped model")


def make_llama3_shaped(root):
    """`base` dressed as a Llama 3.1 checkpoint is: config.json with rope_scaling llama3 and a list
    eos_token_id, a tokenizer.json whose post_processor adds a BOS (TemplateProcessing), and the
    weights in two shards with model.safetensors.index.json. The config.json, tokenizer.json
    and shard-index cases mutate these too."""
    target = copy_model(root, "llama3")
    config_path = os.path.join(target, "config.json")
    config = json.load(open(config_path))
    config["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 16}
    tokenizer_path = os.path.join(target, "tokenizer.json")
    tokenizer = json.load(open(tokenizer_path))
    ids = {token["content"]: token["id"] for token in tokenizer["added_tokens"]}
    config["eos_token_id"] = [ids["<|endoftext|>"], ids["<|im_end|>"]]
    write_json(config_path, config)
    bos = {"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}
    tokenizer["post_processor"] = {"type": "Sequence", "processors": [tokenizer["post_processor"], {
        "type": "TemplateProcessing", "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}], "pair": [],
        "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [ids["<|im_start|>"]], "tokens": ["<|im_start|>"]}}}]}
    write_json(tokenizer_path, tokenizer)
    weights = os.path.join(target, "model.safetensors")
    raw = open(weights, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    weight_map = {}
    for shard in range(2):
        name = f"model-{shard + 1:05d}-of-00002.safetensors"
        entries, blob = {}, b""
        for tensor in sorted(header)[shard::2]:
            begin, end = header[tensor]["data_offsets"]
            entries[tensor] = dict(header[tensor], data_offsets=[len(blob), len(blob) + end - begin])
            blob += raw[8 + n + begin:8 + n + end]
            weight_map[tensor] = name
        text = json.dumps(entries).encode()
        text += b" " * ((8 - len(text) % 8) % 8)
        open(os.path.join(target, name), "wb").write(struct.pack("<Q", len(text)) + text + blob)
    write_json(os.path.join(target, "model.safetensors.index.json"), {"metadata": {"total_size": len(raw) - 8 - n}, "weight_map": weight_map})
    os.remove(weights)


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f)


def copy_model(root, name, source="base"):
    target = os.path.join(root, name)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(os.path.join(root, source), target)
    return target


# ----------------------------------------------------------------------------------------------
# Commands on a (possibly mutated) input. Each returns loom arguments; paths are relative to root.

def sft_args(data="tasks/sft_train.jsonl", model="base", extra=()):
    return ["sft", "--model", model, "--data", data, "--out", "out/sft", "--steps", "1", "--batch-size", "2",
            "--threads", "1", "--log-interval", "100"] + list(extra)


def reward_args(data="tasks/rankings_train.jsonl", extra=()):
    return ["reward", "--model", "base", "--data", data, "--out", "out/reward", "--steps", "1", "--batch-size", "2",
            "--threads", "1", "--log-interval", "100"] + list(extra)


def dpo_args(data="tasks/preferences_train.jsonl", extra=()):
    return ["dpo", "--model", "base", "--data", data, "--out", "out/dpo", "--steps", "1", "--batch-size", "2",
            "--threads", "1", "--log-interval", "100"] + list(extra)


def grpo_args(prompts="tasks/prompts_train.jsonl", extra=()):
    return ["grpo", "--model", "base", "--prompts", prompts, "--out", "out/grpo", "--steps", "1", "--batch-size", "2",
            "--group-size", "2", "--max-new-tokens", "4", "--threads", "1", "--log-interval", "100"] + list(extra)


def ppo_args(prompts="tasks/prompts_train.jsonl", reward="rm", extra=()):
    return ["ppo", "--policy", "base", "--reward", reward, "--prompts", prompts, "--out", "out/ppo", "--steps", "1",
            "--batch-size", "2", "--minibatches", "1", "--max-new-tokens", "4", "--threads", "1", "--log-interval", "100"] + list(extra)


def eval_args(model="base", data="data", extra=()):
    return ["eval", "--model", model, "--task", "perplexity", "--data", data, "--context", "32", "--threads", "1"] + list(extra)


def generate_args(model="base", extra=()):
    return ["generate", "--model", model, "--prompt", "Line 3: the", "--max-tokens", "4", "--threads", "1"] + list(extra)


def pretrain_args(config="tiny.json", data="data", extra=()):
    return ["pretrain", "--config", config, "--data", data, "--out", "out/pretrain", "--steps", "1", "--threads", "1",
            "--log-interval", "100"] + list(extra)


# ----------------------------------------------------------------------------------------------
# Fixed cases: (name, setup(root) -> args, expected fragment of the error message or None, stdout/stderr redirect)

def shard_bytes(tokens, dtype=2):
    header = b"LOOMTOK1" + struct.pack("<IIQ", 1, dtype, len(tokens))
    return header + b"".join(struct.pack("<H" if dtype == 2 else "<I", t) for t in tokens)


def dataset_with(root, name, tokens, dtype=2):
    """A copy of the prepared data whose every shard is replaced by `tokens`."""
    target = os.path.join(root, name)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(os.path.join(root, "data"), target)
    manifest_path = os.path.join(target, "manifest.json")
    manifest = json.load(open(manifest_path))
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            with open(os.path.join(target, shard["file"]), "wb") as f:
                f.write(shard_bytes(tokens, dtype))
            shard["tokens"] = len(tokens)
        split["tokens"] = len(tokens) * len(split["shards"])
    if "dtype" in manifest:
        manifest["dtype"] = "uint16" if dtype == 2 else "uint32"
    write_json(manifest_path, manifest)
    return name


def config_with(root, name, section, key, value, remove=None):
    config = json.loads(json.dumps(TINY_CONFIG))
    config[section][key] = value
    if remove:
        del config[section][remove]
    write_json(os.path.join(root, name), config)
    return name


def model_with_config(root, name, key, value):
    target = copy_model(root, name)
    path = os.path.join(target, "config.json")
    config = json.load(open(path))
    config[key] = value
    write_json(path, config)
    return name


def model_with_nan(root, name):
    target = copy_model(root, name)
    path = os.path.join(target, "model.safetensors")
    data = bytearray(open(path, "rb").read())
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    tensor = sorted(k for k in header if k != "__metadata__")[0]
    begin = 8 + n + header[tensor]["data_offsets"][0]
    data[begin:begin + 4] = struct.pack("<f", float("nan"))
    open(path, "wb").write(bytes(data))
    return name, tensor


def model_with_other_tokenizer(root, name):
    """The reward model with a tokenizer trained on other text (same size, other tokens)."""
    target = copy_model(root, name, source="rm")
    other = os.path.join(root, "other.txt")
    with open(other, "w") as f:
        f.write("\n".join(f"zyx {i} wvu tsr qpo {i * 3} nml kji" for i in range(300)))
    outcome = run_loom(LOOM, ["prepare", "--input", "other.txt", "--out", "other-data", "--vocab-size", "300", "--quiet",
                              "--min-chars", "1"], 120, root)
    assert outcome.code == 0, outcome.stderr
    for file in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(root, "other-data", file), os.path.join(target, file))
    return name


def fixed_cases(root):
    """(name, args, expected message fragment, stdout path or None, stderr path or None, must_fail)."""
    cases = []

    def add(name, args, expect, stdout=None, stderr=None, must_fail=True):
        cases.append((name, args, expect, stdout, stderr, must_fail))

    # Controls: the valid inputs every mutation starts from are accepted, so the mutated cases
    # reach past argument parsing into loading and training.
    for name, args in [("sft", sft_args()), ("sft --lora-rank 2", sft_args(extra=["--lora-rank", "2"])),
                       ("reward", reward_args()), ("dpo", dpo_args()), ("grpo", grpo_args()),
                       ("ppo", ppo_args()), ("eval", eval_args()), ("generate", generate_args()), ("pretrain", pretrain_args()),
                       ("tokenize", ["tokenize", "--tokenizer", "base", "--text", "Line 7: the lazy dog"])]:
        add(f"valid {name}", args, None, must_fail=False)
    # Flags out of range.
    add("dpo --beta 0", dpo_args(extra=["--beta", "0"]), "--beta")
    add("ppo --target-kl 0", ppo_args(extra=["--target-kl", "0"]), "--target-kl")
    add("ppo --minibatches 0", ppo_args(extra=["--minibatches", "0"]), "--minibatches")
    add("sft --batch-size 0", sft_args(extra=["--batch-size", "0"]), "--batch-size")
    add("generate --max-tokens=-1", generate_args(extra=["--max-tokens=-1"]), "--max-tokens")
    add("eval --limit=-1", ["eval", "--model", "base", "--task", "exact-match", "--prompts", "tasks/prompts_dev.jsonl", "--limit=-1"], "--limit")
    add("eval --context 0", eval_args(extra=["--context", "0"]), "--context")
    add("sft --val-fraction 1.5", sft_args(extra=["--val-fraction", "1.5"]), "--val-fraction")
    add("sft --max-length 1", sft_args(extra=["--max-length", "1"]), "--max-length")
    add("sft --max-length 3 (below the chat template)", sft_args(extra=["--max-length", "3"]), "--max-length")
    add("sft --learning-rate nan", sft_args(extra=["--learning-rate", "nan"]), "--learning-rate")
    add("sft --min-learning-rate above --learning-rate", sft_args(extra=["--learning-rate", "0.001", "--min-learning-rate", "0.1"]), "--min-learning-rate")
    add("grpo --group-size 1", grpo_args(extra=["--group-size", "1"]), "--group-size")
    add("sft --lora-rank 0", sft_args(extra=["--lora-rank", "0"]), "--lora-rank")
    add("sft --lora-rank above the layer", sft_args(extra=["--lora-rank", "100000"]), "--lora-rank")
    add("sft --lora-targets unknown", sft_args(extra=["--lora-rank", "2", "--lora-targets", "q_proj,qkv"]), "--lora-targets")
    add("dpo --lora-dropout 1", dpo_args(extra=["--lora-rank", "2", "--lora-dropout", "1"]), "--lora-dropout")
    add("grpo --lora-alpha without --lora-rank", grpo_args(extra=["--lora-alpha", "16"]), "--lora-rank")
    add("grpo --top-p 0", grpo_args(extra=["--top-p", "0"]), "--top-p")
    add("generate --top-p 2", generate_args(extra=["--top-p", "2"]), "--top-p")
    add("pretrain --threads 0", pretrain_args(extra=["--threads", "0"]), "--threads")
    add("prepare --vocab-size 10^12", ["prepare", "--input", "corpus", "--out", "out/p", "--vocab-size", "1000000000000"], "--vocab-size")
    # Configuration files.
    add("config vocab_size 10^12", pretrain_args(config=config_with(root, "c-vocab.json", "model", "vocab_size", 10 ** 12)), "vocab_size")
    add("config hidden_size 10^9", pretrain_args(config=config_with(root, "c-hidden.json", "model", "hidden_size", 10 ** 9)), "hidden_size")
    add("config batch_size 10^15", pretrain_args(config=config_with(root, "c-batch.json", "train", "batch_size", 10 ** 15)), "batch_size")
    add("config learning_rte", pretrain_args(config=config_with(root, "c-typo.json", "train", "learning_rte", 0.01, remove="learning_rate")), "did you mean \"learning_rate\"")
    add("config min_learning_rate above learning_rate", pretrain_args(config=config_with(root, "c-minlr.json", "train", "min_learning_rate", 10)), "min_learning_rate")
    add("config eval_batches 0", pretrain_args(config=config_with(root, "c-eval.json", "train", "eval_batches", 0)), "eval_batches")
    add("config.json vocab_size 10^12", generate_args(model=model_with_config(root, "m-vocab", "vocab_size", 10 ** 12)), "vocab_size")
    add("config.json vocab_size below the tokenizer", generate_args(model=model_with_config(root, "m-small-vocab", "vocab_size", 100)), "vocab_size")
    add("config.json rope_scaling yarn", generate_args(model=model_with_config(root, "m-yarn", "rope_scaling", {"rope_type": "yarn", "factor": 4.0})),
        "rope_scaling.rope_type")
    add("config.json model_type qwen2", generate_args(model=model_with_config(root, "m-qwen2", "model_type", "qwen2")), "model_type")
    add("config.json eos_token_id list outside the vocabulary", generate_args(model=model_with_config(root, "m-eos", "eos_token_id", [0, 70000])),
        "eos_token_id 70000")
    # Token ids.
    add("shard id 70000 (uint32), pretrain", pretrain_args(data=dataset_with(root, "d-70000", [5, 6, 70000] * 40, dtype=4)), "70000")
    add("shard id 0xFFFFFFFF (uint32), eval", eval_args(data=dataset_with(root, "d-ffff", [5, 6, 0xFFFFFFFF] * 40, dtype=4)), "4294967295")
    add("shard id 60000 (uint16), eval", eval_args(data=dataset_with(root, "d-60000", [5, 6, 60000] * 40)), "60000")
    add("empty validation split, eval", eval_args(data=dataset_with(root, "d-empty", [])), "holds 0 tokens")
    add("shard id = vocab size (uint16), pretrain", pretrain_args(data=dataset_with(root, "d-320", [5, 320] * 60)), "320")
    # Weights and tokenizers.
    nan_model, nan_tensor = model_with_nan(root, "m-nan")
    add("NaN weight", generate_args(model=nan_model), nan_tensor)
    other = model_with_other_tokenizer(root, "m-other-tokenizer")
    add("ppo with a reward model of another tokenizer", ppo_args(reward=other), "tokenizer")
    # Output streams.
    add("tokenize >/dev/full", ["tokenize", "--tokenizer", "base", "--text", "hello"], "standard output", stdout="/dev/full")
    add("generate >/dev/full", generate_args(), "standard output", stdout="/dev/full")
    add("generate | (closed pipe)", generate_args(), "standard output", stdout="closed-pipe")
    add("eval >/dev/full", eval_args(), "standard output", stdout="/dev/full")
    add("prepare 2>/dev/full (progress lost, run succeeds)", ["prepare", "--input", "corpus", "--out", "out/full",
                                                             "--vocab-size", "300", "--min-chars", "1"], None, stderr="/dev/full", must_fail=False)
    add("sft 2>/dev/full (progress lost, run succeeds)", sft_args(), None, stderr="/dev/full", must_fail=False)
    return cases


# ----------------------------------------------------------------------------------------------
# Mutations

INTERESTING_NUMBERS = [0, -1, 1, 2, -(2 ** 31), 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 63 - 1, 10 ** 12, 10 ** 30, 1e-45, 0.5, 1.5,
                       -0.0, 1e308, 65535, 65536, 320, 319]
INTERESTING_JSON = INTERESTING_NUMBERS + [None, True, "", "x" * 10000, [], {}, [1, 2], {"a": 1}, "\u0000", "<|endoftext|>",
                                          "<|im_start|>assistant\n", "\ud7ff" * 50]


def mutate_bytes(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(5)
        if not data:
            data += bytes([rng.randrange(256)])
        elif choice == 0:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice == 1:
            del data[rng.randrange(len(data)):]
        elif choice == 2:
            i = rng.randrange(len(data))
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice == 3:
            i = rng.randrange(len(data))
            del data[i:i + rng.randint(1, 16)]
        else:
            i = rng.randrange(len(data))
            data[i:i] = rng.choice([b'"', b"{", b"}", b"[", b"]", b",", b":", b"\\", b"\n", b"\xff", b"\xc3", b"null", b"1e999"])
    return bytes(data)


def mutate_json_value(value, rng, depth=0):
    """A structurally mutated copy: replace, delete or add a field somewhere."""
    if isinstance(value, dict) and value and depth < 4 and rng.random() < 0.8:
        value = dict(value)
        key = rng.choice(sorted(value))
        action = rng.randrange(4)
        if action == 0:
            del value[key]
        elif action == 1:
            value[key + rng.choice(["_", "x", ""]) if rng.random() < 0.5 else key[:-1]] = value.pop(key)
        else:
            value[key] = mutate_json_value(value[key], rng, depth + 1)
        return value
    if isinstance(value, list) and value and depth < 4 and rng.random() < 0.8:
        value = list(value)
        i = rng.randrange(len(value))
        action = rng.randrange(3)
        if action == 0:
            del value[i]
        elif action == 1:
            value.insert(i, rng.choice(INTERESTING_JSON))
        else:
            value[i] = mutate_json_value(value[i], rng, depth + 1)
        return value
    if isinstance(value, str) and rng.random() < 0.5:
        return value * rng.choice([0, 2, 1000]) + rng.choice(["", "\u00e9", "\U0001F600", "<|im_end|>", "\x00"])
    return rng.choice(INTERESTING_JSON)


def mutate_jsonl(text, rng):
    lines = text.splitlines()
    lines = lines[: rng.randint(2, min(len(lines), 30))]
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        if rng.random() < 0.5:
            try:
                lines[i] = json.dumps(mutate_json_value(json.loads(lines[i]), rng), ensure_ascii=rng.random() < 0.5)
                continue
            except ValueError:
                pass
        lines[i] = mutate_bytes(lines[i].encode(), rng).decode("utf-8", "replace")
    return "\n".join(lines) + rng.choice(["\n", "", "\n\n"])


# The weight types the fuzzed GGUF files start from (`loom export gguf --type`).
GGUF_TYPES = ["f32", "f16", "q8_0", "q4_1"]

# GGUF metadata value types: fixed sizes by type id (8 = string, 9 = array).
GGUF_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def gguf_fields(raw):
    """The numeric fields of a GGUF file's header, as (offset, size, what) — counts, string and
    array lengths, value types, tensor dimensions, types and offsets — and where the tensor data
    ends, so that mutations can aim at the numbers a reader must not trust."""
    fields, at = [], 0

    def number(size, what):
        nonlocal at
        fields.append((at, size, what))
        value = int.from_bytes(raw[at:at + size], "little")
        at += size
        return value

    def string(what):
        nonlocal at
        length = number(8, what + " length")
        at += length

    def value(kind, what):
        nonlocal at
        if kind == 8:
            string(what)
        elif kind == 9:
            element = number(4, what + " element type")
            count = number(8, what + " count")
            if element in (8, 9):
                for _ in range(count):
                    value(element, what)
            else:
                at += GGUF_SCALAR_SIZES[element] * count
        else:
            at += GGUF_SCALAR_SIZES[kind]

    at = 4
    number(4, "version")
    tensors = number(8, "tensor count")
    entries = number(8, "metadata count")
    alignment = 32
    for _ in range(entries):
        key_at = at + 8
        string("key")
        key = raw[key_at:at].decode("utf-8", "replace")
        kind = number(4, f"{key} type")
        if key == "general.alignment":
            alignment = int.from_bytes(raw[at:at + 4], "little")
        value(kind, key)
    infos = []
    for _ in range(tensors):
        string("tensor name")
        dims = number(4, "tensor dimension count")
        shape = [number(8, "tensor dimension") for _ in range(dims)]
        kind = number(4, "tensor type")
        offset = number(8, "tensor offset")
        infos.append((shape, kind, offset))
    header_end = at
    data = (header_end + alignment - 1) // alignment * alignment
    # Bytes per block and elements per block of the types loom exports.
    layouts = {0: (4, 1), 1: (2, 1), 8: (34, 32), 3: (20, 32), 2: (18, 32)}
    end = data
    for shape, kind, offset in infos:
        size, per = layouts[kind]
        elements = math.prod(shape)
        end = max(end, data + offset + elements // per * size)
    return fields, header_end, end


def mutate_gguf(raw, rng):
    """(mutated bytes, whether they must be rejected, what was done)."""
    fields, header_end, data_end = gguf_fields(raw)
    choice = rng.randrange(5)
    if choice == 0:
        # Cut short anywhere before the end of the last tensor: must be rejected.
        cut = rng.randrange(data_end)
        return raw[:cut], True, f"cut at {cut} of {data_end}"
    data = bytearray(raw)
    if choice in (1, 2):
        # A header number set to an interesting value: zero, one, off by one, huge.
        labels = sorted({what for _, _, what in fields})
        for _ in range(rng.randint(1, 2)):
            # A kind of field first (a tensor's type, a key's length, the tokens' count ...), then
            # one of them, so that the thousands of token strings do not crowd out the rest.
            label = rng.choice(labels)
            offset, size, what = rng.choice([field for field in fields if field[2] == label])
            old = int.from_bytes(data[offset:offset + size], "little")
            value = rng.choice([0, 1, 2, 3, 13, 31, 32, 33, 64, old - 1, old + 1, old * 2, old + 32, 2 ** 31, 2 ** 32 - 1,
                                2 ** (8 * size - 1), 2 ** (8 * size) - 1]) % (2 ** (8 * size))
            data[offset:offset + size] = value.to_bytes(size, "little")
        return bytes(data), False, f"{what} set"
    if choice == 3:
        # Random bytes in the header (keys, strings, values).
        return mutate_bytes(bytes(data[:header_end]), rng) + bytes(data[header_end:]), False, "header bytes"
    # Random bytes in the tensor data (weights and quantization scales: NaN, infinity, anything).
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(header_end, len(data))] = rng.randrange(256)
    return bytes(data), False, "data bytes"


class Mutated:
    """One mutated case: the arguments, whether the input must be rejected, and its files; `then`,
    a second command run (and judged as a case of its own) when the first one succeeds."""

    def __init__(self, kind, args, must_fail, files, then=None):
        self.kind, self.args, self.must_fail, self.files, self.then = kind, args, must_fail, files, then


def mutated_case(root, rng, index):
    kind = rng.choice(["sft-jsonl", "reward-jsonl", "dpo-jsonl", "grpo-prompts", "ppo-prompts", "config", "shard",
                       "shard-ids", "safetensors", "config.json", "tokenizer.json", "weights", "gguf", "gguf", "flag", "flag", "flag",
                       "shard-index"])
    case_dir = f"case{index}"
    os.makedirs(os.path.join(root, case_dir), exist_ok=True)
    path = lambda name: os.path.join(case_dir, name)

    def mutated_file(source, name):
        text = open(os.path.join(root, source)).read()
        with open(os.path.join(root, path(name)), "w") as f:
            f.write(mutate_jsonl(text, rng))
        return path(name)

    # Half of the runs skip malformed lines, so that the lines that still parse reach training.
    skip = ["--skip-bad-lines"] if rng.random() < 0.5 else []
    if kind == "sft-jsonl":
        return Mutated(kind, sft_args(data=mutated_file("tasks/sft_train.jsonl", "sft.jsonl"), extra=skip), False, [path("sft.jsonl")])
    if kind == "reward-jsonl":
        return Mutated(kind, reward_args(data=mutated_file("tasks/rankings_train.jsonl", "r.jsonl"), extra=skip), False, [path("r.jsonl")])
    if kind == "dpo-jsonl":
        return Mutated(kind, dpo_args(data=mutated_file("tasks/preferences_train.jsonl", "p.jsonl"), extra=skip), False, [path("p.jsonl")])
    if kind == "grpo-prompts":
        return Mutated(kind, grpo_args(prompts=mutated_file("tasks/prompts_train.jsonl", "g.jsonl"), extra=skip), False, [path("g.jsonl")])
    if kind == "ppo-prompts":
        return Mutated(kind, ppo_args(prompts=mutated_file("tasks/prompts_train.jsonl", "q.jsonl")), False, [path("q.jsonl")])
    if kind == "config":
        config = mutate_json_value(json.loads(json.dumps(TINY_CONFIG)), rng)
        text = json.dumps(config)
        if rng.random() < 0.3:
            text = mutate_bytes(text.encode(), rng).decode("utf-8", "replace")
        with open(os.path.join(root, path("config.json")), "w") as f:
            f.write(text)
        return Mutated(kind, pretrain_args(config=path("config.json")), False, [path("config.json")])
    if kind in ("shard", "shard-ids"):
        data = os.path.join(root, path("data"))
        shutil.copytree(os.path.join(root, "data"), data)
        shard = os.path.join(data, rng.choice(sorted(f for f in os.listdir(data) if f.endswith(".bin"))))
        raw = open(shard, "rb").read()
        must_fail = False
        if kind == "shard":
            raw = mutate_bytes(raw[:24], rng) + raw[24:] if rng.random() < 0.6 else mutate_bytes(raw, rng)
        else:
            # Valid header, one id at or past the vocabulary of 320: must be rejected.
            count = (len(raw) - 24) // 2
            position = 24 + 2 * rng.randrange(count)
            raw = raw[:position] + struct.pack("<H", rng.choice([320, 321, 4096, 60000, 65535])) + raw[position + 2:]
            must_fail = True
        open(shard, "wb").write(raw)
        args = pretrain_args(data=path("data")) if rng.random() < 0.5 else eval_args(data=path("data"))
        if must_fail and args[0] == "eval" and os.path.basename(shard).startswith("train"):
            must_fail = False  # eval reads only the validation split
        return Mutated(kind, args, must_fail, [path("data")])
    if kind == "gguf":
        source = rng.choice(GGUF_TYPES)
        raw, must_fail, what = mutate_gguf(open(os.path.join(root, f"base-{source}.gguf"), "rb").read(), rng)
        with open(os.path.join(root, path("model.gguf")), "wb") as f:
            f.write(raw)
        dtype = rng.choice(["f32", "keep"])
        imported = path("imported")
        return Mutated(f"gguf {source} {what}, --dtype {dtype}", ["import", "gguf", path("model.gguf"), "--out", imported, "--dtype", dtype],
                       must_fail, [path("model.gguf")], then=generate_args(model=imported))
    if kind in ("safetensors", "config.json", "tokenizer.json", "weights", "shard-index"):
        model = path("model")
        source = "llama3" if kind == "shard-index" or (kind in ("config.json", "tokenizer.json") and rng.random() < 0.5) else "base"
        shutil.copytree(os.path.join(root, source), os.path.join(root, model))
        if kind != "shard-index" and source != "base":
            kind = f"{kind}/llama3"
        must_fail = False
        if kind == "safetensors":
            file = os.path.join(root, model, "model.safetensors")
            raw = open(file, "rb").read()
            n = struct.unpack("<Q", raw[:8])[0]
            if rng.random() < 0.5:
                header = json.loads(raw[8:8 + n])
                header = mutate_json_value(header, rng)
                blob = json.dumps(header).encode()
                blob += b" " * ((8 - len(blob) % 8) % 8)
                raw = struct.pack("<Q", len(blob)) + blob + raw[8 + n:]
            else:
                raw = mutate_bytes(raw[:8 + n + 16], rng) + raw[8 + n + 16:]
            open(file, "wb").write(raw)
        elif kind == "weights":
            file = os.path.join(root, model, "model.safetensors")
            raw = bytearray(open(file, "rb").read())
            n = struct.unpack("<Q", raw[:8])[0]
            position = 8 + n + 4 * rng.randrange((len(raw) - 8 - n) // 4)
            raw[position:position + 4] = struct.pack("<f", rng.choice([float("nan"), float("inf"), float("-inf")]))
            open(file, "wb").write(bytes(raw))
            must_fail = True
        else:
            file = os.path.join(root, model, "model.safetensors.index.json" if kind == "shard-index" else kind.split("/")[0])
            text = open(file).read()
            if rng.random() < 0.6:
                text = json.dumps(mutate_json_value(json.loads(text), rng))
            else:
                text = mutate_bytes(text.encode(), rng).decode("utf-8", "replace")
            open(file, "w").write(text)
        command = rng.choice(["generate", "eval", "tokenize"] if kind.startswith("tokenizer.json") else ["generate", "eval"])
        if command == "generate":
            args = generate_args(model=model)
        elif command == "eval":
            args = eval_args(model=model)
        else:
            args = ["tokenize", "--tokenizer", model, "--text", "Line 7: the lazy dog, café 数字"]
        return Mutated(kind, args, must_fail, [model])
    # A numeric flag set to an out-of-range or odd value. Values outside the flag's range must be rejected.
    flags = [
        (sft_args, "--batch-size", lambda v: v < 1), (sft_args, "--steps", lambda v: v < 1),
        (sft_args, "--val-fraction", lambda v: not (0 < v < 1)), (sft_args, "--max-length", lambda v: v < 2),
        (sft_args, "--learning-rate", lambda v: not (v > 0) or math.isinf(v)), (sft_args, "--warmup-steps", lambda v: v < 0),
        (sft_args, "--grad-clip", lambda v: not (v >= 0) or math.isinf(v)), (sft_args, "--threads", lambda v: not (1 <= v <= 4096)),
        (sft_args, "--log-interval", lambda v: v < 1), (sft_args, "--eval-interval", lambda v: v < 0),
        (dpo_args, "--beta", lambda v: not (v > 0) or math.isinf(v)), (dpo_args, "--label-smoothing", lambda v: not (0 <= v < 0.5)),
        (ppo_args, "--minibatches", lambda v: v < 1 or v > 2), (ppo_args, "--target-kl", lambda v: not (v > 0) or math.isinf(v)),
        (ppo_args, "--ppo-epochs", lambda v: v < 1), (ppo_args, "--gamma", lambda v: not (0 <= v <= 1)),
        (grpo_args, "--group-size", lambda v: not (2 <= v <= 65536)), (grpo_args, "--top-p", lambda v: not (0 < v <= 1)),
        (grpo_args, "--temperature", lambda v: not (v > 0) or math.isinf(v)),
        (generate_args, "--max-tokens", lambda v: not (1 <= v <= 2 ** 20)), (generate_args, "--top-k", lambda v: v < 0),
        (generate_args, "--temperature", lambda v: not (v >= 0) or math.isinf(v)),
        (eval_args, "--context", lambda v: not (2 <= v <= 2 ** 20)), (eval_args, "--threads", lambda v: not (1 <= v <= 4096)),
        (pretrain_args, "--steps", lambda v: v < 1),
    ]
    builder, flag, invalid = rng.choice(flags)
    integer = flag in ("--batch-size", "--steps", "--max-length", "--warmup-steps", "--threads", "--log-interval", "--eval-interval",
                       "--minibatches", "--ppo-epochs", "--group-size", "--max-tokens", "--top-k", "--context")
    value = rng.choice([-1, 0, 1, 2, 3, 2 ** 31, 2 ** 62, -(2 ** 40)] if integer else [-1.0, 0.0, 1e-45, 0.3, 1.0, 1.5, 1e30, float("nan"), float("inf")])
    text = str(value) if integer else ("nan" if math.isnan(value) else "inf" if math.isinf(value) else repr(value))
    must_fail = invalid(value)
    # Sizes the machine cannot hold in a few seconds are not a fair test of the checks.
    if not must_fail and integer and value >= 2 ** 31 and flag in ("--steps", "--max-length", "--max-tokens", "--context", "--warmup-steps",
                                                                   "--log-interval", "--eval-interval", "--ppo-epochs", "--top-k"):
        value, text = 3, "3"
    return Mutated("flag " + builder.__name__.replace("_args", "") + " " + flag, builder(extra=[f"{flag}={text}"]), must_fail, [])


# ----------------------------------------------------------------------------------------------
# Requests to `loom serve`

SERVE_REQUESTS = [
    ("/v1/chat/completions", {"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Line 3: the"}],
                              "max_tokens": 4, "temperature": 0.7, "top_p": 0.9, "seed": 3, "stop": ["\n"], "n": 2, "logprobs": True,
                              "top_logprobs": 2, "stream": False}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "text", "text": "give json"}]}], "max_tokens": 6,
                              "response_format": {"type": "json_object"}, "stream": True, "stream_options": {"include_usage": True},
                              "logit_bias": {"5": 10}}),
    ("/v1/completions", {"prompt": ["Line 3: the", "Document 1."], "max_tokens": 4, "logprobs": 2, "presence_penalty": 0.5,
                         "frequency_penalty": 0.5, "top_k": 5}),
    ("/v1/completions", {"prompt": [[1, 2, 3], [4, 5]], "max_tokens": 3, "stream": True}),
    ("/tokenize", {"prompt": "Line 3: the lazy dog"}),
    ("/tokenize", {"messages": [{"role": "user", "content": "hi"}]}),
    ("/detokenize", {"tokens": [1, 2, 3]}),
]


def serve_request(port, path, body, timeout):
    """(status, body) of one POST, or (None, the error) when the connection failed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json", "Authorization": "Bearer fuzz"})
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as error:
        return None, repr(error).encode()
    finally:
        connection.close()


def serve_problem(status, body):
    """Why a response to a (possibly malformed) request is wrong, or None."""
    if status is None:
        return f"no response ({body.decode(errors='replace')})"
    if status not in (200, 400, 413, 503):
        return f"HTTP {status}"
    if status != 200:
        try:
            error = json.loads(body)["error"]
            if not (isinstance(error, dict) and error.get("message")):
                return f"HTTP {status} without an error message"
        except (ValueError, KeyError, TypeError):
            return f"HTTP {status} without an OpenAI error body"
    return None


def fuzz_server(root, rng, requests, timeout, judge):
    """Mutated requests against `loom serve` on the fuzz's model; each is judged as a case."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Serve"))
    from serve_process import LoomServer  # standard library only
    with LoomServer(LOOM, os.path.join(root, "base"), api_key="fuzz",
                    extra_args=["--context", "64", "--parallel", "4", "--threads", "1"], startup_timeout=timeout * 2) as server:
        for _ in range(requests):
            path, valid = rng.choice(SERVE_REQUESTS)
            if rng.random() < 0.7:
                body = json.dumps(mutate_json_value(json.loads(json.dumps(valid)), rng)).encode()
            else:
                body = mutate_bytes(json.dumps(valid).encode(), rng)
            started = time.time()
            status, answer = serve_request(server.port, path, body, timeout)
            outcome = Outcome(0 if status == 200 else 1, "", time.time() - started, False)
            judge("serve " + path, [path, body.decode(errors="replace")[:300]], outcome, False, None, [],
                  problem=serve_problem(status, answer))
        status, answer = serve_request(server.port, "/tokenize", b'{"prompt": "still there?"}', timeout)
        problem = None if status == 200 and server.alive() else \
            f"the server no longer answers: {serve_problem(status, answer) or status}" if server.alive() else "the server process exited"
        judge("serve alive at the end", ["/tokenize"], Outcome(0 if problem is None else 1, "", 0, False), False, None, [], problem=problem)


LOOM = None


def dirty():
    """Whether the working tree differs from its commit (the summary says so)."""
    try:
        return subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() != ""
    except OSError:
        return False


def main():
    global LOOM
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loom", default=".build/release/loom")
    parser.add_argument("--cases", type=int, default=150, help="mutated cases (besides the fixed ones)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60, help="seconds before a case counts as a hang")
    parser.add_argument("--keep", default=None, help="folder for the inputs of failing cases")
    parser.add_argument("--summary", default=None, help="write a Markdown summary here")
    parser.add_argument("--serve-requests", type=int, default=0, help="mutated requests to `loom serve` after the command-line cases")
    args = parser.parse_args()
    LOOM = os.path.abspath(args.loom)
    if not os.access(LOOM, os.X_OK):
        raise SystemExit(f"fuzz: {LOOM} is not an executable; build it with `swift build -c release --product loom`")
    rng = random.Random(args.seed)
    started = time.time()
    root = tempfile.mkdtemp(prefix="loom-fuzz-")
    failures, counts, rejected, accepted = [], {}, 0, 0
    slowest = (0.0, "")

    def judge(name, arguments, outcome, must_fail, expect, files, fixed_case=False, problem=None):
        nonlocal rejected, accepted, slowest
        # Tallied by input kind: "fixed", a case's first word ("gguf"), or "serve" and its endpoint.
        words = name.split(" ")
        kind = "fixed" if fixed_case else " ".join(words[:2]) if words[0] == "serve" else words[0]
        tally = counts.setdefault(kind, [0, 0])
        tally[0] += 1
        tally[1] += outcome.code != 0
        if outcome.seconds > slowest[0]:
            slowest = (outcome.seconds, name)
        # Server requests come with their verdict (serve_problem); command runs are judged here.
        if words[0] == "serve":
            pass
        elif outcome.timed_out:
            problem = f"hang (no exit within {args.timeout:.0f} s)"
        elif outcome.crashed:
            problem = f"crash (exit {outcome.code})"
        elif outcome.code == 0 and must_fail:
            problem = "exit 0 for an input that must be rejected"
        elif outcome.code != 0 and not must_fail and expect is None and name.startswith(("prepare 2>", "sft 2>", "valid ")):
            problem = f"a valid input failed with {outcome.code}"
        elif outcome.code != 0 and not outcome.stderr.strip() and "2>/dev/full" not in name:
            problem = f"exit {outcome.code} without a message"
        elif outcome.code != 0 and expect is not None and expect not in outcome.stderr:
            problem = f"message does not mention {expect!r}"
        if outcome.code == 0:
            accepted += 1
        else:
            rejected += 1
        if problem:
            failures.append({"case": name, "problem": problem, "args": arguments, "stderr": outcome.stderr[-600:]})
            print(f"FAIL {name}: {problem}\n  loom {' '.join(arguments)}\n  {outcome.stderr.strip()[-400:]}", file=sys.stderr)
            if args.keep:
                target = os.path.join(args.keep, f"failure{len(failures)}")
                os.makedirs(target, exist_ok=True)
                write_json(os.path.join(target, "case.json"), failures[-1])
                for file in files:
                    source = os.path.join(root, file)
                    (shutil.copytree if os.path.isdir(source) else shutil.copy)(source, os.path.join(target, os.path.basename(file)))

    try:
        build_world(LOOM, root, args.timeout)
        fixed = fixed_cases(root)
        for name, arguments, expect, stdout, stderr, must_fail in fixed:
            # Each case writes into a fresh out/: training commands refuse a directory that
            # already holds a run (without --resume or --overwrite).
            shutil.rmtree(os.path.join(root, "out"), ignore_errors=True)
            outcome = run_loom(LOOM, arguments, args.timeout, root, stdout_path=stdout, stderr_path=stderr)
            judge(name, arguments, outcome, must_fail, expect, [], fixed_case=True)
        for index in range(args.cases):
            case = mutated_case(root, rng, index)
            outcome = run_loom(LOOM, case.args, args.timeout, root)
            judge(case.kind, case.args, outcome, case.must_fail, None, case.files)
            if case.then and outcome.code == 0:
                then = run_loom(LOOM, case.then, args.timeout, root)
                judge(case.kind.split(" ")[0] + "-then-" + case.then[0], case.then, then, False, None, case.files)
            shutil.rmtree(os.path.join(root, f"case{index}"), ignore_errors=True)
            shutil.rmtree(os.path.join(root, "out"), ignore_errors=True)
        if args.serve_requests:
            fuzz_server(root, rng, args.serve_requests, args.timeout, judge)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    seconds = time.time() - started
    total = len(fixed) + args.cases
    served = f", {args.serve_requests} server requests" if args.serve_requests else ""
    line = (f"fuzz: {total} cases ({len(fixed)} fixed, {args.cases} mutated{served}, seed {args.seed}) in {seconds:.0f} s: "
            f"{rejected} rejected, {accepted} accepted, {len(failures)} failed; slowest {slowest[0]:.1f} s ({slowest[1]})")
    print(line)
    print("  " + ", ".join(f"{kind} {tally[1]}/{tally[0]} rejected" for kind, tally in sorted(counts.items())))
    if args.summary:
        os.makedirs(os.path.dirname(os.path.abspath(args.summary)), exist_ok=True)
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
        except OSError:
            commit = ""
        changed = dirty()  # before the summary itself is rewritten
        with open(args.summary, "w") as f:
            f.write("# Fuzzing the loom command line\n\n")
            serve = f"--serve-requests {args.serve_requests} " if args.serve_requests else ""
            f.write(f"`python3 Benchmarks/fuzz/fuzz.py --loom .build/release/loom --cases {args.cases} --seed {args.seed} {serve}"
                    f"--summary {args.summary}`\n\n")
            f.write(line.replace("fuzz: ", "") + "\n\n")
            f.write(f"Built from commit {commit or '(unknown)'}{' with local changes' if commit and changed else ''}. "
                    "A case is one `loom` run; \"rejected\" means a non-zero exit with an error message.\n\n")
            f.write("| input | cases | rejected with a message | accepted |\n|---|---|---|---|\n")
            for kind in sorted(counts):
                f.write(f"| {kind} | {counts[kind][0]} | {counts[kind][1]} | {counts[kind][0] - counts[kind][1]} |\n")
            f.write("\nFailures:\n\n" if failures else "\nNo crash, hang, wrongly accepted input or silent rejection.\n")
            for failure in failures:
                f.write(f"- {failure['case']}: {failure['problem']} — `loom {' '.join(failure['args'])}`\n")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
