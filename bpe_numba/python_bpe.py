"""BPE training and encoding in plain Python and ``regex``: the tier that needs no compilation.

A process whose Numba kernels are not compiled yet (an empty cache: a fresh virtualenv, a CI runner), or
that would have to start a helper process and Numba for a small input, trains and encodes here instead
(see :func:`bpe_numba.train_bpe` and :class:`bpe_numba.Tokenizer`, option ``backend``). The results are the
contract's, identical to the kernels' (the tests compare both with ``tests/reference.py``). This module
imports neither numpy nor Numba: importing numpy alone costs about 0.1 s.

Pre-tokenization by *units*. For the GPT-2 pattern, a space whose previous character is not whitespace is
a token boundary of the whole text (no alternative continues a non-whitespace run into whitespace, and the
pattern has no look-behind; see bpe_numba.chunking). So a block of text with no space after whitespace
is the concatenation of its ``" "``-separated pieces, each pre-tokenized alone: ``str.split(" ")`` and a
``Counter`` (both in C) find the distinct units, and ``regex`` only runs once per distinct unit. A block
with such a space ("two  spaces", "line\\n next") is pre-tokenized whole with ``regex``.

Merges by position, like the kernels (``merge_kernels``): every byte of every distinct pre-token is a
position in flat lists with links to its neighbours; each pair keeps the positions where it was formed,
so a merge touches only its occurrences and updates its neighbours' counts by deltas (a word-based
rewrite costs the whole word per merge, which is hours for one 10 MB word). The best pair comes from a
heap with lazy deletion ordered by count, then by the greater ``(bytes_a, bytes_b)``.

Performance notes (2-core development machine, warm OS file cache):

- ``corpus.en`` (130 KB) to vocab 500: about 0.03 s of pre-tokenization and 0.1 s of merges.
- 10 MB of the synthetic stories to vocab 10,000: ``regex.findall`` over every segment took 1.28 s;
  the units take 0.35-0.45 s (``str.split`` and ``Counter`` in C, ``regex`` on 22 K distinct units).
  Finding unsafe spaces with ``regex`` (``(?<=\\s) ``) cost 0.35 s on its own, so ASCII blocks (the common
  case) are checked with six substring searches instead, and ``regex`` only looks at non-ASCII blocks.
  The 9,743 merges take about 1 s.
- Crossovers (whole process, this machine under load from other jobs): 1 MB of English prose at vocab
  10K took 1.7 s on this tier against 2.6 s through the helper process and the cached kernels, 2 MB 2.5
  against 2.6 s, 4 MB 3.8 against 2.1 s (the demo stories: 1, 2, 4 MB in 0.9, 1.3, 1.9 s against about
  2.4 s); so ``tiers.PYTHON_MAX_BYTES`` is 1 MiB. Against compiling the kernels first (10-15 s),
  16 MiB (``PYTHON_MAX_BYTES_COLD``).
- Against the kernels run from the native bundle (``bpe_numba.native``, no Numba start-up; whole process,
  3 runs each, the first 128 KiB, 256 KiB and 1 MiB of ``prose_en.txt`` at vocab 10K): this tier 0.40-0.44,
  0.52-0.60 and 0.94-1.03 s, the kernels 0.32-0.44, 0.43-0.52 and 0.51 s; CS336 ``corpus.en`` (130 KB) at
  vocab 500: this tier 0.22-0.25 s, the kernels 0.28-0.47 s. So ``tiers.PYTHON_MAX_BYTES_NATIVE`` is 256
  KiB.
- Heap order: each entry carries the pair's bytes transformed so that ascending ``str`` order is the
  contract's descending byte order (``_inverted``), so ties are broken by tuple comparison in C; a key
  class with a Python ``__lt__`` was about 3x slower on late, tie-heavy merges.
"""

from __future__ import annotations

import heapq
import re
import time
from collections import Counter
from typing import Iterator, Sequence

import regex

from .errors import InvalidUTF8Error
from .validation import GPT2_PATTERN, compiled_pattern

