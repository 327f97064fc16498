#!/usr/bin/env python3
"""Pre-tokenizer references for the patterns GGUF files name (`tokenizer.ggml.pre`): how Python
`tokenizers` cuts seeded random strings with SmolLM's (Digits + ByteLevel), Llama 3's and
Qwen2's pre-tokenizers, written as Tests/LoomTokenizerTests/Reference/pretokenizers-expected.json
for `PreTokenizerPatternTests`.

    python Tests/Reference/make_pretokenizer_reference.py           # regenerate the committed file
    python Tests/Reference/make_pretokenizer_reference.py --check   # compare a fresh run with it

The pre-tokenizers are built exactly as Loom writes them into tokenizer.json (and, for Llama 3 and
Qwen2, as transformers builds them from a GGUF); the splits are byte ranges of the UTF-8 text.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from tokenizers import Regex, pre_tokenizers

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT = REPO_ROOT / "Tests" / "LoomTokenizerTests" / "Reference" / "pretokenizers-expected.json"

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
         r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def split_then_bytelevel(regex: str):
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(regex), behavior="isolated"),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


PATTERNS = {
    "smollm": pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                       pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]),
    "llama3": split_then_bytelevel(LLAMA3),
    "qwen2": split_then_bytelevel(QWEN2),
}

HAND_WRITTEN = [
    "Hello, world! It's 2024 and we'RE here; they'll see 12345 things.",
    "  leading spaces, trailing spaces   ",
    "line one\nline two\r\n\r\n   indented\n\n",
    "naïve café — 東京タワーは333メートル。Swift语言很好",
    "emoji 🚀🚀 👩‍💻 and flags 🇯🇵!!",
    "def f(x):\n\treturn x**2  # square\n",
    "I'M SHE'S it'ſ ’s 'x",
    "١٢٣ ² ½ Ⅻ ４５６ numbers",
]


def random_strings(count: int = 16, length: int = 120) -> list[str]:
    rng = random.Random(20261130)
    pools = [
        [chr(c) for c in range(0x20, 0x7F)],
        list(" \t\n\r\x0b\x0c\x85\xa0\u2000\u2028\u3000"),
        ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'RE", "'Ll", "\u2019s", "'\u017f"],
        [chr(c) for c in range(0x4E00, 0x4E40)] + [chr(c) for c in range(0x3041, 0x3060)],
        list("0123456789\u0660\u00b2\u00bd\u2160\uff11"),
        ["\U0001F600", "\U0001F680", "\u2764\ufe0f", "\U0001F468\u200d\U0001F469", "é", "ß", "Ж", "ا", "\u0301"],
    ]
    result = []
    for _ in range(count):
        pieces = []
        while sum(len(p) for p in pieces) < length:
            pieces.append(rng.choice(rng.choice(pools)))
        result.append("".join(pieces))
    return result


def byte_ranges(pre_tokenizer, text: str) -> list[list[int]]:
    """The pieces as [start, end) UTF-8 byte offsets (pre_tokenize_str reports characters)."""
    ranges = []
    for _, (start, end) in pre_tokenizer.pre_tokenize_str(text):
        ranges.append([len(text[:start].encode()), len(text[:end].encode())])
    return ranges


def build() -> str:
    texts = HAND_WRITTEN + random_strings()
    cases = [{"text": t, **{name: byte_ranges(p, t) for name, p in PATTERNS.items()}} for t in texts]
    # One case per line: small, and a diff shows which string changed.
    regexes = json.dumps({"llama3": LLAMA3, "qwen2": QWEN2}, ensure_ascii=False)
    lines = ",\n  ".join(json.dumps(case, ensure_ascii=False, separators=(",", ":")) for case in cases)
    return '{"regexes": ' + regexes + ',\n "cases": [\n  ' + lines + "\n]}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare a fresh run with the committed file")
    args = parser.parse_args()
    fresh = build()
    if args.check:
        if not OUT.exists() or OUT.read_text() != fresh:
            print(f"pre-tokenizer reference check FAILED: {OUT} differs from a fresh run", file=sys.stderr)
            return 1
        print("pre-tokenizer reference check passed")
        return 0
    OUT.write_text(fresh)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
