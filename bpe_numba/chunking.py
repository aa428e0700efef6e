"""Where a file may be cut for parallel work, and reading its chunks: the one owner of these rules.

A byte offset ``i`` is a *safe cut* when the byte before is printable non-space ASCII and the byte at ``i``
is ASCII whitespace, and no special token occurrence starts before ``i`` and ends after it. No alternative
of the GPT-2 pattern continues a non-whitespace run into whitespace and the pattern has no look-behind, so
the full text's matches have a boundary there; ASCII on both sides means a cut never splits a UTF-8
sequence (nor an invalid one, so ``errors="replace"`` does not depend on the cuts either). Any other
pattern is only cut where a special token occurrence starts (special tokens split the text before
pre-tokenization, so every pattern respects that boundary).

Chunks are defined without any sequential planning: the chunk of a nominal range ``[lo, hi)`` runs from
``cut(lo)`` to ``cut(hi)``, where ``cut(x)`` is the first cut at or after ``x`` (0 for ``lo = 0``; the
file's end when there is none), and is empty when ``cut(lo)`` is not below ``hi``. The nominal ranges are
``[k * size, (k + 1) * size)``, the last few cut smaller when several threads share the file
(:func:`chunk_ranges`). A thread that takes a chunk finds both ends itself
(:meth:`ChunkReader.read_range`), so the chunks of adjacent ranges can be taken in any order by any number
of threads and always tile the file the same way. A file with no cut at all is one chunk.

>>> find_safe_cut(b"ab  cd ef", 0, 9, [])
2
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np

from .errors import FileChangedError, InvalidUTF8Error

CUT_BEFORE = np.zeros(256, dtype=bool)
CUT_BEFORE[0x21:0x7F] = True
CUT_AT = np.zeros(256, dtype=bool)
CUT_AT[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20]] = True

_LOOKAHEAD = 1 << 16  # bytes read past a chunk's nominal end to find its cut (doubled while none is found)


class SpecialTokens:
    """Special tokens as the kernels take them: UTF-8 bytes back to back, longest first (so the longest
    wins where several start at one position), with ``order[j]`` the caller's index of the ``j``-th."""

    def __init__(self, special_tokens: Sequence[str]):
        encoded = [t.encode("utf-8") for t in special_tokens]
        self.order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]), reverse=True)
        ordered = [encoded[i] for i in self.order]
        self.encoded = encoded
        self.blob = np.frombuffer(b"".join(ordered) or b"\0", dtype=np.uint8)
        self.offsets = np.zeros(len(ordered) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in ordered], out=self.offsets[1:])
        self.first = np.zeros(256, dtype=bool)
        for t in ordered:
            self.first[t[0]] = True
        self.shortest = min((len(t) for t in ordered), default=1)
        self.longest = max((len(t) for t in ordered), default=0)

    def __len__(self) -> int:
        return len(self.order)


def special_crosses(data, i: int, special_bytes: Sequence[bytes]) -> bool:
    """Whether an occurrence of one of ``special_bytes`` in ``data`` (bytes or bytearray) starts before ``i``
    and ends after it, so that ``i`` lies inside it.

    >>> special_crosses(b"x<eot>y", 3, [b"<eot>"]), special_crosses(b"x<eot>y", 1, [b"<eot>"])
    (True, False)
    """
    return any(t in data[max(i - len(t) + 1, 0) : i + len(t) - 1] for t in special_bytes if len(t) > 1)


def find_safe_cut(data: bytes, lo: int, hi: int, special_bytes: Sequence[bytes]) -> int:
    """First safe cut offset ``i`` with ``lo <= i < hi`` in ``data``, or -1 (``data`` holds the longest
    special token's length of context around ``[lo, hi)``, or the file's ends).

    >>> find_safe_cut(b"<end of>x y", 0, 11, [b"<end of>"])
    9
    """
    return _first_cut(data, lo, hi, special_bytes, gpt2=True)


def find_special_cut(data: bytes, lo: int, hi: int, special_bytes: Sequence[bytes]) -> int:
    """First offset ``i`` with ``lo <= i < hi`` where a special token occurrence starts and no occurrence
    crosses, or -1: a boundary for *any* pattern. Context as for :func:`find_safe_cut`.

    >>> find_special_cut(b"ab<s>cd<s>", 1, 10, [b"<s>"])
    2
    """
    return _first_cut(data, lo, hi, special_bytes, gpt2=False)