_BLOCK = 1 << 16  # characters per block (a block with an unsafe space is pre-tokenized whole)
_ASCII_UNSAFE = tuple(c + " " for c in "\t\n\x0b\x0c\r ")  # a space after ASCII whitespace (``regex``'s \s)
_UNSAFE = regex.compile(r"(?<=\s) ")
_SPACE = regex.compile(r"\s")
_SHIFT = 32  # pair key: (a << _SHIFT) | b
_MASK = (1 << _SHIFT) - 1
_TERMINATOR = chr(257)
_CACHE_ENTRIES = 1 << 16  # encoder: distinct units / pre-tokens remembered


def special_splitter(special_tokens: Sequence[str]):
    """A compiled alternation of the special tokens, longest first (so at one position the longest wins,
    and leftmost occurrences win by the search order), with a capturing group: ``split`` gives text,
    token, text, ..., text. ``None`` without special tokens.

    >>> special_splitter(["<a>", "<a><b>"]).split("x<a><b>y<a>z")
    ['x', '<a><b>', 'y', '<a>', 'z']
    """
    if not special_tokens:
        return None
    ordered = sorted(special_tokens, key=len, reverse=True)
    return re.compile("(" + "|".join(re.escape(t) for t in ordered) + ")")


def _blocks(segment: str) -> Iterator[str]:
    """``segment`` cut into blocks of about ``_BLOCK`` characters at spaces that follow a non-whitespace
    character (token boundaries of the GPT-2 pattern)."""
    start, n = 0, len(segment)
    while n - start > _BLOCK:
        i = segment.find(" ", start + _BLOCK)
        while i > 0 and _SPACE.match(segment, i - 1):
            i = segment.find(" ", i + 1)
        if i < 0:
            break
        yield segment[start:i]
        start = i
    yield segment[start:]


def _pieces(block: str) -> list[str] | None:
    """``block.split(" ")`` when every space in it follows a non-whitespace character (each piece after the
    first is then the unit ``" " + piece``), else ``None``.

    >>> _pieces("Once upon a time."), _pieces("two  spaces")
    (['Once', 'upon', 'a', 'time.'], None)
    """
    if block.isascii():
        if any(u in block for u in _ASCII_UNSAFE):
            return None
    elif _UNSAFE.search(block):
        return None
    return block.split(" ")


# ---------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------

