"""Encoding on threads of the calling process: one thread's encoder (its own cache of encoded pre-tokens
over the ``nogil`` kernels of :mod:`bpe_numba.encode_kernels`), files into ``.npy`` in file order, and
batches of texts.

A :class:`ThreadEncoder` is used by one thread at a time; a ``Tokenizer`` keeps a pool of them, so
``encode`` from several threads at once and the workers of :func:`encode_file` each take their own (and
later calls find the caches warm). On the Python tier (``backend="python"``) an encoder just calls
:class:`~bpe_numba.python_bpe.PythonEncoder`, and this module imports no Numba.
"""

from __future__ import annotations

import contextlib
import itertools
import struct
import threading

import numpy as np

from .atomic import atomic_file
from .chunking import ChunkReader, SpecialTokens, check_same_file, checked_utf8, input_identity, invalid_utf8_error
from .errors import BPEValueError
from .threads import Stopped, run_threads
from .validation import GPT2_PATTERN

DEFAULT_CHUNK = 8 << 20  # bytes a thread encodes at a time in encode_file (at most; see encode_file)
MIN_CHUNK = 1 << 20
_BUDGET = 1 << 20  # bytes a kernel call encodes before it returns (so a stop request is seen)
_CACHE_SIZES = (1 << 19, 1 << 16, 1 << 21)  # a thread's cache: exact slots, long slots, arena words
_SCAN_BLOCK = 4096  # pre-token ends the scanner hands over at a time
_NPY_HEADER_BYTES = 128  # reserved, so the header can be rewritten with the final length in place


