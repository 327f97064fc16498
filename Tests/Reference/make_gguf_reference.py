#!/usr/bin/env python3
"""Dequantisation references for Loom's GGUF reader, made with the `gguf` Python package
(llama.cpp's own reader and writer), written as one small GGUF file that the Swift tests read
(Tests/LoomNNTests/Reference/gguf/reference.gguf).

    python Tests/Reference/make_gguf_reference.py                 # regenerate the committed file
    python Tests/Reference/make_gguf_reference.py --out /tmp/ref  # write elsewhere
    python Tests/Reference/make_gguf_reference.py --check         # regenerate into a temp dir and
                                                                  # compare byte for byte

The file holds, for every tensor type Loom reads (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
Q4_K, Q5_K, Q6_K):

  quant.<TYPE>     random data stored as <TYPE>: quantised with `gguf.quants.quantize` where the
                   package can quantise that type, otherwise (the K-quants) random bytes whose
                   half-precision scales are overwritten with finite values, which makes every
                   block valid
  expected.<TYPE>  F32: `gguf.quants.dequantize` of quant.<TYPE>, the values Loom must produce bit
                   for bit

and metadata of every GGUF value type (arrays of numbers, strings and arrays included) with the
values `GGUFTests` expects. The alignment is 64 (`general.alignment`), not the default 32, so the
reader must honour the key. Everything is seeded: the file is the same on every run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "Tests" / "LoomNNTests" / "Reference" / "gguf"
FILE_NAME = "reference.gguf"
SEED = 20261130
ALIGNMENT = 64

# Shapes (outermost first) per type: several rows, one tensor of rank 3, one of rank 1.
SHAPES = {
    T.F32: (3, 40),
    T.F16: (5, 24),
    T.BF16: (70,),
    T.Q8_0: (4, 96),
    T.Q4_0: (3, 64),
    T.Q4_1: (2, 3, 64),
    T.Q5_0: (5, 32),
    T.Q5_1: (3, 96),
    T.Q4_K: (3, 256),
    T.Q5_K: (2, 512),
    T.Q6_K: (2, 2, 256),
}
# Types the package quantises; for the rest we write random blocks with finite scales.
QUANTISABLE = {T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1}
# Offsets of the half-precision scales inside each block of the other types.
SCALE_OFFSETS = {T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208,)}


def stored_bytes(qtype: T, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """The tensor as the GGUF stores it (float arrays for F32/F16, uint8 blocks otherwise)."""
    if qtype in QUANTISABLE:
        # A spread of magnitudes per row, with exact zeros and a constant block mixed in.
        data = rng.standard_normal(shape).astype(np.float32) * np.float32(rng.uniform(0.01, 3.0))
        flat = data.reshape(-1)
        flat[:7] = 0.0
        if flat.size >= 64:
            flat[32:64] = np.float32(0.25)
        return gguf.quants.quantize(data, qtype)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = int(np.prod(shape)) // block_size
    raw = rng.integers(0, 256, size=(blocks, type_size), dtype=np.uint8)
    for offset in SCALE_OFFSETS[qtype]:
        scales = (rng.standard_normal(blocks) * 0.05).astype(np.float16)
        raw[:, offset:offset + 2] = scales.view(np.uint8).reshape(blocks, 2)
    return raw.reshape(*shape[:-1], shape[-1] // block_size * type_size)


def write(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILE_NAME
    rng = np.random.default_rng(SEED)
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_custom_alignment(ALIGNMENT)
    writer.add_uint8("test.uint8", 200)
    writer.add_int8("test.int8", -100)
    writer.add_uint16("test.uint16", 60000)
    writer.add_int16("test.int16", -30000)
    writer.add_uint32("test.uint32", 4_000_000_000)
    writer.add_int32("test.int32", -2_000_000_000)
    writer.add_float32("test.float32", 0.1)
    writer.add_uint64("test.uint64", 18_000_000_000_000_000_000)
    writer.add_int64("test.int64", -9_000_000_000_000_000_000)
    writer.add_float64("test.float64", 2.718281828459045)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "héllo, 世界 🌍")
    writer.add_array("test.array.int32", [1, -2, 3])
    writer.add_array("test.array.string", ["a", "", "ç"])
    writer.add_key_value("test.array.float32", [0.5, -1.5], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.FLOAT32)
    writer.add_array("test.array.nested", [[1, 2], [3]])
    for qtype, shape in SHAPES.items():
        stored = stored_bytes(qtype, shape, rng)
        expected = gguf.quants.dequantize(stored, qtype).astype(np.float32)
        assert expected.shape == shape, (qtype.name, expected.shape, shape)
        writer.add_tensor(f"quant.{qtype.name}", stored, raw_dtype=qtype if stored.dtype == np.uint8 else None)
        writer.add_tensor(f"expected.{qtype.name}", np.ascontiguousarray(expected))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--check", nargs="?", type=Path, const=DEFAULT_OUT, default=None, metavar="DIR",
                        help="regenerate into a temporary directory and compare with DIR (default: the committed file)")
    args = parser.parse_args()
    if args.check is not None:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = write(Path(tmp)).read_bytes()
            committed_path = args.check / FILE_NAME
            committed = committed_path.read_bytes() if committed_path.exists() else b""
            if fresh != committed:
                print(f"gguf reference check FAILED: {committed_path} differs from a fresh run "
                      f"({len(committed)} vs {len(fresh)} bytes)", file=sys.stderr)
                return 1
        print("gguf reference check passed")
        return 0
    path = write(args.out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
