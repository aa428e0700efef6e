"""Pre-tokenization: a file's bytes -> the counts of its distinct pre-tokens.

The file is cut into chunks at safe offsets (:mod:`bpe_numba.chunking`); each chunk is checked as UTF-8,
split at its special tokens and its pre-tokens counted by one of two engines:

- ``"numba"``: the GPT-2 pattern's scanner (:mod:`bpe_numba.gpt2_scan`) feeding a per-thread table of
  distinct pre-tokens (:mod:`bpe_numba.count_kernels`). Every kernel releases the GIL, so ``num_workers``
  threads of this process count chunks side by side (:func:`bpe_numba.corpus_count.count_units`, for one
  file as for many); at the end the tables are summed range by range of keys on the threads, each range
  into one of the tables (:func:`merge_tables`, :class:`SplitTable`).
  No Python object is made per pre-token (nor per distinct one, for training);
- ``"regex"``: the ``regex`` package's ``finditer`` on each segment, exactly as the contract states it; it
  takes any pattern (``pattern=``) at a few MB/s. ``regex`` holds the GIL, so this engine's workers are
  processes (:func:`bpe_numba.processes.map_chunks`); their counts go into the same kind of table.

``engine="auto"`` takes the scanner for the GPT-2 pattern and ``regex`` for any other. Memory stays about
(chunk size x workers) plus the tables of distinct pre-tokens. Numba is imported only when counting starts.

>>> import regex
>>> [m.group() for m in regex.finditer(GPT2_PATTERN, "Hi,  it's 42!")]
['Hi', ',', ' ', ' it', "'s", ' 42', '!']
"""

from __future__ import annotations

import contextlib
import io
import pickle
import queue
import sys
import threading
from typing import Sequence

import numpy as np

from .chunking import (
    SpecialTokens,
    check_same_file,
    checked_utf8,
    input_identity,
    invalid_utf8_error,
    plan_chunks,
)
from .errors import FileChangedError
from .validation import (
    check_chunk_size,
    GPT2_PATTERN,
    check_errors_mode,
    check_pattern,
    check_special_tokens,
    compiled_pattern,
    resolve_engine,
    resolve_progress,
    resolve_workers,
)
from .processes import map_chunks
from .progress import progress_bar

_CHUNK_MIN, _CHUNK_MAX = 256 << 10, 4 << 20  # bytes per chunk for the threads (see default_chunk_size)
_BUDGET = 1 << 20  # bytes a counting kernel call handles before returning (to see a stop request)
_PROCESS_CHUNK_MIN = 32 << 20  # the regex engine's processes: chunks of 32-64 MiB (start-up is ~1 s each)


class SpecialSplitter(SpecialTokens):
    """Splits UTF-8 bytes at special token occurrences: leftmost first, and the longest token where several
    start at one position (UTF-8 is self-synchronizing, so matching the encoded tokens in encoded text finds
    the same occurrences as matching the text).

    >>> bounds, which = SpecialSplitter(["<a>", "<a><b>"]).split(b"x<a><b>y<a>z")
    >>> bounds.tolist(), which.tolist()
    ([[0, 1], [7, 8], [11, 12]], [1, 0, -1])
    """

    def __init__(self, special_tokens: Sequence[str]):
        super().__init__(special_tokens)
        self._index = np.array(self.order + [-1], dtype=np.int64)  # which[k] == -1 stays -1

    def split(self, data) -> tuple[np.ndarray, np.ndarray]:
        """``(bounds, which)``: the ``[start, end)`` byte ranges between occurrences (``(k, 2)`` int64) and,
        for each, the index in ``special_tokens`` of the token that follows it (-1 after the last).
        ``data`` is bytes or a uint8 array."""
        arr = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
        if len(self.order) == 0:
            return np.array([[0, len(arr)]], dtype=np.int64), np.full(1, -1, dtype=np.int64)
        from .text_kernels import split_specials

        cap = len(arr) // self.shortest + 2
        bounds = np.empty((cap, 2), dtype=np.int64)
        which = np.empty(cap, dtype=np.int64)
        k = split_specials(arr, self.blob, self.offsets, self.first, bounds, which)
        return bounds[:k], self._index[which[:k]]


# ---------------------------------------------------------------------------------------------------------
# The numba engine: threads
# ---------------------------------------------------------------------------------------------------------

