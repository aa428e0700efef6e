"""Numba kernels for the merge loop: pair counts, the pair -> occurrences index, best-pair selection and
in-place merge application. Kernels take numpy arrays and scalars only; nothing is compiled at import.

Layout (built by :func:`build_state` from the interned pre-tokens)
-----------------------------------------------------------------
Every unique pre-token of two or more bytes is laid out in one flat position array, one position per byte,
words separated by a SEP position. A *symbol* (a token during training) covering bytes ``[p, p+len)``
is stored as::

    tok[p]         = symbol id            (p is a live start)
    tok[p+len-1]   = END(symbol)          (when len >= 2; END(s) = -3 - s, so the left neighbour of any live
                                           start p is found in O(1) from tok[p-1])
    tok[interior]  = negative junk        (DEAD or an old END; never read)

``raw`` keeps the original bytes, so a symbol's bytes are ``raw[sym_src[s] : sym_src[s] + sym_len[s]]``
and never have to be stored; the next symbol after a live start ``p`` begins at ``p + sym_len[tok[p]]``.

Symbols are identified by their bytes, as the contract's pre-tokens are sequences of byte strings: when
a merge produces bytes that an earlier merge already produced (``(ab, c)`` then ``(a, bc)``), both
give the same symbol (a hash table over symbol bytes finds it), so pair counts are never split.

``pair_at[p]`` is the id of the pair starting at live start ``p``. Each pair has a linked list of
*segments* in ``arena``: the positions where it was formed. Entries go stale when a neighbour merges; they
are skipped by checking ``tok[q] >= 0 and pair_at[q] == pid`` (a position never forms the same pair twice,
since the symbols at a position only grow). A merge touches only its pair's entries.

Selection is a binary max-heap of ``(count snapshot, pair id)`` ordered by count, then by the greater
``(bytes_a, bytes_b)``: a 7-byte order key per symbol decides most ties, the bytes on ``raw`` the rest. A
pair's count only drops after it is pushed, except when a merge re-creates an existing symbol; every
increase pushes a fresh entry. So an entry at the top whose snapshot differs from the live count is stale:
it takes the live count and sinks when that is lower and positive, and is dropped otherwise (so is the
merged pair's own entry, whose count the merge takes to 0). Each selection costs O(log pairs) however many
pairs tie.

Performance notes (measured on the 2-core dev machine; see README for the whole-run benchmarks)
-----------------------------------------------------------------------------------------------
- Word-based application (rewrite each affected word, subtract its old pairs, add its new ones), as HF
  tokenizers and rustbpe do, costs O(word length) per affected word; a 20 MB file without whitespace is
  one 20 MB word touched by nearly every merge (hours). The position lists here cost O(occurrences).
- Ties in the heap compare each symbol's 7-byte order key (made from its parts' keys at each merge), the
  bytes only when two symbols longer than 7 bytes share those 7: fixed ranks in byte order would need
  relabelling, as new tokens fall in the middle of the order. (Measured 2026-11-30 on ``prose_en.txt``,
  52 MB of English, 137 K distinct pre-tokens, 9 743 merges: no change against bytes compared on ``raw``:
  the tie-breaks were not where the time went.)
- Growable structures (pairs, segments, arena, heap) are allocated once at an upper bound with
  ``np.empty``: untouched pages cost no memory, and the kernel never has to return resized arrays. Only
  the pair hash table, which would touch every page, grows (the kernel asks for it via a status code).
- Per-step ``(L, new)`` / ``(new, R)`` pair ids are cached in arrays indexed by the neighbour symbol,
  so the hash table is probed once per distinct new pair rather than twice per occurrence.
- Measured (warm cache): 10 MB of stories, 9 743 merges over 8.6 K unique pre-tokens: ~0.1 s including
  loading the kernels. One 20 MB pre-token of random letters, 744 merges: 2.9 s (peak 0.7 GB). One 10 MB
  run of "a": 1.4 s (1.2 GB: the first merge touches 10 M positions).
- Start-up, not the kernels, bounds small runs: a fresh process trains corpus.en (vocab 500) in ~0.05 s
  of kernel time but ~1.3-1.8 s of wall time when Numba starts in the caller's process here (Numba's
  import 0.3 s; its SciPy BLAS probe 0.2-0.4 s and awkward's Numba extension 0.3-0.4 s, both installed
  here; 0.2-0.3 s of interpreter teardown over Numba's objects). Kept: training in a helper process that
  starts Numba lean and ends with ``os._exit`` (``bpe_numba.processes``), and inputs up to 1 MiB train in
  plain Python with no Numba at all (``bpe_numba.python_bpe``).
- 2026-11-30, prose_en at 10K (9 743 merges over 1.06 M positions; build 0.02-0.04 s, merges 0.2-0.4 s by
  the machine's load): late merges cost 14-25 us each for about 10 live and 20 stale occurrences, 7
  pushes and 2 heap fixes: memory latency. Tried: one interleaved ``(n, 4)`` int32 record per position
  instead of the separate ``tok``/``pair_at``/``word`` arrays: slower (0.445 vs 0.370 s CPU, min of 7;
  Numba's 2-D indexing). Kept: a single heap-fix site (stale entries take their live count at the top;
  the merged pair's own entry is removed by the next selection) instead of pop/push pairs at four sites:
  the inlined copies of the comparison had made ``run_merges`` 6.7 s and ``build_state`` 7.2 s to compile
  (now 5.3 and 2.5 s), and late merges got faster (0.37 -> 0.26 s CPU for all merges, min of 7).
- 2026-11-30, where a 50 MB training run's whole process goes (prose_en, vocab 10K, 1.0-1.3 s in quiet
  moments; gigatoken 0.9-1.4 s): the helper's lean Numba start (numpy + Numba imports) 0.25-0.31 s, loading
  the cached kernels 0.12-0.19 s (the first two loads take 23-35 ms each, Numba's one-time target set-up;
  the others 3-10 ms; ``build_state`` + ``run_merges`` 14-27 ms), counting 0.16-0.20 s on two threads,
  these merges 0.28-0.34 s. Tried the same day: a copy of the first symbol's order key in each heap entry,
  so that sifting decides most ties from the heap's own arrays: no change (new/old 1.02, median of 9
  interleaved runs of all 9 743 merges, 0.21-0.24 s CPU each). Not done: loading the merge kernels on a
  thread while the count threads run would save at most the 14-27 ms, minus the core it takes from them.
- 2026-11-30 (stop 23), the same whole process, 1.13-1.44 s (median 1.27 s of 9): the helper is forked
  (``processes.helper_start_method``: 0.24-0.31 s from the call to its first line, 0.44 s spawned), and
  loading the kernels no longer imports ``numba.np.arrayobj`` (no kernel of the training allocates) nor
  ``numpy.ma`` (``processes._type_arrays_without_masked_probe``), 0.04-0.05 s each. In the training call:
  start-up 0.40-0.49 s (Numba's import about 0.3 s of it), counting 0.24-0.32 s, laying out 0.013-0.018 s,
  merges 0.28-0.39 s (loading ``build_state`` and ``run_merges`` 0.015 s of it). The first kernel loaded
  costs 0.03-0.05 s (Numba compiles its runtime, NRT, in every process), each other 0.003-0.01 s.
- Also tried at stop 23: ``tok`` and ``pair_at`` as the two strided halves of one interleaved array (one
  cache line for both at a position): all 9 743 merges of prose_en, CPU time, 11 interleaved runs,
  new/old per-pair median 1.036 (the stride multiplies each index): not kept.
- 2026-11-30 (later), what merges 3 000-9 743 of prose_en do (counters in a copy of ``run_merges``): per
  merge 43 list entries read, 29 of them stale, 14.5 occurrences merged, 9 pushes and 2.6 sifts from the
  top of a heap of up to 146 K entries over 216 K pairs; 13-18 us a merge. A 4-ary heap instead of the
  binary one (half the depth, the four children's counts in one or two cache lines): new/old 1.067,
  median of 9 interleaved runs of all 9 743 merges (0.233 vs 0.234 s min): not kept. With the heap-key
  copy above also without gain, the time is spread over the random reads of ``tok``, ``pair_at``,
  ``word`` and the pair arrays that each occurrence needs, not concentrated in the selection.
- Prefetching the list entries' positions (``tok``, ``pair_at``, ``word`` of the entry 16 ahead, through
  :func:`bpe_numba.intrinsics.prefetch`): all 9 743 merges of prose_en, CPU time, 21 runs interleaved in
  one process, new/old per-pair median 0.848 (min 0.229 against 0.257 s); 32 ahead 0.861, 8 ahead without
  ``word`` 1.04.
- Duplicate symbols (the same bytes from two different merges) never appeared in 10^5 random small
  corpora checked against this kernel; the byte-keyed symbol table is there so that the result stays
  the contract's even if some corpus produces one.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .intrinsics import prefetch as _prefetch
from .jit import njit

SEP = -1
DEAD = -2
END_BASE = -3  # tok value END(s) = END_BASE - s

DONE = 0  # the requested number of merges is done
NO_PAIRS = 1  # no pair is left: the corpus cannot fill the vocabulary
GROW_HASH = 2  # the pair hash table needs more room (sc[NEED] = pairs needed)

# Slots of the scalar state array ``sc`` (int64).
N_PAIRS, N_SEGS, ARENA_USED, N_HEAP, N_SYMS, N_MERGES, HASH_USED, NEED = range(8)
N_SCALARS = 8
_AHEAD = 16  # list entries between a prefetch and its use in run_merges

_MIX = np.uint64(0x9E3779B97F4A7C15)
_HASH_B = np.uint64(0x100000001B3)
_U = np.uint64

MergeState = namedtuple("MergeState", [
    # positions (one per byte of every pre-token, SEP between words) and words
    "tok", "raw", "word", "pair_at", "counts",
    # symbols: length, a position holding their bytes, hash, B**len, order key, hash table
    "sym_len", "sym_src", "sym_hash", "sym_pow", "sym_key", "sym_tab",
    # pairs: symbols, count, newest segment, per-step mark; segments (start, length, next) and their arena
    "pair_a", "pair_b", "pair_cnt", "pair_seg", "pair_mark", "seg", "arena",
    # pair hash table (grown by the caller on GROW_HASH), selection heap
    "ph_keys", "ph_vals", "heap_cnt", "heap_pid",
    # per-step scratch, the merges done, scalars
    "stamp", "buf", "touched", "sizes", "merges", "sc",
])
MergeState.__doc__ = """The merge kernels' state: numpy arrays only, passed to every kernel as one argument (see the module
docstring for the layout). Kernels unpack it into local names at once and hand helpers plain arrays:
Numba increfs every array of a tuple argument at each call that LLVM does not inline."""


@njit(cache=True, nogil=True)
def _slot(h, mask):
    return np.int64((np.uint64(h) * _MIX) >> np.uint64(29)) & mask


@njit(cache=True, nogil=True)
def _order_key(prefix, length):
    """A symbol's order key: its first 7 bytes big-endian (zero-padded) in the top 56 bits, min(length, 255)
    in the low 8. Keys compare as the bytes do unless the prefixes are equal and both symbols are longer
    than 7 bytes (see :func:`_sym_cmp`)."""
    return (prefix & ~_U(0xFF)) | _U(min(length, 255))


@njit(cache=True, nogil=True)
def _sym_cmp(s, t, raw, sym_src, sym_len, sym_key):
    """-1, 0, 1 as Python compares the symbols' bytes. The order keys decide unless both symbols are longer
    than 7 bytes with the same first 7 (then the bytes are compared): equal prefixes with one symbol of at
    most 7 bytes mean it is a prefix of the other (zero padding), so the lengths decide."""
    if s == t:
        return 0
    ks = sym_key[s]
    kt = sym_key[t]
    if (ks ^ kt) >> _U(8) != 0:
        return -1 if ks < kt else 1
    ls = sym_len[s]
    lt = sym_len[t]
    if min(ls, lt) <= 7:
        return 0 if ls == lt else (-1 if ls < lt else 1)
    ps = sym_src[s]
    pt = sym_src[t]
    n = min(ls, lt)
    for i in range(n):
        x = raw[ps + i]
        y = raw[pt + i]
        if x != y:
            return -1 if x < y else 1
    if ls == lt:
        return 0
    return -1 if ls < lt else 1


@njit(cache=True, nogil=True)
def _before(c1, p1, c2, p2, pair_a, pair_b, raw, sym_src, sym_len, sym_key):
    """True when heap entry 1 is selected before entry 2: higher count, then greater (bytes_a, bytes_b)."""
    if c1 != c2:
        return c1 > c2
    if p1 == p2:
        return False
    r = _sym_cmp(pair_a[p1], pair_a[p2], raw, sym_src, sym_len, sym_key)
    if r == 0:
        r = _sym_cmp(pair_b[p1], pair_b[p2], raw, sym_src, sym_len, sym_key)
    return r > 0


@njit(cache=True, nogil=True)
def _sift_down(i, n, heap_cnt, heap_pid, pair_a, pair_b, raw, sym_src, sym_len, sym_key):
    c = heap_cnt[i]
    p = heap_pid[i]
    while True:
        child = 2 * i + 1
        if child >= n:
            break
        if child + 1 < n and _before(
            heap_cnt[child + 1], heap_pid[child + 1], heap_cnt[child], heap_pid[child], pair_a, pair_b, raw, sym_src,
            sym_len, sym_key,
        ):
            child += 1
        if not _before(heap_cnt[child], heap_pid[child], c, p, pair_a, pair_b, raw, sym_src, sym_len, sym_key):
            break
        heap_cnt[i] = heap_cnt[child]
        heap_pid[i] = heap_pid[child]
        i = child
    heap_cnt[i] = c
    heap_pid[i] = p


@njit(cache=True, nogil=True)
def _push(c, p, n, heap_cnt, heap_pid, pair_a, pair_b, raw, sym_src, sym_len, sym_key):
    """Push (c, p) onto a heap of n entries; returns the new size."""
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if not _before(c, p, heap_cnt[parent], heap_pid[parent], pair_a, pair_b, raw, sym_src, sym_len, sym_key):
            break
        heap_cnt[i] = heap_cnt[parent]
        heap_pid[i] = heap_pid[parent]
        i = parent
    heap_cnt[i] = c
    heap_pid[i] = p
    return n + 1


@njit(cache=True, nogil=True)
def rehash(S, first):
    """Fill the empty (all -1) pair hash table ``S.ph_keys``/``S.ph_vals`` with pairs ``first..`` up to
    ``S.sc[N_PAIRS]``. Byte pairs (ids below 65 536) are never looked up: every pair formed by a merge
    contains the merged symbol, two bytes or longer."""
    ph_keys = S.ph_keys
    ph_vals = S.ph_vals
    pair_a = S.pair_a
    pair_b = S.pair_b
    n_pairs = S.sc[N_PAIRS]
    mask = ph_keys.shape[0] - 1
    for pid in range(first, n_pairs):
        key = (np.int64(pair_a[pid]) << 32) | np.int64(pair_b[pid])
        i = _slot(key, mask)
        while ph_keys[i] != -1:
            i = (i + 1) & mask
        ph_keys[i] = key
        ph_vals[i] = pid
    return n_pairs - first


@njit(cache=True, nogil=True)
def build_state(tokens, offsets, S, scratch):
    """Lay out the interned pre-tokens (``tokens[offsets[w]:offsets[w+1]]`` = bytes of word ``w``, each of
    length >= 2, occurring ``S.counts[w]`` times), count the byte pairs, index their positions and heapify.
    ``scratch``: int64, shape ``(3, 65536)`` (the kernel allocates nothing: an allocation would make every
    process that loads it import ``numba.np.arrayobj``, 0.04 s).

    Initial pair ids are dense: ``pid = 256 * a + b`` for the 65 536 byte pairs.
    """
    if scratch.shape[0] < 3 or scratch.shape[1] < 65536:
        raise ValueError("build_state: scratch needs shape (3, 65536)")
    tok, raw, word, pair_at, counts = S.tok, S.raw, S.word, S.pair_at, S.counts
    sym_len, sym_src, sym_hash, sym_pow, sym_key, sym_tab = S.sym_len, S.sym_src, S.sym_hash, S.sym_pow, S.sym_key, S.sym_tab
    pair_a, pair_b, pair_cnt, pair_seg, pair_mark, seg, arena = S.pair_a, S.pair_b, S.pair_cnt, S.pair_seg, S.pair_mark, S.seg, S.arena
    heap_cnt, heap_pid, sc = S.heap_cnt, S.heap_pid, S.sc
    n_words = offsets.shape[0] - 1
    n_pos = tokens.shape[0] + n_words + 1
    # Positions: SEP, word 0 bytes, SEP, word 1 bytes, ..., SEP, then a 256-byte table for the byte symbols.
    for w in range(n_words):
        base = offsets[w] + w
        tok[base] = SEP
        raw[base] = 0
        word[base] = -1
        for j in range(offsets[w], offsets[w + 1]):
            b = tokens[j]
            tok[j + w + 1] = b
            raw[j + w + 1] = b
            word[j + w + 1] = w
    tok[n_pos - 1] = SEP
    raw[n_pos - 1] = 0
    word[n_pos - 1] = -1
    for b in range(256):
        tok[n_pos + b] = SEP
        raw[n_pos + b] = b
        word[n_pos + b] = -1
        sym_len[b] = 1
        sym_src[b] = n_pos + b
        sym_hash[b] = np.uint64(b + 1)
        sym_pow[b] = _HASH_B
        sym_key[b] = _order_key(_U(b) << _U(56), 1)
    sym_tab[:] = -1
    smask = sym_tab.shape[0] - 1
    for b in range(256):
        i = _slot(sym_hash[b], smask)
        while sym_tab[i] != -1:
            i = (i + 1) & smask
        sym_tab[i] = b
    # Byte pairs: counts and the number of positions of each.
    n_entries = scratch[0]
    start = scratch[1]
    fill = scratch[2]
    for pid in range(65536):
        n_entries[pid] = 0
    pair_cnt[:65536] = 0
    for p in range(n_pos - 1):
        a = tok[p]
        b = tok[p + 1]
        if a >= 0 and b >= 0:
            pid = a * 256 + b
            pair_at[p] = pid
            pair_cnt[pid] += counts[word[p]]
            n_entries[pid] += 1
        else:
            pair_at[p] = -1
    pair_at[n_pos - 1] = -1
    # One segment per present pair, positions in increasing order.
    total = 0
    n_segs = 0
    pair_mark[:65536] = 0
    for pid in range(65536):
        pair_a[pid] = pid >> 8
        pair_b[pid] = pid & 255
        start[pid] = total
        total += n_entries[pid]
        if n_entries[pid] > 0:
            seg[n_segs, 0] = start[pid]
            seg[n_segs, 1] = n_entries[pid]
            seg[n_segs, 2] = -1
            pair_seg[pid] = n_segs
            n_segs += 1
        else:
            pair_seg[pid] = -1
    for pid in range(65536):
        fill[pid] = start[pid]
    for p in range(n_pos - 1):
        pid = pair_at[p]
        if pid >= 0:
            arena[fill[pid]] = p
            fill[pid] += 1
    n_heap = 0
    for pid in range(65536):
        if pair_cnt[pid] > 0:
            heap_cnt[n_heap] = pair_cnt[pid]
            heap_pid[n_heap] = pid
            n_heap += 1
    for i in range(n_heap // 2 - 1, -1, -1):
        _sift_down(i, n_heap, heap_cnt, heap_pid, pair_a, pair_b, raw, sym_src, sym_len, sym_key)
    sc[N_PAIRS] = 65536
    sc[N_SEGS] = n_segs
    sc[ARENA_USED] = total
    sc[N_HEAP] = n_heap
    sc[N_SYMS] = 256
    sc[N_MERGES] = 0
    sc[HASH_USED] = 0
    sc[NEED] = 0


@njit(cache=True, nogil=True)
def _symbol_for(a, b, raw, sym_len, sym_src, sym_hash, sym_pow, sym_key, sym_tab, sc):
    """The symbol whose bytes are bytes(a) + bytes(b): an existing one, or a new id (its ``sym_src`` is set
    to -1 until the first merged occurrence gives it one)."""
    h = sym_hash[a] * sym_pow[b] + sym_hash[b]
    la = sym_len[a]
    lb = sym_len[b]
    mask = sym_tab.shape[0] - 1
    i = _slot(h, mask)
    while sym_tab[i] != -1:
        t = sym_tab[i]
        if sym_hash[t] == h and sym_len[t] == la + lb:
            pt = sym_src[t]
            same = True
            pa = sym_src[a]
            for k in range(la):
                if raw[pt + k] != raw[pa + k]:
                    same = False
                    break
            if same:
                pb = sym_src[b]
                for k in range(lb):
                    if raw[pt + la + k] != raw[pb + k]:
                        same = False
                        break
            if same:
                return t
        i = (i + 1) & mask
    c = sc[N_SYMS]
    sc[N_SYMS] = c + 1
    sym_len[c] = la + lb
    sym_src[c] = -1
    sym_hash[c] = h
    sym_pow[c] = sym_pow[a] * sym_pow[b]
    # First 7 bytes of a + b: a's, then b's shifted past them.
    prefix = sym_key[a] & ~_U(0xFF)
    if la < 7:
        prefix |= (sym_key[b] & ~_U(0xFF)) >> _U(8 * la)
    sym_key[c] = _order_key(prefix, la + lb)
    sym_tab[i] = c
    return c


@njit(cache=True, nogil=True)
def _pair_id(x, y, pair_a, pair_b, pair_cnt, pair_seg, pair_mark, ph_keys, ph_vals, sc):
    """Id of the pair (x, y), created with count 0 when new."""
    key = (np.int64(x) << 32) | np.int64(y)
    mask = ph_keys.shape[0] - 1
    i = _slot(key, mask)
    while ph_keys[i] != -1:
        if ph_keys[i] == key:
            return ph_vals[i]
        i = (i + 1) & mask
    pid = sc[N_PAIRS]
    sc[N_PAIRS] = pid + 1
    pair_a[pid] = x
    pair_b[pid] = y
    pair_cnt[pid] = 0
    pair_seg[pid] = -1
    pair_mark[pid] = 0
    ph_keys[i] = key
    ph_vals[i] = pid
    sc[HASH_USED] += 1
    return pid


@njit(cache=True, nogil=True)
def run_merges(n_target, S):
    """Do merges until ``S.sc[N_MERGES] == n_target``; returns DONE, NO_PAIRS or GROW_HASH.

    ``S.merges[i] = (a, b, c)``: merge ``i`` joined symbols ``a`` and ``b`` into symbol ``c`` (``c`` is an
    earlier symbol when the merge re-creates existing bytes). State lives in the arrays and ``sc``, so the
    caller can call again after growing the hash table, or to continue in batches (for progress).
    """
    tok, raw, word, pair_at, counts = S.tok, S.raw, S.word, S.pair_at, S.counts
    sym_len, sym_src, sym_hash, sym_pow, sym_key, sym_tab = S.sym_len, S.sym_src, S.sym_hash, S.sym_pow, S.sym_key, S.sym_tab
    pair_a, pair_b, pair_cnt, pair_seg, pair_mark, seg, arena = S.pair_a, S.pair_b, S.pair_cnt, S.pair_seg, S.pair_mark, S.seg, S.arena
    ph_keys, ph_vals, heap_cnt, heap_pid = S.ph_keys, S.ph_vals, S.heap_cnt, S.heap_pid
    stamp, buf, touched, sizes, merges, sc = S.stamp, S.buf, S.touched, S.sizes, S.merges, S.sc
    n_heap = sc[N_HEAP]
    while sc[N_MERGES] < n_target:
        # Select: refresh stale heap entries at the top (see module docstring): one lower than its snapshot
        # takes its live count and sinks; one at 0 (such as the previous merge's own pair) is removed. The
        # heap is only ever fixed here (one sift) and by the pushes below: every inlined copy of the
        # comparison costs compile time.
        pid = -1
        while n_heap > 0:
            top = heap_pid[0]
            snap = heap_cnt[0]
            live = pair_cnt[top]
            if live == snap:
                pid = top
                break
            if 0 < live < snap:
                heap_cnt[0] = live
            else:
                n_heap -= 1
                heap_cnt[0] = heap_cnt[n_heap]
                heap_pid[0] = heap_pid[n_heap]
            if n_heap > 0:
                _sift_down(0, n_heap, heap_cnt, heap_pid, pair_a, pair_b, raw, sym_src, sym_len, sym_key)
        if pid < 0:
            sc[N_HEAP] = n_heap
            return NO_PAIRS
        # Room: a merge forms at most two new pairs per entry of its lists, and at most one (left, new) and
        # one (new, right) per distinct neighbour symbol (a run of 20 M "a" has 20 M entries but forms two
        # pairs: sizing by entries alone asked for a 1.5 GB table).
        n_entries = 0
        s = pair_seg[pid]
        while s >= 0:
            n_entries += seg[s, 1]
            s = seg[s, 2]
        new_pairs = 2 * min(n_entries, sc[N_SYMS] + 1)
        if 2 * (sc[HASH_USED] + new_pairs) > ph_keys.shape[0]:
            sc[N_HEAP] = n_heap
            sc[NEED] = sc[HASH_USED] + new_pairs
            return GROW_HASH
        # The selected entry stays at the top: its count drops to 0 below, so the next selection removes it.

        a = pair_a[pid]
        b = pair_b[pid]
        c = _symbol_for(a, b, raw, sym_len, sym_src, sym_hash, sym_pow, sym_key, sym_tab, sc)
        step = sc[N_MERGES]
        merges[step, 0] = a
        merges[step, 1] = b
        merges[step, 2] = c
        la = sym_len[a]
        lb = sym_len[b]
        n_buf = 0
        n_touched = 0
        s = pair_seg[pid]
        while s >= 0:
            e_end = seg[s, 0] + seg[s, 1]
            for e in range(seg[s, 0], e_end):
                if e + _AHEAD < e_end:  # the entries are positions all over the arrays: ask for them early
                    f = arena[e + _AHEAD]
                    _prefetch(tok, f)
                    _prefetch(pair_at, f)
                    _prefetch(word, f)
                p = arena[e]
                if tok[p] < 0 or pair_at[p] != pid:
                    continue  # stale entry
                if a == b:
                    # Overlapping occurrences: merge the whole run left to right from its first symbol.
                    while True:
                        v = tok[p - 1]
                        if v == SEP:
                            break
                        lp = p - 1 if v >= 0 else p - sym_len[END_BASE - v]
                        if pair_at[lp] != pid:
                            break
                        p = lp
                while True:
                    # Merge the occurrence at p: symbols a at [p, q) and b at [q, r).
                    q = p + la
                    r = q + lb
                    cnt = counts[word[p]]
                    pair_cnt[pid] -= cnt
                    v = tok[p - 1]
                    if v != SEP:
                        lp = p - 1 if v >= 0 else p - sym_len[END_BASE - v]
                        left = tok[lp]
                        pair_cnt[pair_at[lp]] -= cnt
                        if stamp[left, 0] == step + 1:
                            npid = stamp[left, 1]
                        else:
                            npid = _pair_id(left, c, pair_a, pair_b, pair_cnt, pair_seg, pair_mark, ph_keys, ph_vals, sc)
                            stamp[left, 0] = step + 1
                            stamp[left, 1] = npid
                        if pair_mark[npid] != step + 1:
                            pair_mark[npid] = step + 1
                            touched[n_touched] = npid
                            n_touched += 1
                        pair_cnt[npid] += cnt
                        pair_at[lp] = npid
                        buf[n_buf, 0] = npid
                        buf[n_buf, 1] = lp
                        n_buf += 1
                    right = tok[r]
                    if right != SEP:
                        pair_cnt[pair_at[q]] -= cnt
                        if stamp[right, 2] == step + 1:
                            npid = stamp[right, 3]
                        else:
                            npid = _pair_id(c, right, pair_a, pair_b, pair_cnt, pair_seg, pair_mark, ph_keys, ph_vals, sc)
                            stamp[right, 2] = step + 1
                            stamp[right, 3] = npid
                        if pair_mark[npid] != step + 1:
                            pair_mark[npid] = step + 1
                            touched[n_touched] = npid
                            n_touched += 1
                        pair_cnt[npid] += cnt
                        pair_at[p] = npid
                        buf[n_buf, 0] = npid
                        buf[n_buf, 1] = p
                        n_buf += 1
                    else:
                        pair_at[p] = -1
                    pair_at[q] = -1
                    tok[p] = c
                    tok[q] = DEAD
                    tok[r - 1] = END_BASE - c
                    if sym_src[c] < 0:
                        sym_src[c] = p
                    # A run of (x, x) continues at r; any other pair never has an occurrence there.
                    if a != b or tok[r] < 0 or pair_at[r] != pid:
                        break
                    p = r
            s = seg[s, 2]
        # Index the new occurrences: one segment per touched pair, grouped by a counting sort of ``buf``.
        base = sc[ARENA_USED]
        for i in range(n_touched):
            pair_mark[touched[i]] = -1 - i  # local index, until the end of this step
        sizes[: n_touched + 1] = 0
        for i in range(n_buf):
            sizes[-1 - pair_mark[buf[i, 0]] + 1] += 1
        for i in range(n_touched):
            sizes[i + 1] += sizes[i]
        for i in range(n_buf):
            k = -1 - pair_mark[buf[i, 0]]
            arena[base + sizes[k]] = buf[i, 1]
            sizes[k] += 1
        n_segs = sc[N_SEGS]
        seg_start = base
        for i in range(n_touched):
            npid = touched[i]
            seg[n_segs, 0] = seg_start
            seg[n_segs, 1] = sizes[i] - seg_start + base
            seg[n_segs, 2] = pair_seg[npid]
            seg_start = base + sizes[i]
            pair_seg[npid] = n_segs
            n_segs += 1
            pair_mark[npid] = step + 1
            if pair_cnt[npid] > 0:
                n_heap = _push(pair_cnt[npid], npid, n_heap, heap_cnt, heap_pid, pair_a, pair_b, raw, sym_src, sym_len, sym_key)
        sc[N_SEGS] = n_segs
        sc[ARENA_USED] = base + n_buf
        sc[N_MERGES] = step + 1
    sc[N_HEAP] = n_heap
    return DONE
