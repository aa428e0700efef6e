"""Pre-tokenization: file bytes -> counts of unique pre-tokens, in worker processes.

The file is cut into chunks at *safe* byte offsets (see :func:`find_safe_cut`). Each chunk is split at its
special tokens and its pre-tokens counted by one of two engines:

- ``"numba"``: the GPT-2 pattern's hand-written scanner and an array-backed hash table
  (:mod:`bpe_numba.gpt2_scan`), a few hundred MB/s per core, no Python object per pre-token;
- ``"regex"``: the ``regex`` package's ``finditer`` on each segment, exactly as the contract states it; it
  takes any pattern (``pattern=``) at a few MB/s.

``engine="auto"`` takes the scanner for the GPT-2 pattern and ``regex`` for any other. A worker sends back
the chunk's unique pre-tokens compactly (one bytes blob, a length array and a count array) and the main
process only sums them, so peak memory is about ``chunk_size x workers`` plus the table of unique
pre-tokens. Numba is imported only when the first chunk is counted, not with this module.

>>> import regex
>>> [m.group() for m in regex.finditer(GPT2_PATTERN, "Hi,  it's 42!")]
['Hi', ',', ' ', ' it', "'s", ' 42', '!']
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .errors import BPEValueError, InvalidUTF8Error
from .validation import (
    GPT2_PATTERN,
    check_errors_mode,
    check_input_file,
    check_pattern,
    check_special_tokens,
    compiled_pattern,
    resolve_engine,
    resolve_progress,
    resolve_workers,
)
from .processes import map_chunks, progress_bar


# A cut at offset i is safe when the byte before is printable non-space ASCII and the byte at i is ASCII
# whitespace: no alternative of the pattern continues a non-whitespace run into whitespace and the pattern
# has no look-behind, so the full-text match sequence has a boundary there. ASCII on both sides also means
# the cut never splits a UTF-8 sequence (nor an invalid one, so errors="replace" is chunk-independent).
_CUT_BEFORE = np.zeros(256, dtype=bool)
_CUT_BEFORE[0x21:0x7F] = True
_CUT_AT = np.zeros(256, dtype=bool)
_CUT_AT[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20]] = True
_SCAN_WINDOW = 1 << 16


class SpecialSplitter:
    """Splits UTF-8 bytes at special token occurrences: leftmost first, and the longest token where several
    start at one position (UTF-8 is self-synchronizing, so matching the encoded tokens in encoded text finds
    the same occurrences as matching the text).

    >>> bounds, which = SpecialSplitter(["<a>", "<a><b>"]).split(b"x<a><b>y<a>z")
    >>> bounds.tolist(), which.tolist()
    ([[0, 1], [7, 8], [11, 12]], [1, 0, -1])
    """

    def __init__(self, special_tokens: Sequence[str]):
        encoded = [t.encode("utf-8") for t in special_tokens]
        self.order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]), reverse=True)
        ordered = [encoded[i] for i in self.order]
        self.blob = np.frombuffer(b"".join(ordered) or b"\0", dtype=np.uint8)
        self.offsets = np.zeros(len(ordered) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in ordered], out=self.offsets[1:])
        self.first = np.zeros(256, dtype=bool)
        for t in ordered:
            self.first[t[0]] = True
        self.shortest = min((len(t) for t in ordered), default=1)
        self._index = np.array(self.order + [-1], dtype=np.int64)  # which[k] == -1 stays -1

    def split(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        """``(bounds, which)``: the ``[start, end)`` byte ranges between occurrences (``(k, 2)`` int64) and,
        for each, the index in ``special_tokens`` of the token that follows it (-1 after the last)."""
        arr = np.frombuffer(data, dtype=np.uint8)
        if len(self.order) == 0:
            return np.array([[0, len(arr)]], dtype=np.int64), np.full(1, -1, dtype=np.int64)
        from .scan_kernels import split_specials

        cap = len(arr) // self.shortest + 2
        bounds = np.empty((cap, 2), dtype=np.int64)
        which = np.empty(cap, dtype=np.int64)
        k = split_specials(arr, self.blob, self.offsets, self.first, bounds, which)
        return bounds[:k], self._index[which[:k]]


def count_segments(data: bytes, splitter: SpecialSplitter, pattern: str, engine: str) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Unique pre-tokens of ``data`` (valid UTF-8) with special tokens removed, as ``(blob, int32 lengths,
    int64 counts)``; ``engine`` is ``"numba"`` (GPT-2 pattern only) or ``"regex"``."""
    bounds, _ = splitter.split(data)
    if engine == "numba":
        from .gpt2_scan import count_gpt2_pretokens

        return count_gpt2_pretokens(data, bounds)
    findall = compiled_pattern(pattern).findall
    counts: dict[str, int] = {}
    get = counts.get
    for s, e in bounds.tolist():
        for tok in findall(data[s:e].decode("utf-8")):
            counts[tok] = get(tok, 0) + 1
    keys = [k.encode("utf-8") for k in counts]
    return (
        b"".join(keys),
        np.fromiter(map(len, keys), dtype=np.int32, count=len(keys)),
        np.fromiter(counts.values(), dtype=np.int64, count=len(keys)),
    )


