"""Counting the pre-tokens of any input (:mod:`bpe_numba.sources`) into one
:class:`~bpe_numba.count_kernels.CountTable`, on threads of this process.

- One plain text file, read whole: :func:`count_file`, its chunks counted as units (below).
- Files: the work is cut into *units*: a chunk of an uncompressed text file (cut at safe offsets, as
  ``count_file`` cuts it), a row group of a Parquet file, or a whole compressed text or JSONL file, which
  is decompressed as a stream. ``num_workers`` threads take units in turn, each reading, decompressing and
  counting into a table of its own (:class:`BlockCounter`); the tables are merged at the end. The same
  units are the tasks of an executor (:mod:`bpe_numba.distributed`).
- An iterable, or a ``max_chars`` budget (which needs the documents in order): this thread reads the
  documents in order into blocks and hands them through a bounded queue to ``num_workers`` counting
  threads (none with one worker), so memory stays bounded by a few blocks per thread.

Counts are sums, so the result depends on none of this: not on threads, units, blocks or the order in
which they finish.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from .chunking import ChunkReader, check_same_file, checked_utf8, chunk_ranges, input_identity, invalid_utf8_error
from .documents import (
    Block,
    Budget,
    Reading,
    block_bounds,
    iterable_blocks,
    parquet_row_groups,
    readonly,
    source_blocks,
)
from .errors import BPEValueError, FileChangedError
from .pretokenize import (
    SpecialSplitter,
    add_to_table,
    count_file_regex,
    count_segments_regex,
    default_chunk_size,
    merge_tables,
)
from .pretokenize import _CHUNK_MAX
from .progress import progress_bar, ticker
from .sources import PARQUET, TEXT, Corpus, CountsInput, Source
from .validation import GPT2_PATTERN


class Counted(NamedTuple):
    """A table of distinct pre-tokens as three arrays: what travels between processes (a task's result,
    a counts file): ``blob[offsets[j]:offsets[j + 1]]`` was seen ``counts[j]`` times."""

    blob: np.ndarray  # uint8
    offsets: np.ndarray  # int64, one more than counts
    counts: np.ndarray  # int64


class Unit(NamedTuple):
    """A piece of work: ``("chunk", lo)``: the chunk of a plain text file whose nominal range is ``[lo, lo +
    bytes)`` (:func:`bpe_numba.chunking.chunk_ranges`), ``("rows", g)``: row group ``g`` of a Parquet file,
    or ``("all", 0)``: a whole file read as a stream."""

    source: Source
    part: str
    index: int
    bytes: int  # about how many bytes of the file it covers (progress, grouping into tasks)


class Options(NamedTuple):
    """Everything a unit's counting needs besides the unit (picklable: sent to an executor's workers)."""

    special_tokens: tuple
    errors: str
    pattern: str
    engine: str
    text_field: str
    doc_cap: int | None
    chunk_size: int


def options_for(corpus: Corpus, special_tokens: Sequence[str], errors: str, pattern: str, engine: str,
                chunk_size: int | None) -> Options:
    return Options(tuple(special_tokens), errors, pattern, engine, corpus.text_field, corpus.doc_cap,
                   _CHUNK_MAX if chunk_size is None else chunk_size)


def table_from_counted(counted) -> "object":
    """A table holding ``counted`` (:class:`Counted`, or ``(blob, offsets, counts)``)."""
    from . import count_kernels as K

    blob, offsets, counts = counted
    table = K.grow_table(K.new_table(), min_distinct=len(counts), min_arena=len(blob))
    return add_to_table(table, blob, offsets, counts)


class BlockCounter:
    """One thread's counting state: blocks in, one table of distinct pre-tokens out."""

    def __init__(self, splitter: SpecialSplitter, engine: str, pattern: str, expected_bytes: int = 0):
        from . import count_kernels as K
        from .pretokenize import _ThreadCount

        self.splitter = splitter
        self.pattern = pattern
        self.state = _ThreadCount(splitter, expected_bytes) if engine == "numba" else None
        self._table = None if self.state is not None else K.new_table()

    @property
    def table(self):
        return self.state.table if self.state is not None else self._table

    def count(self, data: np.ndarray, joined: bool, stop: threading.Event) -> None:
        data = readonly(data)
        bounds = block_bounds(self.splitter, data, joined)
        if self.state is not None:
            self.state.count(data, stop, bounds)
            return
        blob, offsets, counts = count_segments_regex(data.tobytes(), self.splitter, self.pattern, bounds)
        self._table = add_to_table(self._table, np.frombuffer(blob, dtype=np.uint8), offsets, counts)


