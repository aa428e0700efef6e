"""The textbook pure-Python BPE trainer, as a speed baseline (and a second exactness check).

    python benchmarks/baseline_python.py FILE VOCAB [SPECIAL ...] [--merges-out M.txt]

What most CS336 solutions look like once they stop rescanning the corpus on every merge:

* pre-token counts: the text split on the special tokens, each piece run through the GPT-2 pattern with
  ``regex.finditer``, each match's UTF-8 bytes counted in a dict;
* words as tuples of single-byte ``bytes``, e.g. ``b" the" -> (b" ", b"t", b"h", b"e")``;
* pair counts kept incrementally, with an index from each pair to the words that contain it, so a merge
  only rewrites the words it touches and adjusts the counts of their old and new pairs;
* the best pair chosen as ``max(pairs, key=(count, pair))`` on every merge: the highest count, ties to the
  lexicographically greatest ``(bytes, bytes)``, exactly the CS336 rule.

It produces the same merges as ``bpe_numba.train_bpe`` (the benchmark suite checks that on every run).

>>> import tempfile, os
>>> d = tempfile.mkdtemp(); p = os.path.join(d, "t.txt")
>>> _ = open(p, "w").write("low low low lower lowest<|endoftext|>newer newer")
>>> train(p, 256 + 1 + 3, ["<|endoftext|>"])[1]
[(b'o', b'w'), (b'l', b'ow'), (b' ', b'low')]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import regex

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def pretoken_counts(text: str, special_tokens: list[str]) -> Counter:
    """``{pre-token bytes: count}``; special tokens are hard boundaries and are removed."""
    pattern = regex.compile(GPT2_PATTERN)
    if special_tokens:
        # longest first, so that of two specials starting at one position the longer one wins
        alts = sorted(special_tokens, key=len, reverse=True)
        pieces = regex.split("|".join(regex.escape(s) for s in alts), text)
    else:
        pieces = [text]
    counts: Counter = Counter()
    for piece in pieces:
        for m in pattern.finditer(piece):
            counts[m.group().encode("utf-8")] += 1
    return counts


def train(path: str, vocab_size: int, special_tokens: list[str] = ()) -> tuple[dict[int, bytes], list]:
    """``(vocab, merges)`` with the CS336 semantics, the way a textbook solution computes them."""
    special_tokens = list(special_tokens)
    with open(path, "rb") as f:  # no newline translation
        text = f.read().decode("utf-8")
    counts = pretoken_counts(text, special_tokens)
    del text

    words: list[tuple[bytes, ...]] = []
    freq: list[int] = []
    for tok, c in counts.items():
        words.append(tuple(tok[i : i + 1] for i in range(len(tok))))
        freq.append(c)
    del counts

    pair_counts: dict[tuple[bytes, bytes], int] = {}
    where: dict[tuple[bytes, bytes], set[int]] = {}  # pair -> ids of the words that contain it
    for wid, w in enumerate(words):
        c = freq[wid]
        for pair in zip(w, w[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + c
            where.setdefault(pair, set()).add(wid)

    vocab = {i: bytes([i]) for i in range(256)}
    for s in special_tokens:
        vocab[len(vocab)] = s.encode("utf-8")
    merges: list[tuple[bytes, bytes]] = []
    n_merges = vocab_size - len(vocab)
    while len(merges) < n_merges and pair_counts:
        best = max(pair_counts, key=lambda p: (pair_counts[p], p))
        a, b = best
        joined = a + b
        merges.append(best)
        vocab[len(vocab)] = joined
        for wid in list(where.get(best, ())):
            w = words[wid]
            c = freq[wid]
            new: list[bytes] = []
            i = 0
            while i < len(w):  # left to right, non-overlapping
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    new.append(joined)
                    i += 2
                else:
                    new.append(w[i])
                    i += 1
            new_w = tuple(new)
            for pair in zip(w, w[1:]):
                n = pair_counts[pair] - c
                if n:
                    pair_counts[pair] = n
                else:
                    del pair_counts[pair]
                ws = where.get(pair)
                if ws is not None:
                    ws.discard(wid)
                    if not ws:
                        del where[pair]
            for pair in zip(new_w, new_w[1:]):
                pair_counts[pair] = pair_counts.get(pair, 0) + c
                where.setdefault(pair, set()).add(wid)
            words[wid] = new_w
    return vocab, merges


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("vocab_size", type=int)
    ap.add_argument("specials", nargs="*")
    ap.add_argument("--merges-out", help="write the merges here, one 'HEX HEX' line each")
    a = ap.parse_args(argv)
    import time

    t0 = time.perf_counter()
    vocab, merges = train(a.file, a.vocab_size, a.specials)
    print(f"{len(merges)} merges, vocab {len(vocab)}, {time.perf_counter() - t0:.2f} s")
    if a.merges_out:
        with open(a.merges_out, "w") as f:
            f.writelines(f"{x.hex()} {y.hex()}\n" for x, y in merges)
    return 0


if __name__ == "__main__":
    sys.exit(main())