def special_crosses(data, i: int, special_bytes: Sequence[bytes]) -> bool:
    """Whether an occurrence of one of ``special_bytes`` in ``data`` (bytes or bytearray) starts before ``i``
    and ends after it, so that ``i`` lies inside it.

    >>> special_crosses(b"x<eot>y", 3, [b"<eot>"]), special_crosses(b"x<eot>y", 1, [b"<eot>"])
    (True, False)
    """
    return any(t in data[max(i - len(t) + 1, 0) : i + len(t) - 1] for t in special_bytes if len(t) > 1)


def find_safe_cut(data: bytes, lo: int, hi: int, special_bytes: Sequence[bytes]) -> int:
    """First safe cut offset ``i`` with ``lo <= i < hi`` in ``data``, or -1.

    Safe: ``data[i-1]`` is printable non-space ASCII, ``data[i]`` is ASCII whitespace, and no occurrence of
    a special token starts before ``i`` and ends after it. The caller gives ``data`` enough context around
    ``[lo, hi)`` for that check (the longest special token on each side, or the file's ends).

    >>> find_safe_cut(b"ab  cd ef", 0, 9, [])
    2
    >>> find_safe_cut(b"<end of>x y", 0, 11, [b"<end of>"])
    9
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    lo = max(lo, 1)
    hi = min(hi, len(arr))
    if lo >= hi:
        return -1
    ok = _CUT_AT[arr[lo:hi]] & _CUT_BEFORE[arr[lo - 1 : hi - 1]]
    for k in np.flatnonzero(ok):
        i = lo + int(k)
        if special_crosses(data, i, special_bytes):
            continue
        return i
    return -1


def find_special_cut(data: bytes, lo: int, hi: int, special_bytes: Sequence[bytes]) -> int:
    """First offset ``i`` with ``lo <= i < hi`` where a special token occurrence starts and no occurrence
    crosses (starts before ``i`` and ends after it), or -1: a boundary for *any* pattern, since special
    tokens split the text before pre-tokenization. Context as for :func:`find_safe_cut`.

    >>> find_special_cut(b"ab<s>cd<s>", 1, 10, [b"<s>"])
    2
    """
    lo = max(lo, 1)
    starts = set()
    for t in special_bytes:
        i = data.find(t, lo)
        while 0 <= i < hi:
            starts.add(i)
            i = data.find(t, i + 1)
    for i in sorted(starts):
        if not special_crosses(data, i, special_bytes):
            return i
    return -1


def plan_chunks(
    path: str, size: int, chunk_size: int, special_bytes: Sequence[bytes], gpt2: bool = True
) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` byte ranges covering the file, cut only at safe offsets at or after
    multiples of ``chunk_size`` from the previous cut. A file with no safe offset is one chunk.

    Safe offsets are :func:`find_safe_cut`'s for the GPT-2 pattern (``gpt2``), else only the starts of
    special token occurrences (:func:`find_special_cut`), the one boundary every pattern respects."""
    find = find_safe_cut if gpt2 else find_special_cut
    margin = max((len(s) for s in special_bytes), default=1)
    start = 0
    with open(path, "rb") as f:
        while start < size:
            cut = -1
            pos = start + chunk_size
            while pos < size:
                # Context before the window: a token straddling a cut cannot reach back past ``start``.
                base = max(pos - margin, start)
                f.seek(base)
                window = f.read(pos - base + _SCAN_WINDOW + margin)
                # Candidates need ``margin`` bytes after them, unless the window reaches the end of file.
                hi = len(window) if base + len(window) >= size else len(window) - margin
                found = find(window, pos - base, hi, special_bytes)
                if found >= 0:
                    cut = base + found
                    break
                pos = base + max(hi, pos - base + 1)
            end = size if cut < 0 else cut
            yield start, end
            start = end


