#!/usr/bin/env python3
"""The peer of `loom bench tokenize`: the same measurements with Hugging Face `tokenizers`
(Rust), single-threaded, printing the same JSON keys.

    RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false \\
        python Benchmarks/tokenize_peer.py --file text.txt --vocab-size 4096 [--tokenizer gpt2.json] --json

Training uses the same recipe as Loom: the special tokens <|endoftext|>, <|pad|>,
<|im_start|>, <|im_end|>, the 256-byte initial alphabet, and Loom's pre-tokenizer pattern
(a Split on the regex recorded in Loom's tokenizer.json, then ByteLevel without regex), so
both sides do the same amount of work. Encoding is one `encode` call on the whole text:
first right after training ("cold"), then the best of three ("warm"); and, as corpora are
usually encoded, line by line (`encode_batch` of the lines, best of three).
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def loom_pattern():
    """The pre-tokenizer regex, read from the committed Loom-trained tokenizer.json."""
    path = os.path.join(ROOT, "Tests", "LoomTokenizerTests", "Reference", "loom-tiny", "tokenizer.json")
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)["pre_tokenizer"]
    return spec["pretokenizers"][0]["pattern"]["Regex"]


def measure_encode(tokenizer, text, megabytes):
    """(cold MB/s, warm MB/s, tokens) for the whole text in one call, and warm MB/s for the
    text encoded line by line in one `encode_batch` (how corpora are usually encoded)."""
    start = time.perf_counter()
    tokens = len(tokenizer.encode(text).ids)
    cold = megabytes / (time.perf_counter() - start)
    warm = 0.0
    for _ in range(3):
        start = time.perf_counter()
        tokenizer.encode(text)
        warm = max(warm, megabytes / (time.perf_counter() - start))
    lines = text.splitlines(keepends=True)
    lines_warm = 0.0
    for _ in range(3):
        start = time.perf_counter()
        tokenizer.encode_batch(lines)
        lines_warm = max(lines_warm, megabytes / (time.perf_counter() - start))
    return cold, warm, tokens, lines_warm


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--tokenizer", help="also measure encoding with this tokenizer.json")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with open(args.file, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    megabytes = len(text.encode("utf-8")) / 1e6

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(loom_pattern()), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=args.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    start = time.perf_counter()
    tokenizer.train_from_iterator([text], trainer=trainer)
    train_seconds = time.perf_counter() - start

    cold, warm, tokens, lines = measure_encode(tokenizer, text, megabytes)
    result = {
        "implementation": "tokenizers",
        "file": args.file,
        "bytes": len(text.encode("utf-8")),
        "vocab_size": tokenizer.get_vocab_size(),
        "train_seconds": round(train_seconds, 3),
        "encode_tokens": tokens,
        "encode_cold_mb_per_s": round(cold, 2),
        "encode_mb_per_s": round(warm, 2),
        "encode_lines_mb_per_s": round(lines, 2),
    }
    if args.tokenizer:
        pretrained = Tokenizer.from_file(args.tokenizer)
        cold, warm, tokens, lines = measure_encode(pretrained, text, megabytes)
        result.update({
            "pretrained_encode_tokens": tokens,
            "pretrained_encode_cold_mb_per_s": round(cold, 2),
            "pretrained_encode_mb_per_s": round(warm, 2),
            "pretrained_encode_lines_mb_per_s": round(lines, 2),
        })
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    sys.exit(main())
