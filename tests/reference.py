"""A slow, obviously-correct BPE trainer written straight from the training contract (the README's
"Semantics in brief").

It shares no code with ``bpe_numba`` on purpose: it is the oracle the package is compared against. Every
step is the plainest Python that states the rule; speed does not matter here.

>>> reference_train_text("aaa", 258)[1]
[(b'a', b'a'), (b'aa', b'a')]
"""

from __future__ import annotations

import functools
import os
from collections import Counter

import regex

# Written out literally (not imported from bpe_numba), so the oracle cannot inherit a typo.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

_PRETOKEN_RE = regex.compile(GPT2_PATTERN)


# ---------------------------------------------------------------------------------------------------------
# Input: bytes -> text -> segments between special tokens -> pre-tokens
# ---------------------------------------------------------------------------------------------------------

def read_text(path: str | os.PathLike, errors: str = "strict") -> str:
    """Contract 1: the file's bytes decoded as UTF-8, no newline translation."""
    with open(path, "rb") as f:
        data = f.read()
    return data.decode("utf-8", errors=errors)


def split_on_specials(text: str, special_tokens) -> list[str]:
    """Contract 2: split at every occurrence, leftmost; the longest token wins at one position.

    An alternation tried longest-first gives exactly "leftmost, then longest" with ``regex``.

    >>> split_on_specials("x<|a|><|b|>y<|a|>z", ["<|a|>", "<|a|><|b|>"])
    ['x', 'y', 'z']
    """
    if not special_tokens:
        return [text]
    ordered = sorted(special_tokens, key=len, reverse=True)
    splitter = regex.compile("|".join(regex.escape(t) for t in ordered))
    return splitter.split(text)


def pretokenize(segment: str) -> list[bytes]:
    """Contract 3: each GPT-2 pattern match's UTF-8 bytes is one pre-token."""
    return [m.group(0).encode("utf-8") for m in _PRETOKEN_RE.finditer(segment)]


def reference_pretoken_counts_text(text: str, special_tokens=()) -> dict[bytes, int]:
    counts: Counter[bytes] = Counter()
    for segment in split_on_specials(text, list(special_tokens)):
        counts.update(pretokenize(segment))
    return dict(counts)


def reference_pretoken_counts(path, special_tokens=(), errors: str = "strict") -> dict[bytes, int]:
    return reference_pretoken_counts_text(read_text(path, errors), special_tokens)


# ---------------------------------------------------------------------------------------------------------
# Merges
# ---------------------------------------------------------------------------------------------------------

def count_pairs(words: list[tuple[tuple[bytes, ...], int]]) -> Counter:
    """Every adjacent pair, weighted by the word's count; overlapping occurrences all count.

    >>> count_pairs([((b"a", b"a", b"a"), 3)])
    Counter({(b'a', b'a'): 6})
    """
    pairs: Counter = Counter()
    for symbols, count in words:
        for i in range(len(symbols) - 1):
            pairs[(symbols[i], symbols[i + 1])] += count
    return pairs


def apply_merge(symbols: tuple[bytes, ...], pair: tuple[bytes, bytes]) -> tuple[bytes, ...]:
    """Replace occurrences of ``pair`` left to right, non-overlapping.

    >>> apply_merge((b"a", b"a", b"a"), (b"a", b"a"))
    (b'aa', b'a')
    """
    out = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def reference_merges_from_counts(pretoken_counts: dict[bytes, int], num_merges: int):
    """Contract 4: the merge loop, recounting everything at every step."""
    words = [(tuple(bytes([b]) for b in tok), count) for tok, count in pretoken_counts.items()]
    merges: list[tuple[bytes, bytes]] = []
    while len(merges) < num_merges:
        pairs = count_pairs(words)
        if not pairs:
            break
        # Highest count; on a tie the greatest (bytes_a, bytes_b) as Python compares tuples of bytes.
        best = max(pairs.items(), key=lambda item: (item[1], item[0]))[0]
        merges.append(best)
        words = [(apply_merge(symbols, best), count) for symbols, count in words]
    return merges


class _Descending:
    """Orders pairs of bytes greatest-first, so a min-heap pops the greatest pair among equal counts."""

    __slots__ = ("pair",)

    def __init__(self, pair):
        self.pair = pair

    def __lt__(self, other):
        return self.pair > other.pair


def incremental_merges_from_counts(pretoken_counts: dict[bytes, int], num_merges: int):
    """The same merges as ``reference_merges_from_counts``, fast enough for thousands of merges.

    A second oracle (checked against the plain one in test_reference_oracle): pair counts are kept up to
    date by recounting only the words that contain the merged pair, and the best pair comes off a heap with
    lazy deletion. Each touched word is recounted whole, so there is no delta bookkeeping to get wrong.
    """
    import heapq
    from collections import defaultdict

    words = [[bytes([b]) for b in tok] for tok in pretoken_counts]
    freqs = list(pretoken_counts.values())
    pair_counts: Counter = Counter()
    where: dict = defaultdict(set)
    for i, w in enumerate(words):
        for p in zip(w, w[1:]):
            pair_counts[p] += freqs[i]
            where[p].add(i)
    heap = [(-c, _Descending(p)) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges: list[tuple[bytes, bytes]] = []
    while len(merges) < num_merges:
        best = None
        while heap:
            neg, key = heapq.heappop(heap)
            if pair_counts.get(key.pair, 0) == -neg and neg < 0:
                best = key.pair
                break
        if best is None:
            break
        merges.append(best)
        changed = set()
        for i in list(where[best]):
            old = words[i]
            new = list(apply_merge(tuple(old), best))
            before, after = Counter(zip(old, old[1:])), Counter(zip(new, new[1:]))
            for p in before.keys() | after.keys():
                delta = (after[p] - before[p]) * freqs[i]
                if delta:
                    pair_counts[p] += delta
                    changed.add(p)
                if after[p]:
                    where[p].add(i)
                else:
                    where[p].discard(i)
            words[i] = new
        for p in changed:
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-pair_counts[p], _Descending(p)))
            else:
                del pair_counts[p]
    return merges


