"""The merge loop around the kernels of :mod:`bpe_numba.merge_kernels`: the state allocated once at its upper
bounds (pages never written cost no memory), the pair hash table grown on request, and merges run in
batches of about a tenth of a second (progress bars; Ctrl-C is seen between kernel calls)."""

from __future__ import annotations

import time

import numpy as np

from .errors import BPEValueError
from .progress import progress_bar

_MAX_POSITIONS = 2**31 - 1 - 257  # positions are int32 in the kernels


def _pow2_at_least(n: int) -> int:
    return 1 << max(int(n) - 1, 1).bit_length()


class MergeLoop:
    """The merges of the pre-tokens ``tokens[offsets[w]:offsets[w+1]]`` (each of two bytes or more) seen
    ``counts[w]`` times, up to ``n_merges``.

    Each merge removes at least one pair position, so there are at most ``sum(len - 1)`` over the distinct
    pre-tokens: ``n_merges`` is clamped to that (:attr:`n_merges`), and any ``vocab_size``, however large,
    allocates only what the corpus can give (training then stops when no pair is left).
    """

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
        self.n_merges = n_merges = max(min(int(n_merges), pair_positions), 0)
        n_syms = 256 + n_merges
        n_pairs = 65536 + 2 * pair_positions
        e = np.empty
        self.S = K.MergeState(
            tok=e(n_pos + 256, np.int32), raw=e(n_pos + 256, np.uint8), word=e(n_pos + 256, np.int32),
            pair_at=e(n_pos + 256, np.int32), counts=np.ascontiguousarray(counts, dtype=np.int64),
            sym_len=e(n_syms, np.int64), sym_src=e(n_syms, np.int64), sym_hash=e(n_syms, np.uint64),
            sym_pow=e(n_syms, np.uint64), sym_key=e(n_syms, np.uint64),
            sym_tab=e(_pow2_at_least(2 * n_syms), np.int32),
            pair_a=e(n_pairs, np.int32), pair_b=e(n_pairs, np.int32), pair_cnt=e(n_pairs, np.int64),
            pair_seg=e(n_pairs, np.int64), pair_mark=e(n_pairs, np.int64), seg=e((n_pairs, 3), np.int64),
            arena=e(3 * pair_positions + 1, np.int32),
            ph_keys=np.full(1 << 16, -1, dtype=np.int64), ph_vals=e(1 << 16, np.int32),
            heap_cnt=e(n_pairs, np.int64), heap_pid=e(n_pairs, np.int32),
            stamp=np.zeros((n_syms, 4), dtype=np.int64), buf=e((2 * pair_positions + 1, 2), np.int32),
            touched=e(2 * pair_positions + 1, np.int32), sizes=e(2 * pair_positions + 2, np.int64), merges=e((max(n_merges, 1), 3), np.int64),
            sc=np.zeros(K.N_SCALARS, dtype=np.int64),
        )
        K.build_state(tokens, offsets, self.S, np.empty((3, 65536), dtype=np.int64))

    @property
    def done(self) -> int:
        return int(self.S.sc[self.K.N_MERGES])

    def run(self, n_target: int) -> bool:
        """Merge until ``n_target`` merges are done (True) or no pair is left (False)."""
        K = self.K
        n_target = min(n_target, self.n_merges)  # the state holds no more
        while True:
            status = K.run_merges(n_target, self.S)
            if status == K.DONE:
                return True
            if status == K.NO_PAIRS:
                return False
            self.grow_hash(int(self.S.sc[K.NEED]))  # GROW_HASH

    def grow_hash(self, pairs: int) -> None:
        """Make the pair hash table hold ``pairs`` at a load factor of at most 1/2 (what ``run_merges`` asks
        for with ``GROW_HASH``; :func:`bpe_numba.tiers.warmup` calls it to load the kernel that rehashes)."""
        size = _pow2_at_least(2 * pairs)
        self.S = self.S._replace(ph_keys=np.full(size, -1, dtype=np.int64), ph_vals=np.empty(size, np.int32))
        self.K.rehash(self.S, 65536)

    def merged_ids(self) -> np.ndarray:
        """``(n, 3)`` array: merge ``i`` joined symbols ``[i, 0]`` and ``[i, 1]`` into symbol ``[i, 2]``."""
        return self.S.merges[: self.done]


def run_merges(tokens, offsets, counts, n_merges: int, show: bool) -> np.ndarray:
    """The merged ids (see :meth:`MergeLoop.merged_ids`), with a progress bar when ``show``."""
    loop = MergeLoop(tokens, offsets, counts, n_merges)
    n_merges = loop.n_merges
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
