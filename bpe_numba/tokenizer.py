"""``Tokenizer``: encode text to ids and back with a trained (or loaded) byte-level BPE model.

Semantics (DESIGN.md, encoding contract): special tokens are split out first (leftmost, longest first),
the text between is pre-tokenized with the GPT-2 pattern, and each pre-token's bytes are merged by
repeatedly joining the adjacent pair of lowest merge rank. The work happens in ``encode_kernels``: text is
cut into units at safe cuts, every distinct unit is encoded once and remembered in a bounded cache.
"""

from __future__ import annotations

import os
import struct
from typing import Iterable, Iterator, Sequence

import numpy as np
import regex

from .atomic import atomic_file
from .errors import BPETypeError, BPEValueError, InvalidUTF8Error
from .validation import (
    GPT2_PATTERN,
    check_errors_mode,
    check_input_file,
    check_merges,
    check_output_file,
    check_pattern,
    check_special_tokens,
    check_vocab,
    resolve_engine,
    resolve_progress,
    resolve_workers,
)
from .chunking import CUT_AT as _CUT_AT, CUT_BEFORE as _CUT_BEFORE, special_crosses
from .formats.hf import FIRST_SPECIAL
from .pretokenize import SpecialSplitter

_CACHE_UNITS = 1 << 16  # distinct units kept (the table has twice as many slots)
_CACHE_KEY_BYTES = 1 << 22
_CACHE_IDS = 1 << 21
_MAX_CACHED_UNIT = 255  # longer units are encoded every time (they are rare and would crowd the cache)
_BLOCK_UNITS = 1 << 16  # units planned per kernel call
_WINDOW = 1 << 14  # encode_iterable encodes this many bytes at a time (more if no safe cut is found)


