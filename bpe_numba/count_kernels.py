"""Numba kernels that count distinct pre-tokens: a per-thread open-addressing table, fed by the GPT-2
scanner (:mod:`bpe_numba.gpt2_scan`), merged across threads, and flattened for the merge loop or pickled
for ``count_pretokens``' ``dict`` (:func:`pickle_entries`).

The table (:class:`CountTable`, a namedtuple of arrays, so kernels take it as one argument and Numba caches
them across processes) holds:

- ``slots``: uint64, two words per slot: ``(key, count)``; key 0 marks an empty slot. A pre-token of fewer
  than 8 bytes is its own key: its bytes as a little-endian word with the length in the top byte, times an
  odd constant (a bijection, so equal keys mean equal bytes, and :func:`_short_bytes` turns a key back into
  bytes). A longer pre-token's key is a 56-bit hash (top byte 0, so it never equals a short key), and its
  bytes are kept once in ``arena``;
- ``refs``: int64, two words per slot, ``(arena offset, length)`` of a long pre-token (unused for short ones);
- ``arena``: uint8, the bytes of the long pre-tokens, each stored once, when first seen;
- ``state``: int64 ``[n_distinct, arena_used, arena_needed]`` (the last is set when a kernel returns
  :data:`GROW` because the arena is full).

A probe for a short pre-token reads one 16-byte slot: its count sits beside its key. Kernels that insert
return :data:`GROW` (with the place to resume saved) when the table is half full or the arena is full;
the caller grows it (:func:`grow_table`) and calls again. So kernels never reallocate, and every kernel is
``nogil``: threads count chunks side by side, each into its own table.

Performance notes (2026-11-30, ``prose_en.txt`` of ``../shared/corpora/build.py``: 52.4 MB of English
technical prose, 14.5 M pre-tokens, 137 K distinct, 11 % of the occurrences 8 bytes or longer; and
``multilingual.txt``: 12.3 MB, 101 K distinct, 16 % long. One thread, process CPU time, min of 5-7, on the
shared 2-core dev machine, where the same run moves by up to 40 % from one minute to the next)
------------------------------------------------------------------------------------------------------------
- The former counter (``gpt2_scan.count_gpt2``: one table per chunk of (hash, id + 1) slots, counts in an
  array indexed by id, pre-tokens referenced by their first occurrence in the chunk, so chunk results went
  back as Python objects and were summed in a ``dict``): 397 ms (132 MB/s) on prose_en, of which 131 ms
  scanning: the slot, then the count, were two dependent cache misses per pre-token.
- Count beside the key, short pre-tokens as their own key, long ones in a per-table arena: 333 ms. The
  table's size does not matter here (256 K to 4 M slots: within noise); the hot pre-tokens stay cached.
- Tried without gain: hashing a whole scanner block first and probing in a second pass (399 vs 341 ms); a
  4096-entry direct-mapped cache in front of the table (401 vs 347 ms); unsigned slot indexes; the long-key
  hash and comparison written out instead of called (LLVM inlines them already).
- Scanning a segment as two halves at once (``gpt2_scan._scan2``): the scan alone 137 -> 83 ms on
  prose_en (no change on multilingual, where multi-byte decoding dominates), the kernel 272-290 -> 221-250
  ms.
- Helpers take arrays, never the namedtuple: ``table_bytes`` with a helper taking the table took 40 ms for
  512 K slots, 1.6 ms with the arrays (Numba increfs each array of a tuple argument at every call that
  LLVM does not inline).
- Whole ``count_pretokens`` (read, UTF-8 check, special-token split, count, merge the threads' tables, the
  ``dict``) on prose_en: 1 thread 93-147 MB/s, 2 threads 1.5-1.8x that (the ``dict`` of 137 K keys, 30-40
  ms, is built after the threads finish; merging two tables by slot, 10 ms, replaced flatten + re-insert).
  Counting alone (no ``dict``), process CPU time, median of 7 interleaved: 1 thread 0.354 s, 2 threads 0.378
  s of CPU in 0.201 s wall (1.76x): the second thread adds 7 % of work (each table grows to most of the
  distinct pre-tokens, then the two are merged). The ``dict`` (flatten 11 ms, 137 K ``bytes`` keys and
  ``dict(zip)`` about 25 ms) holds the GIL and stays serial.
- A thread's table starts sized for the bytes it is expected to count (one distinct pre-token per 400
  bytes, at most 128 K: ``pretokenize.expected_distinct``) instead of growing from 4 K slots by doubling:
  one thread's CPU time on prose_en, new/old per-pair median of 9 and then 21 interleaved calls, 0.943 and
  0.965. Whole ``count_pretokens`` calls (wall, 15 interleaved pairs, twice): one thread 0.943 then 1.087,
  two threads 0.990 then 0.937, so within this machine's noise; kept for the rehashing it saves.
- What helped the encoding kernel (its loops as small functions, unsigned indices) did not help here, new/old
  per-pair median of interleaved thread CPU on prose_en (``/work/scratch/ck/ab.py``): unsigned indices in
  ``_count_ends`` 0.951 and then 1.037 on a rerun of 21; the keys and prefetches of a block computed first
  by a function of its own, then the probes, 0.981. ``_count_ends`` is a function of its own already.
- The end of a call on two threads (prose_en, in one process, median of 15-31): ``table_bytes`` and
  ``flatten`` take a range of slots, so the trainer flattens on its threads (8.2-10.1 ms instead of
  12.3-18.9). Tried: merging two tables on two threads (each adds the entries of its half of ``src`` that
  ``dst`` holds, then one thread inserts the rest): 10.8-15.7 ms against 9.4-13.4 ms on one thread, so not
  kept; the scan of ``src`` is done twice and the two threads share the memory bandwidth. Also tried:
  ``merge_into`` prefetching the ``dst`` slot of the ``src`` entry 16, 32 or 64 slots ahead: 1.08-1.11x the
  time (median of 25 interleaved pairs each, ``/work/scratch/s24/mpf.py``).
- Kept instead (2026-11-30): the keys split in ranges (:func:`key_ranges`), two per thread; thread ``w``
  adds the entries of its ranges in every other table to its own (``merge_into``'s ``keys``) and flattens
  each range as soon as it is merged (``pretokenize.SplitTable``); no thread writes what another reads. A
  range's entries sit in the matching share of the slots (the home slot is the key's top bits), so
  :func:`key_slots` bounds the scans to it. Two-thread ``count_pretokens`` on prose_en, in one process,
  median of 9-11 (``/work/scratch/s26/tl2.py``, ``tl3.py``): merging on both threads, then flattening on
  both, then the ``dict``: merge 19-20 ms -> 5-6, flatten 14 -> 10, the end of the call 76 -> 53 ms; with
  the ``dict`` taking each range as it is flattened, 39-40 ms (the ``dict`` alone, 137 K keys under the
  GIL, is 30-40 ms). ``flatten`` writes into arrays sized by the table's state, so the entries are not
  counted by ``table_bytes`` first: 15.4 against 19.5 ms for the whole table (median of 31 interleaved
  pairs, per-pair 0.77, ``/work/scratch/s26/flab.py``).
- While the calling thread builds the ``dict``, one thread fewer merges (two tables: one thread takes the
  four ranges in order): a third busy thread on two cores slowed the ``dict``. The end of the call 32.5
  against 33.9, 28.7 against 31.7, 30.0 against 34.9 ms (medians of 41, 25, 25 interleaved,
  ``/work/scratch/s27/ab2.py``, ``ab.py``). What is left is the ``dict``: 137 K ``bytes`` keys 4 ms, their
  hashes and inserts 13 ms, 17-19 ms on a quick minute and 23-31 on a slow one, all under the GIL
  (``/work/scratch/s27/ed.py``: ``dict(zip)``, a dict comprehension, ``update`` by steps and a loop are
  within 10 % of each other). Tried: a first range of 1/16 of the keys, so that the ``dict`` starts sooner,
  and ``dict`` steps of 512 or 256 entries instead of 2,048 (the merging thread waits for the GIL behind
  each): per-pair medians -0.5, -0.8 and +0.2 ms of the end (31-41 interleaved, ``/work/scratch/s27/ab3.py``,
  ``ab4.py``), within noise; not kept.
- Where the ``dict``'s time goes (2026-12-01, ``perf record`` of ``dict(zip(keys, counts))`` over fresh keys,
  ``/work/scratch/s28/edloop.py``): ``_Py_dict_lookup`` 24 % (probing a 5 MB table for each new key), the
  key list's iterator 8 % (each key object read again), the resizes 11 %, ``siphash13`` 5 %. Tried: keys
  made and inserted in batches of 1 K to 34 K entries, so that the key objects are still cached when
  inserted: 20.8, 18.4, 18.2 and 17.2 ms against 16.9 for the whole table at once (38.6-29.0 against 28.6 on
  a slow minute; median of 21 interleaved, ``batch.py``); not kept. Hashing fresh keys costs 0.8-0.9 ms more
  than inserting keys whose hash is cached (``hashcost.py``), so hashing on the merging thread could not
  save more than that. Also tried, for the start of a 2-thread call: the tables allocated by anonymous
  ``mmap`` (zero pages, faulted in by the counting kernel) or in a ``nogil`` kernel instead of
  ``np.zeros``, which holds the GIL while the allocator clears reused memory: 2-thread calls per-pair
  1.024 and 1.023 of before, and ``mmap`` made 1-thread calls 1.136 (no transparent huge pages here); a
  0.2 ms switch interval while the threads count: 0.989 (15-21 interleaved, ``zab.py``, ``hand.py``).
- Tried (2026-12-01): the merging thread making one kernel call per range (key slots, merge and flatten
  fused, so that it takes the GIL twice per range instead of about a dozen times), with 4, 6 and 8
  ranges and with a first range of 1/16 of the keys. The end of a 2-thread call moved by -1.2, -0.4, -0.1,
  +0.1 and -0.5 ms (per-pair medians of 25 interleaved; the end itself 25-31 ms;
  ``/work/scratch/s28/fused.py``, ``fab.py``, ``fab2.py``): the GIL's trips between the threads are not
  what the end waits for; the ``dict`` is. Not kept.
- Counting on two threads costs no more CPU than on one (prose_en's chunks, thread CPU, median of 11:
  one table 247.4 ms, the real 2-thread count 248.3 ms summed over its chunks, and 260.3 ms for the same
  two tables filled alternately on one thread, where they share one core's caches;
  ``/work/scratch/s28/twotab.py``). Two tables hold 101 K + 100 K entries against 137 K; contiguous halves
  of the file instead of interleaved chunks would hold 98 K + 93 K (``halves.py``), too few fewer to try.
  How well it scales is the machine's: with no serial part at all, random increments in a 16 MB table per
  thread (the same total work on one and two threads) scaled 1.72, 1.90, 1.99 and 1.98x in four rounds of
  15 interleaved calls, and pure arithmetic 1.99x in each (``control2.py``, ``control.py``); pinning the
  two counting threads to the two cores made whole calls 1.54x instead of 1.90x (``pin.py``).
- The ``dict`` made by ``pickle.load`` (2026-12-01): :func:`pickle_entries` writes the entries as the body
  of a pickle (``nogil``: on the merging thread, range by range), and ``pickle.load`` makes the keys, the
  counts and the inserts in one C loop, with no Python object per entry on the way. prose_en, one table,
  median of 15 (``/work/scratch/s29/pk2.py``): ``table_to_dict`` 26.2 against 32.6 ms; the kernel 7.3 ms
  against 13 for ``flatten``; ``pickle.loads`` 15.8 ms against about 21 for ``bytes`` objects of the
  flattened entries and ``dict.update`` (a stream from ``pickle.dumps``, with its memo, took 17.3). Whole
  ``count_pretokens``, the rest of the call (``bench_count``, three runs of 11 alternating with the
  previous commit's): one thread 35.0, 36.0, 35.2 -> 27.5, 27.4, 28.4 ms; two threads 27.2, 28.6, 27.2 ->
  23.1, 23.3, 25.3 ms. Both ends lose about as much, so the 2 vs 1 ratio stays (1.77-1.81x before,
  1.77-1.80x after). On two threads the first range is pickled 3.3 ms after counting ends and the
  unpickler never waits after that; it ends at 22 ms, reading 137 K entries in 18.5 ms beside the merging
  thread (15.8 alone): it is the end (``tl.py``). Tried: peeks of 8 KiB instead of 32 KiB, +0.2 ms; a
  first range of 1/32 of the keys (two small ranges, then two large), +2.5 ms, as the merging thread then
  falls behind (per-pair medians of 21 interleaved, ``ab.py``).
- Two threads' tables read as a ``dict`` without merging them (:func:`pickle_two`, 2026-12-01): one kernel
  call, range by range of keys (32 ranges), pickles the entries of the smaller table that the larger lacks
  (adding the others' counts to an array beside the larger table), then the larger table's entries with
  those added, and publishes each range's end with a release store; ``pickle.load`` reads what is
  published, and the kernel's thread never needs the GIL. The end of a 2-thread call on prose_en, per-pair
  medians of 21 and 31 interleaved against merging and pickling range by range: -4.45 and -4.41 ms (23.1
  against 28.2, 21.0 against 25.8; ``/work/scratch/s29/ab2.py``). The first range is out about 1 ms after
  counting ends; ``pickle.load`` then takes 21-23 ms beside the kernel (the kernel 13.5 ms alone, 14-19
  beside it; ``tl3.py``). Tried first: the same sums in pieces that one thread put in a queue (1/16 of
  the larger table's slots summed with the other's counts, then the whole smaller table, then the rest of
  the larger): the end 25-27 ms against 22, as the smaller table's pass probes 100 K entries to emit 37 K,
  and the loader waited for it (``tl.py``).
- A table's arrays cleared by :func:`_rehash` (``nogil``) instead of ``np.zeros`` (2026-12-01): a thread's
  first table, 8 MB on two threads and 16 MB on one, took 2-15 ms to make, zeroed or faulted in while
  holding the GIL, so the other thread's start waited (``/work/scratch/s29/init.py``). Whole
  ``count_pretokens`` on prose_en, per-pair differences of 21-31 interleaved calls in one process, in three
  runs on a quiet and on noisy minutes: one thread +16.4, -2.2 and -13.6 ms, two threads -8.3, -2.7 and
  -11.0 ms (``abinit.py``; an earlier try that allocated inside a kernel gave 1.023, see above).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .gpt2_scan import _KINDS, _scan, _scan2, _word
from .intrinsics import load_acquire as _load_acquire
from .intrinsics import store_release as _store_release
from .jit import njit

_U = np.uint64
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M1_INV = np.uint64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))  # (x * _M1) * _M1_INV == x modulo 2**64
_LOW56 = np.uint64((1 << 56) - 1)

DONE = 0  # the work is done
GROW = 1  # the table is half full or the arena full: grow it (grow_table), then call again
PAUSED = 2  # the byte budget of this call is spent: call again (lets the caller check for Ctrl-C)

N_DISTINCT, ARENA_USED, ARENA_NEEDED = 0, 1, 2

CountTable = namedtuple("CountTable", ["slots", "refs", "arena", "state"])


def new_table(n_slots: int = 1 << 12, arena_bytes: int = 1 << 16) -> CountTable:
    """An empty table with ``n_slots`` slots (rounded up to a power of two, at least 4)."""
    n = 1 << max(2, int(n_slots) - 1).bit_length()
    return CountTable(
        np.zeros(2 * n, dtype=np.uint64),
        np.zeros(2 * n, dtype=np.int64),
        np.empty(max(int(arena_bytes), 16), dtype=np.uint8),
        np.zeros(3, dtype=np.int64),
    )


def key_ranges(parts: int) -> list[np.ndarray]:
    """``parts`` consecutive ranges of keys, about equal, that cover every key: uint64 ``[first, last]``
    each (the ``keys`` argument of :func:`merge_into`, :func:`table_bytes` and :func:`flatten`).

    >>> [r.tolist() for r in key_ranges(2)]
    [[0, 9223372036854775807], [9223372036854775808, 18446744073709551615]]
    """
    cuts = [(i << 64) // parts for i in range(parts + 1)]
    return [np.array([cuts[i], cuts[i + 1] - 1], dtype=np.uint64) for i in range(parts)]


def grow_table(table: CountTable, min_distinct: int = 0, min_arena: int = 0) -> CountTable:
    """``table`` with room for at least ``min_distinct`` entries at load 1/2 and an arena of at least
    ``min_arena`` bytes; after a :data:`GROW`, also doubles the slots if half full and the arena if it is
    short of ``state[ARENA_NEEDED]``. Returns ``table`` itself when nothing had to grow."""
    n_slots = table.slots.shape[0] // 2
    n = int(table.state[N_DISTINCT])
    want = n_slots
    while want // 2 <= max(n, int(min_distinct)):
        want *= 2
    arena_size = table.arena.shape[0]
    need = max(int(min_arena), int(table.state[ARENA_NEEDED]))
    want_arena = arena_size if need <= arena_size else max(2 * arena_size, need)
    table.state[ARENA_NEEDED] = 0
    if want == n_slots and want_arena == arena_size:
        return table
    slots, refs = table.slots, table.refs
    if want != n_slots:  # (np.empty: _rehash clears them without the GIL, see the performance notes)
        slots = np.empty(2 * want, dtype=np.uint64)
        refs = np.empty(2 * want, dtype=np.int64)
        _rehash(table.slots, table.refs, slots, refs)
    arena = table.arena
    if want_arena != arena_size:
        used = int(table.state[ARENA_USED])
        arena = np.empty(want_arena, dtype=np.uint8)
        arena[:used] = table.arena[:used]
    return CountTable(slots, refs, arena, table.state)


# ---------------------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _short_key(data, i, length):
    """Key of ``data[i:i+length]``, ``1 <= length < 8``: the bytes and the length, bijectively."""
    return (_word(data, i, length) | (_U(length) << _U(56))) * _M1


@njit(cache=True, nogil=True)
def _long_key(data, i, length):
    """Key of ``data[i:i+length]``, ``length >= 8``: a hash, 8 bytes at a time, never 0 and never equal to a
    short key (its pre-image has a zero top byte)."""
    h = _U(length)
    for q in range(i, i + length, 8):
        h = (h ^ _word(data, q, min(8, i + length - q))) * _M1
        h ^= h >> _U(29)
    return ((h & _LOW56) | _U(1)) * _M1


@njit(cache=True, nogil=True)
def _short_bytes(key, out, pos):
    """Write the bytes of a short key to ``out[pos:]``; returns their length."""
    pre = key * _M1_INV
    length = np.int64(pre >> _U(56))
    for k in range(length):
        out[pos + k] = np.uint8((pre >> _U(8 * k)) & _U(0xFF))
    return length


@njit(cache=True, nogil=True)
def _same(a, i, b, j, length):
    for q in range(0, length, 8):
        n = min(8, length - q)
        if _word(a, i + q, n) != _word(b, j + q, n):
            return False
    return True


@njit(cache=True, nogil=True)
def _shift(slots):
    n = slots.shape[0] // 2
    bits = 0
    while (1 << bits) < n:
        bits += 1
    return _U(64 - bits)


@njit(cache=True, nogil=True)
def _rehash(old_slots, old_refs, slots, refs):
    """Clear the larger ``slots``/``refs`` (whatever they hold) and re-insert every entry of ``old_*`` there
    (keys are kept)."""
    for s in range(slots.shape[0]):
        slots[s] = 0
        refs[s] = 0
    shift = _shift(slots)
    mask = slots.shape[0] // 2 - 1
    for s in range(old_slots.shape[0] // 2):
        key = old_slots[2 * s]
        if key == 0:
            continue
        t = np.int64(key >> shift)
        while slots[2 * t] != 0:
            t = (t + 1) & mask
        slots[2 * t] = key
        slots[2 * t + 1] = old_slots[2 * s + 1]
        refs[2 * t] = old_refs[2 * s]
        refs[2 * t + 1] = old_refs[2 * s + 1]


# ---------------------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _count_ends(data, p, ends, m, slots, refs, arena, st):
    """Count the pre-tokens ``data[p:ends[0]]``, ``data[ends[0]:ends[1]]``, ... (``m`` of them). Returns how
    many were counted: ``m``, or fewer when the table is half full or the arena full (the state then says
    what to grow, and the caller resumes at that pre-token)."""
    n = st[N_DISTINCT]
    used = st[ARENA_USED]
    mask = slots.shape[0] // 2 - 1
    shift = _shift(slots)
    limit = slots.shape[0] // 4
    for t in range(m):
        e = ends[t]
        length = e - p
        if length < 8:
            key = _short_key(data, p, length)
            s = np.int64(key >> shift)
            while True:
                kk = slots[2 * s]
                if kk == key:
                    slots[2 * s + 1] += _U(1)
                    break
                if kk == 0:
                    if n >= limit:
                        st[N_DISTINCT] = n
                        st[ARENA_USED] = used
                        return t
                    slots[2 * s] = key
                    slots[2 * s + 1] = _U(1)
                    n += 1
                    break
                s = (s + 1) & mask
        else:
            key = _long_key(data, p, length)
            s = np.int64(key >> shift)
            while True:
                kk = slots[2 * s]
                if kk == key and refs[2 * s + 1] == length and _same(arena, refs[2 * s], data, p, length):
                    slots[2 * s + 1] += _U(1)
                    break
                if kk == 0:
                    if n >= limit or used + length > arena.shape[0]:
                        st[N_DISTINCT] = n
                        st[ARENA_USED] = used
                        st[ARENA_NEEDED] = used + length
                        return t
                    slots[2 * s] = key
                    slots[2 * s + 1] = _U(1)
                    refs[2 * s] = used
                    refs[2 * s + 1] = length
                    for q in range(length):
                        arena[used + q] = data[p + q]
                    used += length
                    n += 1
                    break
                s = (s + 1) & mask
        p = e
    st[N_DISTINCT] = n
    st[ARENA_USED] = used
    return m


TWO_STREAMS_FROM = 2048  # bytes: a segment this long is scanned as two halves at once (see _scan2)


@njit(cache=True, nogil=True)
def _middle_cut(data, lo, hi):
    """A cut near the middle of ``data[lo:hi]`` (printable non-space ASCII, then ASCII whitespace: a
    pre-token boundary), or 0 if there is none. Segments hold no special token, so nothing else can cross."""
    i = (lo + hi) // 2
    while i < hi:
        b = data[i]
        if (b == 0x20 or 0x09 <= b <= 0x0D) and 0x21 <= data[i - 1] <= 0x7E:
            return i
        i += 1
    return 0


@njit(cache=True, nogil=True)
def _save_resume(resume, k, pa, pb, mid):
    """Where :func:`count_gpt2` continues: segment ``k``, the two streams' positions, the middle cut."""
    resume[0] = k
    resume[1] = pa
    resume[2] = pb
    resume[3] = mid


