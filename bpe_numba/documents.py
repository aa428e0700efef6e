"""Reading documents as *blocks* of UTF-8 bytes for the counting kernels, a bounded amount at a time.

A block (:class:`Block`) is a read-only uint8 array (as every text the kernels take: one compiled variant)
holding either

- a piece of one text document: a text file is read (and decompressed) a block at a time and cut at a safe
  offset (:mod:`bpe_numba.chunking`: a place where the full text's pre-tokens have a boundary and no special
  token occurs across), so counting the pieces one by one counts the whole document; or
- whole documents (JSONL records, Parquet rows, items of an iterable) joined by the byte ``0xFF``
  (``joined``). That byte never occurs in UTF-8, so it occurs in no document and in no special token:
  no occurrence of a special token can span two documents, and :func:`block_bounds` cuts the block into the
  segments the kernels count, each inside one document.

Decompression (``gzip``, ``bz2``, ``lzma``, ``zstandard``) releases the GIL for its heavy part, so the
threads that count also decompress side by side. A corrupt or truncated compressed file raises
:class:`~bpe_numba.errors.BPEValueError` naming the file, the decompressed offset reached and how far the
compressed file was read; invalid UTF-8 raises :class:`~bpe_numba.errors.InvalidUTF8Error` with the
offset in the (decompressed) text, or the JSONL line or Parquet row.
"""

from __future__ import annotations

import io
import json
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from .chunking import CUT_AT, CUT_BEFORE, SpecialTokens, checked_utf8
from .errors import BPETypeError, BPEValueError, InvalidUTF8Error
from .sources import JSONL, PARQUET, Source

SEPARATOR = 0xFF  # joins the documents of a block: never a byte of UTF-8 text
TEXT_BLOCK = 4 << 20  # bytes of a text document read at a time (one kernel call's worth, like a file chunk)
DOC_BLOCK = 1 << 18  # bytes of documents joined into one block (memory: a few blocks per thread)


class Block(NamedTuple):
    data: np.ndarray  # uint8, read-only
    joined: bool  # documents joined by SEPARATOR (else a piece of one document)


class Reading(NamedTuple):
    """How to read: the special tokens (where text may be cut), the errors mode and the document options."""

    specials: SpecialTokens
    gpt2: bool  # safe cuts of the GPT-2 pattern; else cut only where a special token starts
    errors: str
    text_field: str
    doc_cap: int | None
    fresh: bool  # each block in memory of its own (it outlives the next one: a queue); else one buffer reused


