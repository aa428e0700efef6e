"""The training job, in whichever process runs it (see :func:`bpe_numba.train_bpe`): pre-tokenize, intern
the unique pre-tokens into flat arrays, run the merge kernels, and turn the merged symbol ids back into
``(vocab, merges)``."""

from __future__ import annotations

import time

import numpy as np

from .errors import BPEValueError
from .pretokenize import flatten_table, warm_scan_kernels
from .processes import progress_bar

_MAX_POSITIONS = 2**31 - 1 - 257  # positions are int32 in the kernels


class _MergeLoop:
    """The merge kernels' state: every array is allocated once, at its upper bound (see the performance
    notes in ``merge_kernels``: pages that are never written cost no memory)."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, counts: np.ndarray, n_merges: int):
        from . import merge_kernels as K

        self.K = K
        n_words = len(counts)
        n_pos = len(tokens) + n_words + 1
        if n_pos > _MAX_POSITIONS:
            raise BPEValueError(
                f"the unique pre-tokens hold {len(tokens):,} bytes, more than the {_MAX_POSITIONS:,} the "
                f"merge kernels index with int32; train on a sample of the corpus"
            )
        pair_positions = len(tokens) - n_words  # each merged occurrence removes one
        n_syms = 256 + n_merges
        n_pairs = 65536 + 2 * pair_positions
        self.tok = np.empty(n_pos + 256, dtype=np.int32)
        self.raw = np.empty(n_pos + 256, dtype=np.uint8)
        self.word = np.empty(n_pos + 256, dtype=np.int32)
        self.pair_at = np.empty(n_pos + 256, dtype=np.int32)
        self.counts = counts
        self.sym_len = np.empty(n_syms, dtype=np.int64)
        self.sym_src = np.empty(n_syms, dtype=np.int64)
        self.sym_hash = np.empty(n_syms, dtype=np.uint64)
        self.sym_pow = np.empty(n_syms, dtype=np.uint64)
        self.sym_tab = np.empty(_pow2_at_least(2 * n_syms), dtype=np.int32)
        self.pair_a = np.empty(n_pairs, dtype=np.int32)
        self.pair_b = np.empty(n_pairs, dtype=np.int32)
        self.pair_cnt = np.empty(n_pairs, dtype=np.int64)
        self.pair_seg = np.empty(n_pairs, dtype=np.int64)
        self.pair_mark = np.empty(n_pairs, dtype=np.int64)
        self.seg = np.empty((n_pairs, 3), dtype=np.int64)
        self.arena = np.empty(3 * pair_positions + 1, dtype=np.int32)
        self.heap_cnt = np.empty(n_pairs, dtype=np.int64)
        self.heap_pid = np.empty(n_pairs, dtype=np.int32)
        self.stamp = np.zeros((n_syms, 4), dtype=np.int64)
        self.buf = np.empty((2 * pair_positions + 1, 2), dtype=np.int32)
        self.touched = np.empty(2 * pair_positions + 1, dtype=np.int32)
        self.merges = np.empty((max(n_merges, 1), 3), dtype=np.int64)
        self.sc = np.zeros(K.N_SCALARS, dtype=np.int64)
        self.ph_keys = np.full(1 << 16, -1, dtype=np.int64)
        self.ph_vals = np.empty(1 << 16, dtype=np.int32)
        K.build_state(
            tokens, offsets, counts, self.tok, self.raw, self.word, self.pair_at,
            self.sym_len, self.sym_src, self.sym_hash, self.sym_pow, self.sym_tab,
            self.pair_a, self.pair_b, self.pair_cnt, self.pair_seg, self.pair_mark, self.seg, self.arena,
            self.heap_cnt, self.heap_pid, self.sc,
        )

    @property
    def done(self) -> int:
        return int(self.sc[self.K.N_MERGES])

    def run(self, n_target: int) -> bool:
        """Merge until ``n_target`` merges are done (True) or no pair is left (False)."""
        K = self.K
        while True:
            status = K.run_merges(
                n_target, self.tok, self.raw, self.word, self.counts, self.pair_at,
                self.sym_len, self.sym_src, self.sym_hash, self.sym_pow, self.sym_tab,
                self.pair_a, self.pair_b, self.pair_cnt, self.pair_seg, self.pair_mark, self.seg, self.arena,
                self.ph_keys, self.ph_vals, self.heap_cnt, self.heap_pid, self.stamp, self.buf, self.touched,
                self.merges, self.sc,
            )
            if status == K.DONE:
                return True
            if status == K.NO_PAIRS:
                return False
            # GROW_HASH: keep the load factor at most 1/2.
            size = _pow2_at_least(2 * int(self.sc[K.NEED]))
            self.ph_keys = np.full(size, -1, dtype=np.int64)
            self.ph_vals = np.empty(size, dtype=np.int32)
            n_pairs = int(self.sc[K.N_PAIRS])
            K.rehash(self.ph_keys, self.ph_vals, self.pair_a, self.pair_b, 65536, n_pairs)

    def merged_ids(self) -> np.ndarray:
        """``(n, 3)`` array: merge ``i`` joined symbols ``[i, 0]`` and ``[i, 1]`` into symbol ``[i, 2]``."""
        return self.merges[: self.done]


def _pow2_at_least(n: int) -> int:
    return 1 << max(int(n) - 1, 1).bit_length()


def run_training(source, specials: list[str], n_merges: int, workers: int, chunk_size: int | None, errors: str,
                 show: bool, pattern: str, engine: str) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]], dict]:
    """:func:`bpe_numba.train_bpe` on validated arguments; also returns the timings of its phases. ``source``
    is a plain file's path or what :func:`bpe_numba.corpus_count.count_input` takes."""
    from .corpus_count import count_input

    times: dict = {}
    start = time.perf_counter()
    warm_scan_kernels(engine)  # imports Numba and loads the kernels (compiles them on the very first run)
    t0 = time.perf_counter()
    times["startup"] = t0 - start
    table = count_input(source, specials, num_workers=workers, chunk_size=chunk_size, errors=errors, progress=show,
                        pattern=pattern, engine=engine)
    t1 = time.perf_counter()
    times["pretokenize"] = t1 - t0

    from . import count_kernels

    times["unique_pretokens"] = int(table.state[count_kernels.N_DISTINCT])
    # Only pre-tokens of two bytes or more can hold a pair.
    tokens, offsets, counts = flatten_table(table, 2)
    del table
    t2 = time.perf_counter()
    times["intern"] = t2 - t1

    merged = np.zeros((0, 3), dtype=np.int64)
    if n_merges > 0 and len(counts) > 0:
        merged = _run_merges(tokens, offsets, counts, n_merges, show)
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
    return vocab, merges, times


def _run_merges(tokens, offsets, counts, n_merges: int, show: bool) -> np.ndarray:
    loop = _MergeLoop(tokens, offsets, counts, n_merges)
    with progress_bar(show, total=n_merges, unit="merge", desc="merges") as bar:
        batch = 1
        while loop.done < n_merges:
            start = time.perf_counter()
            before = loop.done
            more = loop.run(min(n_merges, before + batch))
            bar.update(loop.done - before)
            if not more:
                break
            # Aim for about ten kernel returns a second (progress updates, and Ctrl-C is only seen between
            # kernel calls); early merges on a huge corpus can take 0.1 s each, so start with one and grow.
            elapsed = time.perf_counter() - start
            batch = int(min(max(batch * min(0.1 / max(elapsed, 1e-4), 8.0), 1), 1 << 20))
    return loop.merged_ids()