class ThreadEncoder:
    """One thread's encoding state: the pre-token cache, the scanner's buffer and an output buffer.
    ``encode(data)`` takes valid UTF-8 as a uint8 array and returns its int32 ids."""

    def __init__(self, tok):
        self.tok = tok
        self.out = np.empty(0, dtype=np.int32)
        if tok._python is None:
            from . import encode_kernels

            self.K = encode_kernels
            self.cache = encode_kernels.new_cache(*_CACHE_SIZES)
            self.buf = np.empty(_SCAN_BLOCK, dtype=np.int64)
            self.resume = np.zeros(3, dtype=np.int64)

    def encode(self, data: np.ndarray, stop: threading.Event | None = None, reuse: bool = False) -> np.ndarray:
        """The ids of ``data``; with ``reuse``, in this encoder's own buffer (valid until its next call:
        fresh memory for every chunk costs page faults, and in threads, contention on the process's
        memory map)."""
        tok = self.tok
        if tok._python is not None:
            return np.array(tok._python.encode(data.tobytes().decode("utf-8")), dtype=np.int32)
        K = self.K
        if data.flags.writeable:  # file chunks: the kernels are compiled (and cached) for read-only data only
            data = data.view()
            data.flags.writeable = False
        bounds, which = tok._splitter.split(data)
        after = tok._special_id_array[which]  # -1 after the last segment
        need = data.shape[0] + after.shape[0] + 5  # an id per byte and per special, 5 spare (encode_kernels)
        if not reuse:
            out = np.empty(need, dtype=np.int32)
        else:
            if self.out.shape[0] < need:
                self.out = np.empty(max(need, self.out.shape[0] * 5 // 4), dtype=np.int32)
            out = self.out
        if tok.engine != "numba":
            starts, ends = regex_pieces(tok._pre, data, bounds, after, stop)
            return out[: K.encode_pieces(data, starts, ends, tok._model, self.cache, out)]
        resume = self.resume
        resume[:] = 0
        while K.encode_gpt2(data, bounds, after, tok._classes, tok._model, self.cache, out, self.buf, resume,
                            _BUDGET) != K.DONE:
            if stop is not None and stop.is_set():
                raise Stopped
        return out[: resume[2]]


def regex_pieces(pre, data: np.ndarray, bounds: np.ndarray, after: np.ndarray,
                 stop: threading.Event | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The pre-tokens of each segment by ``regex`` (compiled ``pre``), as byte spans ``(starts, ends)`` in
    text order, with each special token id after its segment as ``(id, -1)``. Text that no match covers
    (possible with a custom pattern) yields no pre-token, as in ``finditer``. Raises :class:`Stopped` soon
    after ``stop`` is set."""
    raw = data.tobytes()
    starts: list[int] = []
    ends: list[int] = []
    for (s, e), special in zip(bounds.tolist(), after.tolist()):
        segment = raw[s:e]
        text = segment.decode("utf-8")
        spans = []
        for match in pre.finditer(text):
            spans.append(match.span())
            if not len(spans) & 0xFFFF and stop is not None and stop.is_set():
                raise Stopped
        if not segment.isascii():  # character offsets -> byte offsets
            cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            width = 1 + (cp >= 0x80).astype(np.int64) + (cp >= 0x800) + (cp >= 0x10000)
            at = np.concatenate(([0], np.cumsum(width))).tolist()
            spans = [(at[a], at[b]) for a, b in spans]
        for a, b in spans:
            starts.append(s + a)
            ends.append(s + b)
        if special >= 0:
            starts.append(special)
            ends.append(-1)
    return np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64)


def encode_batch(tok, texts, workers: int) -> list[list[int]]:
    """The ids of each of ``texts`` (checked to be str), encoded by ``workers`` threads."""
    from .tokenizer import _utf8

    if tok._python is not None:  # the Python tier holds the GIL: threads would only take turns
        workers = 1
    ids: list = [None] * len(texts)
    next_text = itertools.count()  # shared; next() is atomic under the GIL

    def work(w: int, stop) -> None:
        with tok._encoder() as enc:
            for k in next_text:
                if k >= len(texts) or stop.is_set():
                    return
                try:
                    raw = _utf8(texts[k])
                except BPEValueError as exc:
                    raise BPEValueError(f"encode_batch(): texts[{k}]: {exc}") from None
                ids[k] = enc.encode(np.frombuffer(raw, dtype=np.uint8), stop)

    if workers <= 1 or len(texts) <= 1:
        work(0, threading.Event())
    else:
        run_threads(work, min(workers, len(texts)))
    return [tok._as_list(a) for a in ids]


# ---------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------

def ids_dtype(tok) -> np.dtype:
    """The ``.npy`` type of ``tok``'s ids in a file: ``uint16``, or ``uint32`` when an id needs it."""
    return np.dtype("<u2") if max(tok.vocab) < (1 << 16) else np.dtype("<u4")


def npy_header(dtype: np.dtype, n: int) -> bytes:
    """The header of a 1-D ``.npy`` of ``n`` items, always :data:`_NPY_HEADER_BYTES` long: a stream writes it
    first with ``n = 0`` and then again over itself with the final length."""
    text = "{'descr': '%s', 'fortran_order': False, 'shape': (%d,), }" % (dtype.str, n)
    text = text.ljust(_NPY_HEADER_BYTES - 10 - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin-1")


def encode_file(tok, path: str, out_path: str, workers: int, chunk_size: int | None, errors: str, show: bool) -> int:
    """Encode ``path`` into the ``.npy`` ``out_path`` (arguments already checked) on ``workers`` threads;
    returns the number of ids. See :class:`_FileEncoding`."""
    from .progress import progress_bar, ticker

    before = input_identity(path)
    size = before[0]
    if chunk_size is None:  # at least 8 chunks a thread, so that the threads finish together
        chunk_size = int(min(max(size // (8 * workers), MIN_CHUNK), DEFAULT_CHUNK))
    if tok._python is not None:  # the Python tier holds the GIL: threads would only take turns
        workers = 1
    workers = max(1, min(workers, -(-size // chunk_size)))
    dtype = ids_dtype(tok)
    from .npy_writer import IdsWriter

    with atomic_file(out_path) as f, progress_bar(show, total=size, unit="B", unit_scale=True, desc="encode") as bar:
        writer = IdsWriter(f, dtype)
        try:
            job = _FileEncoding(tok, path, size, chunk_size, workers, errors, dtype, writer)
            tick = ticker(bar, job.done)
            if tok._python is not None:  # in this thread, so that Ctrl-C interrupts the Python tier's work at once
                job.after_chunk = tick
                with contextlib.suppress(Stopped):  # invalid UTF-8: reported below
                    job.work(0, threading.Event())
            else:
                run_threads(job.work, workers, on_tick=tick)
            tick()
            check_same_file(path, before)
            if job.bad:
                raise invalid_utf8_error(path, min(job.bad))
            writer.close(job.n_ids)
        except BaseException:
            writer.abort()
            raise
    return job.n_ids


class _FileEncoding:
    """The threads of one :func:`encode_file` run and what they share.

    Thread ``w`` takes the next chunk (:class:`~bpe_numba.chunking.ChunkReader`), encodes it with an
    encoder of the tokenizer's pool and hands its ids over; whichever thread completes the run of chunks
    next in file order passes them on to the ``writer`` (:class:`~bpe_numba.npy_writer.IdsWriter`, whose
    thread writes them). No thread starts a chunk more than ``2 x workers`` chunks ahead of the last one
    passed on, so memory stays about ``chunk_size x workers x 7`` (each thread's chunk and its int32 ids,
    and the ids of chunks waiting for their turn), plus the writer's: two chunks' ids queued and an 8 MiB
    buffer, whatever the file's size."""

    def __init__(self, tok, path, size, chunk_size, workers, errors, dtype, writer):
        self.tok, self.path, self.size, self.chunk_size = tok, path, size, chunk_size
        self.errors, self.dtype, self.writer = errors, dtype, writer
        self.n_chunks = max(1, -(-size // chunk_size))
        self.window = 2 * workers
        self.next_chunk = itertools.count()  # shared; next() is atomic under the GIL
        self.turn = threading.Condition()
        self.waiting: dict[int, np.ndarray | None] = {}  # chunk -> ids, finished but not yet written
        self.written = 0  # chunks written
        self.n_ids = 0
        self.done = [0] * workers  # bytes encoded by each thread, for the progress bar
        self.bad: list[int] = []  # file offsets of invalid UTF-8 found
        self.specials = SpecialTokens(tok.special_tokens)
        self.after_chunk = lambda: None  # called by a thread after each chunk it encoded

    def work(self, w: int, stop: threading.Event) -> None:
        gpt2 = self.tok.pattern == GPT2_PATTERN
        with self.tok._encoder() as enc, ChunkReader(self.path, self.size, self.chunk_size, self.specials,
                                                      gpt2) as reader:
            try:
                for k in self.next_chunk:
                    if k >= self.n_chunks:
                        return
                    self._wait_for_room(k, stop)
                    data, start = reader.read(k)
                    ids = None
                    if data.shape[0]:
                        data, invalid = checked_utf8(data, start, self.errors)
                        if invalid >= 0:
                            self.bad.append(invalid)
                            raise Stopped
                        ids = enc.encode(data, stop, reuse=True).astype(self.dtype)
                    with self.turn:
                        self.waiting[k] = ids
                        self._write_ready()
                    self.done[w] += min(self.size, (k + 1) * self.chunk_size) - k * self.chunk_size
                    self.after_chunk()
            finally:
                enc.out = np.empty(0, dtype=np.int32)  # the pool keeps the cache, not the buffer

    def _wait_for_room(self, k: int, stop: threading.Event) -> None:
        with self.turn:
            while True:
                if stop.is_set() or self.bad:
                    raise Stopped
                if k < self.written + self.window:
                    return
                self.turn.wait(0.05)

    def _write_ready(self) -> None:
        """Pass the chunks that are next in file order on to the writer (with ``turn`` held)."""
        while self.written in self.waiting:
            ids = self.waiting.pop(self.written)
            if ids is not None:
                self.writer.put(ids)
                self.n_ids += ids.shape[0]
            self.written += 1
        self.turn.notify_all()