@njit(cache=True, nogil=True)
def count_gpt2(data, bounds, classes, table, buf, resume, budget):
    """Count the GPT-2 pre-tokens of ``data[bounds[k, 0]:bounds[k, 1]]`` over the segments ``k`` (each
    pre-tokenized as a text of its own) into ``table``.

    A segment of :data:`TWO_STREAMS_FROM` bytes or more is scanned as two halves side by side, cut at a
    pre-token boundary near its middle. ``resume = [segment, position, second position, middle]`` (int64,
    all 0 for a new chunk) says where to start and is updated when the call returns early: :data:`GROW`
    (grow the table, call again), :data:`PAUSED` (about ``budget`` bytes were counted; call again) or
    :data:`DONE`. ``buf`` (int64, a few thousand entries) takes the scanner's pre-token ends a block at a
    time, half of it for each stream. ``data`` must be valid UTF-8 (see ``gpt2_scan``).
    """
    slots = table.slots
    refs = table.refs
    arena = table.arena
    st = table.state
    kinds = _KINDS
    half = buf.shape[0] // 2
    if half < 4 or resume.shape[0] < 4:
        raise ValueError("count_gpt2: buf needs at least 8 entries and resume 4")
    buf_a = buf[:half]
    buf_b = buf[half:]
    limit = half - 2
    done = 0
    for k in range(resume[0], bounds.shape[0]):
        start = bounds[k, 0]
        end = bounds[k, 1]
        if k == resume[0] and (resume[1] > start or resume[3] > 0):
            pa = max(resume[1], start)
            pb = resume[2]
            mid = resume[3]
        else:
            pa = start
            mid = _middle_cut(data, start, end) if end - start >= TWO_STREAMS_FROM else 0
            pb = mid
        a_end = mid if mid > 0 else end
        b_end = end if mid > 0 else 0
        while pa < a_end or pb < b_end:
            if done >= budget:
                _save_resume(resume, k, pa, pb, mid)
                return PAUSED
            ma = 0
            mb = 0
            if pa < a_end and pb < b_end:
                ma, mb = _scan2(data, pa, a_end, pb, b_end, classes, kinds, buf_a, buf_b, limit)
            elif pa < a_end:
                ma = _scan(data, pa, a_end, classes, kinds, buf_a, 0, limit)
            else:
                mb = _scan(data, pb, b_end, classes, kinds, buf_b, 0, limit)
            got = _count_ends(data, pa, buf_a, ma, slots, refs, arena, st)
            if got > 0:
                done += buf_a[got - 1] - pa
                pa = buf_a[got - 1]
            if got < ma:
                _save_resume(resume, k, pa, pb, mid)
                return GROW
            got = _count_ends(data, pb, buf_b, mb, slots, refs, arena, st)
            if got > 0:
                done += buf_b[got - 1] - pb
                pb = buf_b[got - 1]
            if got < mb:
                _save_resume(resume, k, pa, pb, mid)
                return GROW
    resume[:] = 0
    resume[0] = bounds.shape[0]
    return DONE


