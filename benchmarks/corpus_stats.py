"""Vocabulary-growth statistics of a corpus (Heaps' law), to compare the synthetic corpus with real text.

    python benchmarks/corpus_stats.py FILE --at 1MB,10MB,100MB        # prefixes of a real file
    python benchmarks/corpus_stats.py --synthetic --at 1MB,10MB,100MB [--seed 0]

For each prefix size: documents (split on <|endoftext|>), words (runs of letters), distinct words (case-
sensitive and lowercased), words seen once, and distinct GPT-2 pre-tokens (what a BPE trainer counts).
Run it on TinyStoriesV2-GPT4-train.txt and on the synthetic corpus to see how close they are.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from generate_corpus import parse_size  # noqa: E402

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
SPECIAL = "<|endoftext|>"


def chunks_from_file(path: str, block: int = 8 << 20):
    """Decoded text in blocks that end at a document boundary (or end of file)."""
    sep = SPECIAL.encode()
    carry = b""
    with open(path, "rb") as f:
        while True:
            data = f.read(block)
            if not data:
                break
            data = carry + data
            cut = data.rfind(sep)
            if cut < 0:
                carry = data
                continue
            cut += len(sep)
            carry = data[cut:]
            yield data[:cut]
    if carry:
        yield carry


def chunks_synthetic(n: int, seed: int):
    try:
        from bpe_numba.synthetic import _iter_chunks
    except ImportError:
        sys.path.insert(0, os.path.join(HERE, ".."))
        from bpe_numba.synthetic import _iter_chunks
    yield from _iter_chunks(n, seed)


def main(argv=None) -> int:
    import regex

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?")
    ap.add_argument("--synthetic", action="store_true", help="measure bpe_numba.synthetic instead of a file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--at", default="1MB,10MB,100MB", help="comma-separated prefix sizes")
    ap.add_argument("--top", type=int, default=0, help="also print the N most common pre-tokens")
    a = ap.parse_args(argv)
    sizes = sorted(parse_size(x) for x in a.at.split(","))
    if a.synthetic == bool(a.file):
        ap.error("give a FILE or --synthetic")
    src = chunks_synthetic(sizes[-1], a.seed) if a.synthetic else chunks_from_file(a.file)
    word_re = regex.compile(r"\p{L}+")
    pat = regex.compile(GPT2_PATTERN)
    words: collections.Counter = collections.Counter()
    pretok: collections.Counter = collections.Counter()
    done = docs = 0
    pending = list(sizes)
    print(f"{'prefix':>10} {'docs':>9} {'words':>11} {'distinct':>9} {'lower':>8} {'hapax':>8} "
          f"{'pretokens':>10} {'bytes/doc':>9}")

    def report(label):
        lower = collections.Counter()
        for w, k in words.items():
            lower[w.lower()] += k
        nw = sum(words.values())
        hapax = sum(1 for v in words.values() if v == 1)
        print(f"{label:>10} {docs:>9,} {nw:>11,} {len(words):>9,} {len(lower):>8,} {hapax:>8,} "
              f"{len(pretok):>10,} {done / max(docs, 1):>9.0f}", flush=True)

    for chunk in src:
        text = chunk.decode("utf-8")
        for doc in text.split(SPECIAL):
            if done >= pending[0]:
                break
            nb = len(doc.encode("utf-8"))
            docs += doc.strip() != ""
            words.update(word_re.findall(doc))
            pretok.update(pat.findall(doc))
            done += nb + len(SPECIAL)
            while pending and done >= pending[0]:
                report(f"{pending.pop(0) / 1e6:g} MB")
            if not pending:
                break
        if not pending:
            break
    for p in pending:
        report(f"all({done / 1e6:.1f} MB)")
        break
    if a.top:
        print(pretok.most_common(a.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
