"""Numba kernels for the pre-tokenization stage: UTF-8 validation (strict, with Python's offsets) and the
split at special tokens (leftmost, longest first), shared by training and encoding.

The counting itself is the GPT-2 scanner's (:mod:`bpe_numba.gpt2_scan`). Kernels take arrays and scalars.

Performance notes
-----------------
- ``utf8_first_invalid`` checks 10 MB in about 10 ms (an ASCII fast path; multi-byte sequences are checked
  against the exact ranges of RFC 3629, so its offset equals ``bytes.decode``'s ``exc.start``).
- An earlier design counted the distinct *units* between safe cuts here and ran ``regex`` once per distinct
  unit (0.13 s per 10 MB of synthetic English, 68 MB/s on 40 MB); the GPT-2 scanner now counts pre-tokens
  directly at 160-230 MB/s, so that path is gone. Encoding still caches units (``encode_kernels``).
- ``split_specials`` replaced ``regex`` alternation over the bytes (``finditer`` plus Python lists of the
  offsets and of each occurrence's token): 64 MiB of TinyStories-like text (90 K ``<|endoftext|>``) in
  0.062 s against 0.087 s; encoding gained more (0.04 s per 10 MB), where each occurrence's token id was
  looked up in Python. It then scanned byte by byte for a possible first byte; now it skips 8 bytes at a
  time while none occurs (see the kernel).
- An OR of 64 bytes at a time (hoping LLVM would vectorize it) for the UTF-8 check's ASCII path and for
  the search of a special token's first byte: 0.32-0.40 and 0.34-0.35 ns a byte on ``prose_en.txt``,
  against 0.19-0.24 for the 8-byte words here (2026-11-30); Numba's loop was not vectorized.
"""

from __future__ import annotations

import numpy as np

from .jit import njit


_ONES = np.uint64(0x0101010101010101)
_HIGH = np.uint64(0x8080808080808080)


@njit(cache=True, nogil=True)
def _load8(data, i):
    """``data[i:i+8]`` as a little-endian word (the caller checks ``i + 8 <= len(data)``)."""
    w = np.uint64(0)
    for k in range(8):
        w |= np.uint64(data[np.uint64(i + k)]) << np.uint64(8 * k)
    return w


@njit(cache=True, nogil=True)
def _has_zero(w):
    """Nonzero exactly when some byte of ``w`` is 0."""
    return (w - _ONES) & ~w & _HIGH


@njit(cache=True, nogil=True)
def utf8_first_invalid(data):
    """Offset of the first byte where strict UTF-8 decoding fails, or -1 (the same offset Python's
    ``bytes.decode("utf-8")`` reports as ``exc.start``)."""
    n = data.shape[0]
    i = 0
    while i < n:
        # ASCII fast path: eight bytes at a time while no byte has its high bit set.
        while i + 8 <= n and not (_load8(data, i) & _HIGH):
            i += 8
        if i >= n:
            break
        b = data[i]
        if b < 0x80:
            i += 1
            continue
        if 0xC2 <= b <= 0xDF:
            need = 1
            lo = 0x80
            hi = 0xBF
        elif b == 0xE0:
            need = 2
            lo = 0xA0
            hi = 0xBF
        elif b == 0xED:
            need = 2
            lo = 0x80
            hi = 0x9F
        elif 0xE1 <= b <= 0xEF:
            need = 2
            lo = 0x80
            hi = 0xBF
        elif b == 0xF0:
            need = 3
            lo = 0x90
            hi = 0xBF
        elif b == 0xF4:
            need = 3
            lo = 0x80
            hi = 0x8F
        elif 0xF1 <= b <= 0xF3:
            need = 3
            lo = 0x80
            hi = 0xBF
        else:
            return i
        if i + 1 >= n or not (lo <= data[i + 1] <= hi):
            return i
        for k in range(2, need + 1):
            if i + k >= n or not (0x80 <= data[i + k] <= 0xBF):
                return i
        i += need + 1
    return -1