class _ThreadCount:
    """One thread's counting state: its table, the scanner's block buffer and a resume point."""

    def __init__(self, splitter: SpecialSplitter, expected_bytes: int = 0):
        from . import count_kernels as K
        from .gpt2_scan import char_classes

        self.K = K
        self.splitter = splitter
        self.classes = char_classes()
        self.table = K.grow_table(K.new_table(), min_distinct=expected_distinct(expected_bytes))
        self.buf = np.empty(4096, dtype=np.int64)
        self.resume = np.zeros(4, dtype=np.int64)

    def count(self, data: np.ndarray, stop, bounds: np.ndarray | None = None) -> None:
        """Count ``data``, or its segments ``bounds`` when given (documents joined in one block)."""
        from .threads import Stopped

        K = self.K
        if bounds is None:
            bounds, _ = self.splitter.split(data)
        self.resume[:] = 0
        while True:
            status = K.count_gpt2(data, bounds, self.classes, self.table, self.buf, self.resume, _BUDGET)
            if status == K.DONE:
                return
            if status == K.GROW:
                self.table = K.grow_table(self.table)
            if stop.is_set():
                raise Stopped


_BYTES_PER_DISTINCT = 400  # prose_en: 52.4 MB, 137 K distinct pre-tokens (fewer per byte as text grows)
_PRESIZE_MAX = 1 << 17  # entries: a table of 512 K slots, 16 MB