@dataclass
class ChunkResult:
    """One chunk's unique pre-tokens, compactly: ``blob`` is their UTF-8 bytes concatenated."""

    start: int
    end: int
    blob: bytes
    lengths: np.ndarray  # int32, one per unique pre-token
    counts: np.ndarray  # int64
    bad_offset: int = -1  # file offset of invalid UTF-8 (strict mode); the arrays are then empty

    def items(self) -> Iterator[tuple[bytes, int]]:
        blob = self.blob
        pos = 0
        for n, c in zip(self.lengths.tolist(), self.counts.tolist()):
            yield blob[pos : pos + n], c
            pos += n


def read_chunk(path: str, start: int, end: int, errors: str) -> tuple[bytes, int]:
    """Bytes ``[start, end)`` of the file as valid UTF-8, and -1; or, in strict mode when they are not
    valid, ``(b"", file offset of the first invalid byte)``. ``errors="replace"`` re-encodes invalid bytes
    as U+FFFD (chunks are cut at ASCII, so this never depends on where they are cut)."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    if errors != "strict":
        return data.decode("utf-8", errors=errors).encode("utf-8"), -1
    from .scan_kernels import utf8_first_invalid

    bad = utf8_first_invalid(np.frombuffer(data, dtype=np.uint8))
    return (b"", start + bad) if bad >= 0 else (data, -1)


_SPLITTERS: dict = {}


def count_chunk(task) -> ChunkResult:
    """Worker entry point: read ``[start, end)`` of the file and count its pre-tokens."""
    path, start, end, special_tokens, pattern, errors, engine = task
    key = tuple(special_tokens)
    if key not in _SPLITTERS:
        _SPLITTERS[key] = SpecialSplitter(special_tokens)
    data, bad = read_chunk(path, start, end, errors)
    if bad >= 0:
        empty = np.zeros(0, dtype=np.int32)
        return ChunkResult(start, end, b"", empty, empty.astype(np.int64), bad_offset=bad)
    blob, lengths, counts = count_segments(data, _SPLITTERS[key], pattern, engine)
    return ChunkResult(start, end, blob, lengths, counts)


def first_invalid_utf8(path: str) -> tuple[int, str]:
    """Offset and reason of the file's first invalid UTF-8 byte (-1 if none)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 22)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                # exc.start is relative to the decoder's buffered bytes plus this block.
                pending = len(exc.object) - len(block)
                return offset - pending + exc.start, exc.reason
            if not block:
                return -1, ""
            offset += len(block)


def warm_scan_kernels(engine: str) -> None:
    """Import Numba and load (or, the first time, compile) the pre-tokenization kernels."""
    count_segments(b"a<s>b", SpecialSplitter(["<s>"]), GPT2_PATTERN, engine)
    from .scan_kernels import utf8_first_invalid

    utf8_first_invalid(np.frombuffer(b"a", dtype=np.uint8))  # read-only, like the chunks