@njit(cache=True, nogil=True)
def split_specials(data, blob, offsets, first, bounds, which):
    """Split ``data`` at special token occurrences, leftmost first and, at one position, the first token in
    ``blob`` order that matches (the caller orders them longest first, so the longest wins); matching
    resumes after each occurrence. Token ``t`` is ``blob[offsets[t]:offsets[t + 1]]``; ``first[b]`` says
    whether some token starts with byte ``b``. Writes segment ``k`` as ``bounds[k] = [start, end)`` and the
    token that follows it as ``which[k]`` (-1 after the last); returns the number of segments. ``bounds``
    needs room for ``len(data) // shortest token + 2`` rows."""
    n = data.shape[0]
    n_tok = offsets.shape[0] - 1
    # Up to four distinct first bytes: skip 8 bytes at a time while none of them occurs (SWAR zero-byte
    # test on the word XOR each first byte broadcast); the usual `<|endoftext|>` has one, and then one test
    # a word (prose_en: 0.016 s instead of 0.024 s for four, median of 7).
    # (Four words, not an array: an allocation here would make every process that loads this kernel
    # import numba.np.arrayobj, 0.04 s.)
    n_first = 0
    p0 = p1 = p2 = p3 = np.uint64(0)
    for b in range(256):
        if first[b]:
            w = np.uint64(b) * _ONES
            if n_first == 0:
                p0 = p1 = p2 = p3 = w  # the unused ones repeat the first
            elif n_first == 1:
                p1 = w
            elif n_first == 2:
                p2 = w
            elif n_first == 3:
                p3 = w
            n_first += 1
    k = 0
    seg = 0
    i = 0
    while i < n:
        if n_first == 1:
            while i + 8 <= n and not _has_zero(_load8(data, i) ^ p0):
                i += 8
            if i >= n:
                break
        elif n_first <= 4:
            while i + 8 <= n:
                w = _load8(data, i)
                if _has_zero(w ^ p0) | _has_zero(w ^ p1) | _has_zero(w ^ p2) | _has_zero(w ^ p3):
                    break
                i += 8
            if i >= n:
                break
        matched = -1
        if first[data[i]]:
            for t in range(n_tok):
                a = offsets[t]
                m = offsets[t + 1] - a
                if i + m <= n:
                    q = 0
                    while q < m and data[i + q] == blob[a + q]:
                        q += 1
                    if q == m:
                        matched = t
                        break
        if matched < 0:
            i += 1
            continue
        bounds[k, 0] = seg
        bounds[k, 1] = i
        which[k] = matched
        k += 1
        i += offsets[matched + 1] - offsets[matched]
        seg = i
    bounds[k, 0] = seg
    bounds[k, 1] = n
    which[k] = -1
    return k + 1


@njit(cache=True, nogil=True)
def first_cut(data, lo, hi, gpt2, cut_before, cut_at, blob, offsets):
    """First offset ``i`` in ``[max(lo, 1), hi)`` where ``data`` may be cut for parallel work, or -1.

    With ``gpt2``: a *safe cut* (``cut_before[data[i - 1]]`` and ``cut_at[data[i]]``: printable ASCII, then
    ASCII whitespace); otherwise the start of a special token occurrence. Either way no occurrence of a
    special token (``blob[offsets[t]:offsets[t + 1]]``) may start before ``i`` and end after it. The caller
    gives ``data`` the longest special token's length of context on both sides of ``[lo, hi)`` (or the
    file's ends)."""
    n = data.shape[0]
    n_tok = offsets.shape[0] - 1
    i = max(lo, 1)
    hi = min(hi, n)
    while i < hi:
        if gpt2:
            ok = cut_at[data[i]] and cut_before[data[i - 1]]
        else:
            ok = False
            for t in range(n_tok):
                if _occurs(data, i, blob, offsets[t], offsets[t + 1]):
                    ok = True
                    break
        if ok:
            for t in range(n_tok):
                m = offsets[t + 1] - offsets[t]
                for j in range(max(i - m + 1, 0), i):
                    if _occurs(data, j, blob, offsets[t], offsets[t + 1]):
                        ok = False
                        break
                if not ok:
                    break
            if ok:
                return i
        i += 1
    return -1


@njit(cache=True, nogil=True)
def _occurs(data, i, blob, a, b):
    """Whether ``blob[a:b]`` occurs in ``data`` at ``i``."""
    m = b - a
    if i + m > data.shape[0]:
        return False
    for q in range(m):
        if data[i + q] != blob[a + q]:
            return False
    return True