def expected_distinct(n_bytes: int) -> int:
    """How many distinct pre-tokens a thread's table is made ready for before it counts about ``n_bytes``:
    one per :data:`_BYTES_PER_DISTINCT` bytes, at most :data:`_PRESIZE_MAX`. The table would grow there by
    doubling, rehashing what it holds at each step; ready-made, the grows are skipped (prose_en on one
    thread: 3.5 % less CPU, median of 21 interleaved pairs; whole calls' wall time moved within this
    machine's noise, see ``count_kernels``). Repetitive text wastes at most the 16 MB."""
    return min(max(int(n_bytes), 0) // _BYTES_PER_DISTINCT, _PRESIZE_MAX)


def count_file_regex(path: str, special_tokens: Sequence[str], *, num_workers: int, chunk_size: int | None,
                     errors: str, progress: bool, pattern: str):
    """Count the distinct pre-tokens of a file with the ``regex`` engine (arguments already validated) into
    one :class:`~bpe_numba.count_kernels.CountTable`, on worker processes (``regex`` holds the GIL). The
    ``numba`` engine counts on threads: :func:`bpe_numba.corpus_count.count_file`.

    Invalid UTF-8 raises :class:`InvalidUTF8Error` with the file's first bad offset; a file that changes
    while it is read raises :class:`~bpe_numba.chunking.FileChangedError`.
    """
    before = input_identity(path)
    size = before[0]
    splitter = SpecialSplitter(special_tokens)
    table, bad = _count_processes(path, size, splitter, num_workers, chunk_size, errors, progress, pattern)
    check_same_file(path, before)
    if bad >= 0:
        raise invalid_utf8_error(path, bad)
    return table


def default_chunk_size(size: int, workers: int) -> int:
    """About sixteen chunks per thread, between 256 KiB and 4 MiB: enough for the threads to finish together
    (a chunk is a few milliseconds of work), few enough that a chunk's fixed costs stay small."""
    return int(min(max(size // (16 * max(workers, 1)), _CHUNK_MIN), _CHUNK_MAX))


_RANGES_PER_TABLE = 2  # key ranges per thread's table (SplitTable): the dict of three tables or more starts on
# the first one done
# (prose_en, two threads, median of 21: from merging to the dict 26.9, 27.5, 29.8 and 39.1 ms with 1, 2, 4
# and 8 ranges per table, ``/work/scratch/s26/rr_ab.py``; each range costs kernel calls and GIL hand-overs;
# with one merging thread for the dict, end of the call 30.7, 30.0, 34.3 ms with 1, 2, 3 per table, median
# of 25 interleaved, ``/work/scratch/s27/ab.py``)


class SplitTable:
    """The counts of the threads that counted, each in a table of its own (a pre-token may be in all of
    them): their sums are made range by range of keys (:func:`~bpe_numba.count_kernels.key_ranges`), once,
    by the first reader (:func:`flatten_table`, :func:`table_to_dict`, :func:`distinct`), on one thread per
    table (:func:`table_to_dict`: one fewer, as the calling thread builds the ``dict``; of two tables, it
    sums them as it reads them, without merging: :func:`_two_dict`). Each range ``r`` of
    every other table is added to table ``w = r % len(tables)`` by the thread that takes table ``w``, which
    then flattens the range there; no thread writes what another reads
    (:func:`~bpe_numba.count_kernels.merge_into`). Afterwards ``tables[r % len(tables)]`` holds the sums of
    range ``r`` (its entries of other ranges are stale) and ``merged`` is true.

    Made by :func:`merge_tables` for the threads of one count. A merge that fails (an error, Ctrl-C) leaves
    the tables half summed: reading it again raises ``RuntimeError``."""

    def __init__(self, tables):
        from . import count_kernels as K

        self.tables = list(tables)
        self.ranges = K.key_ranges(_RANGES_PER_TABLE * len(self.tables))
        self.merged = False
        self.failed = False

    def owned(self, w: int) -> range:
        """The ranges whose sums end up in table ``w``."""
        return range(w, len(self.ranges), len(self.tables))


def _key_slots(table, keys: np.ndarray) -> list[tuple[int, int]]:
    """The ranges of slots of ``table`` that hold the entries of the key range ``keys``
    (:func:`~bpe_numba.count_kernels.key_slots`)."""
    from . import count_kernels as K

    out = np.empty(4, dtype=np.int64)
    K.key_slots(table, keys, out)
    a, b, c, d = out.tolist()
    return [(lo, hi) for lo, hi in ((a, b), (c, d)) if hi > lo]


def _merge_into(dst, src, keys: np.ndarray):
    """``dst`` (grown as needed; returns the table, which may be a new one) plus the entries of ``src``
    in the key range ``keys``."""
    from . import count_kernels as K

    resume = np.zeros(1, dtype=np.int64)
    for lo, hi in _key_slots(src, keys):
        resume[0] = lo
        while K.merge_into(dst, src, keys, hi, resume) != K.DONE:
            dst = K.grow_table(dst)
    return dst


def merge_tables(tables: list, workers: int = 1):
    """The sums of ``tables``: with one worker, one table (the largest, grown, absorbs the others); with
    more, a :class:`SplitTable`, merged by its first reader on the threads.

    Measured on prose_en (two threads' tables of about 100 K entries, 137 K distinct in all; in one process,
    median of 9, ``/work/scratch/s26/tl2.py``): 19-20 ms to merge on one thread, 5-6 ms on two."""
    from . import count_kernels as K

    tables = [t for t in tables if t is not None]
    if len(tables) > 1 and workers > 1:
        return SplitTable(tables)
    tables = sorted(tables, key=lambda t: -int(t.state[K.N_DISTINCT]))
    dst = tables[0] if tables else K.new_table()
    everything = K.key_ranges(1)[0]
    for src in tables[1:]:
        dst = _merge_into(dst, src, everything)
    return dst


def _read_ranges(split: SplitTable, piece, put, on_tick=None, threads: int = 0) -> None:
    """Merge ``split`` if it is not yet, and read it range by range of keys: ``put(r, pieces)`` from the
    threads as each range ``r`` is merged (``pieces``: ``piece(table, keys, lo, hi)`` of each of its runs of
    slots ``[lo, hi)``; ``piece=None``: merge only), ``put(None, None)`` when a thread is done. ``threads``:
    how many (0: one per table); table ``w``'s ranges go to thread ``w % threads``, which takes its ranges in
    order, so no two threads write one table. ``on_tick``: called on this thread while it waits
    (:func:`~bpe_numba.threads.run_threads`)."""
    from .threads import run_threads

    if split.failed:
        raise RuntimeError("these counts were left half merged by a read that failed; count the input again")
    start = list(split.tables)
    done = list(split.tables)
    n_tables = len(start)
    n_threads = max(1, min(threads or n_tables, n_tables))

    def work(t: int, stop: threading.Event) -> None:
        try:
            for r in sorted(r for w in range(t, n_tables, n_threads) for r in split.owned(w)):
                if stop.is_set():
                    return
                w, keys = r % n_tables, split.ranges[r]
                dst = done[w]
                if not split.merged:
                    for q, src in enumerate(start):
                        if q != w:
                            dst = _merge_into(dst, src, keys)
                    done[w] = dst
                if piece is not None:
                    put(r, [piece(dst, keys, lo, hi) for lo, hi in _key_slots(dst, keys)])
        finally:
            put(None, None)

    try:  # (on_tick waits for the threads' results itself; without it, join() waits)
        run_threads(work, n_threads, on_tick=on_tick, tick=0 if on_tick is not None else 0.1)
    except BaseException:
        split.failed = not split.merged
        raise
    split.tables = done
    split.merged = True


def distinct(table) -> int:
    """The number of distinct pre-tokens in a table or :class:`SplitTable` (which it merges if need be)."""
    from . import count_kernels as K

    if not isinstance(table, SplitTable):
        return int(table.state[K.N_DISTINCT])
    if not table.merged:
        _read_ranges(table, None, lambda r, pieces: None)
    n = 0
    for w, t in enumerate(table.tables):
        for r in table.owned(w):
            keys = table.ranges[r]
            n += sum(int(K.table_bytes(t, 1, lo, hi, keys)[0]) for lo, hi in _key_slots(t, keys))
    return n


def add_to_table(table, blob: np.ndarray, offsets: np.ndarray, counts: np.ndarray):
    """``table`` plus the pre-tokens ``blob[offsets[j]:offsets[j+1]]`` seen ``counts[j]`` times (grown as
    needed; returns the table, which may be a new one)."""
    from . import count_kernels as K

    resume = np.zeros(1, dtype=np.int64)
    while K.add_counts(table, blob, offsets, counts, resume) != K.DONE:
        table = K.grow_table(table)
    return table


def _flatten_range(table, keys: np.ndarray, min_len: int, lo: int, hi: int):
    """``(blob, offsets, counts)`` of the entries of at least ``min_len`` bytes in slots ``[lo, hi)`` whose
    key is in ``keys``, grouped by length: views of arrays sized by the table's state, so that the entries
    are not counted first (a pass over the slots less: the whole prose_en table in 15.4 ms instead of 19.5,
    median of 31 interleaved pairs)."""
    from . import count_kernels as K

    n_max = int(table.state[K.N_DISTINCT])
    blob = np.empty(int(table.state[K.ARENA_USED]) + 7 * n_max, dtype=np.uint8)
    offsets = np.empty(n_max + 1, dtype=np.int64)
    counts = np.empty(n_max, dtype=np.int64)
    n = K.flatten(table, min_len, lo, hi, keys, blob, offsets, counts, np.empty(515, dtype=np.int64))
    return blob[: offsets[n]], offsets[: n + 1], counts[:n]


def _concatenated(pieces: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ``(blob, offsets, counts)`` of several, in order."""
    if len(pieces) == 1:
        return pieces[0]
    if not pieces:
        return np.empty(0, dtype=np.uint8), np.zeros(1, dtype=np.int64), np.empty(0, dtype=np.int64)
    blob = np.concatenate([p[0] for p in pieces])
    counts = np.concatenate([p[2] for p in pieces])
    offsets = np.empty(len(counts) + 1, dtype=np.int64)
    at = base = 0
    for b, o, _ in pieces:
        offsets[at : at + len(o) - 1] = o[:-1] + base
        at += len(o) - 1
        base += len(b)
    offsets[at] = base
    return blob, offsets, counts


def flatten_table(table, min_len: int, workers: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(blob, offsets, counts)`` of the entries of at least ``min_len`` bytes of a table or
    :class:`SplitTable`, grouped by length within each piece: a table is cut into ``workers`` ranges of
    slots, one per thread; a :class:`SplitTable` into its key ranges, on one thread per table (and merged
    first if need be)."""
    if isinstance(table, SplitTable):
        ranges: dict = {}
        _read_ranges(table, lambda t, keys, lo, hi: _flatten_range(t, keys, min_len, lo, hi), ranges.__setitem__)
        return _concatenated([p for r in sorted(k for k in ranges if k is not None) for p in ranges[r]])
    from . import count_kernels as K

    everything = K.key_ranges(1)[0]
    parts = _slot_parts(table, workers)
    if len(parts) == 1:
        return _flatten_range(table, everything, min_len, *parts[0])
    from .threads import run_threads

    pieces: list = [None] * len(parts)

    def flatten(i: int, stop: threading.Event) -> None:  # milliseconds of a kernel: no stop flag to check
        pieces[i] = _flatten_range(table, everything, min_len, *parts[i])

    run_threads(flatten, len(parts))
    return _concatenated(pieces)


def _slot_parts(table, workers: int) -> list[tuple[int, int]]:
    """The table's slots cut in ``workers`` ranges ``[lo, hi)`` of about equal size (fewer if it has fewer
    slots), one per thread."""
    n = table.slots.shape[0] // 2
    parts = max(1, min(int(workers), n))
    cuts = [n * i // parts for i in range(parts + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


_HANDOFF = 2e-4  # seconds: Python's thread switch interval while the dict is built (Python's default: 5 ms)
_handoff = {"depth": 0, "saved": 0.0}
_handoff_lock = threading.Lock()


@contextlib.contextmanager
def _quick_gil_handoff():
    """Python's switch interval at :data:`_HANDOFF` inside (restored by the outermost of nested uses).

    A thread that needs the GIL (here: to call its next kernel) waits for the switch interval before the
    thread holding it is asked to let go; the ``dict`` builder holds it all along, so at 5 ms a wait
    costs more than the kernel call it precedes."""
    with _handoff_lock:
        if _handoff["depth"] == 0:
            _handoff["saved"] = sys.getswitchinterval()
            sys.setswitchinterval(_HANDOFF)
        _handoff["depth"] += 1
    try:
        yield
    finally:
        with _handoff_lock:
            _handoff["depth"] -= 1
            if _handoff["depth"] == 0:
                sys.setswitchinterval(_handoff["saved"])


def table_to_dict(table, workers: int = 1) -> dict[bytes, int]:
    """A table or :class:`SplitTable` as ``{pre-token bytes: count}``.

    The entries are written as a pickle by a ``nogil`` kernel (:func:`~bpe_numba.count_kernels.pickle_entries`)
    and the ``dict`` is made by ``pickle.load`` in one C loop: the keys, the counts and the inserts, under
    the GIL, with no Python object per entry on the way. A table is pickled in ``workers`` ranges of slots
    on as many threads. A :class:`SplitTable` of two tables not merged yet (two threads counted) is pickled
    by one thread without merging (:func:`_two_dict`) while ``pickle.load`` reads it; any other is merged
    (if it is not yet) and pickled range by range of keys, on one thread fewer than its tables (this thread
    is busy), and ``pickle.load`` reads each range as it comes (:class:`_PickleFeed`).

    prose_en (137 K keys), one table on one thread, median of 15: 26.2 ms against 32.6 ms for the flattened
    entries made into ``bytes`` objects and inserted 2,048 at a time (the ``dict`` alone: ``pickle.loads``
    15.8 ms, ``dict.update`` 21 ms; the kernel 7.3 ms, ``flatten`` 13); ``/work/scratch/s29/pk2.py``. Two
    threads' tables: see :func:`_two_dict`.

    Tried before (``/work/scratch/s25/fd.py``, median of 15): a kernel that walks the table and inserts each
    entry through the C API (``PyBytes_FromStringAndSize``, ``PyLong_FromLongLong``, ``PyDict_SetItem``):
    43.5 ms against 44.9 ms for the flattened entries, 47.1 ms into a presized dict."""
    from . import count_kernels as K
    from .threads import run_threads

    if not isinstance(table, SplitTable):
        parts = _slot_parts(table, workers)
        everything = K.key_ranges(1)[0]
        if len(parts) == 1:
            return pickle.loads(_pickled(table, everything, *parts[0], whole=True))
        feed = _PickleFeed(len(parts))

        def part(i: int, stop: threading.Event) -> None:  # milliseconds of a kernel: no stop flag to check
            try:
                feed.put(i, [_pickled(table, everything, *parts[i])])
            finally:
                feed.put(None, None)

        return feed.load(lambda take: run_threads(part, len(parts), on_tick=take, tick=0))
    if len(table.tables) == 2 and not table.merged and not table.failed:
        return _two_dict(table)
    threads = max(1, len(table.tables) - 1)  # this thread is the last one
    feed = _PickleFeed(threads)
    return feed.load(lambda take: _read_ranges(table, _pickled, feed.put, on_tick=take, threads=threads))


_PICKLE_HEAD = b"\x80\x05}"  # PROTO 5, EMPTY_DICT
_PICKLE_STOP = b"."
_PICKLE_BATCH = 1000  # entries between MARK and SETITEMS (the unpickler's stack holds them)


_NO_EXTRA = np.zeros(0, dtype=np.int64)


def _pickled(table, keys: np.ndarray, lo: int, hi: int, whole: bool = False, extra: np.ndarray = _NO_EXTRA
             ) -> np.ndarray:
    """The pickle body of the entries in slots ``[lo, hi)`` whose key is in ``keys`` (counts plus ``extra``,
    :func:`~bpe_numba.count_kernels.pickle_entries`); ``whole``: with the header and STOP, a pickle of the
    ``dict`` of just these."""
    from . import count_kernels as K

    size = _pickle_bound(table, lo, hi)
    head, stop = (len(_PICKLE_HEAD), len(_PICKLE_STOP)) if whole else (0, 0)
    out = np.empty(head + size + stop, dtype=np.uint8)
    end = head + K.pickle_entries(table, lo, hi, keys, extra, out[head : head + size], _PICKLE_BATCH)
    if whole:
        out[:head] = np.frombuffer(_PICKLE_HEAD, dtype=np.uint8)
        out[end : end + stop] = np.frombuffer(_PICKLE_STOP, dtype=np.uint8)
    return out[: end + stop]


def _pickle_bound(table, lo: int, hi: int) -> int:
    """Bytes enough for the pickle body of the entries in slots ``[lo, hi)`` of ``table``, from its state
    (entries: at most ``hi - lo`` and ``n_distinct``; key bytes: at most ``arena_used`` and 7 per entry), so
    that the entries are not counted first."""
    from . import count_kernels as K

    n = min(int(table.state[K.N_DISTINCT]), hi - lo)
    return int(table.state[K.ARENA_USED]) + n * (7 + K.PICKLE_RECORD_MAX) + 2 * (n // _PICKLE_BATCH + 1)


_TWO_RANGES = 32  # ranges of keys of _two_dict: the dict starts after the first, 1/32 of the entries


def _two_dict(split: SplitTable) -> dict[bytes, int]:
    """The ``dict`` of the sums of a :class:`SplitTable` of two tables, without merging them: one thread
    pickles them in one kernel call (:func:`~bpe_numba.count_kernels.pickle_two`), range by range of keys,
    publishing how far it got, while ``pickle.load`` reads each range as it is published
    (:class:`_GrowingFeed`). The thread never needs the GIL, which ``pickle.load`` holds, and no table is
    written, so ``split`` stays as it was.

    prose_en on two threads, from the end of counting to the end of the call, per-pair medians of 21 and 31
    interleaved calls against the tables merged and pickled range by range (:class:`_PickleFeed`): 4.45
    and 4.41 ms less (23.1 against 28.2 ms, 21.0 against 25.8; ``/work/scratch/s29/ab2.py``). The first
    range is published about 1 ms after counting ends, where a quarter of the keys merged first took 3.3 ms;
    then ``pickle.load`` is the end (17 ms alone for 137 K entries)."""
    from . import count_kernels as K
    from .threads import run_threads

    big, small = sorted(split.tables, key=lambda t: -int(t.state[K.N_DISTINCT]))
    n_big = big.slots.shape[0] // 2
    out = np.empty(_pickle_bound(big, 0, n_big) + _pickle_bound(small, 0, small.slots.shape[0] // 2),
                   dtype=np.uint8)
    extra = np.empty(n_big, dtype=np.int64)
    ranges = np.stack(K.key_ranges(_TWO_RANGES))
    feed = _GrowingFeed(out, np.zeros(1, dtype=np.int64))

    def work(i: int, stop: threading.Event) -> None:  # milliseconds of a kernel: no stop flag to check
        try:
            K.pickle_two(big, small, ranges, extra, out, feed.progress, np.empty(8, dtype=np.int64), _PICKLE_BATCH)
        finally:
            feed.done.set()

    return feed.load(lambda take: run_threads(work, 1, on_tick=take, tick=0))


class _Feed:
    """The pickle of a ``dict`` as a file that ``pickle.load`` reads (``peek``, ``read``, ``readinto``) while
    threads write it: the header, then the pieces that :meth:`_more` gives (each holds whole entries, so
    the order does not matter), then STOP. A read waits for the next piece, releasing the GIL; ``peek``
    gives at most :data:`_FEED_STEP` bytes, so that a thread waiting for the GIL gets it between two (the
    unpickler holds it while it reads what it was given)."""

    def __init__(self):
        self.pieces: list = [memoryview(_PICKLE_HEAD)]
        self.at = 0
        self.ended = False

    def _more(self) -> list | None:
        """The next pieces (buffers), waiting for them; ``None`` when there are no more."""
        raise NotImplementedError

    def _current(self):
        """The piece being read, with bytes left (None at the end)."""
        while not self.pieces or self.at >= len(self.pieces[0]):
            if self.pieces:
                self.pieces.pop(0)
                self.at = 0
                continue
            if self.ended:
                return None
            got = self._more()
            if got is None:
                self.ended = True
                got = [_PICKLE_STOP]
            self.pieces = [memoryview(p) for p in got]
        return self.pieces[0]

    def peek(self, n: int = 0):
        piece = self._current()
        return b"" if piece is None else piece[self.at : self.at + _FEED_STEP]

    def read(self, n: int = -1):
        piece = self._current()
        if piece is None:
            return b""
        got = piece[self.at :] if n < 0 else piece[self.at : self.at + n]
        self.at += len(got)
        return got

    def readinto(self, buf) -> int:
        got = self.read(len(buf))
        buf[: len(got)] = got
        return len(got)

    def readline(self):  # the unpickler asks for it; no opcode it is given reads a line
        raise io.UnsupportedOperation("readline")

    def load(self, run) -> dict:
        """The ``dict``: ``run(take)`` starts the threads that write the pieces and calls ``take`` on this
        thread while they work (:func:`~bpe_numba.threads.run_threads`' ``on_tick``); the first ``take``
        reads the whole pickle. When a thread fails, the others are stopped, the pickle ends with the
        entries written so far, and ``run`` raises the thread's error."""
        out: list = []

        def take() -> None:
            if not out:
                out.append(None)
                out[0] = pickle.load(self)

        with _quick_gil_handoff():
            run(take)
            take()
        return out[0]


class _PickleFeed(_Feed):
    """A :class:`_Feed` of the pieces that ``producers`` threads ``put``, in the order they come."""

    def __init__(self, producers: int):
        super().__init__()
        self.ready: queue.SimpleQueue = queue.SimpleQueue()
        self.left = producers

    def put(self, r, pieces) -> None:
        """From a thread: range ``r``'s ``pieces`` (arrays of pickle bodies), or ``None, None`` when done."""
        self.ready.put(pieces)

    def _more(self) -> list | None:
        while self.left > 0:
            got = self.ready.get()
            if got is not None:
                return got
            self.left -= 1
        return None


class _GrowingFeed(_Feed):
    """A :class:`_Feed` of one buffer that a kernel fills while it runs: ``out[:progress[0]]`` is written
    (read with :func:`~bpe_numba.count_kernels.published`); the kernel's thread sets ``done`` when it
    returns. While nothing new is published, this thread sleeps in ``done.wait`` for 20 us, then longer."""

    def __init__(self, out: np.ndarray, progress: np.ndarray):
        super().__init__()
        self.out = out
        self.progress = progress
        self.done = threading.Event()
        self.taken = 0

    def _more(self) -> list | None:
        from . import count_kernels as K

        nap = 2e-5
        while True:
            finished = self.done.is_set()  # (before reading the progress: the last range counts)
            ready = int(K.published(self.progress))
            if ready > self.taken:
                piece = self.out[self.taken : ready]
                self.taken = ready
                return [piece]
            if finished:
                return None
            self.done.wait(nap)
            nap = min(2 * nap, 1e-3)


_FEED_STEP = 1 << 15  # bytes per peek of a _Feed: about 2,500 entries, 0.3 ms of pickle.load


# ---------------------------------------------------------------------------------------------------------
# The regex engine: processes
# ---------------------------------------------------------------------------------------------------------

def count_segments_regex(data: bytes, splitter: SpecialSplitter, pattern: str,
                         bounds: np.ndarray | None = None) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Distinct pre-tokens of ``data`` (valid UTF-8) by ``regex``, special tokens removed: ``(blob, int64
    offsets, int64 counts)``. ``bounds``: the segments to count, if not all of ``data`` split at specials."""
    if bounds is None:
        bounds, _ = splitter.split(data)
    findall = compiled_pattern(pattern).findall
    counts: dict[str, int] = {}
    get = counts.get
    for s, e in bounds.tolist():
        for tok in findall(data[s:e].decode("utf-8")):
            counts[tok] = get(tok, 0) + 1
    keys = [k.encode("utf-8") for k in counts]
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, keys), dtype=np.int64, count=len(keys)), out=offsets[1:])
    return b"".join(keys), offsets, np.fromiter(counts.values(), dtype=np.int64, count=len(keys))


def _count_range(task):
    """Worker process: count the pre-tokens of bytes ``[start, end)`` with ``regex``."""
    path, start, end, special_tokens, pattern, errors = task
    with open(path, "rb") as f:
        f.seek(start)
        raw = f.read(end - start)
    if len(raw) != end - start:
        raise FileChangedError(path, f"it ended before byte {end:,}")
    data, bad = checked_utf8(np.frombuffer(raw, dtype=np.uint8), start, errors)
    if bad >= 0:
        return start, end, None, bad
    return start, end, count_segments_regex(data.tobytes(), SpecialSplitter(special_tokens), pattern), -1


def _count_processes(path, size, splitter, num_workers, chunk_size, errors, show, pattern):
    from . import count_kernels as K

    if chunk_size is None:
        chunk_size = int(min(max(size // (4 * max(num_workers, 1)), _PROCESS_CHUNK_MIN), 2 * _PROCESS_CHUNK_MIN))
    tokens = [splitter.encoded[i].decode("utf-8") for i in range(len(splitter.encoded))]
    ranges = list(plan_chunks(path, size, chunk_size, splitter, gpt2=pattern == GPT2_PATTERN))
    workers = max(1, min(num_workers, len(ranges)))
    tasks = ((path, s, e, tokens, pattern, errors) for s, e in ranges)
    table = K.new_table()
    bad = -1
    with progress_bar(show, total=size, unit="B", unit_scale=True, desc="pre-tokenize") as bar:
        for start, end, result, invalid in map_chunks(_count_range, tasks, workers=workers, ordered=False):
            if invalid >= 0:
                bad = invalid
                break
            blob, offsets, counts = result
            table = add_to_table(table, np.frombuffer(blob, dtype=np.uint8), offsets, counts)
            bar.update(end - start)
    return table, bad


# ---------------------------------------------------------------------------------------------------------
# Public
# ---------------------------------------------------------------------------------------------------------

def warm_scan_kernels(engine: str) -> None:
    """Load the pre-tokenization kernels: from the native bundle (:mod:`bpe_numba.native`), else through Numba
    (which compiles them the first time)."""
    from .chunking import find_safe_cut

    state = _ThreadCount(SpecialSplitter(["<s>"]))
    data = np.frombuffer(b"a<s>b c" * 2, dtype=np.uint8)
    checked_utf8(data, 0, "strict")
    if engine == "numba":
        state.count(data, threading.Event())
    find_safe_cut(b"a b", 0, 3, [b"<s>"])
    from . import count_kernels as K

    split = merge_tables([state.table, K.new_table()], 2)  # as the threads merge (two at once)
    distinct(split)
    flatten_table(split, 2, 2)


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
    text_field: str = "text",
    doc_cap: int | None = None,
    max_chars: int | None = None,
    executor=None,
) -> dict[bytes, int]:
    """Counts of the distinct pre-tokens in the input: the table the trainer starts from (in no particular
    order). The input is a file or any other input of :func:`bpe_numba.train_bpe` (files, directories,
    globs, compressed, JSONL and Parquet files, an iterable of ``str``), with the same ``text_field``,
    ``doc_cap``, ``max_chars`` and ``executor``.

    ``num_workers`` threads count (processes for the ``regex`` engine; ``None``: all cores); with more than
    one, their tables are merged and flattened range by range of keys while this thread builds the
    ``dict``. ``chunk_size`` is the bytes per task (default: about sixteen per thread, 256 KiB to 4 MiB;
    32-64 MiB per process). ``pattern`` is the pre-tokenization regex (GPT-2's by default); ``engine``
    counts with the GPT-2 scanner (``"numba"``), the ``regex`` package (``"regex"``), or the scanner when the
    pattern allows (``"auto"``). Every choice gives the same table.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.txt"; _ = p.write_bytes(b"the cat<|eot|>the cat")
    >>> sorted(count_pretokens(p, ["<|eot|>"], num_workers=1).items())
    [(b' cat', 2), (b'the', 2)]
    """
    from .corpus_count import count_here
    from .sources import resolve_input

    corpus = resolve_input(input_path, text_field=text_field, doc_cap=doc_cap, max_chars=max_chars)
    special_tokens = check_special_tokens(special_tokens)
    check_errors_mode(errors)
    pattern = check_pattern(pattern)
    engine = resolve_engine(engine, pattern)
    workers = resolve_workers(num_workers)
    chunk_size = check_chunk_size(chunk_size)
    table = count_here(corpus, special_tokens, executor, num_workers=num_workers, chunk_size=chunk_size,
                       errors=errors, progress=resolve_progress(progress), pattern=pattern, engine=engine)
    return table_to_dict(table, workers)


__all__ = ["GPT2_PATTERN", "count_pretokens"]
