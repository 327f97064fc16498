#!/usr/bin/env bash
# Runs `loom bench tokenize` and its Python `tokenizers` peer on the same text and vocabulary
# size, single-threaded, and prints both results and the ratios (Loom ÷ tokenizers for MB/s,
# tokenizers ÷ Loom for training time; above 1 means Loom is faster).
#
#   Benchmarks/tokenize_compare.sh [TEXT_FILE] [VOCAB_SIZE]
#
# Environment: PYTHON (default /tmp/refvenv/bin/python), LOOM (default: build the release
# product with the .build-tok scratch directory and use it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/tmp/refvenv/bin/python}
VOCAB=${2:-4096}
if [[ $# -ge 1 ]]; then
    TEXT=$1
else
    TEXT=$(mktemp /tmp/loom-bench-text.XXXXXX)
    trap 'rm -f "$TEXT"' EXIT
    # The same default as `loom bench tokenize` without --file: data/pretrain/**/*.txt in byte order.
    find data/pretrain -name '*.txt' | LC_ALL=C sort | xargs cat > "$TEXT"
fi
if [[ -z "${LOOM:-}" ]]; then
    swift build -c release --scratch-path .build-tok --product loom >&2
    LOOM=.build-tok/release/loom
fi
GPT2=Tests/LoomTokenizerTests/Reference/gpt2-tokenizer.json

loom_json=$("$LOOM" bench tokenize --file "$TEXT" --vocab-size "$VOCAB" --tokenizer "$GPT2" --json)
peer_json=$(RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false "$PYTHON" Benchmarks/tokenize_peer.py \
    --file "$TEXT" --vocab-size "$VOCAB" --tokenizer "$GPT2" --json)
echo "loom:       $loom_json"
echo "tokenizers: $peer_json"
"$PYTHON" - "$loom_json" "$peer_json" <<'PY'
import json, sys
loom, peer = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"text: {loom['bytes'] / 1e6:.2f} MB, vocab {loom['vocab_size']} (tokenizers: {peer['vocab_size']})")
print(f"train seconds:            loom {loom['train_seconds']:.3f}  tokenizers {peer['train_seconds']:.3f}  speed-up x{peer['train_seconds'] / loom['train_seconds']:.2f}")
for key, label in [("encode_mb_per_s", "encode MB/s (trained)"), ("encode_cold_mb_per_s", "encode MB/s (cold)"),
                   ("encode_lines_mb_per_s", "encode MB/s (lines)"),
                   ("pretrained_encode_mb_per_s", "encode MB/s (GPT-2)"), ("pretrained_encode_cold_mb_per_s", "encode MB/s (GPT-2 cold)"),
                   ("pretrained_encode_lines_mb_per_s", "encode MB/s (GPT-2 lines)")]:
    if key in loom and key in peer:
        print(f"{label:25} loom {loom[key]:.2f}  tokenizers {peer[key]:.2f}  ratio x{loom[key] / peer[key]:.2f}")
if loom.get("pretrained_encode_tokens") != peer.get("pretrained_encode_tokens"):
    print("WARNING: GPT-2 token counts differ:", loom.get("pretrained_encode_tokens"), peer.get("pretrained_encode_tokens"))
PY