def default_chunk_size(size: int, workers: int) -> int:
    """About four chunks per worker for balance, between 32 MiB and 64 MiB each: a worker counts a few
    hundred MB/s but takes about a second to start (interpreter, Numba), so a file under 32 MiB is
    counted in this process."""
    return int(min(max(size // (4 * max(workers, 1)), 32 << 20), 64 << 20))


def iter_chunk_results(
    path: str,
    special_tokens: Sequence[str],
    *,
    num_workers: int,
    chunk_size: int | None,
    errors: str,
    pattern: str = GPT2_PATTERN,
    engine: str = "numba",
    progress: bool = False,
) -> Iterator[ChunkResult]:
    """Count pre-tokens chunk by chunk, yielding each chunk's result as it arrives (any order).

    With one worker, or a file that is a single chunk, everything runs in this process. Otherwise
    ``spawn`` workers take the chunks, at most two tasks in flight per worker, so results can never pile up
    in memory. Invalid UTF-8 raises :class:`InvalidUTF8Error` with the file's first bad offset.
    """
    size = os.path.getsize(path)
    if chunk_size is None:
        chunk_size = default_chunk_size(size, num_workers)
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise BPEValueError(f"chunk_size={chunk_size!r}; use a positive number of bytes, or None")
    special_bytes = [t.encode("utf-8") for t in special_tokens]
    workers = min(num_workers, -(-size // chunk_size)) if size else 1
    chunks = plan_chunks(path, size, chunk_size, special_bytes, gpt2=pattern == GPT2_PATTERN)
    tasks = ((path, s, e, tuple(special_tokens), pattern, errors, engine) for s, e in chunks)

    bar = progress_bar(progress, total=size, unit="B", unit_scale=True, desc="pre-tokenize")
    try:
        if workers > 1:
            # Compile (first run) or load the scan kernels here, once, before the workers load them from
            # Numba's on-disk cache; otherwise every worker would compile them on a cold cache.
            warm_scan_kernels(engine)
        for result in map_chunks(count_chunk, tasks, workers=workers, ordered=False):
            _raise_if_invalid(path, result)
            bar.update(result.end - result.start)
            yield result
    finally:
        bar.close()


def _raise_if_invalid(path: str, result: ChunkResult) -> None:
    if result.bad_offset >= 0:
        # Chunks finish in any order: report the file's first invalid byte, not this chunk's.
        offset, reason = first_invalid_utf8(path)
        if offset < 0:  # the file changed while we read it
            offset, reason = result.bad_offset, "invalid start byte"
        raise InvalidUTF8Error(path, offset, reason)


def count_pretokens(
    input_path,
    special_tokens: Sequence[str] = (),
    *,
    num_workers: int | None = None,
    errors: str = "strict",
    chunk_size: int | None = None,
    progress: bool | None = None,
    pattern: str = GPT2_PATTERN,
    engine: str = "auto",
) -> dict[bytes, int]:
    """Counts of every pre-token (UTF-8 bytes) in the file: the table the trainer starts from.

    ``pattern`` is the pre-tokenization regex (GPT-2's by default); ``engine`` counts with the GPT-2
    scanner (``"numba"``), the ``regex`` package (``"regex"``), or the scanner when the pattern allows
    (``"auto"``). Both engines give the same table for the GPT-2 pattern.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.txt"; _ = p.write_bytes(b"the cat<|eot|>the cat")
    >>> count_pretokens(p, ["<|eot|>"], num_workers=1)
    {b'the': 2, b' cat': 2}
    """
    path = check_input_file(input_path)
    special_tokens = check_special_tokens(special_tokens)
    check_errors_mode(errors)
    pattern = check_pattern(pattern)
    engine = resolve_engine(engine, pattern)
    workers = resolve_workers(num_workers)
    return sum_chunk_counts(
        path, special_tokens, num_workers=workers, chunk_size=chunk_size, errors=errors,
        progress=resolve_progress(progress), pattern=pattern, engine=engine,
    )


def sum_chunk_counts(path: str, special_tokens: Sequence[str], **options) -> dict[bytes, int]:
    """Sum the per-chunk counts of :func:`iter_chunk_results` (arguments already validated)."""
    table: dict[bytes, int] = {}
    get = table.get
    for result in iter_chunk_results(path, special_tokens, **options):
        for key, c in result.items():
            table[key] = get(key, 0) + c
    return table


__all__ = ["GPT2_PATTERN", "count_pretokens"]
