"""Counting on an executor's workers: a ``concurrent.futures.Executor`` or a Dask cluster.

``count_pretokens(..., executor=ex)`` and ``train_bpe(..., executor=ex)`` cut the files into the units
of :mod:`bpe_numba.corpus_count` (chunks of plain text files at safe offsets, Parquet row groups, whole
compressed or JSONL files), group them into tasks of about ``chunk_size`` bytes (default: 1/16 of the
input, between 4 and 64 MiB; text files are cut into chunks of at most 4 MiB) and run :func:`count_task` on the workers, each task on ``num_workers``
threads (default 1: the executor's workers are the parallelism). Workers read the files themselves, so
they must see them at the same paths (a shared filesystem), and have bpe_numba installed.

A task returns its table flattened (:class:`~bpe_numba.corpus_count.Counted`: the pre-tokens' bytes and
two int64 arrays), never a dict. With a plain executor the caller adds each result to its table as it
arrives. With Dask (``distributed.Client`` or its ``get_executor()``), the tables are reduced on the
workers in a tree, :data:`FAN_IN` at a time (futures passed as task arguments), so only the final table
comes back to the caller. Dask's worker processes are daemonic: the tasks count on threads, as
everywhere in bpe_numba, and start no process.
"""

from __future__ import annotations

from typing import Sequence

from .corpus_count import Counted, Options, Unit, count_units, plan_units
from .errors import BPETypeError, BPEValueError
from .pretokenize import add_to_table, flatten_table
from .progress import progress_bar
from .sources import Corpus

FAN_IN = 4  # tables merged by one reduction task
TASK_MIN, TASK_MAX = 4 << 20, 64 << 20  # default bytes per task: 1/16 of the input, within these


def count_task(units: Sequence[Unit], options: Options, threads: int = 1) -> Counted:
    """A task: count ``units`` on ``threads`` threads; the table comes back flattened."""
    return Counted(*flatten_table(count_units(units, options, num_workers=threads), 1, threads))


def merge_counted(*parts: Counted) -> Counted:
    """A reduction task: one flattened table holding the sums of ``parts``."""
    from . import count_kernels as K

    table = K.grow_table(K.new_table(), min_distinct=sum(len(p.counts) for p in parts),
                         min_arena=sum(len(p.blob) for p in parts))
    for p in parts:
        table = add_to_table(table, *p)
    return Counted(*flatten_table(table, 1))


def plan_tasks(corpus: Corpus, options: Options, task_bytes: int | None) -> tuple[list[list[Unit]], Options]:
    """The units of ``corpus`` grouped, in order, into tasks of about ``task_bytes`` bytes, and the options
    (with the chunk size the units were planned with)."""
    if task_bytes is None:
        task_bytes = min(max(corpus.size // 16, TASK_MIN), TASK_MAX)
    options = options._replace(chunk_size=min(options.chunk_size, task_bytes))
    tasks: list[list[Unit]] = [[]]
    size = 0
    for unit in plan_units(corpus.sources, options):
        if tasks[-1] and size + unit.bytes > task_bytes:
            tasks.append([])
            size = 0
        tasks[-1].append(unit)
        size += unit.bytes
    return tasks, options


def dask_client(executor):
    """The ``distributed.Client`` behind ``executor`` (itself, or its ``get_executor()``), or None."""
    if not type(executor).__module__.startswith("distributed"):
        return None
    client = getattr(executor, "_client", executor)  # ClientExecutor keeps its client there
    return client if hasattr(client, "submit") and hasattr(client, "gather") else None


def count_on_executor(corpus: Corpus, special_tokens: Sequence[str], executor, *, threads: int,
                      chunk_size: int | None, errors: str, pattern: str, engine: str, progress: bool):
    """The table of distinct pre-tokens of ``corpus``, counted by ``executor``'s workers (validated
    arguments): a :class:`~bpe_numba.corpus_count.Counted` from Dask, else a table."""
    if corpus.documents is not None:
        raise BPEValueError("executor= counts files on the executor's workers; an iterable is read in this "
                            "process: drop executor=, or write the documents to files")
    if corpus.max_chars is not None:
        raise BPEValueError("max_chars needs the documents read in order, which an executor does not do; drop "
                            "executor= or max_chars")
    if not hasattr(executor, "submit"):
        raise BPETypeError(f"executor must be a concurrent.futures.Executor or a distributed.Client, not "
                           f"{type(executor).__name__}")
    from .corpus_count import options_for

    tasks, options = plan_tasks(corpus, options_for(corpus, special_tokens, errors, pattern, engine, None),
                                chunk_size)
    client = dask_client(executor)
    with progress_bar(progress, total=len(tasks), unit="task", desc="pre-tokenize") as bar:
        if client is not None:
            return _dask_tree(client, tasks, options, threads, bar)
        from concurrent.futures import as_completed

        from . import count_kernels as K

        futures = [executor.submit(count_task, units, options, threads) for units in tasks]
        table = K.new_table()
        try:
            for future in as_completed(futures):
                table = add_to_table(table, *future.result())
                bar.update(1)
        finally:
            for future in futures:
                future.cancel()
        return table


def _dask_tree(client, tasks, options: Options, threads: int, bar) -> Counted:
    from distributed import as_completed

    level = [client.submit(count_task, units, options, threads, pure=False) for units in tasks]
    submitted = list(level)
    try:
        counted = level
        while len(level) > 1:  # the whole tree at once: Dask runs each merge when its inputs are ready
            level = [client.submit(merge_counted, *level[i : i + FAN_IN], pure=False)
                     for i in range(0, len(level), FAN_IN)]
            submitted.extend(level)
        for _ in as_completed(counted):
            bar.update(1)
        return level[0].result()
    finally:
        client.cancel(submitted)


__all__ = ["count_on_executor", "count_task", "merge_counted", "dask_client"]