class Budget:
    """``max_chars``: a document is read while the documents before it hold at most ``limit`` characters."""

    def __init__(self, limit: int | None):
        self.limit = limit
        self.total = 0

    @property
    def open(self) -> bool:
        return self.limit is None or self.total <= self.limit


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``."""
    view = a.view()
    view.flags.writeable = False
    return view


def block_bounds(splitter, data: np.ndarray, joined: bool) -> np.ndarray:
    """``(k, 2)`` int64 ``[start, end)`` of the segments of ``data`` to count: split at special tokens and,
    for a joined block, at every separator (dropped).

    >>> from bpe_numba.pretokenize import SpecialSplitter
    >>> block_bounds(SpecialSplitter(["<s>"]), np.frombuffer(b"a<s>b\\xffc", np.uint8), True).tolist()
    [[0, 1], [4, 5], [6, 7]]
    """
    bounds, _ = splitter.split(data)
    if not joined:
        return bounds
    seps = np.flatnonzero(data == SEPARATOR)
    # A separator lies inside one segment (no special token holds 0xFF): it ends a piece and starts one.
    starts = np.sort(np.concatenate([bounds[:, 0], seps + 1]))
    ends = np.sort(np.concatenate([bounds[:, 1], seps]))
    return np.stack([starts, ends], axis=1)


def source_blocks(src: Source, reading: Reading, budget: Budget, row_groups=None) -> Iterator[Block]:
    """The blocks of one file (of ``row_groups`` only, for Parquet, when given)."""
    if src.kind == PARQUET:
        return parquet_blocks(src, reading, budget, row_groups)
    if src.kind == JSONL:
        return jsonl_blocks(src, reading, budget)
    return text_blocks(src, reading, budget)


# ---------------------------------------------------------------------------------------------------------
# Compressed files
# ---------------------------------------------------------------------------------------------------------

class _Counted(io.RawIOBase):
    """A raw file that remembers how far it was read (where a decompressor failed)."""

    def __init__(self, path: str):
        self.f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.f.readinto(b)
        self.pos += n or 0
        return n

    def close(self) -> None:
        self.f.close()
        super().close()


_GZ_IN = 1 << 15  # compressed bytes fed to zlib at a time (see _Gunzip)


class _Gunzip(io.RawIOBase):
    """gzip members (one or more) decompressed by ``zlib`` directly: about 15 % less time than
    ``gzip.GzipFile``, whose reader loop is Python. ``zlib`` checks each member's CRC and length.

    Compressed input goes in :data:`_GZ_IN` bytes at a time: ``decompress`` copies the input it did not
    consume (its ``unconsumed_tail``) at every call, which with 256 KiB reads cost 40-100 % on top of the
    decompression itself (100 files of ``prose_en.txt``, 52 MB: 0.29-0.44 s streamed against 0.21 s
    one-shot; with 32 KiB reads, within 10 % of one-shot)."""

    def __init__(self, raw: _Counted):
        import zlib

        self.raw = raw
        self.zlib = zlib
        self.d = zlib.decompressobj(31)
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while True:
            if self.d.eof:
                rest = self.d.unused_data + self.pending
                if not rest:
                    rest = self.raw.read(_GZ_IN)
                    if not rest:
                        return 0
                self.d, self.pending = self.zlib.decompressobj(31), rest
            if not self.pending:
                self.pending = self.raw.read(_GZ_IN)
                if not self.pending:
                    raise EOFError("compressed file ended before the end-of-stream marker was reached")
            out = self.d.decompress(self.pending, len(b))
            self.pending = self.d.unconsumed_tail
            if out:
                b[: len(out)] = out
                return len(out)

    def close(self) -> None:
        self.raw.close()
        super().close()


def open_binary(src: Source):
    """``(reader, raw)``: the decompressed bytes of ``src`` as a buffered binary file, and the raw file."""
    raw = _Counted(src.path)
    try:
        if src.compression == "gzip":
            return io.BufferedReader(_Gunzip(raw), 1 << 20), raw
        if src.compression == "bz2":
            import bz2

            return bz2.BZ2File(raw, mode="rb"), raw
        if src.compression == "xz":
            import lzma

            return lzma.LZMAFile(raw, mode="rb"), raw
        if src.compression == "zstd":
            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
            return io.BufferedReader(reader, 1 << 20), raw
        return io.BufferedReader(raw, 1 << 20), raw
    except BaseException:
        raw.close()
        raise


def _decompression_errors() -> tuple:
    import lzma
    import zlib

    kinds: list = [EOFError, zlib.error, lzma.LZMAError, OSError]
    try:
        import zstandard

        kinds.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(kinds)


def _corrupt(src: Source, raw: _Counted, offset: int, exc: BaseException) -> BPEValueError:
    if isinstance(exc, OSError) and exc.errno is not None:  # a real I/O error, not bad data
        raise exc
    fmt = {"gzip": "gzip", "bz2": "bzip2", "xz": "xz", "zstd": "zstandard"}[src.compression]
    err = BPEValueError(
        f"{src.path}: corrupt or truncated {fmt} data ({exc or type(exc).__name__}) after {offset:,} bytes of "
        f"decompressed data, with the compressed file read up to byte {raw.pos:,}; re-create or re-download "
        f"the file (or leave it out)"
    )
    err.path, err.offset = src.path, offset
    return err


def _read_full(f, view, src: Source, raw: _Counted, offset: int) -> int:
    """Read into ``view`` until it is full or the data ends; returns the number of bytes read."""
    got = 0
    errors = _decompression_errors() if src.compression else ()
    while got < len(view):
        try:
            n = f.readinto(view[got:])
        except errors as exc:
            raise _corrupt(src, raw, offset + got, exc) from None
        if not n:
            break
        got += n
    return got


# ---------------------------------------------------------------------------------------------------------
# Text files: one document, cut at safe offsets
# ---------------------------------------------------------------------------------------------------------

def text_blocks(src: Source, reading: Reading, budget: Budget) -> Iterator[Block]:
    """A text file (compressed or not) as pieces of about :data:`TEXT_BLOCK` bytes cut at safe offsets."""
    if not budget.open:
        return
    f, raw = open_binary(src)
    with f:
        yield from _text_pieces(f, raw, src, reading, budget)


def _text_pieces(f, raw, src: Source, reading: Reading, budget: Budget) -> Iterator[Block]:
    sp = reading.specials
    margin = max(sp.longest, 1)
    buf = np.empty(TEXT_BLOCK, dtype=np.uint8)
    have = 0  # bytes in buf
    start = 0  # decompressed offset of buf[0]
    cap = reading.doc_cap  # characters left to read
    chars = 0
    eof = False
    where = "" if src.compression is None else "in the decompressed text"
    while not eof or have:
        if not eof:
            n = _read_full(f, memoryview(buf)[have:], src, raw, start + have)
            eof = have + n < buf.shape[0]
            have += n
        data = readonly(buf[:have])
        cut = have if eof else _cut_near_end(data, margin, sp, reading.gpt2)
        if cut < 0:  # no place to cut yet: read on into a larger buffer
            grown = np.empty(2 * buf.shape[0], dtype=np.uint8)
            grown[:have] = data
            buf = grown
            continue
        piece, bad = checked_utf8(data[:cut], start, reading.errors)
        if bad >= 0:
            prefix = data[: bad - start]
            if cap is None or _char_count(prefix) < cap:
                raise InvalidUTF8Error(src.path, bad, where or "")
            piece = prefix  # the document ends (doc_cap) before its invalid byte
        if cap is not None:
            piece = _first_chars(piece, cap)
        n_chars = _char_count(piece) if cap is not None or budget.limit is not None else 0
        chars += n_chars
        if piece.shape[0]:
            yield Block(readonly(piece), False)  # a view of buf: in fresh mode, buf is not written again
        if cap is not None:
            cap -= n_chars
            if cap <= 0:
                break
        rest = have - cut
        fresh = np.empty(buf.shape[0], dtype=np.uint8) if reading.fresh else buf
        fresh[:rest] = buf[cut:have]
        buf, have, start = fresh, rest, start + cut
    budget.total += chars


def _cut_near_end(data: np.ndarray, margin: int, sp: SpecialTokens, gpt2: bool) -> int:
    """A cut offset in the last quarter of ``data`` (else anywhere), keeping ``margin`` bytes after it for the
    special-token check; -1 if there is none."""
    from .text_kernels import first_cut

    n = data.shape[0]
    for lo, hi in ((n - n // 4, n - margin), (1, min(n - n // 4, n - margin))):
        found = int(first_cut(data, lo, hi, gpt2, CUT_BEFORE, CUT_AT, sp.blob, sp.offsets))
        if found >= 0:
            return found
    return -1


def _char_count(data: np.ndarray) -> int:
    """Characters of valid UTF-8 bytes (the bytes that are not continuation bytes)."""
    return int(np.count_nonzero((data & 0xC0) != 0x80))


def _first_chars(data: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` characters of valid UTF-8 ``data``."""
    if data.shape[0] <= n:
        return data
    head = data[: 4 * n + 4]  # n characters take at most 4 n bytes
    starts = np.flatnonzero((head & 0xC0) != 0x80)
    return data[: starts[n]] if starts.shape[0] > n else data