def build_vocab(merges, special_tokens=()) -> dict[int, bytes]:
    """Contract 5: bytes 0..255, then the specials in order, then merged tokens in creation order."""
    vocab = {i: bytes([i]) for i in range(256)}
    for tok in special_tokens:
        vocab[len(vocab)] = tok.encode("utf-8")
    for a, b in merges:
        vocab[len(vocab)] = a + b
    return vocab


def reference_train_text(text: str, vocab_size: int, special_tokens=()):
    special_tokens = list(special_tokens)
    num_merges = vocab_size - 256 - len(special_tokens)
    counts = reference_pretoken_counts_text(text, special_tokens)
    merges = reference_merges_from_counts(counts, num_merges)
    return build_vocab(merges, special_tokens), merges


def reference_train(path, vocab_size: int, special_tokens=(), errors: str = "strict"):
    return reference_train_text(read_text(path, errors), vocab_size, special_tokens)


def duplicate_concatenations(merges) -> list[bytes]:
    """Byte strings produced by more than one merge (e.g. (ab, c) and later (a, bc))."""
    seen = Counter(a + b for a, b in merges)
    return sorted(tok for tok, n in seen.items() if n > 1)


# ---------------------------------------------------------------------------------------------------------
# Encoding, straight from the encoding contract
# ---------------------------------------------------------------------------------------------------------

def reference_encode(text: str, vocab: dict[int, bytes], merges, special_tokens=(), pattern: str | None = None) -> list[int]:
    """Split on specials (leftmost, longest first), pre-tokenize the text between, and merge each
    pre-token's bytes by repeatedly joining the adjacent pair of lowest merge rank (leftmost on ties).

    A special token takes the highest id whose bytes equal it; one missing from the vocab gets a new id
    after the largest, in the order given. Ordinary text uses the lowest id of each byte string.

    >>> vocab = {i: bytes([i]) for i in range(256)} | {256: b"ab"}
    >>> reference_encode("abab<s>a", vocab, [(b"a", b"b")], ["<s>"])
    [256, 256, 257, 97]
    """
    special_tokens = list(special_tokens or ())
    ids = {tok: i for i, tok in sorted(vocab.items(), reverse=True)}  # lowest id wins for duplicate bytes
    special_ids = {}
    next_id = max(vocab) + 1
    for tok in special_tokens:
        tok_bytes = tok.encode("utf-8")
        matching = [i for i, b in vocab.items() if b == tok_bytes]
        if matching:  # the highest such id: a one-byte special "x" is its own id, not byte 120
            special_ids[tok] = max(matching)
        else:
            special_ids[tok] = next_id
            next_id += 1
    rank = {pair: r for r, pair in reversed(list(enumerate(merges)))}
    out: list[int] = []
    if special_tokens:
        ordered = sorted(special_tokens, key=len, reverse=True)
        parts = regex.split("(" + "|".join(regex.escape(t) for t in ordered) + ")", text)
    else:
        parts = [text]
    for k, part in enumerate(parts):
        if k % 2 == 1:
            out.append(special_ids[part])
            continue
        pieces = pretokenize(part) if pattern is None else [m.group().encode() for m in regex.finditer(pattern, part)]
        for piece in pieces:
            symbols = [bytes([b]) for b in piece]
            while len(symbols) > 1:
                best = min(range(len(symbols) - 1), key=lambda j: (rank.get((symbols[j], symbols[j + 1]), 1 << 62), j))
                if (symbols[best], symbols[best + 1]) not in rank:
                    break
                symbols[best : best + 2] = [symbols[best] + symbols[best + 1]]
            out.extend(ids[s] for s in symbols)
    return out


# ---------------------------------------------------------------------------------------------------------
# GPT-2's byte-to-unicode alphabet, to read the fixture files
# ---------------------------------------------------------------------------------------------------------

def gpt2_bytes_to_unicode() -> dict[int, str]:
    """The 188 printable bytes map to themselves; the other 68 map, in byte order, to chr(256 + n).

    >>> gpt2_bytes_to_unicode()[ord(" ")]
    'Ġ'
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


@functools.lru_cache(maxsize=None)
def gpt2_unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in gpt2_bytes_to_unicode().items()}


def gpt2_decode_token(token: str) -> bytes:
    table = gpt2_unicode_to_bytes()
    return bytes(table[c] for c in token)


def read_gpt2_merges(path) -> list[tuple[bytes, bytes]]:
    merges = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#version"):
                continue
            left, right = line.split(" ")
            merges.append((gpt2_decode_token(left), gpt2_decode_token(right)))
    return merges


def read_gpt2_vocab(path) -> dict[bytes, int]:
    import json

    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    return {gpt2_decode_token(tok): idx for tok, idx in raw.items()}
