"""Numba kernels for encoding: merge-rank lookup, BPE of pre-tokens, and a cache of encoded units.

Text between special tokens is cut into *units* at safe cuts (see ``text_kernels``): no pre-token crosses
one, so a unit's ids never depend on its neighbours and each distinct unit is encoded once. The cache maps
unit bytes to ids in preallocated arrays owned by the tokenizer; ``plan_units`` resolves every unit of a text
to a cache entry or to a *miss* (deduplicated within the call); only the misses are pre-tokenized and merged
(``bpe_pieces``); ``gather`` writes the ids in text order and ``cache_insert`` keeps the misses for later.

BPE of one pre-token repeatedly joins the adjacent pair of lowest merge rank (leftmost on ties). Short
pre-tokens use a rank per position and a linear scan for the minimum; long ones (a megabyte of ``x``) a
linked list plus a binary heap keyed ``rank << 32 | position``, O(n log n).

Kernels take arrays and scalars only.

Performance notes (10 MB of synthetic English, GPT-2 vocab, one core of the shared dev machine, process
CPU time; ``cold`` = empty unit cache, ``warm`` = the same text again)
--------------------------------------------------------------------------------------------------------
- ``regex.findall`` + a ``dict`` cache of pre-token -> ids + ``list.extend``: 3.4-5.4 MB/s, all of it in
  the regex and the per-pre-token Python work (tiktoken's single thread: 4-9 MB/s on the same text).
- Units looked up in the array cache, misses pre-tokenized by ``regex`` in one Python pass and merged in
  one kernel call: 35 MB/s cold, 72 MB/s warm. With the misses split by the GPT-2 scanner in a kernel
  (``split_units``): 52 MB/s cold, 67 MB/s warm. Synthetic text has few distinct units; text with more
  (real web text) gains more from the scanner.
- Planning a whole 10 MB text in one call sized the miss table by bytes (256 MB for 10 MB of text); blocks
  of 65 536 units keep the work arrays at ~4 MB for any text, at no measurable cost.
- ``plan_units`` first kept the cache as an index table plus per-entry arrays (hash, key offset, length,
  ids offset, ids length) and hashed every byte while looking for the unit's end: 0.126 s per 10 MB
  (1.9 M units), five dependent random reads per unit. Now a slot holds ``(key, value)`` side by side,
  units up to 7 bytes are their own key (no byte comparison), the value is where the ids are (``gather``
  reads nothing else: 0.044 -> 0.022 s), and the end of a unit is found first with only the two
  safe-cut table lookups per byte, the key computed after: 0.077 s. ``encode`` of 10 MB then spends
  0.17 s in the kernels and Python around them plus 0.1 s in ``ndarray.tolist`` for the list it returns.
- BPE of a pre-token: a linear scan over per-position ranks up to 48 bytes, a heap above (a 1 MB run of
  one letter: ~0.35 s, where the linear scan would be quadratic).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .gpt2_scan import gpt2_split

_MIX = np.uint64(0x9E3779B97F4A7C15)
_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_NO_RANK = np.int64(1 << 62)
SMALL_PIECE = 48  # pre-tokens longer than this take the heap path
SPECIAL_REF = -(1 << 50)  # plan refs <= this are special token ids: ref = SPECIAL_REF - id


# ---------------------------------------------------------------------------------------------------------
# Merge ranks: (left id, right id) -> (rank, merged id), open addressing on a packed int64 key
# ---------------------------------------------------------------------------------------------------------

@njit(cache=True)
def _slot(key, mask):
    return np.int64((np.uint64(key) * _MIX) >> np.uint64(20)) & mask


@njit(cache=True)
def build_pair_table(left, right, merged, keys, ranks, results):
    """Fill ``keys`` (all -1), ``ranks`` and ``results`` from the merges in rank order; a pair listed twice
    keeps its first (lowest) rank. Returns the number of distinct pairs."""
    mask = keys.shape[0] - 1
    n = 0
    for r in range(left.shape[0]):
        key = (np.int64(left[r]) << 32) | np.int64(right[r])
        s = _slot(key, mask)
        while keys[s] >= 0 and keys[s] != key:
            s = (s + 1) & mask
        if keys[s] < 0:
            keys[s] = key
            ranks[s] = r
            results[s] = merged[r]
            n += 1
    return n


@njit(cache=True)
def _lookup(keys, a, b):
    """Slot of pair ``(a, b)`` or -1."""
    key = (np.int64(a) << 32) | np.int64(b)
    mask = keys.shape[0] - 1
    s = _slot(key, mask)
    while True:
        k = keys[s]
        if k == key:
            return s
        if k < 0:
            return -1
        s = (s + 1) & mask


@njit(cache=True)
def _rank(keys, ranks, a, b):
    s = _lookup(keys, a, b)
    return _NO_RANK if s < 0 else np.int64(ranks[s])


# ---------------------------------------------------------------------------------------------------------
# BPE of one pre-token, in place in ``sym[:n]``; returns the new length
# ---------------------------------------------------------------------------------------------------------

@njit(cache=True)
def _bpe_small(sym, n, keys, ranks, results, rk):
    for j in range(n - 1):
        rk[j] = _rank(keys, ranks, sym[j], sym[j + 1])
    while n > 1:
        best = _NO_RANK
        at = -1
        for j in range(n - 1):
            if rk[j] < best:
                best = rk[j]
                at = j
        if at < 0:
            break
        sym[at] = results[_lookup(keys, sym[at], sym[at + 1])]
        for j in range(at + 1, n - 1):
            sym[j] = sym[j + 1]
        for j in range(at + 1, n - 2):
            rk[j] = rk[j + 1]
        n -= 1
        if at > 0:
            rk[at - 1] = _rank(keys, ranks, sym[at - 1], sym[at])
        if at < n - 1:
            rk[at] = _rank(keys, ranks, sym[at], sym[at + 1])
    return n


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
def _bpe_large(sym, n, keys, ranks, results, nxt, prv, heap):
    """Linked list over positions (``nxt``/``prv``, -1 at the ends, ``prv[j] = -2`` once ``j`` is merged
    away) and a min-heap of ``rank << 32 | position``; stale entries are skipped when popped."""
    size = 0
    for j in range(n):
        nxt[j] = j + 1 if j + 1 < n else -1
        prv[j] = j - 1
    for j in range(n - 1):
        r = _rank(keys, ranks, sym[j], sym[j + 1])
        if r != _NO_RANK:
            size = _heap_push(heap, size, (r << 32) | j)
    while size > 0:
        top, size = _heap_pop(heap, size)
        r = top >> 32
        j = top & 0xFFFFFFFF
        if prv[j] == -2:
            continue
        k = nxt[j]
        if k < 0:
            continue
        s = _lookup(keys, sym[j], sym[k])
        if s < 0 or ranks[s] != r:
            continue
        sym[j] = results[s]
        prv[k] = -2
        nxt[j] = nxt[k]
        if nxt[k] >= 0:
            prv[nxt[k]] = j
        p = prv[j]
        if p >= 0:
            r2 = _rank(keys, ranks, sym[p], sym[j])
            if r2 != _NO_RANK:
                size = _heap_push(heap, size, (r2 << 32) | p)
        q = nxt[j]
        if q >= 0:
            r3 = _rank(keys, ranks, sym[j], sym[q])
            if r3 != _NO_RANK:
                size = _heap_push(heap, size, (r3 << 32) | j)
    m = 0
    j = 0
    while j >= 0:
        sym[m] = sym[j]
        m += 1
        j = nxt[j]
    return m


@njit(cache=True)
def bpe_pieces(data, piece_start, piece_len, byte_ids, keys, ranks, results, out, out_end):
    """Encode pre-tokens ``data[piece_start[p] : piece_start[p] + piece_len[p]]`` one after another into
    ``out`` (room for the sum of ``piece_len``); ``out_end[p]`` is where piece ``p``'s ids end. Returns the
    number of ids written."""
    longest = 0
    for p in range(piece_len.shape[0]):
        longest = max(longest, piece_len[p])
    rk = np.empty(min(longest, SMALL_PIECE) + 1, dtype=np.int64)
    big = longest if longest > SMALL_PIECE else 0
    nxt = np.empty(big, dtype=np.int64)
    prv = np.empty(big, dtype=np.int64)
    heap = np.empty(3 * big, dtype=np.int64)
    m = 0
    for p in range(piece_len.shape[0]):
        s = piece_start[p]
        n = piece_len[p]
        for j in range(n):
            out[m + j] = byte_ids[data[s + j]]
        sym = out[m : m + n]
        if n <= SMALL_PIECE:
            n = _bpe_small(sym, n, keys, ranks, results, rk)
        else:
            n = _bpe_large(sym, n, keys, ranks, results, nxt, prv, heap)
        m += n
        out_end[p] = m
    return m


@njit(cache=True)
def split_units(data, m_start, m_len, classes, piece_start, piece_len, unit_pieces):
    """Pre-tokenize each unit ``data[m_start[u] : m_start[u] + m_len[u]]`` with the GPT-2 scanner into
    ``piece_start``/``piece_len`` (room for ``m_len.sum()`` pieces); ``unit_pieces[u]`` counts unit ``u``'s.
    Returns the number of pieces."""
    n = 0
    for u in range(m_len.shape[0]):
        s = m_start[u]
        first = n
        n = gpt2_split(data, s, s + m_len[u], classes, piece_len, n)  # ends, turned into lengths below
        for k in range(first, n):
            end = piece_len[k]
            piece_start[k] = s
            piece_len[k] = end - s
            s = end
        unit_pieces[u] = n - first
    return n


# ---------------------------------------------------------------------------------------------------------
# Units: plan (cache lookups, misses deduplicated), gather, and cache insertion
# ---------------------------------------------------------------------------------------------------------

@njit(cache=True)
def _same(a, i, b, j, n):
    for k in range(n):
        if a[i + k] != b[j + k]:
            return False
    return True


@njit(cache=True)
def _key(packed, h, length):
    """A unit's 64-bit key, never 0: up to 7 bytes, the bytes themselves with the length in the top byte
    (so equal keys mean equal units); longer, 56 bits of its FNV hash with min(length, 255) on top."""
    if length <= 7:
        return packed | (np.uint64(length) << np.uint64(56))
    return (h >> np.uint64(8)) | (np.uint64(min(length, 255)) << np.uint64(56))


@njit(cache=True)
def _home(key, mask):
    return np.int64((key * _MIX) >> np.uint64(40)) & mask


@njit(cache=True)
def plan_units(
    data, bounds, special_after, cut_before, cut_at, max_cached,
    c_slots, c_kstart, c_keys,
    m_slots, m_start, m_len, m_key, refs, state,
):
    """Resolve the units of ``data[bounds[k, 0]:bounds[k, 1]]`` (segment ``k`` followed by the special
    token id ``special_after[k]``, or -1) to refs, in text order: a cached unit's ids ``istart << 16 |
    n_ids`` in the cache (>= 0), a miss ``-1 - m`` (misses are deduplicated in ``m_slots``, all 0 on entry)
    or a special token ``SPECIAL_REF - id``. Units longer than ``max_cached`` (at most 255) are never
    looked up in the cache.

    The cache and miss tables hold ``(key, value)`` pairs side by side (one cache line per probe); units of
    up to 7 bytes are identified by their key alone, longer ones are compared byte by byte.

    ``state = [segment, position, n_refs, n_misses]``: the kernel starts at ``(segment, position)`` and
    returns False, with the place to resume saved, as soon as ``refs`` is full or ``m_slots`` half full;
    True when every segment is done. So a text of any size is planned in blocks of bounded memory.
    """
    c_mask = c_slots.shape[0] // 2 - 1
    m_mask = m_slots.shape[0] // 2 - 1
    miss_limit = min(m_slots.shape[0] // 4, m_start.shape[0])
    ref_limit = refs.shape[0]
    n_refs = 0
    n_miss = 0
    for k in range(state[0], bounds.shape[0]):
        hi = bounds[k, 1]
        start = state[1] if k == state[0] else bounds[k, 0]
        while start < hi:
            # The unit is data[start:j]: it ends before the first safe cut after its first byte.
            prev = data[start]
            j = start + 1
            while j < hi:
                b = data[j]
                if cut_at[b] and cut_before[prev]:
                    break
                prev = b
                j += 1
            if n_refs >= ref_limit or n_miss >= miss_limit:
                state[0] = k
                state[1] = start
                state[2] = n_refs
                state[3] = n_miss
                return False
            length = j - start
            packed = np.uint64(0)
            h = _FNV_OFFSET
            if length <= 7:
                for t in range(length):
                    packed |= np.uint64(data[start + t]) << np.uint64(8 * t)
            else:
                for t in range(start, j):
                    h = (h ^ np.uint64(data[t])) * _FNV_PRIME
            key = _key(packed, h, length)
            ref = np.int64(-1)
            if length <= max_cached:
                s = _home(key, c_mask)
                while True:
                    kk = c_slots[2 * s]
                    if kk == 0:
                        break
                    if kk == key and (length <= 7 or _same(c_keys, c_kstart[s], data, start, length)):
                        ref = np.int64(c_slots[2 * s + 1])
                        break
                    s = (s + 1) & c_mask
            if ref < 0:
                s = _home(key, m_mask)
                while True:
                    kk = m_slots[2 * s]
                    if kk == 0:
                        m_slots[2 * s] = key
                        m_slots[2 * s + 1] = n_miss
                        m_start[n_miss] = start
                        m_len[n_miss] = length
                        m_key[n_miss] = key
                        ref = -1 - n_miss
                        n_miss += 1
                        break
                    if kk == key:
                        e = np.int64(m_slots[2 * s + 1])
                        if length <= 7 or (m_len[e] == length and _same(data, m_start[e], data, start, length)):
                            ref = -1 - e
                            break
                    s = (s + 1) & m_mask
            refs[n_refs] = ref
            n_refs += 1
            start = j
        if special_after[k] >= 0:
            if n_refs >= ref_limit:
                state[0] = k
                state[1] = hi
                state[2] = n_refs
                state[3] = n_miss
                return False
            refs[n_refs] = SPECIAL_REF - special_after[k]
            n_refs += 1
    state[0] = bounds.shape[0]
    state[2] = n_refs
    state[3] = n_miss
    return True


@njit(cache=True)
def gather(refs, c_ids, m_ids, m_end, out):
    """Write the ids of every ref into ``out`` (room for all of them); returns the count."""
    m = 0
    for r in range(refs.shape[0]):
        ref = refs[r]
        if ref >= 0:
            s = ref >> 16
            n = ref & 0xFFFF
            for j in range(n):
                out[m + j] = c_ids[s + j]
            m += n
        elif ref <= SPECIAL_REF:
            out[m] = SPECIAL_REF - ref
            m += 1
        else:
            e = -1 - ref
            s = 0 if e == 0 else m_end[e - 1]
            for j in range(s, m_end[e]):
                out[m] = m_ids[j]
                m += 1
    return m


@njit(cache=True)
def cache_clear(c_slots, c_state):
    c_slots[:] = 0
    c_state[:] = 0


@njit(cache=True)
def cache_insert(data, m_start, m_len, m_key, m_ids, m_end, max_cached, c_slots, c_kstart, c_keys, c_ids, c_state):
    """Add the misses no longer than ``max_cached`` (and that fit at all) to the cache; when it is full
    (entries at half the slots, key bytes or ids storage), it is emptied first. ``c_state = [entries, key
    bytes, ids]``. Only units longer than 7 bytes keep their bytes (shorter ones are their key)."""
    slots = c_slots.shape[0] // 2
    mask = slots - 1
    for e in range(m_len.shape[0]):
        i0 = 0 if e == 0 else m_end[e - 1]
        n_ids = m_end[e] - i0
        length = m_len[e]
        stored = length if length > 7 else 0
        if length > max_cached or stored > c_keys.shape[0] or n_ids > c_ids.shape[0]:
            continue
        if (
            c_state[0] + 1 > slots // 2
            or c_state[1] + stored > c_keys.shape[0]
            or c_state[2] + n_ids > c_ids.shape[0]
        ):
            c_slots[:] = 0
            c_state[:] = 0
        key = m_key[e]
        s = _home(key, mask)
        while c_slots[2 * s] != 0:
            s = (s + 1) & mask
        c_slots[2 * s] = key
        c_slots[2 * s + 1] = np.uint64((c_state[2] << 16) | n_ids)
        c_kstart[s] = c_state[1]
        src = m_start[e]
        for j in range(stored):
            c_keys[c_state[1] + j] = data[src + j]
        for j in range(n_ids):
            c_ids[c_state[2] + j] = m_ids[i0 + j]
        c_state[0] += 1
        c_state[1] += stored
        c_state[2] += n_ids
