"""``train_bpe``: check the arguments, then run the training job on the Python tier
(:mod:`bpe_numba.python_bpe`) or on the kernels (:mod:`bpe_numba.train_job`, in this process or in a helper
process), and write the model files.

This module, like :mod:`bpe_numba.validation` and :mod:`bpe_numba.processes`, imports no numpy, ``regex`` or
Numba: a process that only calls ``train_bpe`` and hands the job to the helper never loads them, and the
Python tier loads only ``regex``.
"""

from __future__ import annotations

import numbers
import os
import sys
import time
from typing import Sequence

from .errors import BPETypeError, BPEValueError
from .validation import (
    GPT2_PATTERN,
    check_chunk_size,
    check_errors_mode,
    check_output_dir,
    check_pattern,
    check_special_tokens,
    resolve_engine,
    resolve_progress,
    resolve_workers,
)
from .processes import can_start_processes, run_in_helper
from .sources import CountsInput, resolve_input


def _check_vocab_size(vocab_size, n_special: int) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral):
        raise BPETypeError(f"vocab_size must be an int, not {type(vocab_size).__name__} {vocab_size!r}")
    if vocab_size < 256 + n_special:
        raise BPEValueError(
            f"vocab_size={vocab_size} is below the {256 + n_special} ids that the 256 bytes and "
            f"{n_special} special token(s) take; use vocab_size >= {256 + n_special}"
        )


