"""``train_bpe``: pre-tokenize in workers, intern the unique pre-tokens into flat arrays, run the merge
kernels, and turn the merged symbol ids back into ``(vocab, merges)``."""

from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np

from .errors import BPEInputError
from .pretokenize import (
    GPT2_PATTERN,
    check_errors_mode,
    check_input_file,
    check_pattern,
    check_special_tokens,
    progress_bar,
    resolve_engine,
    resolve_progress,
    resolve_workers,
    sum_chunk_counts,
    warm_scan_kernels,
)

_MAX_POSITIONS = 2**31 - 1 - 257  # positions are int32 in the kernels


def intern_pretokens(table: dict[bytes, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten the pre-tokens that can hold a pair (two bytes or more) into arrays.

    Returns ``tokens`` (int32, the bytes of every pre-token back to back), ``offsets`` (int64, word ``w`` is
    ``tokens[offsets[w]:offsets[w+1]]``) and ``counts`` (int64).

    >>> t, o, c = intern_pretokens({b"ab": 3, b"c": 9, b"xyz": 1})
    >>> t.tolist(), o.tolist(), c.tolist()
    ([97, 98, 120, 121, 122], [0, 2, 5], [3, 1])
    """
    keys = [k for k in table if len(k) > 1]
    counts = np.fromiter((table[k] for k in keys), dtype=np.int64, count=len(keys))
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, keys), dtype=np.int64, count=len(keys)), out=offsets[1:])
    tokens = np.frombuffer(b"".join(keys), dtype=np.uint8).astype(np.int32)
    return tokens, offsets, counts


class _MergeLoop:
    """The merge kernels' state: every array is allocated once, at its upper bound (see the performance
    notes in ``merge_kernels``: pages that are never written cost no memory)."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, counts: np.ndarray, n_merges: int):
        from . import merge_kernels as K

        self.K = K
        n_words = len(counts)
        n_pos = len(tokens) + n_words + 1
        if n_pos > _MAX_POSITIONS:
            raise BPEInputError(
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


def _check_vocab_size(vocab_size, n_special: int) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise TypeError(f"vocab_size must be an int, not {type(vocab_size).__name__} {vocab_size!r}")
    if vocab_size < 256 + n_special:
        raise ValueError(
            f"vocab_size={vocab_size} is below the {256 + n_special} ids that the 256 bytes and "
            f"{n_special} special token(s) take; use vocab_size >= {256 + n_special}"
        )


def train_bpe(
    input_path: str | os.PathLike,
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
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train a byte-level BPE tokenizer on a UTF-8 text file, with the CS336 assignment-1 semantics.

    Returns ``(vocab, merges)``: ids ``0..255`` are the bytes, then the special tokens in order, then one id
    per merge in creation order; ``merges`` lists the ``(bytes, bytes)`` pairs in creation order. Ties
    between pairs of equal count go to the lexicographically greater pair of byte strings.

    - ``num_workers``: pre-tokenization processes (``None``: all cores). The result does not depend on it.
    - ``progress``: tqdm bars on stderr; ``None`` shows them when stderr is a terminal.
    - ``errors``: ``"strict"`` raises :class:`InvalidUTF8Error` (file and byte offset) on invalid UTF-8;
      ``"replace"`` decodes invalid bytes as U+FFFD.
    - ``chunk_size``: bytes per pre-tokenization task (default: about four tasks per worker, 32-64 MiB
      each, so a file under 32 MiB is pre-tokenized in this process).
    - ``timings``: if a dict is given, seconds per phase are stored in it (``startup``: importing Numba and
      loading the kernels; ``pretokenize``, ``intern``, ``merges``, ``write``) along with ``unique_pretokens``.
    - ``pattern``: the pre-tokenization regex (default: GPT-2's, which the contract fixes; another one is
      run with the ``regex`` package, and the file is then cut for workers only where special tokens start).
    - ``engine``: ``"auto"`` (the Numba GPT-2 scanner for the GPT-2 pattern, else ``regex``), ``"numba"`` or
      ``"regex"``; both give the same result for the GPT-2 pattern.
    - ``out_dir``: also write the model there (``vocab.json``, ``merges.txt`` and metadata; see
      :func:`bpe_numba.model_io.save_model`), each file atomically. The directory is created if needed.

    >>> vocab, merges = train_bpe("tinystories.txt", 10_000, ["<|endoftext|>"])  # doctest: +SKIP
    >>> merges[0]  # doctest: +SKIP
    (b' ', b't')
    """
    path = check_input_file(input_path)
    specials = check_special_tokens(special_tokens)
    if out_dir is not None and os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise NotADirectoryError(f"out_dir={os.fspath(out_dir)!r} is a file; give a directory for the model files")
    _check_vocab_size(vocab_size, len(specials))
    check_errors_mode(errors)
    pattern = check_pattern(pattern)
    engine = resolve_engine(engine, pattern)
    workers = resolve_workers(num_workers)
    show = resolve_progress(progress)
    n_merges = int(vocab_size) - 256 - len(specials)
    times = timings if timings is not None else {}

    start = time.perf_counter()
    warm_scan_kernels(engine)  # imports Numba and loads the kernels (compiles them on the very first run)
    t0 = time.perf_counter()
    times["startup"] = t0 - start
    table = sum_chunk_counts(path, specials, num_workers=workers, chunk_size=chunk_size, errors=errors, progress=show,
                             pattern=pattern, engine=engine)
    t1 = time.perf_counter()
    times["pretokenize"] = t1 - t0
    times["unique_pretokens"] = len(table)

    tokens, offsets, counts = intern_pretokens(table)
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
    if out_dir is not None:
        from .model_io import save_model

        t3 = time.perf_counter()
        save_model(out_dir, vocab, merges, specials, pattern)
        times["write"] = time.perf_counter() - t3
    return vocab, merges


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
