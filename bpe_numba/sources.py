"""What a caller trains on: the input forms, resolved into files (or an iterable) before any work starts.

``train_bpe``, ``count_pretokens`` and the command line take:

- a path: a file, a directory (its files, recursively, in sorted order; names starting with ``.`` are
  skipped) or a glob pattern (``"shards/*.parquet"``, ``"**"`` recursive), matched in sorted order;
- a list or tuple of those;
- any other iterable of ``str`` (a generator, a ``datasets`` column): each item is one document, consumed
  once, in the calling process. (A *list* of strings is a list of paths: pass ``iter(texts)`` for texts.)
- counts of pre-tokens (:class:`CountsInput`, made by :func:`bpe_numba.train_bpe_from_counts`).

A file's format comes from its name: ``.gz``, ``.bz2``, ``.xz``, ``.zst`` are decompressed as they are read
(``.zst`` needs the ``zstandard`` package); ``.jsonl`` (also compressed, ``.jsonl.gz``) holds one JSON
object per line and ``.parquet`` a table (needs ``pyarrow``), whose ``text_field`` holds the documents;
any other file is UTF-8 text.

Documents: a text file is one document; so is each JSONL record, each Parquet row and each item of an
iterable. Every document is pre-tokenized on its own: no pre-token and no merge crosses from one document
into the next, as if the documents were joined by a special token. ``doc_cap`` keeps the first ``doc_cap``
characters of each document, and ``max_chars`` stops once the documents read hold more than ``max_chars``
characters (the document that crosses the budget is kept), as nanochat's ``tok_train.py`` does.

This module imports neither numpy nor Numba (:func:`bpe_numba.train_bpe` resolves its input before it
hands the work to the helper process); :mod:`bpe_numba.documents` reads the files.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "b.txt").write_text("b"); _ = (d / "a.jsonl.gz").write_bytes(b"")
>>> [(s.kind, s.compression) for s in resolve_input(d).sources]
[('jsonl', 'gzip'), ('text', None)]
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Iterable

from .errors import BPEFileNotFoundError, BPETypeError, BPEValueError
from .validation import check_input_file

TEXT, JSONL, PARQUET = "text", "jsonl", "parquet"
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}
_GLOB_CHARS = frozenset("*?[")
_LIST_HINT = "; to train on a list of texts rather than files, pass iter(texts)"


@dataclass(frozen=True)
class Source:
    """One input file: its format and what it was when resolved (``FileChangedError`` compares)."""

    path: str
    kind: str  # TEXT, JSONL or PARQUET
    compression: str | None  # a value of COMPRESSIONS, or None
    size: int
    mtime_ns: int

    @property
    def plain(self) -> bool:
        """Uncompressed text: its bytes can be cut at safe offsets and read in parallel."""
        return self.kind == TEXT and self.compression is None


@dataclass(frozen=True)
class CountsInput:
    """Pre-token counts to train from: a counts file (``path``) or ``(blob, lengths, counts)`` of a dict,
    as bytes and two ``array('q')``, so that it travels to the helper process without numpy."""

    path: str | None = None
    blob: bytes = b""
    lengths: object = None
    counts: object = None

    @classmethod
    def of(cls, counts) -> "CountsInput":
        """From a counts file path or a ``{bytes: int}`` dict (checked)."""
        if isinstance(counts, (str, os.PathLike)):
            return cls(path=check_input_file(counts, "counts"))
        if not isinstance(counts, dict):
            raise BPETypeError(
                f"counts must be a dict of pre-token bytes to counts (count_pretokens, load_counts) or the path "
                f"of a counts file, not {type(counts).__name__}"
            )
        from array import array

        lengths, values = array("q"), array("q")
        for key, value in counts.items():
            if not isinstance(key, bytes):
                raise BPETypeError(f"counts key {key!r} is {type(key).__name__}; pre-tokens must be bytes")
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
                raise BPEValueError(f"counts[{key!r}] is {value!r}; counts must be positive int below 2**63")
            lengths.append(len(key))
            values.append(value)
        return cls(blob=b"".join(counts), lengths=lengths, counts=values)

    def as_dict(self) -> dict[bytes, int]:
        if self.path is not None:
            from .counts_file import load_counts

            return load_counts(self.path)
        out, at = {}, 0
        for n, c in zip(self.lengths, self.counts):
            out[self.blob[at : at + n]] = c
            at += n
        return out

    @property
    def size(self) -> int:
        """Bytes of the distinct pre-tokens (what the merge loop's work grows with)."""
        if self.path is not None:
            return os.path.getsize(self.path)
        return len(self.blob)


@dataclass(frozen=True)
class Corpus:
    """A resolved input: files, or an iterable of ``str`` (``documents``), with the reading options."""

    sources: tuple = ()
    documents: Iterable | None = None
    text_field: str = "text"
    doc_cap: int | None = None
    max_chars: int | None = None

    @property
    def single_plain_file(self) -> str | None:
        """The path when the input is one uncompressed text file read whole: today's fast path."""
        if len(self.sources) == 1 and self.sources[0].plain and self.doc_cap is None and self.max_chars is None:
            return self.sources[0].path
        return None

    @property
    def ordered(self) -> bool:
        """Whether the documents must be read one after another (an iterable, or a character budget)."""
        return self.documents is not None or self.max_chars is not None

    @property
    def size(self) -> int:
        return sum(s.size for s in self.sources)


def resolve_input(input_path, *, text_field: str = "text", doc_cap: int | None = None,
                  max_chars: int | None = None, what: str = "input") -> Corpus | CountsInput:
    """The :class:`Corpus` named by ``input_path`` (see the module docstring), checked: every file exists
    and is readable, every glob matches, the packages its formats need are installed."""
    if isinstance(input_path, CountsInput):
        return input_path
    if not isinstance(text_field, str) or not text_field:
        raise BPEValueError(f"text_field={text_field!r}; give the name of the field that holds the text, e.g. 'text'")
    doc_cap = _check_cap(doc_cap, "doc_cap", "characters per document")
    max_chars = _check_cap(max_chars, "max_chars", "characters in all")
    options = dict(text_field=text_field, doc_cap=doc_cap, max_chars=max_chars)
    if isinstance(input_path, (str, os.PathLike)):
        return Corpus(sources=tuple(_expand(input_path, what, "")), **options)
    if isinstance(input_path, (list, tuple)):
        if not input_path:
            raise BPEValueError(f"{what} is an empty list; give at least one file, directory or glob pattern")
        sources: list[Source] = []
        for i, item in enumerate(input_path):
            if not isinstance(item, (str, os.PathLike)):
                raise BPETypeError(
                    f"{what}[{i}] is {type(item).__name__}; a list input holds paths (files, directories or "
                    f"glob patterns){_LIST_HINT}"
                )
            sources.extend(_expand(item, f"{what}[{i}]", _LIST_HINT))
        return Corpus(sources=tuple(sources), **options)
    if isinstance(input_path, (bytes, bytearray, memoryview, dict)) or not hasattr(input_path, "__iter__"):
        raise BPETypeError(
            f"{what} is {type(input_path).__name__}; give a path, a list of paths, a directory, a glob pattern "
            f"or an iterable of str documents"
        )
    return Corpus(documents=input_path, **options)


def _check_cap(value, name: str, unit: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BPETypeError(f"{name} must be an int ({unit}) or None, not {type(value).__name__}")
    if value < (1 if name == "doc_cap" else 0):
        raise BPEValueError(f"{name}={value}; use a positive number of {unit}, or None for no limit")
    return value


def _expand(item, where: str, hint: str) -> list[Source]:
    path = os.fspath(item)
    if isinstance(path, bytes):
        raise BPETypeError(f"{where} is a bytes path; give it as str")
    if os.path.isdir(path):
        found = sorted(_walk(path), key=lambda p: os.path.relpath(p, path).split(os.sep))
        if not found:
            raise BPEFileNotFoundError(f"{path}: the directory holds no files (names starting with '.' are skipped)")
        return [_source(p) for p in found]
    if os.path.exists(path) or not _GLOB_CHARS.intersection(path):
        if not os.path.exists(path):
            raise BPEFileNotFoundError(f"{path}: no such file{hint}; check the path (relative to {os.getcwd()})")
        return [_source(path)]
    matches = sorted(glob.glob(path, recursive=True))
    files: list[str] = []
    for m in matches:
        files.extend(sorted(_walk(m)) if os.path.isdir(m) else [m])
    if not files:
        raise BPEFileNotFoundError(f"{where}: the glob pattern {path!r} matches no file; check the pattern "
                                   f"(relative to {os.getcwd()})")
    return [_source(f) for f in files]


def _walk(directory: str) -> Iterable[str]:
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith("."):
                yield os.path.join(root, name)


def format_of(path: str) -> tuple[str, str | None]:
    """``(kind, compression)`` of a file from its name.

    >>> format_of("a/shard.jsonl.zst"), format_of("b.parquet"), format_of("c.txt.gz"), format_of("d")
    (('jsonl', 'zstd'), ('parquet', None), ('text', 'gzip'), ('text', None))
    """
    name = os.path.basename(path).lower()
    stem, ext = os.path.splitext(name)
    compression = COMPRESSIONS.get(ext)
    if compression is not None:
        name = stem
    if name.endswith((".jsonl", ".ndjson")):
        return JSONL, compression
    if name.endswith(".parquet"):
        return PARQUET, compression
    return TEXT, compression


def _source(path: str) -> Source:
    kind, compression = format_of(path)
    if kind == PARQUET and compression is not None:
        raise BPEValueError(f"{path}: a Parquet file compresses its own pages; decompress the file first")
    need = "zstandard" if compression == "zstd" else "pyarrow" if kind == PARQUET else None
    if need is not None:
        import importlib.util

        if importlib.util.find_spec(need) is None:
            extra = "zstd" if need == "zstandard" else "parquet"
            raise BPEValueError(f"{path}: reading it needs the {need} package; pip install 'bpe_numba[{extra}]'")
    st = os.stat(check_input_file(path))
    return Source(path, kind, compression, st.st_size, st.st_mtime_ns)


__all__ = ["Corpus", "CountsInput", "Source", "resolve_input", "format_of"]
