"""Numba kernels for encoding: the GPT-2 scanner three bytes a step, a cache of encoded pre-tokens, and BPE
of one pre-token by merge rank.

Each thread that encodes owns a :class:`PieceCache` (``encoding.ThreadEncoder``); the model's tables
(:class:`EncodeModel`) are read by all of them. :func:`encode_gpt2` scans a block of pre-token ends, then
looks each pre-token up in the cache and writes its ids; a pre-token seen for the first time is merged
(``_bpe``: the adjacent pair of lowest merge rank, leftmost on ties, until none is left) and cached.
:func:`encode_pieces` does the same for pre-tokens found by ``regex`` (another pattern, or
``engine="regex"``). Every kernel takes arrays and scalars only and releases the GIL; ``encode_gpt2``
returns every ``budget`` bytes so that its caller can see a stop request.

>>> EncodeModel._fields, PieceCache._fields
(('pairs', 'byte_ids'), ('exact', 'slots', 'arena', 'arena_bytes', 'state'))

Performance notes (2026-11-30; GPT-2's vocab and merges; ``prose_en.txt``, 52.4 MB of English technical
prose, 14.6 M pre-tokens, 137 K distinct, 19.0 M ids, and ``multilingual.txt``, 12.3 MB of es/it/pl/ru
man pages, 3.1 M pre-tokens, 101 K distinct (``../shared/corpora``); one core of the shared 2-core dev
machine, process CPU time, best of 5 or more; "encode" is ``Tokenizer.encode`` warm, list included)
--------------------------------------------------------------------------------------------------------
- Where the time went before (a cache of 65,536 *units*, the runs between safe cuts, planned, merged and
  gathered by five kernels): prose 2.07 s to the array plus 0.68 s of ``ndarray.tolist`` (2.43-2.75 s,
  about 2.5x tiktoken's 6.1-6.2 s): finding units and probing 0.50 s, pre-tokenizing missed units 0.21 s,
  BPE of their pre-tokens 0.93 s, gathering 0.11 s, inserting 0.13 s, Python around them 0.16 s. The text
  has 618 K distinct units, so the cache was emptied again and again and most units missed every time;
  it has only 137 K distinct pre-tokens. Multilingual: 0.50 s + 0.18 s.
- A cache keyed by pre-token, probed from the kernel's loop: prose 0.47-0.56 s to the array. A call to a
  helper that takes arrays cost more than the probe it made (1.6 s with ``_probe``/``_emit`` helpers,
  0.8 s with the same code written out in the loop; a one-array helper still added 5 ns a call): the hit
  path is written out in ``_pieces``, helpers only on the miss path.
- Pre-tokens under 16 bytes found by their bytes (two words compared in the slot, no hash of the bytes,
  no byte comparison in an arena; 11 % of prose's pre-tokens have 8 to 15 bytes, which a hashed key sent
  to the arena, one more cache miss each): 0.414 -> 0.380 s in the same process. Up to 6 ids in the slot.
- The scanner, one character a step (``gpt2_scan._scan``): 0.147-0.168 s of prose, a chain of dependent
  table loads per byte. Three ASCII bytes a step through the automaton composed with itself (a 64 KB
  table): 0.067-0.081 s; two bytes a step: 0.107 s. Multilingual 0.034 -> 0.024 s.
- Now, prose: scan 0.067 s, the bytes as a key 0.049 s, probing 0.079 s, writing ids 0.052 s; the kernel
  0.25 s, ``encode_to_array`` 0.31-0.33 s with the text's ``str.encode`` (0.064 s) and the split at
  special tokens (0.018 s). ``encode`` returns a list: ``tolist`` makes a Python int per id, 0.44-0.53 s
  for 19 M ids (much of it page faults for 530 MB of ints), while indexing an object array of the vocab's
  ints first took 0.29 s and allocates no int; a pickle of memo references was no faster. ``encode`` took
  0.67 s against tiktoken's 5.4 s (8.1x); multilingual 0.19 s against 1.36 s. Since then a kernel fills
  the list through the C API in about half the object array's time (:mod:`bpe_numba.list_kernels`).
- Threads: ``encode_file`` of prose repeated to 1 GB on 2 threads, 4.4-6.0 s wall, 8.3-11 s of CPU (one
  thread: 9.5-9.9 s); the kernels are 80 % of it, reading, checking UTF-8, splitting at special tokens
  and writing the rest; gigatoken's ``encode`` of the same bytes, one thread, 4.6-7.7 s. Each thread
  reuses one output buffer (fresh memory for every chunk meant page faults and contention on the
  process's memory map), and each chunk's ids are handed to the disk as they are written: the atomic
  write's final ``fsync`` had taken 0.36-0.42 s.
- Also tried: a small direct-mapped table of hot pre-tokens in front of ``exact`` (3 %: the probes are
  not cache misses), scan blocks of 64-1024 ends instead of 4096 (slower).
- Merge table as (key, rank << 32 | merged id) side by side, one cache line a probe (was three arrays:
  key, rank, result): the 137 K misses of a cold run of prose cost 0.12 s instead of 0.42 s.
- Prefetching the slots: ``_pieces`` first computes the key words and home slot of a slice of 256
  pre-tokens (kept in ``keys``) and prefetches each slot's cache line (:func:`bpe_numba.intrinsics.prefetch`),
  then looks them up; the lines arrive side by side instead of one after another behind mispredicted
  branches. Thread CPU time, 21 runs interleaved in one process on 16 MB, new/old per-pair median: prose
  0.911 (5.55 against 5.96 ns a byte), multilingual 0.898, the synthetic stories (a few thousand hot
  pre-tokens) 0.993. Measured and not kept: keeping only the home slot and computing the key words again
  in the second pass (prose 0.88-1.07, stories 1.05-1.17), no ``keys`` at all (prose 0.92-0.94, stories
  1.10-1.17); the same two passes in ``count_kernels._count_ends`` (16-byte slots) were 1.15-1.23x slower.
- The two passes as small functions of their own (``_key_slice``, ``_hits``; ``_pieces`` keeps only the
  rare paths): written out in one function, the loops' variables had spilled to the stack, and signed
  indices cost a wraparound test per access. Slices of 512 pre-tokens instead of 256 (128: 1.05, 1024:
  the same as 512), ``exact`` from a 64-byte boundary (numpy gives 16: every other 32-byte slot straddled
  two lines, and the prefetch brought only the first). Thread CPU, 21 interleaved runs in one process
  (``/work/scratch/ek/ab.py``), new/old per-pair median: prose 0.817, multilingual 0.985 (its time is in
  the scanner's non-ASCII path), the synthetic stories 0.763. Measured and not kept: a branch-free hit
  path in the one function (both slots of a 64-byte pair compared, the value selected, six ids always
  written): 1.036; in ``_hits``, all six ids written without the test of the count: 1.11. The branches
  they remove are predicted well; the stores cost more.
- Tried and dropped: a cache of units in front of the pre-token cache (cut by 8-byte words: 0.105 s to
  find prose's 7.4 M units, but 618 K distinct units spread over 32 MB, 23 ns a probe: 10 % faster than
  pre-tokens alone at twice the memory); a pre-tokenizer with a fast path for ASCII words (0.22 s against
  the automaton's 0.16 s: a mispredicted branch per pre-token); two automata interleaved over the two
  halves of a block (no gain).
- Also measured after the split into ``_key_slice``/``_hits`` (new/old per-pair median of interleaved thread
  CPU, prose unless said; none kept): ids written as ``uint16`` straight from the kernel (``encode_file``'s
  type; 1.002: the stores of ``out`` are not what costs); the composed scanner table indexed ``state * 1024
  + k1 * 100 + k2 * 10 + k3``, 12 KB instead of 64 (1.008: its hot rows stay in L1 anyway); the kinds of
  two bytes from one 16 K-entry table (1.004); the ASCII loop of ``_scan3`` as a function of its own (0.943,
  then 0.991 on a rerun; multilingual 1.04-1.05, where every ASCII run is a call and each call increfs and
  decrefs its three arrays; with ``_nrt=False`` 1.037); the pre-token ends of 20 steps collected as the
  bits of a word and written by ``trailing_zeros`` (1.063: the loop over the bits mispredicts).
- Against gigatoken in one process, one thread, 32 MB of prose, 11 interleaved runs: the median of
  gigatoken's ``encode_batch`` CPU over this kernel's is 1.02 (5.26 against 5.40 ns a byte).
- An upper bound for gigatoken's kind of pre-tokenizer (one pre-token at a time, a branch on its first
  byte's class, letter runs 8 bytes at a time by SWAR, the key and prefetch computed at once while the
  bytes are at hand), written without the contractions and the whitespace look-ahead and on the ASCII
  only: 3.5-8.3 ns a byte against 3.1-5.5 for ``_scan3`` plus ``_key_slice`` on the same 32 MB, 7
  interleaved runs (``/work/scratch/ek/fused.py``). The automaton stays.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .count_kernels import _long_key, _same
from .gpt2_scan import KE, SW2W, _KINDS, _T, _scan, _word
from .intrinsics import prefetch as _prefetch
from .jit import njit

_U = np.uint64
_MIX = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xC2B2AE3D27D4EB4F)
_NO_RANK = np.int64(1 << 62)
_LOW_BYTES = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)  # masks of the low n bytes
SMALL_PIECE = 48  # pre-tokens longer than this take the heap path
_SLICE = 512  # pre-tokens keyed (and their slots prefetched) at a time, and encoded between looks at the budget
MAX_CACHED = 1024  # longer pre-tokens are encoded every time (rare; they would crowd the cache)
DONE = 0
PAUSED = 1

# The model, read-only and shared by every thread: the merge-pair table and each byte's id.
EncodeModel = namedtuple("EncodeModel", ["pairs", "byte_ids"])
# One thread's cache of encoded pre-tokens (see new_cache and the layout below).
PieceCache = namedtuple("PieceCache", ["exact", "slots", "arena", "arena_bytes", "state"])
N_EXACT, N_LONG, ARENA_USED, CLEARS = 0, 1, 2, 3


def new_cache(exact_slots: int, long_slots: int, arena_words: int) -> PieceCache:
    """An empty pre-token cache: ``exact_slots`` slots for pre-tokens under 16 bytes, ``long_slots`` for
    longer ones (powers of two; it is emptied when either is half full) and an arena of ``arena_words``
    int32 words. Its pages are only touched as entries arrive."""
    arena = np.empty(max(int(arena_words), 16) + 2, dtype=np.int32)
    return PieceCache(
        _aligned_zeros(4 * _pow2(exact_slots)),
        np.zeros(2 * _pow2(long_slots), dtype=np.uint64),
        arena,
        arena.view(np.uint8),
        np.zeros(4, dtype=np.int64),
    )


def _aligned_zeros(n: int) -> np.ndarray:
    """``n`` zero uint64 words from a 64-byte boundary, so that no 32-byte slot of ``exact`` straddles two
    cache lines (numpy aligns large arrays to 16 bytes)."""
    raw = np.zeros(n + 8, dtype=np.uint64)
    skip = (-raw.ctypes.data % 64) // 8
    return raw[skip : skip + n]


def _pow2(n: int) -> int:
    return 1 << max(2, int(n) - 1).bit_length()


# ---------------------------------------------------------------------------------------------------------
# Merge ranks: (left id, right id) -> rank << 32 | merged id, open addressing on a packed int64 key, the two
# words of a slot side by side (a probe reads one cache line)
# ---------------------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def build_pair_table(left, right, merged, pairs):
    """Fill ``pairs`` (all -1; two words per slot, a power of two of slots) from the merges in rank order;
    a pair listed twice keeps its first (lowest) rank. Returns the number of distinct pairs."""
    mask = pairs.shape[0] // 2 - 1
    n = 0
    for r in range(left.shape[0]):
        key = (np.int64(left[r]) << 32) | np.int64(right[r])
        s = np.int64((np.uint64(key) * _MIX) >> np.uint64(20)) & mask
        while pairs[2 * s] >= 0 and pairs[2 * s] != key:
            s = (s + 1) & mask
        if pairs[2 * s] < 0:
            pairs[2 * s] = key
            pairs[2 * s + 1] = (np.int64(r) << 32) | np.int64(merged[r])
            n += 1
    return n


@njit(cache=True, nogil=True)
def _pair(pairs, a, b):
    """``rank << 32 | merged id`` of the pair ``(a, b)``, or ``_NO_RANK``: the smaller, the earlier merge."""
    key = (np.int64(a) << 32) | np.int64(b)
    mask = pairs.shape[0] // 2 - 1
    s = np.int64((np.uint64(key) * _MIX) >> np.uint64(20)) & mask
    while True:
        k = pairs[2 * s]
        if k == key:
            return pairs[2 * s + 1]
        if k < 0:
            return _NO_RANK
        s = (s + 1) & mask


# ---------------------------------------------------------------------------------------------------------
# BPE of one pre-token, in place in ``sym[:n]``; returns the new length
# ---------------------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _bpe_small(sym, n, pairs, rk):
    """``rk[j]`` is the merge of ``sym[j], sym[j + 1]``; the least (lowest rank, leftmost on ties: equal
    values are the same pair) is applied until none is left."""
    for j in range(n - 1):
        rk[j] = _pair(pairs, sym[j], sym[j + 1])
    while n > 1:
        best = _NO_RANK
        at = -1
        for j in range(n - 1):
            if rk[j] < best:
                best = rk[j]
                at = j
        if at < 0:
            break
        sym[at] = np.int32(best & 0xFFFFFFFF)
        for j in range(at + 1, n - 1):
            sym[j] = sym[j + 1]
        for j in range(at + 1, n - 2):
            rk[j] = rk[j + 1]
        n -= 1
        if at > 0:
            rk[at - 1] = _pair(pairs, sym[at - 1], sym[at])
        if at < n - 1:
            rk[at] = _pair(pairs, sym[at], sym[at + 1])
    return n


@njit(cache=True, nogil=True)
def _heap_push(heap, size, v):
    i = size
    heap[i] = v
    while i > 0:
        p = (i - 1) >> 1
        if heap[p] <= v:
            break
        heap[i] = heap[p]
        i = p
    heap[i] = v
    return size + 1


@njit(cache=True, nogil=True)
def _heap_pop(heap, size):
    top = heap[0]
    size -= 1
    v = heap[size]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and heap[c + 1] < heap[c]:
            c += 1
        if heap[c] >= v:
            break
        heap[i] = heap[c]
        i = c
    if size > 0:
        heap[i] = v
    return top, size


@njit(cache=True, nogil=True)
def _bpe_large(sym, n, pairs, nxt, prv, heap):
    """Linked list over positions (``nxt``/``prv``, -1 at the ends, ``prv[j] = -2`` once ``j`` is merged
    away) and a min-heap of ``rank << 32 | position``; stale entries are skipped when popped."""
    size = 0
    for j in range(n):
        nxt[j] = j + 1 if j + 1 < n else -1
        prv[j] = j - 1
    for j in range(n - 1):
        v = _pair(pairs, sym[j], sym[j + 1])
        if v != _NO_RANK:
            size = _heap_push(heap, size, (v >> 32 << 32) | j)
    while size > 0:
        top, size = _heap_pop(heap, size)
        r = top >> 32
        j = top & 0xFFFFFFFF
        if prv[j] == -2:
            continue
        k = nxt[j]
        if k < 0:
            continue
        v = _pair(pairs, sym[j], sym[k])
        if v == _NO_RANK or v >> 32 != r:
            continue
        sym[j] = np.int32(v & 0xFFFFFFFF)
        prv[k] = -2
        nxt[j] = nxt[k]
        if nxt[k] >= 0:
            prv[nxt[k]] = j
        p = prv[j]
        if p >= 0:
            v2 = _pair(pairs, sym[p], sym[j])
            if v2 != _NO_RANK:
                size = _heap_push(heap, size, (v2 >> 32 << 32) | p)
        q = nxt[j]
        if q >= 0:
            v3 = _pair(pairs, sym[j], sym[q])
            if v3 != _NO_RANK:
                size = _heap_push(heap, size, (v3 >> 32 << 32) | j)
    m = 0
    j = 0
    while j >= 0:
        sym[m] = sym[j]
        m += 1
        j = nxt[j]
    return m


@njit(cache=True, nogil=True)
def _bpe(sym, n, pairs, rk):
    """BPE of ``sym[:n]`` in place (``rk``: ``SMALL_PIECE + 1`` entries); returns the new length."""
    if n <= SMALL_PIECE:
        return _bpe_small(sym, n, pairs, rk)
    nxt = np.empty(n, dtype=np.int64)
    prv = np.empty(n, dtype=np.int64)
    heap = np.empty(3 * n, dtype=np.int64)
    return _bpe_large(sym, n, pairs, nxt, prv, heap)


# ---------------------------------------------------------------------------------------------------------
# The pre-token cache
# ---------------------------------------------------------------------------------------------------------
# A pre-token under 16 bytes is found in ``exact`` by its bytes themselves: slots of four words (a, b, v, w)
# where a, b are the bytes and the length (bijectively: under 8 bytes, a = the bytes | length << 56 and
# b = 0; from 8 to 15, a = the first 8 bytes and b = the rest | length << 56), so a hit compares two words
# and reads nothing else. v = 0 marks an empty slot; otherwise, by its low 3 bits c:
#   c = 1..6: c ids inline, 20 bits each: bits 4, 24, 44 of v, then bits 0, 20, 40 of w (ids < 2**20);
#   c = 0:    the ids are in the arena: bits 4..15 of v their number, bits 16..63 their offset.
# A longer pre-token has a slot of two words in ``slots``: (key, value), key 0 for an empty slot, its key
# count_kernels' hash of its bytes; value = offset << 26 | length << 14 | ids << 2 of its bytes (padded to
# a word) and then its ids in the arena.

@njit(cache=True, nogil=True)
def _shift(slots, words):
    n = slots.shape[0] // words
    bits = 0
    while (1 << bits) < n:
        bits += 1
    return _U(64 - bits)


@njit(cache=True, nogil=True)
def _exact_home(a, b, shift):
    return np.int64(((a ^ (b * _MIX2)) * _MIX) >> shift)


@njit(cache=True, nogil=True)
def _insert(data, i, length, a, b, ids, m, n, exact, slots, arena, arena_bytes, st):
    """Remember that ``data[i:i+length]`` (not in the cache; its key words ``a, b`` under 16 bytes, its
    hash ``a`` from 16) encodes to ``ids[m:m+n]``. Empties the cache first when a table is half full or
    the arena has no room; does nothing if it could never fit."""
    inline = length < 16 and n <= 6
    for j in range(n if inline else 0):
        if ids[m + j] >= (1 << 20):
            inline = False
    kept = 0 if length < 16 else length
    need = 0 if inline else ((kept + 3) >> 2) + n
    if need > arena.shape[0] - 2 or n > 0xFFF or kept > 0xFFF:
        return
    if (
        st[N_EXACT] >= exact.shape[0] // 8
        or st[N_LONG] >= slots.shape[0] // 4
        or st[ARENA_USED] + need > arena.shape[0] - 2
    ):
        exact[:] = 0
        slots[:] = 0
        st[:] = 0
        st[CLEARS] += 1
    o = st[ARENA_USED]
    if not inline:
        for q in range(kept):
            arena_bytes[4 * o + q] = data[i + q]
        for j in range(n):
            arena[o + ((kept + 3) >> 2) + j] = ids[m + j]
        st[ARENA_USED] = o + ((kept + 3) >> 2) + n
    if length < 16:
        if inline:
            v = _U(n)
            w = _U(0)
            for j in range(n):
                if j < 3:
                    v |= _U(ids[m + j]) << _U(4 + 20 * j)
                else:
                    w |= _U(ids[m + j]) << _U(20 * (j - 3))
        else:
            v = (_U(o) << _U(16)) | (_U(n) << _U(4))
            w = _U(0)
        shift = _shift(exact, 4)
        mask = exact.shape[0] // 4 - 1
        s = _exact_home(a, b, shift)
        while exact[4 * s + 2] != 0:
            s = (s + 1) & mask
        exact[4 * s] = a
        exact[4 * s + 1] = b
        exact[4 * s + 2] = v
        exact[4 * s + 3] = w
        st[N_EXACT] += 1
    else:
        shift = _shift(slots, 2)
        mask = slots.shape[0] // 2 - 1
        s = np.int64(a >> shift)
        while slots[2 * s] != 0:
            s = (s + 1) & mask
        slots[2 * s] = a
        slots[2 * s + 1] = (_U(o) << _U(26)) | (_U(kept) << _U(14)) | (_U(n) << _U(2))
        st[N_LONG] += 1


@njit(cache=True, nogil=True)
def _find_long(data, i, length, key, slots, arena, arena_bytes, out, m):
    """Write the cached ids of ``data[i:i+length]`` (16 bytes or more, hash ``key``) to ``out[m:]``; returns
    the new m, or -1 when it is not cached."""
    shift = _shift(slots, 2)
    mask = slots.shape[0] // 2 - 1
    s = np.int64(key >> shift)
    while True:
        kk = slots[2 * s]
        if kk == 0:
            return -1
        if kk == key:
            v = slots[2 * s + 1]
            o = np.int64(v >> _U(26))
            if np.int64((v >> _U(14)) & _U(0xFFF)) == length and _same(arena_bytes, 4 * o, data, i, length):
                n = np.int64((v >> _U(2)) & _U(0xFFF))
                o += (length + 3) >> 2
                for j in range(n):
                    out[m + j] = arena[o + j]
                return m + n
        s = (s + 1) & mask


@njit(cache=True, nogil=True)
def _key_slice(data, starts, ends, lo, hi, s, exact, keys):
    """The key words and home slot of each pre-token ``lo..hi-1`` (as in :func:`_pieces`) into ``keys``,
    three words each from ``keys[0]``, and each home slot's cache line prefetched; zeros for pre-tokens of
    16 bytes or more. Indices are unsigned here and in :func:`_hits`: a signed one costs a wraparound test
    per access."""
    shift = _shift(exact, 4)
    masks = _LOW_BYTES
    n_data = data.shape[0]
    given = starts.shape[0] > 0
    for t in range(lo, hi):
        if given:
            s = starts[_U(t)]
        e = ends[_U(t)]
        length = e - s
        j = _U(3 * (t - lo))
        if length < 16:
            a = _U(0)
            b = _U(0)
            if s + 16 <= n_data:
                q = _U(s)
                for k in range(8):
                    a |= _U(data[q + _U(k)]) << _U(8 * k)
                    b |= _U(data[q + _U(8 + k)]) << _U(8 * k)
            else:
                a = _word(data, s, min(length, 8))
                b = _word(data, s + 8, length - 8) if length > 8 else _U(0)
            short = _U(0) - _U(length < 8)  # all ones under 8 bytes
            a = (a & masks[_U(min(length, 8))]) | ((_U(length) << _U(56)) & short)
            b = ((b & masks[_U(max(length - 8, 0))]) | (_U(length) << _U(56))) & ~short
            h = _exact_home(a, b, shift)
            _prefetch(exact, _U(4 * h))
            keys[j] = a
            keys[j + _U(1)] = b
            keys[j + _U(2)] = _U(h)
        else:
            keys[j] = _U(0)
            keys[j + _U(1)] = _U(0)
            keys[j + _U(2)] = _U(0)
        s = e


@njit(cache=True, nogil=True)
def _hits(t, hi, lo, exact, keys, out, m):
    """The hit path: writes the ids of pre-tokens ``t, t+1, ...`` (keyed in ``keys`` from pre-token ``lo``)
    to ``out[m:]`` while each is in ``exact`` with its ids inline, and stops before the first that is not,
    or at ``hi``. Returns ``(where it stopped, the new m, the slot its probe ended at)``: for a pre-token
    under 16 bytes, its slot (its ids in the arena) or the empty one that ends its chain (a miss)."""
    mask = _U(exact.shape[0] // 4 - 1)
    h = _U(0)
    while t < hi:
        j = _U(3 * (t - lo))
        a = keys[j]
        b = keys[j + _U(1)]
        h = keys[j + _U(2)]
        if a == _U(0) and b == _U(0):  # 16 bytes or more
            break
        while True:
            v = exact[_U(4) * h + _U(2)]
            if v == _U(0) or (exact[_U(4) * h] == a and exact[_U(4) * h + _U(1)] == b):
                break
            h = (h + _U(1)) & mask
        c = v & _U(7)
        if c == _U(0):
            break
        mm = _U(m)
        out[mm] = np.int32((v >> _U(4)) & _U(0xFFFFF))
        out[mm + _U(1)] = np.int32((v >> _U(24)) & _U(0xFFFFF))
        out[mm + _U(2)] = np.int32((v >> _U(44)) & _U(0xFFFFF))
        if c > _U(3):
            w = exact[_U(4) * h + _U(3)]
            out[mm + _U(3)] = np.int32(w & _U(0xFFFFF))
            out[mm + _U(4)] = np.int32((w >> _U(20)) & _U(0xFFFFF))
            out[mm + _U(5)] = np.int32((w >> _U(40)) & _U(0xFFFFF))
        m += np.int64(c)
        t += 1
    return t, m, np.int64(h)


@njit(cache=True, nogil=True)
def _pieces(data, starts, ends, lo, hi, start, model, cache, rk, keys, out, m):
    """Encode pre-tokens ``lo..hi-1`` into ``out[m:]`` (5 spare entries past the end); returns the new m.
    Pre-token ``t`` ends at ``ends[t]`` and starts at ``starts[t]``, or, when ``starts`` is empty, where
    the one before ends (``start`` for the first). Each is taken from the cache, or merged by BPE and
    cached. A slice of ``_SLICE`` pre-tokens at a time is keyed (:func:`_key_slice`: the keys go to
    ``keys``, 3 x ``_SLICE`` words, and the slots are prefetched), then :func:`_hits` writes the ids of
    the run of hits, and this function takes the one it stopped at (its ids in the arena, a long
    pre-token, or a miss) and hands the rest back. Each loop is a small function of its own: written out
    in one, their variables did not fit in the registers."""
    pairs = model.pairs
    byte_ids = model.byte_ids
    exact = cache.exact
    slots = cache.slots
    arena = cache.arena
    arena_bytes = cache.arena_bytes
    st = cache.state
    given = starts.shape[0] > 0
    s = start
    for lo2 in range(lo, hi, _SLICE):
        hi2 = min(lo2 + _SLICE, hi)
        _key_slice(data, starts, ends, lo2, hi2, s, exact, keys)
        t = lo2
        while True:
            t, m, h = _hits(t, hi2, lo2, exact, keys, out, m)
            if t >= hi2:
                s = ends[hi2 - 1]
                break
            s = starts[t] if given else (ends[t - 1] if t > lo else start)
            e = ends[t]
            length = e - s
            a = keys[3 * (t - lo2)]
            b = keys[3 * (t - lo2) + 1]
            if length < 16:
                v = exact[4 * h + 2]
                if v != 0:  # found, its ids in the arena
                    o = np.int64(v >> _U(16))
                    for j in range(np.int64((v >> _U(4)) & _U(0xFFF))):
                        out[m] = arena[o + j]
                        m += 1
                    t += 1
                    continue
            elif length <= MAX_CACHED:
                a = _long_key(data, s, length)
                m2 = _find_long(data, s, length, a, slots, arena, arena_bytes, out, m)
                if m2 >= 0:
                    m = m2
                    t += 1
                    continue
            for j in range(length):
                out[m + j] = byte_ids[data[s + j]]
            n = _bpe(out[m : m + length], length, pairs, rk)
            if length <= MAX_CACHED:
                _insert(data, s, length, a, b, out, m, n, exact, slots, arena, arena_bytes, st)
            m += n
            t += 1
    return m


# ---------------------------------------------------------------------------------------------------------
# The GPT-2 scanner, three ASCII bytes a step
# ---------------------------------------------------------------------------------------------------------
# gpt2_scan's automaton takes one character a step, and its state is a chain of dependent table loads, one
# per byte. Runs of ASCII take three bytes a step here, through the table of the automaton composed with
# itself: the entry for (state, kinds of bytes p, p+1, p+2) holds the state after the three and which of
# the ends ``prev, p, p+1, p+2`` the three steps emit (one step emits "before the previous character" and
# "before this one"; the second of a step and the first of the next never both hold, checked below).

def _composed(steps: int) -> np.ndarray:
    """uint8 table indexed ``state << 4 * steps | kind_1 << 4 * (steps - 1) | ... | kind_steps``: the new
    state << 4 and bit ``j`` set when the end before position ``p - 1 + j`` is emitted."""
    table = np.zeros(16 << (4 * steps), dtype=np.uint8)
    t = _T.astype(np.int64)
    kinds = np.arange(KE + 1)  # the automaton's kinds and states, numbered from 0
    for state in range(SW2W + 1):
        states = np.array([state])
        flags = np.zeros(1, dtype=np.int64)
        index = np.array([state])
        for step in range(steps):
            x = t[(states[:, None] << 4) + kinds[None, :]]  # all kinds for this step
            e1, e2 = x & 1, (x >> 1) & 1
            if ((flags[:, None] >> step) & 1 & e1).any():
                raise AssertionError("two steps emit the same end")
            flags = (flags[:, None] | (e1 << step) | (e2 << (step + 1))).ravel()
            states = (x >> 4).ravel()
            index = ((index[:, None] << 4) + kinds[None, :]).ravel()
        table[index] = (states << 4) | flags
    return table


_T3 = _composed(3)
_DELEGATED = 16  # pre-tokens gpt2_scan's scanner finds at a time where three bytes are not all ASCII


@njit(cache=True, nogil=True)
def _scan3(data, start, end, classes, kinds, out, m, limit):
    """gpt2_scan's ``_scan`` (the same pre-token ends of ``data[start:end]`` into ``out[m:]``, stopping at a
    pre-token end once ``m >= limit``, the final end(s) only if they fit), ASCII three bytes a step:
    writes up to ``out[limit + 3]``. Where the next three bytes are not all ASCII (or the text ends),
    ``_scan`` itself goes on from the last end found, for a few pre-tokens."""
    t3 = _T3
    first = m
    s = 0
    p = start
    prev = start
    while m < limit:
        if p + 2 < end:
            b = data[_U(p)]
            b2 = data[_U(p + 1)]
            b3 = data[_U(p + 2)]
            if (b | b2 | b3) < 0x80:
                x = t3[_U((s << 8) | (kinds[b] << 8) | (kinds[b2] << 4) | kinds[b3])]
                s = x & 0xF0
                out[_U(m)] = prev
                m += x & 1
                out[_U(m)] = p
                m += (x >> 1) & 1
                out[_U(m)] = p + 1
                m += (x >> 2) & 1
                out[_U(m)] = p + 2
                m += (x >> 3) & 1
                prev = p + 2
                p += 3
                continue
        # A pre-token end is where the pattern may start again: _scan restarts there in its first state.
        since = out[m - 1] if m > first else start
        done = _scan(data, since, end, classes, kinds, out, m, min(m + _DELEGATED, limit))
        if done == m or out[done - 1] == end:
            return done
        m = done
        p = out[m - 1]
        prev = p
        s = 0
    return m


# ---------------------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def encode_gpt2(data, bounds, after, classes, model, cache, out, buf, resume, budget):
    """Encode the segments ``data[bounds[k, 0]:bounds[k, 1]]``, each followed by the special token id
    ``after[k]`` (or nothing, -1), into ``out`` (room for one id per byte and per special token, plus 5),
    pre-tokenized by the GPT-2 scanner a block of ``buf`` at a time.

    ``resume = [segment, position, ids written]`` (``[0, 0, 0]`` to start); returns :data:`PAUSED` after
    about ``budget`` bytes (call again) or :data:`DONE`. ``buf`` takes the scanner's pre-token ends (8
    entries or more)."""
    if buf.shape[0] < 8:
        raise ValueError("encode_gpt2: buf needs 8 entries or more")
    kinds = _KINDS
    rk = np.empty(SMALL_PIECE + 1, dtype=np.int64)
    keys = np.empty(3 * _SLICE, dtype=np.uint64)
    no_starts = np.empty(0, dtype=np.int64)
    m = resume[2]
    done = 0
    for k in range(resume[0], bounds.shape[0]):
        end = bounds[k, 1]
        i = max(resume[1], bounds[k, 0]) if k == resume[0] else bounds[k, 0]
        while i < end:
            if done >= budget:
                resume[0] = k
                resume[1] = i
                resume[2] = m
                return PAUSED
            n = _scan3(data, i, end, classes, kinds, buf, 0, buf.shape[0] - 4)
            # A few hundred pre-tokens at a time, so that a block of long ones stops within the budget too.
            t = 0
            while t < n and done < budget:
                hi = min(t + _SLICE, n)
                m = _pieces(data, no_starts, buf, t, hi, i, model, cache, rk, keys, out, m)
                done += buf[hi - 1] - i
                i = buf[hi - 1]
                t = hi
        if after[k] >= 0:
            out[m] = after[k]
            m += 1
    resume[0] = bounds.shape[0]
    resume[1] = 0
    resume[2] = m
    return DONE


@njit(cache=True, nogil=True)
def encode_pieces(data, starts, ends, model, cache, out):
    """Encode the pre-tokens ``data[starts[t]:ends[t]]`` in order into ``out``; an ``ends[t]`` of -1 stands
    for the special token id ``starts[t]``. Returns the number of ids."""
    rk = np.empty(SMALL_PIECE + 1, dtype=np.int64)
    keys = np.empty(3 * _SLICE, dtype=np.uint64)
    m = 0
    t = 0
    n = ends.shape[0]
    while t < n:
        if ends[t] < 0:
            out[m] = starts[t]
            m += 1
            t += 1
            continue
        hi = t
        while hi < n and ends[hi] >= 0:
            hi += 1
        m = _pieces(data, starts, ends, t, hi, 0, model, cache, rk, keys, out, m)
        t = hi
    return m
