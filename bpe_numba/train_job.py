"""The training job, in whichever process runs it (see :func:`bpe_numba.train_bpe`): pre-tokenize, intern
the unique pre-tokens into flat arrays, run the merge kernels, and turn the merged symbol ids back into
``(vocab, merges)``."""

from __future__ import annotations

import time

import numpy as np

from .merge_loop import run_merges
from .pretokenize import distinct, flatten_table, warm_scan_kernels


def run_training(source, specials: list[str], n_merges: int, workers: int, chunk_size: int | None, errors: str,
                 show: bool, pattern: str, engine: str) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]], dict]:
    """:func:`bpe_numba.train_bpe` on validated arguments; also returns the timings of its phases. ``source``
    is a plain file's path or what :func:`bpe_numba.corpus_count.count_input` takes."""
    from .corpus_count import count_input

    times: dict = {}
    start = time.perf_counter()
    warm_scan_kernels(engine)  # loads the kernels: native bundle, else Numba (which compiles on the first run)
    t0 = time.perf_counter()
    times["startup"] = t0 - start
    table = count_input(source, specials, num_workers=workers, chunk_size=chunk_size, errors=errors, progress=show,
                        pattern=pattern, engine=engine)
    t1 = time.perf_counter()
    times["pretokenize"] = t1 - t0

    # Only pre-tokens of two bytes or more can hold a pair. (The threads' tables are merged here.)
    tokens, offsets, counts = flatten_table(table, 2, workers)
    times["unique_pretokens"] = distinct(table)
    del table
    t2 = time.perf_counter()
    times["intern"] = t2 - t1

    merged = np.zeros((0, 3), dtype=np.int64)
    if n_merges > 0 and len(counts) > 0:
        merged = run_merges(tokens, offsets, counts, n_merges, show)
    times["merges"] = time.perf_counter() - t2

    vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
    for tok in specials:
        vocab[len(vocab)] = tok.encode("utf-8")
    symbols = [bytes([i]) for i in range(256)]
    merges: list[tuple[bytes, bytes]] = []
    for a, b, c in merged.tolist():
        left, right = symbols[a], symbols[b]
        joined = left + right
        if c == len(symbols):
            symbols.append(joined)
        elif symbols[c] != joined:  # pragma: no cover - would be a kernel bug
            raise RuntimeError(f"merge {len(merges)}: kernel symbol {c} is {symbols[c]!r}, expected {joined!r}")
        merges.append((left, right))
        vocab[len(vocab)] = joined
    from .native import save_bundle

    save_bundle()  # if Numba ran the kernels here and the native bundle lacks them, for the next process
    return vocab, merges, times
