#!/usr/bin/env python3
"""Quantisation references for Loom's in-memory block formats (Q8_0, Q4_0, Q4_1), made with
the `gguf` Python package's `gguf.quants.quantize` (llama.cpp's reference quantisers), written
as one small GGUF file that `QuantizeReferenceTests` reads
(Tests/LoomNNTests/Reference/gguf/quantize_reference.gguf).

    python Tests/Reference/make_quantize_reference.py                 # regenerate the committed file
    python Tests/Reference/make_quantize_reference.py --check         # regenerate into a temp dir and
                                                                      # compare byte for byte

For each type the file holds

  input.<TYPE>   F32 data: normal values at several scales, plus blocks that probe the rounding
                 rules (exact zeros, a constant block, values on the half-steps of the grid, a
                 negative extreme, one huge outlier, subnormal-range scales)
  quant.<TYPE>   `gguf.quants.quantize(input, TYPE)`: the blocks Loom must write bit for bit

Everything is seeded: the file is the same on every run.
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
FILE_NAME = "quantize_reference.gguf"
SEED = 20261201
TYPES = (T.Q8_0, T.Q4_0, T.Q4_1)
ROWS, COLUMNS = 24, 96


def probe_rows(rng: np.random.Generator) -> np.ndarray:
    data = np.empty((ROWS, COLUMNS), dtype=np.float32)
    for r in range(ROWS):
        data[r] = rng.standard_normal(COLUMNS).astype(np.float32) * np.float32(10.0 ** rng.uniform(-3, 2))
    flat = data.reshape(-1, 32)                       # one row per block
    flat[0] = 0.0                                     # all zeros: d = 0
    flat[1] = np.float32(0.75)                        # constant block
    flat[2] = np.arange(32, dtype=np.float32) - 15.5  # evenly spaced, on half steps
    flat[3] = (np.arange(32, dtype=np.float32) / 2.0) - 8.0
    flat[3][5] = -127.0                               # negative extreme
    flat[4][7] = 1e4                                  # one outlier
    flat[5] = rng.standard_normal(32).astype(np.float32) * np.float32(1e-6)  # tiny scale (half subnormal range)
    flat[6] = np.linspace(-1, 1, 32, dtype=np.float32)
    return data


def write(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILE_NAME
    rng = np.random.default_rng(SEED)
    writer = gguf.GGUFWriter(str(path), arch="llama")
    for qtype in TYPES:
        data = probe_rows(rng)
        quantised = gguf.quants.quantize(data, qtype)
        writer.add_tensor(f"input.{qtype.name}", np.ascontiguousarray(data))
        writer.add_tensor(f"quant.{qtype.name}", quantised, raw_dtype=qtype)
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
                print(f"quantize reference check FAILED: {committed_path} differs from a fresh run "
                      f"({len(committed)} vs {len(fresh)} bytes)", file=sys.stderr)
                return 1
        print("quantize reference check passed")
        return 0
    path = write(args.out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