# ---------------------------------------------------------------------------------------------------------
# Documents joined into blocks: iterables, JSONL, Parquet
# ---------------------------------------------------------------------------------------------------------

class _Joiner:
    """Collects documents (``str``) into joined blocks of about :data:`DOC_BLOCK` bytes."""

    def __init__(self, reading: Reading, budget: Budget):
        self.cap = reading.doc_cap
        self.budget = budget
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, doc: str, where) -> Block | None:
        """Add a document (``where()`` names it in errors); returns a full block, if one is ready."""
        if self.cap is not None and len(doc) > self.cap:
            doc = doc[: self.cap]
        if self.budget.limit is not None:
            self.budget.total += len(doc)
        try:
            raw = doc.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BPEValueError(
                f"{where()}: lone surrogate {doc[exc.start]!r} at character {exc.start}; a document must be "
                f"valid Unicode text"
            ) from None
        self.parts.append(raw)
        self.size += len(raw) + 1
        return self.flush() if self.size >= DOC_BLOCK else None

    def flush(self) -> Block | None:
        if not self.parts:
            return None
        data = np.frombuffer(b"\xff".join(self.parts), dtype=np.uint8)
        self.parts, self.size = [], 0
        return Block(data, True)


def _joined(documents, reading: Reading, budget: Budget) -> Iterator[Block]:
    """Blocks of ``(document, where)`` pairs (``where()`` names the document in errors), while the budget
    is open."""
    joiner = _Joiner(reading, budget)
    for doc, where in documents:
        if not budget.open:
            break
        block = joiner.add(doc, where)
        if block is not None:
            yield block
    block = joiner.flush()
    if block is not None:
        yield block


