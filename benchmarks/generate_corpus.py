"""Write a synthetic TinyStories-like training corpus (see bpe_numba/synthetic.py).

    python benchmarks/generate_corpus.py OUT --size 10MB [--seed 0]

Sizes: a number of bytes with an optional unit (KB/MB/GB = 10^3/10^6/10^9, KiB/MiB/GiB = 2^10/2^20/2^30).
The output ends at the first story boundary at or after the size, is written atomically, and is a pure
function of (size, seed).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"bad size {text!r}; use e.g. 500KB, 10MB, 2GB, 1GiB")
    n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output file path")
    ap.add_argument("--size", type=parse_size, default=parse_size("10MB"), help="e.g. 1MB, 10MB, 2GB")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    try:
        from bpe_numba.synthetic import write_corpus
    except ImportError:  # running from a checkout without installing
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        from bpe_numba.synthetic import write_corpus
    progress = not a.no_progress and a.size >= 50 * 10**6
    t0 = time.perf_counter()
    try:
        n = write_corpus(a.out, a.size, seed=a.seed, progress=progress)
    except KeyboardInterrupt:
        print("interrupted; nothing written", file=sys.stderr)
        return 130
    dt = time.perf_counter() - t0
    print(f"wrote {a.out}: {n:,} bytes (seed {a.seed}) in {dt:.1f} s ({n / dt / 1e6:.1f} MB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