@njit(cache=True, nogil=True)
def add_counts(table, blob, offsets, counts, resume):
    """Add pre-tokens ``blob[offsets[j]:offsets[j+1]]`` with ``counts[j]`` to ``table``, from ``j = resume[0]``
    on; returns :data:`DONE`, or :data:`GROW` with ``resume[0]`` saved. Merges tables and takes the counts of
    the ``regex`` engine."""
    slots = table.slots
    refs = table.refs
    arena = table.arena
    st = table.state
    n = st[N_DISTINCT]
    used = st[ARENA_USED]
    mask = slots.shape[0] // 2 - 1
    shift = _shift(slots)
    limit = slots.shape[0] // 4
    for j in range(resume[0], counts.shape[0]):
        i = offsets[j]
        length = offsets[j + 1] - i
        c = _U(counts[j])
        key = _short_key(blob, i, length) if length < 8 else _long_key(blob, i, length)
        s = np.int64(key >> shift)
        while True:
            kk = slots[2 * s]
            if kk == key and (length < 8 or (refs[2 * s + 1] == length and _same(arena, refs[2 * s], blob, i, length))):
                slots[2 * s + 1] += c
                break
            if kk == 0:
                if n >= limit or (length >= 8 and used + length > arena.shape[0]):
                    resume[0] = j
                    st[N_DISTINCT] = n
                    st[ARENA_USED] = used
                    st[ARENA_NEEDED] = used + length
                    return GROW
                slots[2 * s] = key
                slots[2 * s + 1] = c
                if length >= 8:
                    refs[2 * s] = used
                    refs[2 * s + 1] = length
                    for q in range(length):
                        arena[used + q] = blob[i + q]
                    used += length
                n += 1
                break
            s = (s + 1) & mask
    resume[0] = counts.shape[0]
    st[N_DISTINCT] = n
    st[ARENA_USED] = used
    return DONE