def iterable_blocks(documents: Iterable, reading: Reading, budget: Budget) -> Iterator[Block]:
    """An iterable of ``str``, one document per item."""

    def checked():
        for i, doc in enumerate(documents):
            if not isinstance(doc, str):
                hint = "; decode bytes first" if isinstance(doc, (bytes, bytearray)) else ""
                raise BPETypeError(f"input item {i} is {type(doc).__name__}; an iterable input must yield str "
                                   f"documents{hint}")
            yield doc, lambda: f"input item {i}"

    return _joined(checked(), reading, budget)


def jsonl_blocks(src: Source, reading: Reading, budget: Budget) -> Iterator[Block]:
    """A JSON Lines file: each line one JSON object whose ``text_field`` is a document (blank lines are
    skipped)."""
    field = reading.text_field
    joiner = _Joiner(reading, budget)
    f, raw = open_binary(src)
    errors = _decompression_errors() if src.compression else ()
    offset = 0
    line_no = 0
    with f:
        while budget.open:
            try:
                line = f.readline()
            except errors as exc:
                raise _corrupt(src, raw, offset, exc) from None
            if not line:
                break
            line_no += 1
            at = f"{src.path}:{line_no}"
            if line.strip():
                try:
                    text = line.decode("utf-8", errors=reading.errors)
                except UnicodeDecodeError as exc:
                    raise InvalidUTF8Error(src.path, offset + exc.start, f"line {line_no}") from None
                try:
                    record = json.loads(text)
                except ValueError as exc:
                    raise BPEValueError(
                        f"{at}: not valid JSON ({getattr(exc, 'msg', exc)}, column {getattr(exc, 'colno', '?')}); "
                        f"each line of a .jsonl file must be one JSON object"
                    ) from None
                if not isinstance(record, dict) or field not in record:
                    got = (f"its fields are {', '.join(map(repr, list(record)[:10]))}" if isinstance(record, dict)
                           else f"it is a JSON {type(record).__name__}")
                    raise BPEValueError(f"{at}: the record has no field {field!r} ({got}); pass text_field= "
                                        f"the field that holds the text")
                doc = record[field]
                if not isinstance(doc, str):
                    raise BPEValueError(f"{at}: field {field!r} is a JSON {type(doc).__name__}, not a string")
                block = joiner.add(doc, lambda: at)
                if block is not None:
                    yield block
            offset += len(line)
    block = joiner.flush()
    if block is not None:
        yield block


def parquet_row_groups(path: str) -> int:
    return _parquet_file(path).num_row_groups


