"""Pre-tokenization: a file's bytes -> the counts of its distinct pre-tokens.

The file is cut into chunks at safe offsets (:mod:`bpe_numba.chunking`); each chunk is checked as UTF-8,
split at its special tokens and its pre-tokens counted by one of two engines:

- ``"numba"``: the GPT-2 pattern's scanner (:mod:`bpe_numba.gpt2_scan`) feeding a per-thread table of
  distinct pre-tokens (:mod:`bpe_numba.count_kernels`). Every kernel releases the GIL, so ``num_workers``
  threads of this process count chunks side by side (:func:`bpe_numba.corpus_count.count_units`, for one
  file as for many); their tables are merged by a kernel at the end.
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


def _slot_ranges(table, parts: int) -> list[tuple[int, int]]:
    """``parts`` consecutive ranges of the table's slots, about equal."""
    n = table.slots.shape[0] // 2
    cuts = [n * i // parts for i in range(parts + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def merge_tables(tables: list):
    """One table holding the sums of ``tables`` (the largest one, grown, absorbs the others)."""
    from . import count_kernels as K

    tables = sorted(tables, key=lambda t: -int(t.state[K.N_DISTINCT]))
    dst = tables[0] if tables else K.new_table()
    for src in tables[1:]:
        resume = np.zeros(1, dtype=np.int64)
        while K.merge_into(dst, src, resume) != K.DONE:
            dst = K.grow_table(dst)
    return dst


def add_to_table(table, blob: np.ndarray, offsets: np.ndarray, counts: np.ndarray):
    """``table`` plus the pre-tokens ``blob[offsets[j]:offsets[j+1]]`` seen ``counts[j]`` times (grown as
    needed; returns the table, which may be a new one)."""
    from . import count_kernels as K

    resume = np.zeros(1, dtype=np.int64)
    while K.add_counts(table, blob, offsets, counts, resume) != K.DONE:
        table = K.grow_table(table)
    return table


def _flatten_range(table, min_len: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(blob, offsets, counts)`` of the entries of at least ``min_len`` bytes in slots ``[lo, hi)``,
    grouped by length."""
    from . import count_kernels as K

    n, total = K.table_bytes(table, min_len, lo, hi)
    blob = np.empty(total, dtype=np.uint8)
    offsets = np.empty(n + 1, dtype=np.int64)
    counts = np.empty(n, dtype=np.int64)
    K.flatten(table, min_len, lo, hi, blob, offsets, counts, np.empty(515, dtype=np.int64))
    return blob, offsets, counts


def flatten_table(table, min_len: int, workers: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(blob, offsets, counts)`` of the table's entries of at least ``min_len`` bytes: with one worker
    grouped by length, with more (each thread a range of slots) grouped by length within each range."""
    if workers <= 1:
        return _flatten_range(table, min_len, 0, table.slots.shape[0] // 2)
    from .threads import run_threads

    ranges = _slot_ranges(table, int(workers))
    parts: list = [None] * len(ranges)

    def flatten(i: int, stop: threading.Event) -> None:  # milliseconds of a kernel: no stop flag to check
        parts[i] = _flatten_range(table, min_len, *ranges[i])

    run_threads(flatten, len(ranges))
    blob = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[2] for p in parts])
    offsets = np.empty(len(counts) + 1, dtype=np.int64)
    at = base = 0
    for b, o, _ in parts:
        offsets[at : at + len(o) - 1] = o[:-1] + base
        at += len(o) - 1
        base += len(b)
    offsets[at] = base
    return blob, offsets, counts


_DICT_PARTS = 8  # ranges of slots flattened one after another while the dict is built (workers > 1)
_HANDOFF = 1e-4  # seconds: Python's thread switch interval while the dict is built (Python's default: 5 ms)
_handoff = {"depth": 0, "saved": 0.0}
_handoff_lock = threading.Lock()


@contextlib.contextmanager
def _quick_gil_handoff():
    """Python's switch interval at :data:`_HANDOFF` inside (restored by the outermost of nested uses).

    A thread that needs the GIL (here: to call the next kernel) waits for the switch interval before the
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
    """The table as ``{pre-token bytes: count}``. The ``dict`` is built under the GIL; with ``workers`` > 1,
    a thread flattens the next of :data:`_DICT_PARTS` ranges of slots meanwhile (prose_en, 137 K keys: 35-43
    ms instead of 50-56, median of 31 interleaved pairs 0.76).

    Tried (``/work/scratch/s25/fd.py``, median of 15): a kernel that walks the table and inserts each entry
    through the C API (``PyBytes_FromStringAndSize``, ``PyLong_FromLongLong``, ``PyDict_SetItem``), with no
    flattening: 43.5 ms against 44.9 ms here, 47.1 ms into a presized dict. ``dict(zip(keys, counts))`` of
    the same keys already made (their hashes cached) takes 30 ms alone: the inserts into a dict of 137 K
    keys are the floor, and they hold the GIL. Also tried (``/work/scratch/s25/mr.py``, the two tables of a
    2-thread count): merging them range by range of slots on the flattening thread, each range flattened as
    soon as no later range can add to it, so that the merge too runs beside the ``dict``: 40.8 ms against
    33.5 ms for the merge followed by this function (median of 15, per-pair 1.23). That thread (growing the
    table 5 ms, merging 15, flattening 10) becomes the longer side."""
    if workers <= 1:
        return _entries_dict(*flatten_table(table, 1), {})
    ready: queue.Queue = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        try:
            for lo, hi in _slot_ranges(table, _DICT_PARTS):
                if stop.is_set():
                    return
                ready.put(_flatten_range(table, 1, lo, hi))
        except BaseException as exc:  # noqa: BLE001 - raised in the calling thread
            ready.put(exc)

    out: dict[bytes, int] = {}
    with _quick_gil_handoff():
        thread = threading.Thread(target=produce, name="bpe_numba-flatten", daemon=True)
        thread.start()
        try:
            for _ in range(_DICT_PARTS):
                part = ready.get()
                if isinstance(part, BaseException):
                    raise part
                _entries_dict(*part, out)
        finally:
            stop.set()
            thread.join()
    return out


def _entries_dict(blob: np.ndarray, offsets: np.ndarray, counts: np.ndarray, out: dict) -> dict:
    """``out`` updated with the entries ``blob[offsets[j]:offsets[j+1]]: counts[j]``, which come grouped by
    length: each group of equal lengths below 256 becomes bytes objects in one ``tolist`` of a fixed-width
    view (numpy's ``S`` type drops trailing NUL bytes: those few keys are cut again)."""
    lengths = np.diff(offsets)
    keys: list[bytes] = []
    starts = np.flatnonzero(np.diff(lengths, prepend=-1, append=-1)).tolist()
    for a, b in zip(starts[:-1], starts[1:]):
        width = int(lengths[a])
        group = blob[offsets[a] : offsets[b]]
        if width >= 256 or len(group) != width * (b - a):  # the last group mixes long lengths
            raw = group.tobytes()
            o = (offsets[a : b + 1] - offsets[a]).tolist()
            keys.extend(raw[o[j] : o[j + 1]] for j in range(b - a))
            continue
        rows = group.reshape(b - a, width)
        got = rows.view(f"S{width}").ravel().tolist()
        for j in np.flatnonzero(rows[:, -1] == 0).tolist():
            got[j] = rows[j].tobytes()
        keys.extend(got)
    out.update(zip(keys, counts.tolist()))
    return out


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
    merge_tables([state.table, state.table])
    flatten_table(state.table, 2)


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

    ``num_workers`` threads count (processes for the ``regex`` engine; ``None``: all cores), and with more
    than one, a thread flattens the table while the ``dict`` is built; ``chunk_size`` is the bytes per task
    (default: about sixteen per thread, 256 KiB to 4 MiB; 32-64 MiB per process). ``pattern`` is the
    pre-tokenization regex (GPT-2's by default); ``engine`` counts with the GPT-2 scanner (``"numba"``),
    the ``regex`` package (``"regex"``), or the scanner when the pattern allows (``"auto"``). Every choice
    gives the same table.

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