@njit(cache=True, nogil=True)
def _entry_length(slots, refs, s):
    """Length of the entry in slot ``s`` (0 when the slot is empty). Helpers take arrays, never the
    namedtuple: Numba increfs every array of a tuple argument at each call that is not inlined (10x slower
    here)."""
    key = slots[2 * s]
    if key == 0:
        return 0
    pre = key * _M1_INV
    if (pre >> _U(56)) != 0:
        return np.int64(pre >> _U(56))
    return refs[2 * s + 1]


@njit(cache=True, nogil=True)
def _in_range(key, k_lo, k_hi):
    """Whether ``key`` is in the key range ``k_lo..k_hi`` (inclusive; :func:`key_ranges`)."""
    return key >= k_lo and key <= k_hi


@njit(cache=True, nogil=True)
def merge_into(dst, src, keys, hi, resume):
    """Add the entries of table ``src`` whose key is in ``keys[0]..keys[1]`` (uint64, inclusive) to table
    ``dst``, from slot ``resume[0]`` of ``src`` to slot ``hi`` (:func:`key_slots`); returns :data:`DONE`, or
    :data:`GROW` (grow ``dst``, call again) with ``resume[0]`` saved.

    Threads may merge different key ranges at once, each into a table of its own, while the others read
    that table as their ``src``: a merge only fills empty slots of ``dst``, adds to entries of its own range
    and appends to the arena, so the entries of every other range stay as they were (and a grown ``dst`` is
    a new table; the old one is left to its readers)."""
    slots = dst.slots
    refs = dst.refs
    arena = dst.arena
    st = dst.state
    s_slots = src.slots
    s_refs = src.refs
    s_arena = src.arena
    n = st[N_DISTINCT]
    used = st[ARENA_USED]
    mask = slots.shape[0] // 2 - 1
    shift = _shift(slots)
    limit = slots.shape[0] // 4
    k_lo = keys[0]
    k_hi = keys[1]
    for j in range(resume[0], min(hi, s_slots.shape[0] // 2)):
        key = s_slots[2 * j]
        if key == 0 or not _in_range(key, k_lo, k_hi):
            continue
        c = s_slots[2 * j + 1]
        length = s_refs[2 * j + 1]
        long = (key * _M1_INV) >> _U(56) == 0
        s = np.int64(key >> shift)
        while True:
            kk = slots[2 * s]
            if kk == key and (not long or (refs[2 * s + 1] == length and _same(arena, refs[2 * s], s_arena,
                                                                                s_refs[2 * j], length))):
                slots[2 * s + 1] += c
                break
            if kk == 0:
                if n >= limit or (long and used + length > arena.shape[0]):
                    resume[0] = j
                    st[N_DISTINCT] = n
                    st[ARENA_USED] = used
                    st[ARENA_NEEDED] = used + length if long else 0
                    return GROW
                slots[2 * s] = key
                slots[2 * s + 1] = c
                if long:
                    refs[2 * s] = used
                    refs[2 * s + 1] = length
                    a = s_refs[2 * j]
                    for q in range(length):
                        arena[used + q] = s_arena[a + q]
                    used += length
                n += 1
                break
            s = (s + 1) & mask
    resume[0] = hi
    st[N_DISTINCT] = n
    st[ARENA_USED] = used
    return DONE


@njit(cache=True, nogil=True)
def key_slots(table, keys, out):
    """The slots that hold every entry whose key is in ``keys[0]..keys[1]``: ``[out[0], out[1])`` and
    ``[out[2], out[3])`` (empty unless the run wraps past the last slot). An entry lies at its home slot
    (its key's top bits) or after it in the run of full slots that follows, so from the home slot of
    ``keys[0]`` to the first empty slot after that of ``keys[1]``. Entries of other keys are in there too.
    A range of ``1/P`` of the keys takes about ``1/P`` of the slots (:func:`key_ranges`)."""
    _slot_runs(table.slots, keys[0], keys[1], out)


@njit(cache=True, nogil=True)
def _slot_runs(slots, k_lo, k_hi, out):
    """:func:`key_slots` on the array."""
    n = slots.shape[0] // 2
    shift = _shift(slots)
    a = np.int64(k_lo >> shift)
    b = np.int64(k_hi >> shift)
    e = b
    steps = 0
    while slots[2 * e] != 0 and steps < n:  # at most half full: an empty slot comes
        e = (e + 1) & (n - 1)
        steps += 1
    out[0] = a
    out[2] = 0
    out[3] = 0
    if steps == n:
        out[0] = 0
        out[1] = n
    elif e >= b:
        out[1] = e
    else:  # wrapped past the last slot
        out[1] = n
        out[3] = min(e, a)


@njit(cache=True, nogil=True)
def table_bytes(table, min_len, lo, hi, keys):
    """``(entries, bytes)`` of the entries of at least ``min_len`` bytes in slots ``[lo, hi)`` whose key is
    in ``keys[0]..keys[1]`` (``pretokenize.distinct`` counts a merged table's entries with it)."""
    slots = table.slots
    refs = table.refs
    k_lo = keys[0]
    k_hi = keys[1]
    n = 0
    total = 0
    for s in range(lo, hi):
        length = _entry_length(slots, refs, s)
        if length >= min_len and length > 0 and _in_range(slots[2 * s], k_lo, k_hi):
            n += 1
            total += length
    return n, total


@njit(cache=True, nogil=True)
def flatten(table, min_len, lo, hi, keys, blob, offsets, counts, scratch):
    """Write the entries of at least ``min_len`` bytes in slots ``[lo, hi)`` whose key is in
    ``keys[0]..keys[1]`` grouped by length, shortest first (lengths from 256 on share the last group): entry
    ``j`` is ``blob[offsets[j]:offsets[j+1]]``, seen ``counts[j]`` times. The arrays may be larger than
    needed (:func:`table_bytes` gives the sizes; ``state`` bounds them: entries <= ``n_distinct``, bytes <=
    ``arena_used + 7 * n_distinct``); too small, they raise ``ValueError`` before anything is written.
    ``scratch``: int64, 515 entries or more (the kernel allocates nothing, see
    ``text_kernels.split_specials``). Returns the number of entries."""
    slots = table.slots
    refs = table.refs
    arena = table.arena
    if scratch.shape[0] < 515:
        raise ValueError("flatten: scratch needs 515 entries")
    k_lo = keys[0]
    k_hi = keys[1]
    first = scratch[:258]  # entries of each length (capped at 256), then their first index
    pos = scratch[258:515]
    for g in range(515):
        scratch[g] = 0
    total = 0
    for s in range(lo, hi):
        length = _entry_length(slots, refs, s)
        if length >= min_len and length > 0 and _in_range(slots[2 * s], k_lo, k_hi):
            first[min(length, 256) + 1] += 1
            total += length
    for g in range(1, 258):
        first[g] += first[g - 1]
    n = first[257]
    if n >= offsets.shape[0] or n > counts.shape[0] or total > blob.shape[0]:
        raise ValueError("flatten: blob, offsets or counts too small")
    # Byte offsets: lengths below 256 are known per group; the long group is laid out as it is filled.
    for g in range(1, 256):
        pos[g + 1] = pos[g] + g * (first[g + 1] - first[g])
    long_pos = pos[256]
    for s in range(lo, hi):
        length = _entry_length(slots, refs, s)
        if length < min_len or length == 0 or not _in_range(slots[2 * s], k_lo, k_hi):
            continue
        g = min(length, 256)
        j = first[g]
        first[g] += 1
        if g < 256:
            at = pos[g]
            pos[g] += length
        else:
            at = long_pos
            long_pos += length
        offsets[j] = at
        counts[j] = np.int64(slots[2 * s + 1])
        key = slots[2 * s]
        if length < 8:
            _short_bytes(key, blob, at)
        else:
            a = refs[2 * s]
            for q in range(length):
                blob[at + q] = arena[a + q]
    offsets[n] = long_pos
    return n


PICKLE_RECORD_MAX = 19  # bytes that a pickled entry takes besides its key's bytes: at most BINBYTES8 (an
# opcode and 8 length bytes) and LONG1 (an opcode, a length byte and 8 bytes)


@njit(cache=True, nogil=True)
def _pickle_entry(out, p, in_batch, batch, pre, length, arena, a, c):
    """Write one entry at ``out[p:]``: its key (``length`` bytes: those of the short key's pre-image ``pre``
    below 8, else ``arena[a:a + length]``) as SHORT_BINBYTES, BINBYTES or BINBYTES8, and its count ``c``
    (below 2**63) as BININT1, BININT2, BININT or LONG1; after a MARK if it starts a batch (``in_batch ==
    0``), before a SETITEMS if it ends one (``in_batch == batch - 1``). Returns the position after it. The
    caller checks the room: ``length + PICKLE_RECORD_MAX + 2`` bytes."""
    if in_batch == 0:
        out[p] = 0x28  # MARK
        p += 1
    if length < 256:
        out[p] = 0x43  # SHORT_BINBYTES
        out[p + 1] = np.uint8(length)
        p += 2
    else:
        width = 4 if length < (1 << 32) else 8
        out[p] = 0x42 if width == 4 else 0x8E  # BINBYTES, BINBYTES8
        for k in range(width):
            out[p + 1 + k] = np.uint8((length >> (8 * k)) & 0xFF)
        p += 1 + width
    if length < 8:
        for k in range(length):
            out[p + k] = np.uint8((pre >> _U(8 * k)) & _U(0xFF))
    else:
        for q in range(length):
            out[p + q] = arena[a + q]
    p += length
    if c < 256:
        out[p] = 0x4B  # BININT1
        out[p + 1] = np.uint8(c)
        p += 2
    elif c < (1 << 16):
        out[p] = 0x4D  # BININT2
        out[p + 1] = np.uint8(c & 0xFF)
        out[p + 2] = np.uint8(c >> 8)
        p += 3
    else:
        width = 4 if c < (1 << 31) else 8
        if width == 4:
            out[p] = 0x4A  # BININT (4 bytes, signed)
            p += 1
        else:
            out[p] = 0x8A  # LONG1: 8 bytes, two's complement
            out[p + 1] = 8
            p += 2
        for k in range(width):
            out[p + k] = np.uint8((c >> (8 * k)) & 0xFF)
        p += width
    if in_batch == batch - 1:
        out[p] = 0x75  # SETITEMS
        p += 1
    return p


@njit(cache=True, nogil=True)
def _find(slots, refs, arena, key, length, src_arena, at):
    """The slot of ``slots`` that holds ``key`` (a long key's bytes: ``src_arena[at:at + length]``), or -1."""
    mask = slots.shape[0] // 2 - 1
    s = np.int64(key >> _shift(slots))
    while True:
        kk = slots[2 * s]
        if kk == 0:
            return -1
        if kk == key and (length < 8 or (refs[2 * s + 1] == length and _same(arena, refs[2 * s], src_arena, at,
                                                                              length))):
            return s
        s = (s + 1) & mask


@njit(cache=True, nogil=True)
def _pickle_slots(slots, refs, arena, lo, hi, k_lo, k_hi, extra, out, p, in_batch, batch):
    """Write the entries in slots ``[lo, hi)`` whose key is in ``k_lo..k_hi`` at ``out[p:]``
    (:func:`_pickle_entry`), their counts plus ``extra[s]`` unless ``extra`` is empty, going on with a batch
    that holds ``in_batch`` entries. Returns ``(p, in_batch)`` after them; raises ``ValueError`` before an
    entry would not fit in ``out`` (:data:`PICKLE_RECORD_MAX`)."""
    more = extra.shape[0] > 0
    for s in range(lo, hi):
        key = slots[2 * s]
        if key == 0 or not _in_range(key, k_lo, k_hi):
            continue
        pre = key * _M1_INV
        length = np.int64(pre >> _U(56))
        if length == 0:
            length = refs[2 * s + 1]
        if p + length + PICKLE_RECORD_MAX + 2 > out.shape[0]:
            raise ValueError("pickling: out too small")
        c = np.int64(slots[2 * s + 1]) + (extra[s] if more else 0)
        p = _pickle_entry(out, p, in_batch, batch, pre, length, arena, refs[2 * s], c)
        in_batch += 1
        if in_batch == batch:
            in_batch = 0
    return p, in_batch


@njit(cache=True, nogil=True)
def pickle_entries(table, lo, hi, keys, extra, out, batch):
    """Write the entries in slots ``[lo, hi)`` whose key is in ``keys[0]..keys[1]`` to ``out`` as the body of a
    pickle of ``{bytes: int}`` (``pretokenize.table_to_dict`` adds the header, PROTO 5 and EMPTY_DICT, and
    STOP), ``batch`` entries at a time between MARK and SETITEMS (:func:`_pickle_entry`). ``extra``: int64
    per slot, added to the counts (or empty). Returns the bytes written. An entry takes at most its length
    plus :data:`PICKLE_RECORD_MAX` bytes, a batch 2 more; an ``out`` too small raises ``ValueError`` before
    anything is written past it."""
    p, in_batch = _pickle_slots(table.slots, table.refs, table.arena, lo, hi, keys[0], keys[1], extra, out, 0, 0,
                                batch)
    if in_batch > 0:
        out[p] = 0x75  # SETITEMS
        p += 1
    return p


@njit(cache=True, nogil=True)
def pickle_two(big, small, ranges, extra, out, progress, runs, batch):
    """Pickle (as :func:`pickle_entries`) the sums of two tables without merging them (neither is written),
    range by range of keys (``ranges``: uint64 ``[first, last]`` rows, :func:`key_ranges`): first the
    entries of ``small`` in the range that ``big`` lacks, adding the counts of the others to ``extra``
    (int64 per slot of ``big``, any values: each range's slots are cleared first), then the entries of
    ``big`` in the range with ``extra`` added. So every key comes once, with its sum.

    After each range, ``progress[0]`` (int64) is set to the bytes written so far, by a store with release
    ordering: a thread that reads it with :func:`published` may read that much of ``out`` while this kernel
    goes on, and it ends at a whole entry. ``runs``: int64, 8 entries of scratch (the kernel allocates
    nothing, see ``text_kernels.split_specials``). Returns the bytes written; ``out`` is checked as in
    :func:`pickle_entries` (sized for both tables, it is large enough)."""
    slots = big.slots
    refs = big.refs
    arena = big.arena
    s_slots = small.slots
    s_refs = small.refs
    s_arena = small.arena
    if runs.shape[0] < 8:
        raise ValueError("pickle_two: runs needs 8 entries")
    s_runs = runs[4:8]
    p = 0
    in_batch = 0
    for r in range(ranges.shape[0]):
        k_lo = ranges[r, 0]
        k_hi = ranges[r, 1]
        _slot_runs(slots, k_lo, k_hi, runs)
        for q in range(2):
            for s in range(runs[2 * q], runs[2 * q + 1]):
                extra[s] = 0
        _slot_runs(s_slots, k_lo, k_hi, s_runs)
        for q in range(2):
            for s in range(s_runs[2 * q], s_runs[2 * q + 1]):
                key = s_slots[2 * s]
                if key == 0 or not _in_range(key, k_lo, k_hi):
                    continue
                length = _entry_length(s_slots, s_refs, s)
                c = np.int64(s_slots[2 * s + 1])
                j = _find(slots, refs, arena, key, length, s_arena, s_refs[2 * s])
                if j >= 0:
                    extra[j] += c
                    continue
                if p + length + PICKLE_RECORD_MAX + 2 > out.shape[0]:
                    raise ValueError("pickling: out too small")
                p = _pickle_entry(out, p, in_batch, batch, key * _M1_INV, length, s_arena, s_refs[2 * s], c)
                in_batch += 1
                if in_batch == batch:
                    in_batch = 0
        for q in range(2):
            p, in_batch = _pickle_slots(slots, refs, arena, runs[2 * q], runs[2 * q + 1], k_lo, k_hi, extra, out,
                                        p, in_batch, batch)
        if in_batch > 0:
            out[p] = 0x75  # SETITEMS
            p += 1
            in_batch = 0
        _store_release(progress, 0, p)
    return p


@njit(cache=True, nogil=True)
def published(progress):
    """``progress[0]`` read with acquire ordering (see :func:`pickle_two`)."""
    return _load_acquire(progress, 0)