def _first_cut(data, lo: int, hi: int, special_bytes: Sequence[bytes], gpt2: bool) -> int:
    from .text_kernels import first_cut

    blob = np.frombuffer(b"".join(special_bytes) or b"\0", dtype=np.uint8)
    offsets = np.zeros(len(special_bytes) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in special_bytes], out=offsets[1:])
    arr = np.frombuffer(bytes(data), dtype=np.uint8)
    return int(first_cut(arr, lo, hi, gpt2, CUT_BEFORE, CUT_AT, blob, offsets))


def input_identity(path: str, fd: int | None = None) -> tuple:
    """What must not change while a file is read: size, modification time, inode and device."""
    st = os.fstat(fd) if fd is not None else os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


def check_same_file(path: str, before: tuple) -> None:
    """Raise :class:`FileChangedError` if ``path``'s :func:`input_identity` is no longer ``before``, taken
    when reading began."""
    if input_identity(path) != before:
        raise FileChangedError(path, "its size or modification time differs from when reading began")


class ChunkReader:
    """Reads chunk ``k`` of a file, or the chunk of a nominal range (see the module docstring), into a buffer
    of its own: one per thread.

    ``read(k)`` and ``read_range(lo, hi)`` return ``(data, start)``: ``data`` is a read-only uint8 view of
    bytes ``[start, start + len(data))`` of the file (empty when no chunk starts in the nominal range).
    Raises :class:`FileChangedError` if the file is shorter than its size when reading began.

    Every kernel takes its text as a *read-only* array (file chunks here, ``np.frombuffer`` of bytes
    elsewhere): Numba compiles one variant per writability, and one is enough.
    """

    def __init__(self, path: str, size: int, chunk_size: int, specials: SpecialTokens, gpt2: bool):
        self.path = path
        self.size = size
        self.chunk_size = chunk_size
        self.specials = specials
        self.gpt2 = gpt2
        self.margin = max(specials.longest, 1)
        self.n_chunks = max(1, -(-size // chunk_size))
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._buf = np.empty(0, dtype=np.uint8)

    def close(self) -> None:
        self._file.close()

    def identity(self) -> tuple:
        return input_identity(self.path, self._file.fileno())

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fill(self, lo: int, hi: int, keep: int = 0) -> np.ndarray:
        """File bytes ``[lo, hi)`` in the buffer, re-using its first ``keep`` bytes (already ``[lo, lo + keep)``)."""
        n = hi - lo
        if self._buf.shape[0] < n + 8:  # 8 spare bytes: the kernels load words of 8 bytes
            grown = np.empty(max(n + 8, 2 * self._buf.shape[0]), dtype=np.uint8)
            grown[:keep] = self._buf[:keep]
            self._buf = grown
        view = memoryview(self._buf)
        got = keep
        self._file.seek(lo + got)
        while got < n:
            k = self._file.readinto(view[got:n])  # releases the GIL while it reads
            if not k:
                raise FileChangedError(self.path, f"it ended at byte {lo + got:,}, not {self.size:,}")
            got += k
        return self._buf[:n]

    def _cut(self, data: np.ndarray, lo: int, hi: int) -> int:
        from .text_kernels import first_cut

        sp = self.specials
        return int(first_cut(data, lo, hi, self.gpt2, CUT_BEFORE, CUT_AT, sp.blob, sp.offsets))

    def read(self, k: int) -> tuple[np.ndarray, int]:
        return self.read_range(k * self.chunk_size, min((k + 1) * self.chunk_size, self.size))

    def read_range(self, nominal_lo: int, nominal_hi: int) -> tuple[np.ndarray, int]:
        """The chunk whose nominal range is ``[nominal_lo, nominal_hi)`` (as ``read``): it starts at the first
        cut in that range (at 0 for the first) and ends at the first cut from ``nominal_hi`` on. Chunks of
        adjacent ranges, of any sizes, cover the file once."""
        size, margin = self.size, self.margin
        base = max(nominal_lo - margin, 0)
        hi = min(nominal_hi + _LOOKAHEAD + margin, size)
        data = self._fill(base, hi)
        start = 0
        if nominal_lo > 0:
            found = self._cut(data, nominal_lo - base, nominal_hi - base)
            if found < 0:
                return _read_only(data[:0]), nominal_hi  # the previous chunk runs through this one
            start = found
        end = size - base
        if nominal_hi < size:
            lookahead = _LOOKAHEAD
            search_from = nominal_hi - base
            while True:
                # Candidates need ``margin`` bytes after them, unless the data reaches the end of file.
                limit = data.shape[0] if base + data.shape[0] >= size else data.shape[0] - margin
                found = self._cut(data, search_from, limit)
                if found >= 0:
                    end = found
                    break
                if base + data.shape[0] >= size:
                    break
                search_from = max(limit, search_from)
                lookahead *= 2
                data = self._fill(base, min(base + data.shape[0] + lookahead, size), keep=data.shape[0])
        return _read_only(data[start:end]), base + start


def _read_only(view: np.ndarray) -> np.ndarray:
    view.flags.writeable = False
    return view


_TAIL_PIECES = 4  # the last chunk of each thread is cut in this many pieces (see chunk_ranges)
_TAIL_PIECE_MIN = 64 << 10  # bytes: no smaller pieces


def chunk_ranges(size: int, chunk_size: int, workers: int = 1) -> list[tuple[int, int]]:
    """The nominal ``[lo, hi)`` byte ranges of a file's chunks: ``chunk_size`` each, except that with several
    ``workers`` the last ``workers`` chunks are cut in :data:`_TAIL_PIECES` pieces each (of at least
    :data:`_TAIL_PIECE_MIN` bytes), taken last: a thread that finishes early then waits for a quarter of a
    chunk, not a whole one.

    >>> chunk_ranges(10, 4)
    [(0, 4), (4, 8), (8, 10)]
    >>> r = chunk_ranges(4 << 20, 256 << 10, workers=2)  # 16 chunks; the last two become eight
    >>> len(r), r[13], r[14], r[-1]
    (22, (3407872, 3670016), (3670016, 3735552), (4128768, 4194304))
    """
    n = max(1, -(-size // chunk_size))
    ranges = [(k * chunk_size, min((k + 1) * chunk_size, size)) for k in range(n)]
    if workers > 1 and n >= 4 * workers:
        lo = ranges[n - workers][0]
        pieces = min(_TAIL_PIECES * workers, (size - lo) // _TAIL_PIECE_MIN)
        if pieces > workers:
            cuts = [lo + (size - lo) * i // pieces for i in range(pieces + 1)]
            ranges[n - workers :] = list(zip(cuts[:-1], cuts[1:]))
    return ranges


def plan_chunks(path: str, size: int, chunk_size: int, specials: SpecialTokens, gpt2: bool = True
                ) -> Iterator[tuple[int, int]]:
    """The ``(start, end)`` byte ranges of the chunks of ``path``, in order, non-empty (for work that runs
    elsewhere and only needs the ranges: worker processes, an executor)."""
    with ChunkReader(path, size, chunk_size, specials, gpt2) as reader:
        for k in range(reader.n_chunks):
            data, start = reader.read(k)
            if data.shape[0]:
                yield start, start + data.shape[0]


def first_invalid_utf8(path: str) -> tuple[int, str]:
    """Offset and reason of the file's first invalid UTF-8 byte (-1 if none), with Python's own decoder."""
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


def invalid_utf8_error(path: str, found: int) -> InvalidUTF8Error:
    """The error for ``path``'s first invalid UTF-8 byte, after some chunk found one at offset ``found``:
    chunks finish in any order, so the file is read again for its first one (``found`` if that read sees
    none)."""
    offset, reason = first_invalid_utf8(path)
    return InvalidUTF8Error(path, offset if offset >= 0 else found, reason or "invalid start byte")


def checked_utf8(data: np.ndarray, start: int, errors: str) -> tuple[np.ndarray, int]:
    """``(data, -1)`` when ``data`` (file bytes from offset ``start``) is valid UTF-8; in ``"strict"`` mode
    ``(data[:0], file offset of the first invalid byte)`` otherwise; in ``"replace"`` mode the bytes with
    invalid sequences re-encoded as U+FFFD (chunks are cut at ASCII, so this never depends on the cuts)."""
    from .text_kernels import utf8_first_invalid

    bad = utf8_first_invalid(data)
    if bad < 0:
        return data, -1
    if errors == "strict":
        return data[:0], start + int(bad)
    fixed = data.tobytes().decode("utf-8", errors=errors).encode("utf-8")
    return np.frombuffer(fixed, dtype=np.uint8), -1
