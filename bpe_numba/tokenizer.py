"""``Tokenizer``: encode text to ids and back with a trained (or loaded) byte-level BPE model.

Semantics (DESIGN.md, encoding contract): special tokens are split out first (leftmost, longest first),
the text between is pre-tokenized with the GPT-2 pattern, and each pre-token's bytes are merged by
repeatedly joining the adjacent pair of lowest merge rank. The work happens in ``encode_kernels``, on the
thread that calls or on threads of this process (``encode_file``, ``encode_batch``: :mod:`bpe_numba.encoding`),
each with its own cache of encoded pre-tokens, so that a pre-token is merged once per thread.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, Sequence

import numpy as np
import regex

from .errors import BPETypeError, BPEValueError
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
from .pretokenize import SpecialSplitter, check_chunk_size

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

    A tokenizer may encode on several threads at once: each thread takes a cache of encoded pre-tokens of
    its own from the tokenizer's pool (about 25 MB of address space each, touched as it fills) and returns
    it, warm, for the next call.

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
        self._ints = None  # see _as_list
        self._special_by_bytes = {t.encode("utf-8"): i for t, i in self.special_ids.items()}
        self._max_special = max((len(t.encode("utf-8")) for t in special_tokens), default=0)
        from .tiers import choose_backend

        self.backend = choose_backend(backend)
        self._python = None
        self._encoders: list = []  # a pool of ThreadEncoder: each thread that encodes takes one (_encoder)
        if self.backend == "python":
            from .python_bpe import PythonEncoder

            self._python = PythonEncoder(ids_of, self.merges, self.special_ids, self.pattern)
            return
        byte_ids = np.array([ids_of[bytes([b])] for b in range(256)], dtype=np.int32)
        left = np.empty(len(merges), dtype=np.int32)
        right = np.empty(len(merges), dtype=np.int32)
        merged = np.empty(len(merges), dtype=np.int32)
        for r, (a, b) in enumerate(self.merges):
            left[r], right[r], merged[r] = ids_of[a], ids_of[b], ids_of[a + b]
        self._splitter = SpecialSplitter(special_tokens)
        self._special_id_array = np.array([self.special_ids[t] for t in special_tokens] + [-1], dtype=np.int64)
        self._pre = regex.compile(self.pattern)
        if self.engine == "numba":
            from .gpt2_scan import char_classes

            self._classes = char_classes()

        from . import encode_kernels as K
        from .encoding import ThreadEncoder

        cap = 1 << max(4, (2 * len(merges)).bit_length())
        pairs = np.full(2 * cap, -1, dtype=np.int64)
        K.build_pair_table(left, right, merged, pairs)
        self._model = K.EncodeModel(pairs, byte_ids)
        # Compile (or load from Numba's cache) every kernel now, so that encoding never compiles lazily; then
        # start the pool with fresh caches (none of their pages touched yet), so that encode_iterable needs
        # no new memory.
        self.encode("a b\n x" + "y" * (K.SMALL_PIECE + 1) + "".join(special_tokens[:1]))
        from .native import save_bundle

        save_bundle()  # if Numba ran them here and the native bundle lacks them, for the next process
        self._encoders = [ThreadEncoder(self)]

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
        return self._as_list(self.encode_to_array(text))

    def encode_to_array(self, text: str) -> np.ndarray:
        """Ids of ``text`` as an int32 array."""
        if not isinstance(text, str):
            raise BPETypeError(f"encode() takes a str, not {type(text).__name__}; decode bytes first")
        return self._encode_bytes(_utf8(text))

    def encode_batch(self, texts: Iterable[str], num_threads: int | None = None) -> list[list[int]]:
        """``[self.encode(t) for t in texts]``, for ``datasets.map(batched=True)`` and tiktoken-style callers,
        encoded by ``num_threads`` threads of this process (``None``: all cores), each with a cache of its
        own.

        >>> tok = Tokenizer({i: bytes([i]) for i in range(256)} | {256: b"ab"}, [(b"a", b"b")])
        >>> tok.encode_batch(["ab", "ba", ""])
        [[256], [98, 97], []]
        """
        from .encoding import encode_batch

        if isinstance(texts, (str, bytes)):
            raise BPETypeError(f"encode_batch() takes a list of str, not a single {type(texts).__name__}; "
                               f"use encode() for one text")
        texts = list(texts)
        for k, text in enumerate(texts):
            if not isinstance(text, str):
                raise BPETypeError(f"encode_batch(): texts[{k}] is {type(text).__name__}, not str")
        return encode_batch(self, texts, resolve_workers(num_threads, "num_threads"))

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
                yield from self._as_list(ids)
        if buf:
            yield from self._as_list(self._encode_bytes(bytes(buf)))

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

        The file is cut at safe offsets (as in training) into chunks of ``chunk_size`` bytes (default: 1-8 MiB,
        at least 8 chunks a thread), which ``num_workers`` threads of this process encode side by side
        (``None``: all cores), each with a cache of its own; the ids are written in file order. Memory stays
        about ``chunk_size x 7 x workers`` plus the caches (about 25 MB a thread) and the writer thread's 8 MiB
        buffer, whatever the file's size (:mod:`bpe_numba.npy_writer`: direct I/O where the file system takes it).
        The ids equal ``encode`` of the whole file. The output is written to a temporary file beside
        ``output_path`` and renamed over it only when complete; Ctrl-C stops every thread and leaves no output.
        """
        from .encoding import encode_file

        path = check_input_file(input_path)
        check_errors_mode(errors)
        workers = resolve_workers(num_workers)
        check_chunk_size(chunk_size)
        out_path = _check_output_path(output_path, path)
        return encode_file(self, path, out_path, workers, chunk_size, errors, resolve_progress(progress))

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

    def _as_list(self, ids: np.ndarray) -> list[int]:
        """``ids.tolist()``, made of the vocab's own int objects by a kernel (:mod:`bpe_numba.list_kernels`):
        a list of millions of ids then holds no new int."""
        if self._python is not None:  # no kernels on this tier (its encode makes lists itself)
            return ids.tolist()
        if self._ints is None:
            from .list_kernels import IntObjects

            self._ints = IntObjects(len(self._id_bytes))
        return self._ints.ids_to_list(ids)

    def _encode_bytes(self, data: bytes) -> np.ndarray:
        with self._encoder() as enc:
            return enc.encode(np.frombuffer(data, dtype=np.uint8))

    @contextlib.contextmanager
    def _encoder(self):
        """A :class:`~bpe_numba.encoding.ThreadEncoder` of the pool for this thread's use (a new one when all
        are taken), returned to the pool afterwards with its cache."""
        from .encoding import ThreadEncoder

        try:
            enc = self._encoders.pop()  # atomic under the GIL, as is append
        except IndexError:
            enc = ThreadEncoder(self)
        try:
            yield enc
        finally:
            self._encoders.append(enc)

    def __reduce__(self):
        # A pickled tokenizer is rebuilt from the model itself (tables, kernels, a fresh cache pool).
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
# encode_file's output path
# ---------------------------------------------------------------------------------------------------------

def _check_output_path(output_path, input_path: str) -> str:
    return check_output_file(output_path, {"the input file": input_path})