class Tokenizer:
    """Byte-level BPE tokenizer with the CS336 interface.

    ``vocab`` maps ids to token bytes; ``merges`` lists ``(bytes, bytes)`` in creation order (rank order);
    ``special_tokens`` are strings kept whole, appended to the vocab when their bytes are not in it.
    ``pattern`` is the pre-tokenization regex (GPT-2's by default; saved models carry theirs) and ``engine``
    pre-tokenizes with the Numba GPT-2 scanner (``"numba"``), the ``regex`` package (``"regex"``), or the
    scanner when the pattern is GPT-2's (``"auto"``); the ids are the same. ``backend`` encodes with the
    kernels (``"kernels"``), in plain Python (``"python"``: :class:`bpe_numba.python_bpe.PythonEncoder`, no
    Numba), or (``"auto"``) with the kernels when they are compiled and in Python (starting their
    background compilation) when not; the ids are the same.

    >>> vocab = {i: bytes([i]) for i in range(256)} | {256: b"ab"}
    >>> tok = Tokenizer(vocab, [(b"a", b"b")], ["<s>"])
    >>> tok.encode("abab<s>a")
    [256, 256, 257, 97]
    >>> tok.decode([256, 257, 97])
    'ab<s>a'
    """

    def __init__(
        self,
        vocab: dict[int, bytes],
        merges: Sequence[tuple[bytes, bytes]],
        special_tokens=None,
        *,
        pattern: str = GPT2_PATTERN,
        engine: str = "auto",
        backend: str = "auto",
    ):
        special_tokens = check_special_tokens(special_tokens)
        self.pattern = check_pattern(pattern)
        self.engine = resolve_engine(engine, self.pattern)
        if not isinstance(vocab, dict):
            raise BPETypeError(f"vocab must be a dict of int id -> bytes, not {type(vocab).__name__}")
        check_vocab(vocab)
        merges = list(merges) if isinstance(merges, Iterator) else merges
        self.vocab: dict[int, bytes] = dict(vocab)
        self.special_tokens: list[str] = special_tokens

        ids_of: dict[bytes, int] = {}
        for i in sorted(self.vocab, reverse=True):  # the lowest id wins where byte strings repeat
            ids_of[self.vocab[i]] = i
        self.special_ids: dict[str, int] = {}
        next_id = max(self.vocab, default=-1) + 1
        for tok in special_tokens:
            b = tok.encode("utf-8")
            same = [i for i, v in self.vocab.items() if v == b] if b in ids_of else []
            if same:  # a one-byte special "x" is its own id, not byte 120
                self.special_ids[tok] = max(same)
            else:
                self.vocab[next_id] = b
                self.special_ids[tok] = next_id
                next_id += 1
        missing = [b for b in range(256) if bytes([b]) not in ids_of]
        if missing:
            raise BPEValueError(
                f"the vocab has no token for byte {missing[0]} (0x{missing[0]:02x})"
                f"{f' and {len(missing) - 1} other bytes' if len(missing) > 1 else ''}; a byte-level BPE vocab "
                f"needs all 256 single bytes"
            )
        check_merges(vocab, merges)  # every merge a pair of bytes whose parts and result are in the vocab
        self.merges: list[tuple[bytes, bytes]] = [(a, b) for a, b in merges]
        self._id_bytes = _decode_table(self.vocab)
        self._special_by_bytes = {t.encode("utf-8"): i for t, i in self.special_ids.items()}
        self._max_special = max((len(t.encode("utf-8")) for t in special_tokens), default=0)
        from .tiers import choose_backend

        self.backend = choose_backend(backend)
        self._python = None
        if self.backend == "python":
            from .python_bpe import PythonEncoder

            self._python = PythonEncoder(ids_of, self.merges, self.special_ids, self.pattern)
            return
        self._byte_ids = np.array([ids_of[bytes([b])] for b in range(256)], dtype=np.int32)
        left = np.empty(len(merges), dtype=np.int32)
        right = np.empty(len(merges), dtype=np.int32)
        merged = np.empty(len(merges), dtype=np.int32)
        for r, (a, b) in enumerate(self.merges):
            left[r], right[r], merged[r] = ids_of[a], ids_of[b], ids_of[a + b]
        self._splitter = SpecialSplitter(special_tokens)
        self._special_id_array = np.array([self.special_ids[t] for t in special_tokens] + [-1], dtype=np.int64)
        self._pre = regex.compile(self.pattern)
        # Units (runs between safe cuts, each encoded once and cached) are sound for the GPT-2 pattern only;
        # with another pattern, no byte is a cut and every segment between special tokens is one unit.
        gpt2 = self.pattern == GPT2_PATTERN
        self._cut_before = _CUT_BEFORE if gpt2 else np.zeros(256, dtype=bool)
        self._cut_at = _CUT_AT if gpt2 else np.zeros(256, dtype=bool)
        if self.engine == "numba":
            from .gpt2_scan import char_classes

            self._classes = char_classes()

        from . import encode_kernels as K

        self._K = K
        cap = 1 << max(4, (2 * len(merges)).bit_length())
        self._pair_keys = np.full(cap, -1, dtype=np.int64)
        self._pair_ranks = np.empty(cap, dtype=np.int32)
        self._pair_results = np.empty(cap, dtype=np.int32)
        K.build_pair_table(left, right, merged, self._pair_keys, self._pair_ranks, self._pair_results)
        self._c_slots = np.zeros(4 * _CACHE_UNITS, dtype=np.uint64)  # (key, value) x 2 * _CACHE_UNITS slots
        self._c_kstart = np.empty(2 * _CACHE_UNITS, dtype=np.int64)
        self._c_keys = np.empty(_CACHE_KEY_BYTES, dtype=np.uint8)
        self._c_ids = np.empty(_CACHE_IDS, dtype=np.int32)
        self._c_state = np.zeros(3, dtype=np.int64)
        # Compile (or load from Numba's cache) every kernel now, so that encoding never compiles lazily.
        self.encode("a b\n x" + "y" * (K.SMALL_PIECE + 1) + "".join(special_tokens[:1]))
        K.cache_clear(self._c_slots, self._c_state)

    # -----------------------------------------------------------------------------------------------------

    @classmethod
    def from_files(cls, vocab_filepath, merges_filepath, special_tokens=None) -> "Tokenizer":
        """Load GPT-2 style ``vocab.json`` + ``merges.txt`` (as written by :meth:`save`, or by other tools)."""
        from .formats import load_model

        vocab, merges, saved_specials, pattern = load_model(vocab_filepath, merges_filepath)
        return cls(vocab, merges, saved_specials if special_tokens is None else special_tokens, pattern=pattern)

    @classmethod
    def from_pickle(cls, path, special_tokens=None) -> "Tokenizer":
        """Load a pickled ``(vocab, merges)`` (or ``{"vocab": ..., "merges": ...}``) as CS336 solutions write
        it, with an unpickler that refuses every global, so a malicious file cannot run code."""
        from .formats import load_pickle

        vocab, merges, saved_specials, pattern = load_pickle(path)
        return cls(vocab, merges, saved_specials if special_tokens is None else special_tokens, pattern=pattern)

    def export_hf(self, path) -> None:
        """Write a Hugging Face ``tokenizer.json`` (load it with ``tokenizers.Tokenizer.from_file``)."""
        from .formats import export_hf_tokenizer_json

        export_hf_tokenizer_json(path, self.vocab, self.merges, self.special_tokens, self.pattern)

    def export_tiktoken(self, path) -> dict[str, int]:
        """Write a tiktoken rank file; returns the ``special_tokens`` dict for ``tiktoken.Encoding``
        (see :mod:`bpe_numba.formats.tiktoken` for the recipe)."""
        from .formats import export_tiktoken

        return export_tiktoken(path, self.vocab, self.special_tokens, merges=self.merges)

    def save_pretrained(self, directory, *, eos_token: str | None = FIRST_SPECIAL, bos_token: str | None = None,
                        pad_token: str | None = None) -> None:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` into ``directory``, for
        ``transformers.AutoTokenizer.from_pretrained(directory)``, which then gives this tokenizer's ids.

        ``eos_token`` (default: the first special token), ``bos_token`` and ``pad_token`` are special tokens
        of this tokenizer, or ``None``. Warns when a special token is one that tokenizers decodes wrongly
        (see :mod:`bpe_numba.formats.hf`).
        """
        from .formats import save_hf_pretrained

        save_hf_pretrained(directory, self.vocab, self.merges, self.special_tokens, self.pattern,
                           eos_token=eos_token, bos_token=bos_token, pad_token=pad_token)

    def to_tiktoken(self, name: str = "bpe_numba"):
        """A ``tiktoken.Encoding`` with this tokenizer's pattern, ranks and special tokens (tiktoken must be
        installed). Pass ``allowed_special="all"`` to its ``encode`` to split on the special tokens; see
        :mod:`bpe_numba.formats.tiktoken` for where tiktoken can differ.

        >>> enc = tok.to_tiktoken()  # doctest: +SKIP
        >>> enc.encode("Once upon a time<|endoftext|>", allowed_special="all") == tok.encode("Once upon a time<|endoftext|>")  # doctest: +SKIP
        True
        """
        from .formats import tiktoken_encoding

        return tiktoken_encoding(self.vocab, self.special_tokens, self.pattern, name, merges=self.merges)

    def encode_batch(self, texts: Iterable[str], num_threads: int | None = None) -> list[list[int]]:
        """``[self.encode(t) for t in texts]``, for ``datasets.map(batched=True)`` and tiktoken-style callers.
        ``num_threads`` is accepted for tiktoken's signature; for now the texts are encoded one after another
        on the calling thread (the ids never depend on it)."""
        if isinstance(texts, (str, bytes)):
            raise BPETypeError(f"encode_batch() takes a list of str, not a single {type(texts).__name__}; "
                               f"use encode() for one text")
        return [self.encode(t) for t in texts]

    def encode_documents(self, inputs, output_path, *, eot: str | None = None, errors: str = "strict",
                         progress: bool | None = None, num_workers: int | None = None) -> int:
        """Encode many documents into one ``.npy`` id stream for language-model training, with ``eot``'s id
        after each document, in input order; returns the number of ids. See
        :func:`bpe_numba.id_stream.encode_documents`."""
        from .id_stream import encode_documents

        return encode_documents(self, inputs, output_path, eot=eot, errors=errors, progress=progress,
                                num_workers=num_workers)

    def save(self, directory) -> None:
        """Write ``vocab.json`` and ``merges.txt`` (and the metadata) into ``directory``, atomically."""
        from .formats import save_model

        save_model(directory, self.vocab, self.merges, self.special_tokens, self.pattern)

    # -----------------------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``."""
        if self._python is not None:
            if not isinstance(text, str):
                raise TypeError(f"encode() takes a str, not {type(text).__name__}; decode bytes first")
            return self._python.encode(_utf8(text).decode("utf-8"))
        return self.encode_to_array(text).tolist()

    def encode_to_array(self, text: str) -> np.ndarray:
        """Ids of ``text`` as an int32 array."""
        if not isinstance(text, str):
            raise BPETypeError(f"encode() takes a str, not {type(text).__name__}; decode bytes first")
        return self._encode_bytes(_utf8(text))

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        """Ids of ``"".join(iterable)``, lazily, holding about 16 KB of text at a time (more only when no
        safe cut is found, such as inside one very long word; with a custom pattern, text is only cut where
        a special token starts)."""
        buf = bytearray()
        margin = max(self._max_special, 1)
        specials = list(self._special_by_bytes)
        gpt2 = self.pattern == GPT2_PATTERN
        searched = 0  # no cut before this offset of ``buf`` (the search never has to look there again)
        for k, item in enumerate(iterable):
            if not isinstance(item, str):
                raise BPETypeError(f"encode_iterable(): item {k} is {type(item).__name__}, not str")
            buf += _utf8(item)
            while len(buf) >= _WINDOW + margin:
                hi = len(buf) - margin
                cut = _last_safe_cut(buf, searched, hi, specials, gpt2)
                if cut < 0:
                    searched = hi
                    break
                ids = self._encode_bytes(bytes(buf[:cut]))
                del buf[:cut]
                searched = 0
                yield from ids.tolist()
        if buf:
            yield from self._encode_bytes(bytes(buf)).tolist()

    def encode_file(
        self,
        input_path,
        output_path,
        *,
        num_workers: int | None = None,
        progress: bool | None = None,
        errors: str = "strict",
        chunk_size: int | None = None,
    ) -> int:
        """Encode a whole text file into a ``.npy`` of token ids (``uint16``, or ``uint32`` when an id needs it),
        for language-model training. Returns the number of ids.

        The file is cut at safe offsets (as in training) and encoded chunk by chunk, by ``num_workers``
        processes (``None``: all cores). Unless ``chunk_size`` is given, a file under 256 MiB is encoded in
        this process, 16 MiB at a time, and larger files in chunks of 16-64 MiB; memory stays about
        ``chunk_size x 2 x workers``. The ids equal ``encode`` of the whole file. The output is written to a
        temporary file beside ``output_path`` and renamed over it only when complete.
        """
        path = check_input_file(input_path)
        check_errors_mode(errors)
        workers = resolve_workers(num_workers)
        out_path = _check_output_path(output_path, path)
        size = os.path.getsize(path)
        if chunk_size is None:
            # A worker takes about 1.5 s to start (interpreter, Numba, the model's tables) and starts with
            # an empty unit cache, while this process encodes 30-70 MB/s: on 100 MB of TinyStories-like
            # text two workers took 2.8-3.1 s and this process alone 1.4-1.5 s. Below 256 MiB, stay here.
            if size < (256 << 20):
                workers, chunk_size = 1, 16 << 20
            else:
                chunk_size = int(min(max(size // (4 * workers), 16 << 20), 64 << 20))
        elif isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise BPEValueError(f"chunk_size={chunk_size!r}; use a positive number of bytes, or None")
        return _encode_file(self, path, size, out_path, workers, chunk_size, errors, resolve_progress(progress))

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (invalid UTF-8 in the joined bytes becomes U+FFFD)."""
        table = self._id_bytes
        if not isinstance(ids, (list, tuple, np.ndarray)):
            ids = list(ids)
        try:
            if len(ids) == 0 or min(ids) >= 0:  # a negative index would wrap around silently
                return b"".join([table[i] for i in ids]).decode("utf-8", errors="replace")
        except (IndexError, TypeError):
            pass
        for k, i in enumerate(ids):
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise BPETypeError(f"decode(): ids[{k}] is {type(i).__name__} {i!r}, not an int")
            if not 0 <= i < len(table) or table[i] is None:
                raise BPEValueError(
                    f"decode(): ids[{k}] = {i} is not a token id of this vocab "
                    f"(ids are 0..{len(table) - 1}{', with gaps' if None in table else ''})"
                )
        raise AssertionError("unreachable")  # pragma: no cover

    # -----------------------------------------------------------------------------------------------------

    def _encode_bytes(self, data: bytes) -> np.ndarray:
        if self._python is not None:
            return np.array(self._python.encode(data.decode("utf-8")), dtype=np.int32)
        K = self._K
        arr = np.frombuffer(data, dtype=np.uint8)
        bounds, which = self._splitter.split(data)
        after = self._special_id_array[which]  # -1 after the last segment
        # Planned in blocks of at most _BLOCK_UNITS units, so the work arrays stay small for any text.
        blk = min(_BLOCK_UNITS, len(data) + len(after))
        m_slots = np.empty(2 << max(4, (2 * blk).bit_length()), dtype=np.uint64)
        m_start = np.empty(blk, dtype=np.int64)
        m_len = np.empty(blk, dtype=np.int64)
        m_key = np.empty(blk, dtype=np.uint64)
        refs = np.empty(blk, dtype=np.int64)
        state = np.zeros(4, dtype=np.int64)
        state[1] = bounds[0, 0]
        out = np.empty(len(data) + len(after), dtype=np.int32)  # at most one id per byte and per special
        n_out = 0
        done = False
        while not done:
            m_slots.fill(0)
            done = K.plan_units(
                arr, bounds, after, self._cut_before, self._cut_at, _MAX_CACHED_UNIT,
                self._c_slots, self._c_kstart, self._c_keys,
                m_slots, m_start, m_len, m_key, refs, state,
            )
            n_refs, n_miss = int(state[2]), int(state[3])
            ms, ml, mk = m_start[:n_miss], m_len[:n_miss], m_key[:n_miss]
            if self.engine == "numba":
                piece_start = np.empty(int(ml.sum()), dtype=np.int64)
                piece_len = np.empty_like(piece_start)
                unit_pieces = np.empty(n_miss, dtype=np.int64)
                n_pieces = K.split_units(arr, ms, ml, self._classes, piece_start, piece_len, unit_pieces)
                piece_start, piece_len = piece_start[:n_pieces], piece_len[:n_pieces]
            else:
                piece_start, piece_len, unit_pieces = self._pretokenize_units(data, ms, ml)
            m_ids = np.empty(int(piece_len.sum()), dtype=np.int32)
            piece_end = np.empty(len(piece_len), dtype=np.int64)
            K.bpe_pieces(arr, piece_start, piece_len, self._byte_ids, self._pair_keys, self._pair_ranks,
                         self._pair_results, m_ids, piece_end)
            # Where each miss's ids end (a unit may have no pre-token at all under a custom pattern).
            m_end = np.concatenate((np.zeros(1, dtype=np.int64), piece_end))[np.cumsum(unit_pieces)]
            n_out += K.gather(refs[:n_refs], self._c_ids, m_ids, m_end, out[n_out:])
            K.cache_insert(arr, ms, ml, mk, m_ids, m_end, _MAX_CACHED_UNIT, self._c_slots, self._c_kstart,
                           self._c_keys, self._c_ids, self._c_state)
        return out[:n_out]

    def _pretokenize_units(self, data: bytes, starts: np.ndarray, lengths: np.ndarray):
        """Pre-tokens of each unit by ``regex``, as byte spans: ``(piece_start, piece_len, pieces per unit)``.
        Text that no match covers (possible with a custom pattern) yields no pre-token, as in ``finditer``."""
        finditer = self._pre.finditer
        piece_start: list[int] = []
        piece_len: list[int] = []
        unit_pieces: list[int] = []
        for s, n in zip(starts.tolist(), lengths.tolist()):
            unit = data[s : s + n]
            text = unit.decode("utf-8")
            spans = [m.span() for m in finditer(text)]
            if not unit.isascii():  # character offsets -> byte offsets
                cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
                width = 1 + (cp >= 0x80).astype(np.int64) + (cp >= 0x800) + (cp >= 0x10000)
                at = np.concatenate(([0], np.cumsum(width))).tolist()
                spans = [(at[a], at[b]) for a, b in spans]
            unit_pieces.append(len(spans))
            for a, b in spans:
                piece_start.append(s + a)
                piece_len.append(b - a)
        return (
            np.array(piece_start, dtype=np.int64),
            np.array(piece_len, dtype=np.int64),
            np.array(unit_pieces, dtype=np.int64),
        )

    def __reduce__(self):
        # Worker processes rebuild the tables (and load the kernels) from the model itself.
        return (_rebuild, (self.vocab, self.merges, self.special_tokens, self.pattern, self.engine, self.backend))

    def __repr__(self) -> str:
        return f"Tokenizer(vocab={len(self.vocab):,} tokens, merges={len(self.merges):,}, special_tokens={self.special_tokens!r})"


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BPEValueError(
            f"the text holds a lone surrogate {text[exc.start]!r} at index {exc.start}, which has no UTF-8 "
            f"encoding; decode the source with errors='replace' (or 'surrogatepass' upstream) first"
        ) from None


def _last_safe_cut(buf: bytearray, lo: int, hi: int, specials: Sequence[bytes], gpt2: bool) -> int:
    """The last offset ``i`` in ``[lo, hi)`` where ``buf`` may be cut, or -1: for the GPT-2 pattern a safe cut
    (printable ASCII, then ASCII whitespace), for any other pattern the start of a special token occurrence;
    never where a special token occurrence crosses. ``buf`` extends at least the longest special token past
    ``hi``. Searches backwards a window at a time, so a cut near ``hi`` is cheap."""
    lo = max(lo, 1)
    while hi > lo:
        start = max(hi - _WINDOW, lo)
        if gpt2:
            seg = np.frombuffer(bytes(buf[start - 1 : hi]), dtype=np.uint8)
            candidates = (start + np.flatnonzero(_CUT_AT[seg[1:]] & _CUT_BEFORE[seg[:-1]])).tolist()
        else:
            found = set()
            for t in specials:
                i = buf.find(t, start, hi + len(t) - 1)
                while 0 <= i < hi:
                    found.add(i)
                    i = buf.find(t, i + 1, hi + len(t) - 1)
            candidates = sorted(found)
        for i in reversed(candidates):
            if not special_crosses(buf, i, specials):
                return i
        hi = start
    return -1


def _decode_table(vocab: dict[int, bytes]) -> list:
    table: list = [None] * (max(vocab, default=-1) + 1)
    for i, b in vocab.items():
        table[i] = b
    return table


def _rebuild(vocab, merges, special_tokens, pattern, engine, backend) -> Tokenizer:
    return Tokenizer(vocab, merges, special_tokens, pattern=pattern, engine=engine, backend=backend)


# ---------------------------------------------------------------------------------------------------------
# encode_file: chunks in workers, ids streamed into a .npy in file order
# ---------------------------------------------------------------------------------------------------------

_NPY_HEADER_BYTES = 128  # reserved, so the header can be rewritten with the final length in place
_WORKER: dict = {}


def _check_output_path(output_path, input_path: str) -> str:
    return check_output_file(output_path, {"the input file": input_path})


def _npy_header(dtype: np.dtype, n: int) -> bytes:
    text = "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }" % (dtype.str, n)
    text = text.ljust(_NPY_HEADER_BYTES - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin-1")


def _set_worker_tokenizer(tok) -> None:
    _WORKER["tok"] = tok


def _encode_chunk(task):
    """Worker: ``(path, start, end, errors, dtype)`` -> ``(start, end, ids, bad_offset)``."""
    from .chunking import FileChangedError, checked_utf8

    path, start, end, errors, dtype = task
    with open(path, "rb") as f:
        f.seek(start)
        raw = f.read(end - start)
    if len(raw) != end - start:
        raise FileChangedError(path, f"it ended before byte {end:,}")
    data, bad = checked_utf8(np.frombuffer(raw, dtype=np.uint8), start, errors)
    if bad >= 0:
        return start, end, None, bad
    return start, end, _WORKER["tok"]._encode_bytes(data.tobytes()).astype(dtype), -1


def _encode_file(tok: Tokenizer, path: str, size: int, out_path: str, workers: int, chunk_size: int,
                 errors: str, show: bool) -> int:
    from .chunking import SpecialTokens, first_invalid_utf8, plan_chunks
    from .processes import map_chunks
    from .progress import progress_bar

    dtype = np.dtype("<u2") if max(tok.vocab) < (1 << 16) else np.dtype("<u4")
    chunks = list(plan_chunks(path, size, chunk_size, SpecialTokens(tok.special_tokens)))
    workers = min(workers, len(chunks))
    tasks = ((path, s, e, errors, dtype.str) for s, e in chunks)
    n = 0
    bar = progress_bar(show, total=size, unit="B", unit_scale=True, desc="encode")
    try:
        with atomic_file(out_path) as f:
            f.write(_npy_header(dtype, 0))
            for start, end, ids, bad in map_chunks(_encode_chunk, tasks, workers=workers, ordered=True,
                                                   initializer=_set_worker_tokenizer, initargs=(tok,)):
                if bad >= 0:
                    offset, reason = first_invalid_utf8(path)
                    raise InvalidUTF8Error(path, offset if offset >= 0 else bad, reason or "invalid start byte")
                f.write(ids.tobytes())
                n += len(ids)
                bar.update(end - start)
            f.seek(0)
            f.write(_npy_header(dtype, n))
    finally:
        bar.close()
        _WORKER.clear()  # set in this process too when it did the work
    return n