def train_bpe(
    input_path,
    vocab_size: int,
    special_tokens: Sequence[str] = (),
    *,
    num_workers: int | None = None,
    progress: bool | None = None,
    errors: str = "strict",
    chunk_size: int | None = None,
    timings: dict | None = None,
    out_dir: str | os.PathLike | None = None,
    pattern: str = GPT2_PATTERN,
    engine: str = "auto",
    isolate: bool | None = None,
    backend: str = "auto",
    text_field: str = "text",
    doc_cap: int | None = None,
    max_chars: int | None = None,
    executor=None,
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train a byte-level BPE tokenizer on UTF-8 text, with the CS336 assignment-1 semantics.

    ``input_path``: a text file, or any input of :mod:`bpe_numba.sources`: a list of paths, a directory, a
    glob pattern, compressed files (``.gz``, ``.bz2``, ``.xz``, ``.zst``), ``.jsonl`` and ``.parquet``
    files (the documents are their ``text_field``), or an iterable of ``str`` documents. Every document is
    pre-tokenized on its own (as if the documents were joined by a special token); ``doc_cap`` keeps each
    document's first ``doc_cap`` characters and ``max_chars`` stops after the document that takes the
    total past ``max_chars`` characters. ``executor``: a ``concurrent.futures.Executor`` or a Dask
    ``distributed.Client`` whose workers count the files, each task on ``num_workers`` threads (default 1;
    see :mod:`bpe_numba.distributed`); the merges then run here.

    Returns ``(vocab, merges)``: ids ``0..255`` are the bytes, then the special tokens in order, then one id
    per merge in creation order; ``merges`` lists the ``(bytes, bytes)`` pairs in creation order. Ties
    between pairs of equal count go to the lexicographically greater pair of byte strings.

    - ``num_workers``: pre-tokenization threads, processes for the ``regex`` engine (``None``: all cores).
      The result does not depend on it.
    - ``progress``: tqdm bars on stderr; ``None`` shows them when stderr is a terminal.
    - ``errors``: ``"strict"`` raises :class:`InvalidUTF8Error` (file and byte offset) on invalid UTF-8;
      ``"replace"`` decodes invalid bytes as U+FFFD.
    - ``chunk_size``: bytes per pre-tokenization task (default: about sixteen per thread, 256 KiB to 4 MiB;
      for the ``regex`` engine's processes, about four per process, 32-64 MiB each).
    - ``timings``: if a dict is given, seconds per phase are stored in it (``startup``: starting the helper
      process if one is used and loading the kernels, from the native bundle or through Numba;
      ``pretokenize``, ``intern``, ``merges``, ``write``) along with ``unique_pretokens``, ``isolated`` and
      ``backend``.
    - ``isolate``: run the training in a fresh helper process, which starts Numba without what other
      installed packages add to its start-up (SciPy's BLAS probe, Numba extensions such as awkward's) and
      hands all its memory back when it ends; only ``(vocab, merges)`` comes back. ``None`` (the default)
      isolates unless Numba is already imported in this process, where the kernels are then loaded (or
      already loaded) at less cost than starting a process. The result is the same either way. Giving
      ``isolate`` makes ``backend="auto"`` take the kernels.
    - ``pattern``: the pre-tokenization regex (default: GPT-2's, which the contract fixes; another one is
      run with the ``regex`` package, and the file is then cut for workers only where special tokens start).
    - ``engine``: ``"auto"`` (the Numba GPT-2 scanner for the GPT-2 pattern, else ``regex``), ``"numba"`` or
      ``"regex"``; both give the same result for the GPT-2 pattern.
    - ``backend``: ``"kernels"`` (Numba), ``"python"`` (plain Python and ``regex`` in this process: no
      compilation, no helper process) or ``"auto"`` (default; see :func:`bpe_numba.tiers.choose_backend`). The result is
      the same on both; ``timings["backend"]`` says which ran.
    - ``out_dir``: also write the model there (``vocab.json``, ``merges.txt`` and metadata; see
      :func:`bpe_numba.formats.save_model`), each file atomically. The directory is created if needed; it
      is checked before training, and if writing still fails the model is saved under the system's temporary
      folder and :class:`~bpe_numba.errors.ModelNotSavedError` names where.

    >>> vocab, merges = train_bpe("tinystories.txt", 10_000, ["<|endoftext|>"])  # doctest: +SKIP
    >>> merges[0]  # doctest: +SKIP
    (b' ', b't')
    """
    source = resolve_input(input_path, text_field=text_field, doc_cap=doc_cap, max_chars=max_chars)
    specials = check_special_tokens(special_tokens)
    if out_dir is not None:
        check_output_dir(out_dir)
    _check_vocab_size(vocab_size, len(specials))
    check_errors_mode(errors)
    pattern = check_pattern(pattern)
    engine = resolve_engine(engine, pattern)
    workers = resolve_workers(num_workers)
    chunk_size = check_chunk_size(chunk_size)
    from .tiers import choose_backend

    # With an executor, the workers count and the table is what trains here, whatever the input is.
    path = getattr(source, "single_plain_file", None) if executor is None else None
    if path is not None:
        backend = choose_backend(backend, os.path.getsize(path), isolate)
    elif isinstance(source, CountsInput):  # merge work grows with the distinct bytes: ~16 bytes of text each
        backend = choose_backend(backend, 16 * source.size, isolate)
    elif choose_backend(backend, 0, True) == "python":
        raise BPEValueError("backend='python' trains on one plain text file or on counts; use backend='auto' "
                            "or 'kernels' for this input")
    else:
        backend = "kernels"
    if isolate is not None and not isinstance(isolate, bool):
        raise BPETypeError(f"isolate must be True, False or None, not {isolate!r}")
    if isolate and not can_start_processes():
        raise BPEValueError("isolate=True, but this is a daemonic process, which may not start one; use isolate=False")
    n_merges, show = int(vocab_size) - 256 - len(specials), resolve_progress(progress)
    start = time.perf_counter()
    if executor is not None or getattr(source, "documents", None) is not None:
        from .corpus_count import count_here  # an executor's workers report here; an iterable is read here

        source = count_here(source, specials, executor, num_workers=num_workers, chunk_size=chunk_size,
                            errors=errors, progress=show, pattern=pattern, engine=engine)
    counted_here = time.perf_counter() - start
    if backend == "python":
        isolate = False
    elif isolate is None:
        isolate = "numba" not in sys.modules and can_start_processes()
    start = time.perf_counter()
    job = (path or source, specials, n_merges, workers, chunk_size, errors, show, pattern, engine)

    if backend == "python":
        from .python_bpe import train

        vocab, merges, phases = train(path or source.as_dict(), specials, n_merges, errors, show, pattern)
    elif isolate:
        vocab, merges, phases = run_in_helper(_run_training, *job)
        # Starting the helper and sending the result back count as start-up.
        phases["startup"] = time.perf_counter() - start - sum(phases[k] for k in ("pretokenize", "intern", "merges"))
    else:
        vocab, merges, phases = _run_training(*job)
    phases["pretokenize"] += counted_here
    phases["isolated"] = isolate
    phases["backend"] = backend
    if out_dir is not None:
        from .formats import save_trained_model

        t = time.perf_counter()
        save_trained_model(out_dir, vocab, merges, specials, pattern)
        phases["write"] = time.perf_counter() - t
    if timings is not None:
        timings.update(phases)
    return vocab, merges


def _run_training(*job):
    from .train_job import run_training  # numpy and Numba load only in the process that trains

    return run_training(*job)


def train_bpe_from_counts(
    counts,
    vocab_size: int,
    special_tokens: Sequence[str] | None = None,
    *,
    progress: bool | None = None,
    timings: dict | None = None,
    out_dir: str | os.PathLike | None = None,
    isolate: bool | None = None,
    backend: str = "auto",
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train from pre-token counts: a ``{bytes: int}`` dict (:func:`bpe_numba.count_pretokens`,
    :func:`bpe_numba.load_counts`) or the path of a counts file (:func:`bpe_numba.save_counts`, ``bpe-numba
    count``). The result equals :func:`train_bpe` on the text the counts came from, with the same special
    tokens: ``special_tokens`` (``None``: those the counts file records, or none for a dict) take ids
    ``256...`` and no part in the merges. The other options are :func:`train_bpe`'s.

    >>> counts = count_pretokens("corpus.txt", ["<|endoftext|>"])  # doctest: +SKIP
    >>> train_bpe_from_counts(counts, 1000, ["<|endoftext|>"]) == train_bpe("corpus.txt", 1000, ["<|endoftext|>"])  # doctest: +SKIP
    True
    """
    source = CountsInput.of(counts)
    pattern = GPT2_PATTERN
    if source.path is not None:
        from .counts_file import counts_metadata

        meta = counts_metadata(source.path)
        pattern = meta["pattern"]
        if special_tokens is None:
            special_tokens = meta["special_tokens"]
    return train_bpe(source, vocab_size, special_tokens or (), progress=progress, timings=timings,
                     out_dir=out_dir, isolate=isolate, backend=backend, pattern=pattern)