def _parquet_file(path: str):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise BPEValueError(f"{path}: not a readable Parquet file ({exc})") from None


def parquet_blocks(src: Source, reading: Reading, budget: Budget, row_groups=None) -> Iterator[Block]:
    """A Parquet file's ``text_field`` column, a row group at a time (each row a document)."""
    import pyarrow as pa

    pf = _parquet_file(src.path)
    schema = pf.schema_arrow
    field = reading.text_field
    if field not in schema.names:
        raise BPEValueError(f"{src.path}: no column {field!r} (its columns: {', '.join(schema.names[:20])}); pass "
                            f"text_field= the column that holds the text")
    kind = schema.field(field).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise BPEValueError(f"{src.path}: column {field!r} is {kind}, not strings")
    first_row = [0]
    for g in range(pf.num_row_groups):
        first_row.append(first_row[-1] + pf.metadata.row_group(g).num_rows)
    for g in range(pf.num_row_groups) if row_groups is None else row_groups:
        if not budget.open:
            return
        column = pf.read_row_group(g, columns=[field]).column(0)
        row = first_row[g]
        for chunk in column.chunks:
            yield from _arrow_blocks(chunk.cast(pa.large_string()), src, row, reading, budget)
            row += len(chunk)


def _arrow_buffers(chunk) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, data)`` of a ``large_string`` array (read-only views)."""
    _, offsets, data = chunk.buffers()
    offs = np.frombuffer(offsets, dtype=np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]
    return offs, (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8))


def _arrow_blocks(chunk, src: Source, row0: int, reading: Reading, budget: Budget) -> Iterator[Block]:
    import pyarrow.compute as pc

    from .text_kernels import utf8_first_invalid

    if chunk.null_count:
        i = int(np.argmax(chunk.is_null().to_numpy(zero_copy_only=False)))
        raise BPEValueError(f"{src.path}: row {row0 + i:,} has no value (null) in column {reading.text_field!r}")
    offs, data = _arrow_buffers(chunk)
    # Valid UTF-8 as a whole, and every document starts at a character: then each document is valid.
    body = data[offs[0] : offs[-1]]
    bad = int(utf8_first_invalid(body))
    starts = offs[:-1][np.diff(offs) > 0]
    split = np.flatnonzero((data[starts] & 0xC0) == 0x80) if starts.shape[0] else starts
    if bad >= 0 or split.shape[0]:
        at = int(offs[0]) + bad if bad >= 0 else int(starts[split[0]])
        i = int(np.searchsorted(offs, at, side="right")) - 1
        if reading.errors == "strict":
            raise InvalidUTF8Error(src.path, at - int(offs[i]), f"row {row0 + i:,}, column {reading.text_field!r}")
        texts = ((data[offs[j] : offs[j + 1]].tobytes().decode("utf-8", errors="replace"),
                  lambda: f"{src.path}: row {row0 + j:,}") for j in range(len(chunk)))
        yield from _joined(texts, reading, budget)
        return
    if reading.doc_cap is not None:
        chunk = pc.utf8_slice_codeunits(chunk, 0, reading.doc_cap)  # code points, as Python slices str
        offs, data = _arrow_buffers(chunk)
    n = len(chunk)
    if budget.limit is not None and n:
        lengths = pc.utf8_length(chunk).to_numpy().astype(np.int64)
        before = np.cumsum(lengths) - lengths  # characters of the earlier documents of this chunk
        n = int(np.searchsorted(before, budget.limit - budget.total, side="right"))
        budget.total += int(lengths[:n].sum())
    i = 0
    while i < n:
        j = max(i + 1, min(n, int(np.searchsorted(offs, offs[i] + DOC_BLOCK, side="right")) - 1))
        piece = data[offs[i] : offs[j]]
        yield Block(readonly(np.insert(piece, offs[i + 1 : j] - offs[i], SEPARATOR)), True)
        i = j


__all__ = ["Block", "Budget", "Reading", "block_bounds", "source_blocks", "iterable_blocks"]
