#!/usr/bin/env python3
"""Builds the human-written question-answer files in data/alignment/ from Debian packages.

    scripts/build_alignment_data.py              # downloads the packages with apt-get and writes data/alignment/
    scripts/build_alignment_data.py --root DIR   # use packages already unpacked with `dpkg -x PKG.deb DIR`
    scripts/build_alignment_data.py --out DIR    # write somewhere else

Sources (see data/README.md, section "Alignment data", for versions and licences):
  * Python FAQ: Debian `python3.11-doc`, html/_sources/faq/*.rst.txt (reStructuredText).
    A question is a section title ending in "?"; the answer is the prose that follows it.
  * Debian FAQ, English and Simplified Chinese: Debian `debian-faq`, `debian-faq-zh-cn`,
    /usr/share/doc/debian/FAQ/debian-faq.{en,zh-cn}.txt.gz. A question is a numbered heading
    ("4.2. What kernels does Debian GNU/Linux run?") ending in "?"/"？".

Answers are kept short: whole paragraphs until about 250 characters, cut to at most 600 characters
at a sentence boundary. Markup is removed (reST roles, literals, links; URLs in parentheses after
link text in the Debian text). Nothing is written by hand. Every line is an SFT chat example:
    {"messages": [{"role": "user", ...}, {"role": "assistant", ...}], "source": "..."}
Output is deterministic (files in sorted order, questions in document order).
"""
import argparse
import glob
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile

PACKAGES = ["python3.11-doc=3.11.2-6+deb12u9", "debian-faq=11.1", "debian-faq-zh-cn=11.1"]
PY_FAQ = "usr/share/doc/python3.11/html/_sources/faq"
DEBIAN_FAQ = "usr/share/doc/debian/FAQ/debian-faq.{lang}.txt.gz"

TARGET_CHARS = 250  # keep adding paragraphs until the answer is at least this long
MAX_CHARS = 600     # then cut at the last sentence boundary before this many characters
MIN_QUESTION_CHARS = 8


# ---------------------------------------------------------------------------------------------
# shared text helpers

def is_cjk(ch):
    return ord(ch) >= 0x2E80


def is_han(ch):
    return 0x4E00 <= ord(ch) <= 0x9FFF or 0x3400 <= ord(ch) <= 0x4DBF


def join_wrapped(lines):
    """Joins hard-wrapped lines: no space between CJK characters or inside a URL broken at '/'."""
    out = ""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if not out:
            out = line
            continue
        glue = " "
        if is_cjk(out[-1]) or is_cjk(line[0]):
            # The Chinese text puts a space between Han and Latin ("是 Linux 操作系统") but none
            # next to Chinese punctuation; a line break stands for that space.
            a, b = out[-1], line[0]
            glue = " " if (is_han(a) and b.isascii() and b.isalnum()) or (is_han(b) and a.isascii() and a.isalnum()) else ""
        elif out.endswith(("/", "#", "https:", "http:")) or line.startswith("/"):
            glue = ""
        out += glue + line
    return out


SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(`*])|(?<=[。！？])")


def ends_sentence(text):
    return text.rstrip().endswith((".", "!", "?", "。", "！", "？", ".)", "」", "”"))


def collect(blocks):
    """Whole blocks until TARGET_CHARS; a block that only introduces a list or code ends it."""
    answer = []
    length = 0
    for block in blocks:
        if length >= TARGET_CHARS and ends_sentence(answer[-1]):
            break
        answer.append(block)
        length += len(block)
    while answer and answer[-1].rstrip().endswith((":", "：")):
        answer.pop()
    if not answer:
        return None
    # Lists stay lists; prose paragraphs are separated by a blank line.
    text = ""
    for block in answer:
        if not text:
            text = block
        elif block.startswith("* "):
            text += "\n" + block
        else:
            text += "\n\n" + block
    return shorten_blocks(text)


def shorten_blocks(text):
    if len(text) <= MAX_CHARS:
        return text
    cut = text[:MAX_CHARS]
    # Prefer ending at a paragraph, then at a sentence.
    paragraph = cut.rfind("\n\n")
    if paragraph >= 150 and ends_sentence(cut[:paragraph]):
        return cut[:paragraph].rstrip()
    best = None
    for match in SENTENCE_END.finditer(text):
        if match.start() > MAX_CHARS:
            break
        best = match.start()
    if best is None or best < 60:
        return None
    return text[:best].rstrip()


# ---------------------------------------------------------------------------------------------
# Python FAQ (reStructuredText)

ROLE_WITH_TARGET = re.compile(r":[a-zA-Z:]+:`([^`<]*?)\s*<[^`>]*>`")
ROLE = re.compile(r":([a-zA-Z:]+):`([^`]*)`")
LINK = re.compile(r"`([^`<]+?)\s*<[^`>]*>`__?")
NAMED_LINK = re.compile(r"`([^`]+)`__?")


def strip_rst(text):
    text = text.replace("\\ ", "")
    text = re.sub(r"\s*\[#[^\]]*\]_", "", text)               # footnote references
    text = re.sub(r"``(.+?)``", r"\1", text)                   # inline literals
    text = ROLE_WITH_TARGET.sub(lambda m: m.group(1), text)   # :ref:`text <target>`

    def role(m):
        kind, body = m.group(1), m.group(2).lstrip("!")
        if kind == "pep":
            return "PEP " + body
        if kind == "rfc":
            return "RFC " + body
        if body.startswith("~"):
            body = body[1:].split(".")[-1]
        if kind in ("func", "meth") and not body.endswith(")"):
            body += "()"
        return body

    text = ROLE.sub(role, text)
    text = LINK.sub(r"\1", text)
    text = NAMED_LINK.sub(r"\1", text)
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", text)
    text = re.sub(r"(?<![\w`])`([^`]+)`(?![\w`])", r"\1", text)  # default role
    return re.sub(r"[ \t]+", " ", text).strip()


def rst_sections(lines):
    """Yields (title, body lines) for every title underlined with = or - (overlines allowed)."""
    titles = []
    for i in range(1, len(lines)):
        under = lines[i].rstrip()
        title = lines[i - 1].rstrip()
        if (title and not title.startswith(" ") and len(under) >= 3 and set(under) <= {"="} | {"-"}
                and len(set(under)) == 1 and len(under) >= len(title) - 2):
            titles.append((i - 1, title))
    for n, (index, title) in enumerate(titles):
        end = titles[n + 1][0] if n + 1 < len(titles) else len(lines)
        body = lines[index + 2:end]
        # The next title's overline, if any, belongs to it.
        while body and (not body[-1].strip() or set(body[-1].strip()) <= {"=", "-"}):
            body = body[:-1]
        yield title, body


def rst_blocks(body):
    """(text, introduces_code) for prose paragraphs and top-level bullet items, markup stripped;
    indented text (code, block quotes, directive bodies), directives and doctest lines dropped.
    A paragraph ending in "::" introduces code: it ends with ":" and is flagged."""
    blocks = []
    paragraph = []

    def flush():
        if not paragraph:
            return
        first = paragraph[0]
        text = " ".join(l.strip() for l in paragraph)
        paragraph.clear()
        if first.startswith((" ", "\t", ".. ", ">>>")) or text.startswith(("+", "|", "=")):
            return
        introduces_code = text.endswith("::")
        if introduces_code:
            text = text[:-2].rstrip()
            text = text + ":" if text and not text.endswith(":") else text
        bullet = re.match(r"^[*-]\s+", text)
        text = strip_rst(text)
        if bullet and not text.startswith("* "):
            text = "* " + text[len(bullet.group(0)) - 1:].strip()
        if text:
            blocks.append((text, introduces_code))

    for line in body:
        if not line.strip():
            flush()
            continue
        # A new bullet item starts a new block.
        if paragraph and re.match(r"^[*-]\s+\S", line) and not paragraph[0].startswith((" ", "\t")):
            flush()
        paragraph.append(line.rstrip())
    flush()
    return blocks


def python_faq(root):
    records = []
    for path in sorted(glob.glob(os.path.join(root, PY_FAQ, "*.rst.txt"))):
        name = os.path.basename(path)[: -len(".rst.txt")]
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for title, body in rst_sections(lines):
            question = strip_rst(title)
            if not question.endswith("?") or len(question) < MIN_QUESTION_CHARS:
                continue
            blocks = []
            for text, introduces_code in rst_blocks(body):
                blocks.append(text)
                if introduces_code:
                    break  # the answer continues in code; stop before it
            answer = collect(blocks)
            if answer and not is_cross_reference(answer):
                records.append(record(question, answer, f"Python 3.11 FAQ ({name}.rst), python3.11-doc, PSF License"))
    return records


# ---------------------------------------------------------------------------------------------
# Debian FAQ (plain text rendering of the DocBook source)

DEBIAN_HEADING = re.compile(r"^(\d+(?:\.\d+)+)\.\s+(\S.*)$")


def debian_faq_lines(root, lang):
    path = os.path.join(root, DEBIAN_FAQ.format(lang=lang))
    with gzip.open(path, "rt", encoding="utf-8") as f:
        # The text rendering uses no-break spaces in "Chapter 1." headings.
        return f.read().replace("\u00a0", " ").split("\n")


def debian_faq_notice(root, lang):
    """The FAQ's copyright and permission notice, verbatim: from "Copyright ©" / "版权 ©" to the
    last indented paragraph before the date."""
    lines = debian_faq_lines(root, lang)
    start = next(i for i, l in enumerate(lines) if l.startswith(("Copyright ©", "版权 ©")))
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(" ")):
        end += 1
    return "\n".join(lines[start:end]).rstrip() + "\n"


def debian_faq(root, lang):
    lines = debian_faq_lines(root, lang)
    # Skip the table of contents: questions start at the first chapter heading.
    start = next(i for i, l in enumerate(lines) if re.match(r"^(Chapter 1\.|第 1 章)", l))
    lines = lines[start:]
    records = []
    i = 0
    while i < len(lines):
        match = DEBIAN_HEADING.match(lines[i])
        if not match:
            i += 1
            continue
        title_lines = [match.group(2)]
        i += 1
        while i < len(lines) and lines[i].strip() and not lines[i].startswith(" "):
            title_lines.append(lines[i])
            i += 1
        body = []
        while i < len(lines) and not DEBIAN_HEADING.match(lines[i]) and not re.match(r"^(Chapter \d+\.|第 \d+ 章)", lines[i]):
            body.append(lines[i])
            i += 1
        question = join_wrapped(title_lines)
        if not question.endswith(("?", "？")) or len(question) < 4:
            continue
        answer = collect(debian_blocks(body))
        if answer and not is_cross_reference(answer):
            name = "debian-faq" if lang == "en" else "debian-faq-zh-cn"
            records.append(record(question, answer, f"The Debian GNU/Linux FAQ ({lang}) section {match.group(1)}, {name} 11.1, verbatim copying permitted"))
    return records


PARAGRAPH_ENDS = (".", "!", "?", ":", ")", '"', "。", "！", "？", "：", "）", "”", "」")


def debian_blocks(body):
    """Paragraphs (4-space indent) and list items ("* " at 6 spaces); deeper text is dropped."""
    blocks = []
    current = []
    kind = None

    def flush():
        nonlocal current, kind
        if current:
            text = clean_debian(join_wrapped(current))
            code_like = current[0].strip().startswith(("$ ", "# ")) or any(re.search(r"\S {2,}\S", l.strip()) for l in current)
            if code_like or (kind == "para" and not text.endswith(PARAGRAPH_ENDS)):
                # A command example, or prose that a command example interrupts ("use the").
                blocks.append(None)
            elif text:
                blocks.append("* " + text if kind == "item" else text)
        current, kind = [], None

    for line in body:
        if not line.strip():
            flush()
            continue
        indent = len(line) - len(line.lstrip(" "))
        stripped = line.strip()
        if current:
            current.append(line)
            continue
        if indent == 4:
            kind = "para"
            current.append(line)
        elif indent == 6 and stripped.startswith("* "):
            kind = "item"
            current.append(stripped[2:])
        else:
            # Code examples, nested lists and footnotes: the answer stops here.
            if blocks:
                blocks.append(None)
    flush()
    # Keep blocks up to the first dropped block.
    kept = []
    for block in blocks:
        if block is None:
            break
        kept.append(block)
    return kept


def clean_debian(text):
    text = re.sub(r"\s*\^\[\d+\]", "", text)  # footnote markers
    # "link text (https://…) " → "link text"; a bare URL followed by the same URL keeps one.
    def drop_url(m):
        before, after = text[m.start() - 1:m.start()], text[m.end():m.end() + 1]
        return "" if (before and is_cjk(before)) and (after and is_cjk(after)) else " "
    text = re.sub(r"\s*\((https?://[^)\s]*)\)\s*", drop_url, text)
    text = re.sub(r" +([.,;:)。，；：）])", r"\1", text)
    text = re.sub(r"([（“]) +", r"\1", text)
    return re.sub(r"[ \t]+", " ", text).strip()


# ---------------------------------------------------------------------------------------------

def is_cross_reference(answer):
    """"See the next question." answers nothing on its own."""
    return len(answer) < 80 and answer.startswith(("See ", "参见", "请参见", "请参阅"))


def record(question, answer, source):
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        "source": source,
    }


def write_jsonl(path, records):
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    print(f"  {os.path.basename(path)}: {len(records)} examples, {len(data)} bytes", file=sys.stderr)


def download(work):
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=work, check=True)
    root = os.path.join(work, "root")
    for deb in sorted(glob.glob(os.path.join(work, "*.deb"))):
        subprocess.run(["dpkg", "-x", deb, root], check=True)
    return root


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", help="folder where the packages are already unpacked (dpkg -x)")
    parser.add_argument("--out", default=os.path.join(here, "..", "data", "alignment"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        root = args.root or download(work)
        print(f"== writing {os.path.abspath(args.out)}", file=sys.stderr)
        write_jsonl(os.path.join(args.out, "faq_python.jsonl"), python_faq(root))
        write_jsonl(os.path.join(args.out, "faq_debian_en.jsonl"), debian_faq(root, "en"))
        write_jsonl(os.path.join(args.out, "faq_debian_zh.jsonl"), debian_faq(root, "zh-cn"))
        # The Debian FAQ's licence asks that the notice travel with every copy, modified or not.
        notice = ("The question-answer pairs in faq_debian_en.jsonl and faq_debian_zh.jsonl are excerpts of\n"
                  "The Debian GNU/Linux FAQ, version 11.0 (Debian packages debian-faq 11.1 and debian-faq-zh-cn 11.1),\n"
                  "shortened and with links removed by scripts/build_alignment_data.py. They are distributed under\n"
                  "the FAQ's own notice, reproduced verbatim from each edition:\n\n"
                  + debian_faq_notice(root, "en") + "\n" + debian_faq_notice(root, "zh-cn"))
        path = os.path.join(args.out, "DEBIAN-FAQ-COPYRIGHT.txt")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(notice)
        os.replace(path + ".tmp", path)
        print(f"  {os.path.basename(path)}: the Debian FAQ notice", file=sys.stderr)


if __name__ == "__main__":
    main()