# ---------------------------------------------------------------------------------------------------------
# Files, in units
# ---------------------------------------------------------------------------------------------------------

def plan_units(sources: Sequence[Source], options: Options, workers: int = 1) -> list[Unit]:
    """The units of work of ``sources``, in order (a plain file's last chunks cut smaller for ``workers``
    threads: :func:`~bpe_numba.chunking.chunk_ranges`)."""
    units: list[Unit] = []
    chunk_size = options.chunk_size
    for src in sources:
        if src.plain and options.doc_cap is None:  # (doc_cap: only the start of the file is read)
            units.extend(Unit(src, "chunk", lo, hi - lo) for lo, hi in chunk_ranges(src.size, chunk_size, workers))
        elif src.kind == PARQUET:
            n = parquet_row_groups(src.path)
            units.extend(Unit(src, "rows", g, src.size // max(n, 1)) for g in range(n))
        else:
            units.append(Unit(src, "all", 0, src.size))
    return units


def count_units(units: Sequence[Unit], options: Options, *, num_workers: int, progress: bool = False):
    """Count ``units`` on ``num_workers`` threads into one table; checks at the end that no file changed."""
    from .threads import Stopped, run_threads

    splitter = SpecialSplitter(options.special_tokens)
    reading = Reading(splitter, options.pattern == GPT2_PATTERN, options.errors, options.text_field,
                      options.doc_cap, fresh=False)
    # Whole files first, longest first: a long stream started last would keep one thread busy alone.
    order = sorted(range(len(units)), key=lambda i: (units[i].part == "chunk", -units[i].bytes, i))
    next_unit = itertools.count()  # shared; next() is atomic under the GIL
    workers = max(1, min(num_workers, len(units)))
    done = [0] * workers
    tables: list = [None] * workers
    total = sum(u.bytes for u in units)
    bar = progress_bar(progress, total=total, unit="B", unit_scale=True, desc="pre-tokenize")
    tick = ticker(bar, done)

    def work(w: int, stop: threading.Event) -> None:
        counter = BlockCounter(splitter, options.engine, options.pattern, total // workers)
        reader = None
        try:
            for i in next_unit:
                if i >= len(order) or stop.is_set():
                    break
                unit = units[order[i]]
                if unit.part == "chunk":
                    if reader is None or reader.path != unit.source.path:
                        if reader is not None:
                            reader.close()
                        reader = None  # (a failing open must not leave the old one to close twice)
                        reader = ChunkReader(unit.source.path, unit.source.size, options.chunk_size, splitter,
                                             reading.gpt2)
                    _count_chunk(reader, unit.index, unit.index + unit.bytes, options.errors, counter, stop)
                else:
                    rows = (unit.index,) if unit.part == "rows" else None
                    for block in source_blocks(unit.source, reading, Budget(None), rows):
                        if stop.is_set():
                            raise Stopped
                        counter.count(block.data, block.joined, stop)
                done[w] += unit.bytes
        finally:
            if reader is not None:
                reader.close()
        tables[w] = counter.table

    try:
        run_threads(work, workers, on_tick=tick)
        tick()
    finally:
        bar.close()
    check_unchanged({u.source for u in units})
    return merge_tables([t for t in tables if t is not None], workers)


def count_file(path: str, special_tokens: Sequence[str], *, num_workers: int, chunk_size: int | None,
               errors: str, progress: bool, pattern: str = GPT2_PATTERN, engine: str = "numba"):
    """Count the distinct pre-tokens of one plain file (arguments already validated) into one
    :class:`~bpe_numba.count_kernels.CountTable`: its chunks are units of :func:`count_units` (about sixteen
    per thread, :func:`~bpe_numba.pretokenize.default_chunk_size`, unless ``chunk_size`` is given; each
    thread's last one cut in pieces, :func:`~bpe_numba.chunking.chunk_ranges`).

    Invalid UTF-8 raises :class:`InvalidUTF8Error` with the file's first bad offset; a file that changes
    while it is read (size, modification time, or another file renamed into its place) raises
    :class:`FileChangedError`.
    """
    if engine != "numba":
        return count_file_regex(path, special_tokens, num_workers=num_workers, chunk_size=chunk_size,
                                errors=errors, progress=progress, pattern=pattern)
    before = input_identity(path)
    size, mtime_ns = before[0], before[1]
    chunk = default_chunk_size(size, num_workers) if chunk_size is None else chunk_size
    options = Options(tuple(special_tokens), errors, pattern, engine, "text", None, chunk)
    table = count_units(plan_units([Source(path, TEXT, None, size, mtime_ns)], options, num_workers), options,
                        num_workers=num_workers, progress=progress)
    check_same_file(path, before)
    return table


def _count_chunk(reader: ChunkReader, lo: int, hi: int, errors: str, counter: BlockCounter, stop) -> None:
    data, start = reader.read_range(lo, hi)
    if not data.shape[0]:
        return
    data, bad = checked_utf8(data, start, errors)
    if bad >= 0:
        raise invalid_utf8_error(reader.path, bad)  # the file's first, not this chunk's
    counter.count(data, False, stop)


def check_unchanged(sources) -> None:
    """Raise :class:`FileChangedError` if a file's size or modification time differs from when it was
    resolved."""
    for src in sources:
        try:
            st = os.stat(src.path)
            now = (st.st_size, st.st_mtime_ns)
        except OSError:
            now = None
        if now != (src.size, src.mtime_ns):
            raise FileChangedError(src.path, "its size or modification time differs from when reading began")


# ---------------------------------------------------------------------------------------------------------
# Documents in order: an iterable, or a character budget
# ---------------------------------------------------------------------------------------------------------

def ordered_blocks(corpus: Corpus, reading: Reading) -> Iterator[Block]:
    budget = Budget(corpus.max_chars)
    if corpus.documents is not None:
        yield from iterable_blocks(corpus.documents, reading, budget)
        return
    for src in corpus.sources:
        if not budget.open:
            break
        yield from source_blocks(src, reading, budget)
    check_unchanged(corpus.sources)


def count_ordered(blocks: Iterator[Block], splitter: SpecialSplitter, engine: str, pattern: str, *,
                  num_workers: int, progress: bool):
    """Count the blocks that this thread reads from ``blocks`` on ``num_workers`` threads (in this thread
    with one), through a queue of at most two blocks per thread."""
    bar = progress_bar(progress, unit="B", unit_scale=True, desc="pre-tokenize")
    try:
        if num_workers == 1:
            counter = BlockCounter(splitter, engine, pattern)
            never = threading.Event()
            for block in blocks:
                counter.count(block.data, block.joined, never)
                bar.update(block.data.shape[0])
            return counter.table
        return _pipeline(blocks, splitter, engine, pattern, num_workers, bar)
    finally:
        bar.close()


def _pipeline(blocks, splitter, engine, pattern, workers: int, bar):
    from .threads import Stopped

    todo: queue.Queue = queue.Queue(maxsize=2 * workers)
    stop = threading.Event()
    failed: list[BaseException] = []
    tables: list = [None] * workers

    def fail(exc: BaseException) -> None:
        failed.append(exc)
        stop.set()

    def work(w: int) -> None:
        counter = None
        try:
            counter = BlockCounter(splitter, engine, pattern)
        except BaseException as exc:  # noqa: BLE001 - raised in the producer's thread
            fail(exc)
        while True:  # drains to the end marker, so the producer never waits on a queue nobody reads
            block = todo.get()
            if block is None:
                break
            if stop.is_set():
                continue
            try:
                counter.count(block.data, block.joined, stop)
            except Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001
                fail(exc)
        if counter is not None:
            tables[w] = counter.table

    threads = [threading.Thread(target=work, args=(w,), name=f"bpe_numba-count-{w}", daemon=True)
               for w in range(workers)]

    def put(item) -> bool:
        """Queue ``item`` unless the run is stopping or no thread is left to read it."""
        while not stop.is_set() or item is None:
            if not any(t.is_alive() for t in threads):
                stop.set()
                return False
            try:
                todo.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    try:
        for t in threads:
            t.start()
        for block in blocks:
            if not put(block):
                break
            bar.update(block.data.shape[0])
    except BaseException:
        stop.set()
        raise
    finally:
        for t in threads:
            if t.ident is not None:
                put(None)
        for t in threads:
            if t.ident is not None:
                t.join()
    if failed:
        raise failed[0]
    if not all(tables):
        raise RuntimeError("a counting thread ended early (out of memory?); no counts were lost silently")
    return merge_tables(tables, workers)


# ---------------------------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------------------------

def count_corpus(corpus: Corpus, special_tokens: Sequence[str], *, num_workers: int, chunk_size: int | None,
                 errors: str, progress: bool, pattern: str = GPT2_PATTERN, engine: str = "numba"):
    """The table of distinct pre-tokens of ``corpus`` (arguments validated)."""
    path = corpus.single_plain_file
    if path is not None:
        return count_file(path, special_tokens, num_workers=num_workers, chunk_size=chunk_size, errors=errors,
                          progress=progress, pattern=pattern, engine=engine)
    options = options_for(corpus, special_tokens, errors, pattern, engine, chunk_size)
    if corpus.ordered:
        splitter = SpecialSplitter(special_tokens)
        reading = Reading(splitter, pattern == GPT2_PATTERN, errors, corpus.text_field, corpus.doc_cap, fresh=True)
        return count_ordered(ordered_blocks(corpus, reading), splitter, engine, pattern, num_workers=num_workers,
                             progress=progress)
    return count_units(plan_units(corpus.sources, options, num_workers), options, num_workers=num_workers,
                       progress=progress)


def count_here(source, special_tokens: Sequence[str], executor, *, num_workers: int | None, chunk_size: int | None,
               errors: str, progress: bool, pattern: str, engine: str):
    """Count ``source`` (a :class:`~bpe_numba.sources.Corpus`) in this process: on ``executor``'s workers
    (``num_workers`` threads per task, default 1), or here on ``num_workers`` threads (all cores); returns a
    table."""
    from .validation import resolve_workers

    if isinstance(source, CountsInput):
        raise BPEValueError("executor= has nothing to count: the input is pre-token counts already")
    if executor is None:
        return count_corpus(source, special_tokens, num_workers=resolve_workers(num_workers), chunk_size=chunk_size,
                            errors=errors, progress=progress, pattern=pattern, engine=engine)
    from .distributed import count_on_executor

    table = count_on_executor(source, special_tokens, executor, threads=resolve_workers(num_workers or 1),
                              chunk_size=chunk_size, errors=errors, pattern=pattern, engine=engine, progress=progress)
    return table_from_counted(table) if isinstance(table, Counted) else table


def count_input(source, special_tokens: Sequence[str], *, num_workers: int, chunk_size: int | None, errors: str,
                progress: bool, pattern: str, engine: str):
    """The table the training starts from, whatever ``source`` is: a plain file's path (counted by
    :func:`count_file`), a :class:`~bpe_numba.sources.Corpus`, counts
    (:class:`~bpe_numba.sources.CountsInput`, :class:`Counted`) or a table counted already."""
    if isinstance(source, str):
        return count_file(source, special_tokens, num_workers=num_workers, chunk_size=chunk_size, errors=errors,
                          progress=progress, pattern=pattern, engine=engine)
    if isinstance(source, Corpus):
        return count_corpus(source, special_tokens, num_workers=num_workers, chunk_size=chunk_size, errors=errors,
                            progress=progress, pattern=pattern, engine=engine)
    if isinstance(source, CountsInput):
        from .counts_file import counted_of

        return table_from_counted(counted_of(source))
    if isinstance(source, Counted):
        return table_from_counted(source)
    return source  # a CountTable


__all__ = ["Counted", "Options", "Unit", "count_corpus", "count_here", "count_input", "count_units", "plan_units"]
