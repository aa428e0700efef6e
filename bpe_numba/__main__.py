"""``python -m bpe_numba [SIZE_MB] [VOCAB_SIZE]``: train on the embedded synthetic corpus (no download).

Generates a deterministic TinyStories-like corpus (default 10 MB) in a temporary directory, trains it
with ``<|endoftext|>`` as the special token (default vocab 10 000), prints the time per phase and a few
merges, and removes the corpus again.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

USAGE = "usage: python -m bpe_numba [SIZE_MB (default 10)] [VOCAB_SIZE (default 10000)]"


def main(argv: list[str]) -> int:
    try:
        size_mb = float(argv[0]) if len(argv) > 0 else 10.0
        vocab_size = int(argv[1]) if len(argv) > 1 else 10_000
        if len(argv) > 2 or size_mb <= 0:
            raise ValueError
    except ValueError:
        print(USAGE, file=sys.stderr)
        return 2

    from . import train_bpe
    from .synthetic import SPECIAL_TOKEN, write_corpus

    with tempfile.TemporaryDirectory(prefix="bpe_numba_demo_") as tmp:
        path = Path(tmp) / "synthetic_stories.txt"
        t0 = time.perf_counter()
        n_bytes = write_corpus(path, int(size_mb * 1_000_000), seed=0)
        t1 = time.perf_counter()
        print(f"generated {n_bytes / 1e6:.1f} MB of synthetic stories in {t1 - t0:.1f} s")
        timings: dict = {}
        try:
            vocab, merges = train_bpe(path, vocab_size, [SPECIAL_TOKEN], timings=timings)
        except (ValueError, TypeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        t2 = time.perf_counter()
    print(
        f"trained vocab {len(vocab):,} ({len(merges):,} merges) in {t2 - t1:.2f} s: "
        f"pre-tokenize {timings['pretokenize']:.2f} s ({timings['unique_pretokens']:,} unique pre-tokens), "
        f"merges {timings['merges']:.2f} s (the first run includes Numba compilation, cached afterwards)"
    )
    print("first merges:", ", ".join(f"{a!r}+{b!r}" for a, b in merges[:5]))
    if merges:
        longest = max((a + b for a, b in merges), key=len)
        print(f"longest merged token: {longest.decode('utf-8', 'replace')!r} ({len(longest)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