def read_text(path: str, errors: str) -> str:
    """The file's bytes as UTF-8 text (no newline translation); strict mode raises
    :class:`InvalidUTF8Error` with the offset of the first invalid byte."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise InvalidUTF8Error(path, exc.start, exc.reason) from None


def count_pretokens_text(text: str, special_tokens: Sequence[str] = (), pattern: str = GPT2_PATTERN) -> dict[bytes, int]:
    """Counts of the pre-tokens (UTF-8 bytes) of ``text`` with the special tokens removed.

    >>> sorted(count_pretokens_text("the cat<|eot|>the  cat", ["<|eot|>"]).items())
    [(b' ', 1), (b' cat', 2), (b'the', 2)]
    """
    splitter = special_splitter(special_tokens)
    segments = splitter.split(text)[::2] if splitter is not None else [text]
    findall = compiled_pattern(pattern).findall
    counts: Counter[str] = Counter()
    if pattern != GPT2_PATTERN:
        for seg in segments:
            counts.update(findall(seg))
        return {k.encode("utf-8"): v for k, v in counts.items()}
    spaced: Counter[str] = Counter()  # piece -> occurrences of the unit " " + piece
    plain: Counter[str] = Counter()  # units without a leading space (the first piece of a block)
    for seg in segments:
        for block in _blocks(seg):
            pieces = _pieces(block)
            if pieces is None:
                counts.update(findall(block))
                continue
            plain[pieces[0]] += 1
            spaced.update(pieces)
            spaced[pieces[0]] -= 1
    for units, prefix in ((spaced, " "), (plain, "")):
        for unit, n in units.items():
            if n:
                for tok in findall(prefix + unit):
                    counts[tok] += n
    return {k.encode("utf-8"): v for k, v in counts.items()}


def _inverted(token: bytes) -> str:
    """A string whose ascending order is the descending order of ``token`` (and prefix-free, so two can be
    concatenated to order pairs): byte ``b`` becomes ``chr(256 - b)``, then a terminator above them all.

    >>> _inverted(b"b") < _inverted(b"a") < _inverted(b"") and _inverted(b"ab") < _inverted(b"a")
    True
    """
    return "".join([chr(256 - b) for b in token]) + _TERMINATOR


def merges_from_counts(pretoken_counts: dict[bytes, int], n_merges: int, progress_bar=None) -> list[tuple[bytes, bytes]]:
    """The contract's merge loop over ``{pre-token bytes: count}``: up to ``n_merges`` merges, fewer when
    no pair is left. ``progress_bar``, if given, gets ``update(n)`` calls.

    >>> merges_from_counts({b"aaa": 1, b"ab": 2}, 3)
    [(b'a', b'b'), (b'a', b'a'), (b'aa', b'a')]
    """
    sym: list[int] = []  # symbol at each position; -1 once merged into its left neighbour
    nxt: list[int] = []  # next live position in the word, -1 at its end
    prv: list[int] = []
    freq: list[int] = []  # count of the position's word
    for word, f in pretoken_counts.items():
        n = len(word)
        if n < 2:
            continue
        base = len(sym)
        sym.extend(word)
        nxt.extend(range(base + 1, base + n))
        nxt.append(-1)
        prv.append(-1)
        prv.extend(range(base, base + n - 1))
        freq.extend([f] * n)
    pair_count: dict[int, int] = {}
    where: dict[int, list[int]] = {}  # pair -> positions where it was formed (stale ones are skipped)
    for p, q in enumerate(nxt):
        if q >= 0:
            k = sym[p] << _SHIFT | sym[q]
            pair_count[k] = pair_count.get(k, 0) + freq[p]
            if k in where:
                where[k].append(p)
            else:
                where[k] = [p]

    token: list[bytes] = [bytes([b]) for b in range(256)]  # symbol id -> bytes
    symbol_of: dict[bytes, int] = {t: i for i, t in enumerate(token)}  # equal bytes are one symbol
    inverted = [_inverted(t) for t in token]
    heap = [(-c, inverted[k >> _SHIFT] + inverted[k & _MASK], k) for k, c in pair_count.items()]
    heapq.heapify(heap)
    merges: list[tuple[bytes, bytes]] = []
    pop, push = heapq.heappop, heapq.heappush
    while len(merges) < n_merges:
        while heap:
            neg, _, key = pop(heap)
            if pair_count.get(key) == -neg:
                break
        else:
            break  # no pair left
        a, b = key >> _SHIFT, key & _MASK
        joined = token[a] + token[b]
        merges.append((token[a], token[b]))
        c = symbol_of.get(joined)
        if c is None:
            c = symbol_of[joined] = len(token)
            token.append(joined)
            inverted.append(inverted[a][:-1] + inverted[b])
        positions = where.pop(key)
        if a == b:
            positions.sort()  # overlapping occurrences (a run of a's) are merged left to right
        changed = set()
        for p in positions:
            q = nxt[p]
            if q < 0 or sym[p] != a or sym[q] != b:
                continue
            f = freq[p]
            left, right = prv[p], nxt[q]
            if left >= 0:
                s = sym[left] << _SHIFT
                pair_count[s | a] -= f
                k = s | c
                pair_count[k] = pair_count.get(k, 0) + f
                where.setdefault(k, []).append(left)
                changed.add(s | a)
                changed.add(k)
            if right >= 0:
                s = sym[right]
                pair_count[b << _SHIFT | s] -= f
                k = c << _SHIFT | s
                pair_count[k] = pair_count.get(k, 0) + f
                where.setdefault(k, []).append(p)
                changed.add(b << _SHIFT | s)
                changed.add(k)
                prv[right] = p
            sym[p] = c
            sym[q] = -1
            nxt[p] = right
        del pair_count[key]
        changed.discard(key)
        for k in changed:
            n = pair_count[k]
            if n > 0:
                push(heap, (-n, inverted[k >> _SHIFT] + inverted[k & _MASK], k))
            else:
                del pair_count[k]
                where.pop(k, None)
        if progress_bar is not None and len(merges) % 256 == 0:
            progress_bar.update(256)
    if progress_bar is not None:
        progress_bar.update(len(merges) % 256)
    return merges


def train(path, specials: list[str], n_merges: int, errors: str, show: bool,
          pattern: str) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]], dict]:
    """:func:`bpe_numba.train_bpe` on validated arguments, in this process; also returns the phases' times.
    ``path`` is a text file, or the pre-token counts (``{bytes: int}``) to train from."""
    from .progress import progress_bar

    times: dict = {"startup": 0.0}
    t0 = time.perf_counter()
    table = path if isinstance(path, dict) else count_pretokens_text(read_text(path, errors), specials, pattern)
    t1 = time.perf_counter()
    times["pretokenize"] = t1 - t0
    times["unique_pretokens"] = len(table)
    times["intern"] = 0.0
    # Each merge removes a pair position: no more merges than that, however large vocab_size is.
    n_merges = min(n_merges, sum(len(w) - 1 for w in table if w))
    with progress_bar(show, total=n_merges, unit="merge", desc="merges") as bar:
        merges = merges_from_counts(table, n_merges, bar) if n_merges > 0 else []
    times["merges"] = time.perf_counter() - t1
    vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
    for tok in specials:
        vocab[len(vocab)] = tok.encode("utf-8")
    for a, b in merges:
        vocab[len(vocab)] = a + b
    return vocab, merges, times


# ---------------------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------------------

class PythonEncoder:
    """Encodes text with a BPE model, in plain Python: special tokens split out (leftmost, longest first),
    pre-tokenization, then each pre-token's bytes merged by lowest merge rank (leftmost on ties). Units
    (GPT-2 pattern) or pre-tokens (any other) are remembered in a dict of at most ``_CACHE_ENTRIES``
    entries; once full it is not refilled, so encoding never grows memory after the cache has settled.

    ``ids_of`` maps token bytes to their id (the lowest id where bytes repeat), ``special_ids`` maps each
    special token to its id.

    >>> ids_of = {bytes([i]): i for i in range(256)} | {b"ab": 256}
    >>> PythonEncoder(ids_of, [(b"a", b"b")], {"<s>": 257}, GPT2_PATTERN).encode("abab<s>a")
    [256, 256, 257, 97]
    """

    def __init__(self, ids_of: dict[bytes, int], merges: Sequence[tuple[bytes, bytes]], special_ids: dict[str, int],
                 pattern: str):
        self._byte_ids = [ids_of[bytes([b])] for b in range(256)]
        ranks: dict[int, tuple[int, int]] = {}
        for r, (a, b) in enumerate(merges):
            key = ids_of[a] << _SHIFT | ids_of[b]
            if key not in ranks:  # a repeated merge keeps its first (lowest) rank
                ranks[key] = (r, ids_of[a + b])
        self._ranks = ranks
        self._special_ids = dict(special_ids)
        self._splitter = special_splitter(list(special_ids))
        self._findall = compiled_pattern(pattern).findall
        self._units = pattern == GPT2_PATTERN
        self._spaced: dict[str, tuple[int, ...]] = {}  # piece -> ids of the unit " " + piece
        self._plain: dict[str, tuple[int, ...]] = {}  # unit without a leading space -> ids
        self._tokens: dict[str, tuple[int, ...]] = {}  # pre-token -> ids (custom patterns, unsafe blocks)

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        parts = self._splitter.split(text) if self._splitter is not None else [text]
        for k, part in enumerate(parts):
            if k % 2:
                out.append(self._special_ids[part])
            elif not self._units:
                for tok in self._findall(part):
                    out += self._cached(self._tokens, tok, self._pretoken_ids)
            else:
                for block in _blocks(part):
                    self._encode_block(block, out)
        return out

    def _encode_block(self, block: str, out: list[int]) -> None:
        pieces = _pieces(block)
        if pieces is None:
            for tok in self._findall(block):
                out += self._cached(self._tokens, tok, self._pretoken_ids)
            return
        if pieces[0]:
            out += self._cached(self._plain, pieces[0], self._unit_ids)
        spaced = self._spaced
        for piece in pieces[1:]:
            ids = spaced.get(piece)
            if ids is None:
                ids = self._unit_ids(" " + piece)
                if len(spaced) < _CACHE_ENTRIES:
                    spaced[piece] = ids
            out += ids

    @staticmethod
    def _cached(cache: dict, key: str, compute) -> tuple[int, ...]:
        ids = cache.get(key)
        if ids is None:
            ids = compute(key)
            if len(cache) < _CACHE_ENTRIES:
                cache[key] = ids
        return ids

    def _unit_ids(self, unit: str) -> tuple[int, ...]:
        out: list[int] = []
        for tok in self._findall(unit):
            out += self._pretoken_ids(tok)
        return tuple(out)

    def _pretoken_ids(self, pretoken: str) -> tuple[int, ...]:
        byte_ids = self._byte_ids
        symbols = [byte_ids[b] for b in pretoken.encode("utf-8")]
        if len(symbols) > 32:
            return _merge_long(symbols, self._ranks)
        ranks = self._ranks
        while len(symbols) > 1:
            best = None
            for i in range(len(symbols) - 1):
                hit = ranks.get(symbols[i] << _SHIFT | symbols[i + 1])
                if hit is not None and (best is None or hit[0] < best[0]):
                    best, at = hit, i
            if best is None:
                break
            symbols[at : at + 2] = [best[1]]
        return tuple(symbols)


def _merge_long(symbols: list[int], ranks: dict[int, tuple[int, int]]) -> tuple[int, ...]:
    """BPE by lowest rank, leftmost first, for a long pre-token (a megabyte of one letter is one pre-token).

    First in rounds, while each round merges many occurrences: find the lowest rank, then merge all its
    occurrences in one left-to-right pass (what one-at-a-time leftmost merging does, unless a pair formed
    on the way has a lower rank: then the rounds stop and the heap starts over). Then a heap of
    ``(rank, position)`` over a linked list: O(n log n) however many distinct merges apply.
    """
    original = list(symbols)
    while len(symbols) > 1:
        hits = [ranks.get(a << _SHIFT | b) for a, b in zip(symbols, symbols[1:])]
        best = min((h for h in hits if h is not None), default=None)
        if best is None:
            return tuple(symbols)
        rank, c = best
        at = hits.index(best)
        a, b = symbols[at], symbols[at + 1]
        out: list[int] = []
        i, n, merged = 0, len(symbols), 0
        while i < n:
            s = symbols[i]
            if s == a and i + 1 < n and symbols[i + 1] == b:
                for pair in ((out[-1] << _SHIFT | c) if out else None, (c << _SHIFT | symbols[i + 2]) if i + 2 < n else None):
                    hit = ranks.get(pair) if pair is not None else None
                    if hit is not None and hit[0] < rank:
                        return _merge_heap(original, ranks)  # a pair formed here goes first
                out.append(c)
                merged += 1
                i += 2
            else:
                out.append(s)
                i += 1
        symbols = out
        if merged * 32 < n:
            break  # few occurrences per round: the heap costs less from here on
    return _merge_heap(symbols, ranks) if len(symbols) > 1 else tuple(symbols)


def _merge_heap(symbols: list[int], ranks: dict[int, tuple[int, int]]) -> tuple[int, ...]:
    """BPE by lowest rank, leftmost first: a heap of ``(rank, position)`` over a linked list of symbols."""
    symbols = list(symbols)
    n = len(symbols)
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    prv = list(range(-1, n - 1))
    heap = []
    for i in range(n - 1):
        hit = ranks.get(symbols[i] << _SHIFT | symbols[i + 1])
        if hit is not None:
            heap.append((hit[0], i, symbols[i], symbols[i + 1]))
    heapq.heapify(heap)
    while heap:
        rank, i, a, b = heapq.heappop(heap)
        j = nxt[i] if symbols[i] == a else -1
        if j < 0 or symbols[j] != b:
            continue  # stale: the symbols here changed since the entry was pushed
        c = ranks[a << _SHIFT | b][1]
        symbols[i] = c
        symbols[j] = -1
        k = nxt[j]
        nxt[i] = k
        if k >= 0:
            prv[k] = i
            hit = ranks.get(c << _SHIFT | symbols[k])
            if hit is not None:
                heapq.heappush(heap, (hit[0], i, c, symbols[k]))
        h = prv[i]
        if h >= 0:
            hit = ranks.get(symbols[h] << _SHIFT | c)
            if hit is not None:
                heapq.heappush(heap, (hit[0], h, symbols[h], c))
    return tuple(s for s in symbols if s >= 0)
