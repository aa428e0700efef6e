"""A Numba scanner for the GPT-2 pre-tokenization pattern, byte-exact with the ``regex`` package.

The pattern (``pretokenize.GPT2_PATTERN``)::

    '(?:[sdmt]|ll|ve|re)| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+

needs only three character classes, and the ``regex`` package's own tables define them: bit 1 = ``\\p{L}``,
bit 2 = ``\\p{N}``, bit 4 = ``\\s`` (:func:`char_classes`, generated from the installed ``regex`` once and
cached on disk). With those, ``regex.finditer`` reduces to a few rules at each match start ``i``:

1. ``'`` followed by ``s``, ``d``, ``m`` or ``t`` (2 bytes), or ``ll``, ``ve``, ``re`` (3 bytes): a
   contraction. Lower-case ASCII after U+0027 only.
2. U+0020 followed by a letter, number or *other* character (neither of the three classes): the space plus
   the maximal run of that class. Otherwise a letter, number or other character starts a maximal run of
   its class (the apostrophe is an *other* character when rule 1 did not apply).
3. Whitespace: the maximal whitespace run ``[i, j)``. At the end of the text the whole run matches.
   Before a non-space, ``\\s+(?!\\S)`` backtracks one character, so a run of two or more characters gives
   up its last one (which rule 2 or this rule then matches on its own, as `` word`` or as a 1-character
   ``\\s+``); a run of one character matches ``\\s+`` as it is.

Rules only apply where a match starts: in ``!'s`` the run of others takes ``!'`` and ``s`` follows; in
`` 's`` the space glues to ``'``. The scanner is a 12-state automaton over 10 kinds of character (the three
classes, U+0020, U+0027 and the letters of the contractions) that writes, branch-free, the end of the
pre-token before the current character and, for the backtracking above and for ``'l``/``'v``/``'r`` that
turn out not to be contractions, the one before the previous character.

The kernels take valid UTF-8 (the caller validates; on invalid input they stay in bounds but the split is
meaningless), decode code points themselves and look their class up in the table. Nothing here runs at
import, and importing it loads no Numba (its kernels start Numba, or the native bundle, at their first call:
:mod:`bpe_numba.jit`); it imports numpy, so ``import bpe_numba`` does not import it.

Surprises in ``regex``'s definitions (2026.5.9 on Python 3.11, checked by ``tests/test_gpt2_scan.py``):
``\\s`` does NOT match U+001C..U+001F, which ``str.isspace`` and ``re``'s ``\\s`` do (both agree on all other
code points); and ``regex`` ships its own, newer Unicode tables than ``unicodedata`` (14.0 here), so
``\\p{L}`` has 13,916 more code points and ``\\p{N}`` 133 more than ``unicodedata.category`` or
``str.isalpha`` say. Hence the table comes from ``regex`` itself. The three classes are disjoint.

Performance notes (process CPU time, one core of the shared 2-core dev machine)
-------------------------------------------------------------------------------
Measured before 2026-11-30 on 40 MB of the package's synthetic stories (10.0 M pre-tokens, 15.6 K distinct):

- ``regex.findall`` over the decoded text: 4.3-7.4 s (5.4-9.3 MB/s), ``Counter`` on top 0.9-1.5 s.
- ``gpt2_split``: 0.115-0.14 s (290-345 MB/s).
- A branchy scanner (per pre-token: contraction? space? then a loop over its class run): 90-105 MB/s as a
  helper function returning each pre-token's end, 200-230 MB/s written as one loop. The automaton
  (branch-free emission, one table load per byte) reached 290-330 MB/s, and storing the next state's row
  offset (``x & 0xF0``) rather than the state took one operation off the loop-carried chain (+10%).
- Indexing with unsigned integers drops Numba's negative-index fix-up, which is what lets LLVM fuse the 8
  byte loads of :func:`_word` into one. With helpers that take arrays marked ``inline="always"``, Numba
  increfs/decrefs the arrays at every call (hashing a pre-token: 2.8 -> 24.8 ns), so no helper here is.

Measured 2026-11-30 on ``prose_en.txt`` (``../shared/corpora/build.py``, 52.4 MB of English) and
``multilingual.txt`` (12.3 MB):

- ``_scan``: 137-158 ms on prose_en (330-380 MB/s), 32-40 ms on multilingual: about 6 cycles a byte, the
  latency of the table load that carries the state from one byte to the next.
- ``_scan2`` (two ranges, one character of each per step): 83 ms on prose_en (1.65x); on multilingual no
  gain (39 vs 40 ms), where decoding multi-byte characters, not the state chain, sets the pace. With the
  character decode in a helper taking the arrays instead of written out twice: 20x slower (the helper was
  not inlined, so every character increfed and decrefed three arrays).
"""

from __future__ import annotations

import hashlib
import threading
import unicodedata
from pathlib import Path

import numpy as np

from .atomic import atomic_file
from .jit import njit
from .tiers import cache_dir

N_CODE_POINTS = 0x110000
LETTER = 1  # \p{L}
NUMBER = 2  # \p{N}
SPACE = 4  # \s

# ---------------------------------------------------------------------------------------------------------
# The character-class table
# ---------------------------------------------------------------------------------------------------------

_CLASS_PATTERNS = ((LETTER, r"\p{L}+"), (NUMBER, r"\p{N}+"), (SPACE, r"\s+"))
_memo: np.ndarray | None = None
_memo_lock = threading.Lock()


_TABLE_FORMAT = 2  # bump when the table or its file changes meaning


def _regex_identity() -> str:
    """The installed ``regex`` package, without importing it (about 30 ms): its location and the size and
    modification time of each of its files, which a new version or build rewrites."""
    import importlib.util

    spec = importlib.util.find_spec("regex")
    if spec is None or not spec.submodule_search_locations:
        return "regex: missing"
    folder = Path(list(spec.submodule_search_locations)[0])
    parts = [str(folder)]
    for f in sorted(folder.iterdir()):
        if f.suffix in (".py", ".so", ".pyd"):
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return " ".join(parts)


def _table_identity() -> str:
    return f"format {_TABLE_FORMAT}; ucd {unicodedata.unidata_version}; {_regex_identity()}"


def _cache_name(identity: str) -> str:
    return f"gpt2_classes-{hashlib.sha256(identity.encode('utf-8', 'surrogateescape')).hexdigest()[:20]}.npz"


def _checksum(starts: np.ndarray, values: np.ndarray, identity: str) -> str:
    h = hashlib.sha256(identity.encode("utf-8", "surrogateescape"))
    h.update(np.ascontiguousarray(starts, dtype="<u4").tobytes())
    h.update(np.ascontiguousarray(values, dtype=np.uint8).tobytes())
    return h.hexdigest()


def generate_char_classes() -> np.ndarray:
    """The class table computed from the installed ``regex`` (about 0.1 s; no caching)."""
    import regex

    # Every code point but the surrogates, as one string: index i is code point i below D800, i + 0x800 above.
    cps = np.concatenate(
        [np.arange(0xD800, dtype=np.uint32), np.arange(0xE000, N_CODE_POINTS, dtype=np.uint32)]
    )
    text = cps.tobytes().decode("utf-32-le")
    by_index = np.zeros(len(text), dtype=np.uint8)
    for bit, pattern in _CLASS_PATTERNS:
        # Mark run starts +1 and run ends -1; the running sum is 1 inside a run.
        edges = np.zeros(len(text) + 1, dtype=np.int32)
        for m in regex.finditer(pattern, text):
            edges[m.start()] += 1
            edges[m.end()] -= 1
        by_index |= (np.cumsum(edges[:-1]) > 0).astype(np.uint8) * np.uint8(bit)
    classes = np.zeros(N_CODE_POINTS, dtype=np.uint8)
    classes[cps] = by_index
    overlap = np.flatnonzero((classes != 0) & (classes != LETTER) & (classes != NUMBER) & (classes != SPACE))
    if len(overlap):  # the scanner gives every character one kind
        raise RuntimeError(
            f"regex {regex.__version__} puts U+{int(overlap[0]):04X} (and {len(overlap) - 1} more) in two of "
            "\\p{L}, \\p{N}, \\s; bpe_numba.gpt2_scan assumes the three are disjoint"
        )
    differs = np.flatnonzero(classes[:128] != ascii_classes())
    if len(differs):  # the scanner's kinds of the ASCII bytes are compiled in (_KINDS)
        raise RuntimeError(
            f"regex {regex.__version__} classes U+{int(differs[0]):04X} otherwise than bpe_numba.gpt2_scan "
            "assumes for ASCII (letters A-Z a-z, digits 0-9, whitespace \\t\\n\\v\\f\\r and space)"
        )
    return classes


def ascii_classes() -> np.ndarray:
    """The classes of the 128 ASCII code points, as every Unicode version and ``regex`` gives them (and
    :func:`generate_char_classes` checks)."""
    classes = np.zeros(128, dtype=np.uint8)
    classes[[*range(0x41, 0x5B), *range(0x61, 0x7B)]] = LETTER
    classes[0x30:0x3A] = NUMBER
    classes[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20]] = SPACE
    return classes


def _to_runs(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.concatenate([[0], np.flatnonzero(classes[1:] != classes[:-1]) + 1]).astype(np.uint32)
    return starts, classes[starts]


def _from_runs(starts: np.ndarray, values: np.ndarray) -> np.ndarray:
    if starts.ndim != 1 or starts.shape != values.shape or not len(starts) or starts[0] != 0:
        raise ValueError("bad class-table cache")
    lengths = np.diff(np.append(starts.astype(np.int64), N_CODE_POINTS))
    if (lengths <= 0).any():
        raise ValueError("bad class-table cache")
    return np.repeat(values.astype(np.uint8), lengths)


def _load(path: Path, identity: str) -> np.ndarray | None:
    """The cached table, or None when the file is missing, unreadable, truncated, for another ``regex``, or
    its content does not match the checksum it was written with (then it is rebuilt, never trusted)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            starts, values = z["starts"], z["values"]
            if str(z["identity"]) != identity or str(z["checksum"]) != _checksum(starts, values, identity):
                return None
            table = _from_runs(starts, values)
    except Exception:  # noqa: BLE001 - any damage (BadZipFile, ValueError, OSError, ...) means: rebuild
        return None
    return table if table.shape == (N_CODE_POINTS,) else None


def _store(path: Path, classes: np.ndarray, identity: str) -> None:
    """Write atomically (:mod:`bpe_numba.atomic`), leaving no temp file behind whatever happens; an OS error
    (read-only or full disk, no such folder) just means no cache."""
    starts, values = _to_runs(classes)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as f:
            np.savez_compressed(f, starts=starts, values=values, identity=np.array(identity),
                                checksum=np.array(_checksum(starts, values, identity)))
    except OSError:
        pass


def char_classes() -> np.ndarray:
    """uint8 table of length 0x110000: bit 1 = ``\\p{L}``, 2 = ``\\p{N}``, 4 = ``\\s`` as the installed
    ``regex`` defines them; surrogates (never in valid UTF-8) are 0.

    Generated once per installed ``regex`` (and Unicode version of ``unicodedata``) and cached on disk
    under :func:`cache_dir` with a checksum of its content; a damaged or foreign file is rebuilt. Falls back
    to generating in memory if the folder is not writable; memoized in process. The returned array is
    read-only and shared.
    """
    global _memo
    if _memo is not None:
        return _memo
    with _memo_lock:
        if _memo is None:
            identity = _table_identity()
            path = cache_dir() / _cache_name(identity)
            table = _load(path, identity)
            if table is None:
                table = generate_char_classes()
                _store(path, table, identity)
            table.setflags(write=False)
            _memo = table
    return _memo


# ---------------------------------------------------------------------------------------------------------
# The scanner: a 12-state automaton over 10 character kinds
# ---------------------------------------------------------------------------------------------------------
# Kinds. Non-ASCII characters are only KL, KN, KO or KWS; the ASCII ones come from their fixed classes
# (ascii_classes) with the bytes the pattern names singled out (the contraction letters, U+0020 and U+0027).
KL, KN, KO, KAPOS, KSP, KWS, KSDMT, KLL, KVR, KE = range(10)
_LETTER_KINDS = (KL, KSDMT, KLL, KVR, KE)
# States: the pre-token in progress. SQ/SQL/SQV: "'", "'l", "'v" or "'r" at a pre-token start (a
# contraction may follow); SC: a complete contraction; SSP/SW1: one U+0020 / one other whitespace character
# at a pre-token start; SW2S/SW2W: a whitespace run of two or more, whose last character is / is not U+0020.
S_NONE, SL, SN, SO, SQ, SQL, SQV, SC, SSP, SW1, SW2S, SW2W = range(12)
# A transition is built as the new state plus E1 = "a pre-token ends before the previous character"
# (whitespace backtracking, or "'l"/"'v"/"'r" that was not a contraction after all) and E2 = "a pre-token
# ends before this character"; the table stores it as (state << 4) | e1 | e2 << 1, so the scanner's next
# row offset is just ``x & 0xF0`` (one operation less on the loop-carried chain: ~10% faster).
_E1 = 16
_E2 = 32
_NK = 16


def _transitions() -> np.ndarray:
    def start(k):  # state after a pre-token starts with kind k
        return SL if k in _LETTER_KINDS else {KN: SN, KO: SO, KAPOS: SQ, KSP: SSP, KWS: SW1}[k]

    t = np.zeros((16, _NK), dtype=np.uint8)
    for k in range(10):
        st = start(k)
        letter = k in _LETTER_KINDS
        other = k in (KO, KAPOS)
        ws = SW2S if k == KSP else SW2W if k == KWS else -1
        glued = SL if letter else SN if k == KN else SO  # ' ?X+' after a U+0020
        t[S_NONE, k] = st
        t[SL, k] = SL if letter else _E2 | st
        t[SN, k] = SN if k == KN else _E2 | st
        t[SO, k] = SO if other else _E2 | st
        t[SQ, k] = {KSDMT: SC, KLL: SQL, KVR: SQV}.get(k, SO if other else _E2 | st)
        not_contraction = _E1 | (SL if letter else _E2 | st)  # "'" | "l..." (or "'" | "l" | this)
        t[SQL, k] = SC if k == KLL else not_contraction
        t[SQV, k] = SC if k == KE else not_contraction
        t[SC, k] = _E2 | st
        t[SSP, k] = ws if ws >= 0 else glued
        t[SW1, k] = ws if ws >= 0 else _E2 | st
        t[SW2S, k] = ws if ws >= 0 else _E1 | glued  # the run gives up its last U+0020 to this run
        t[SW2W, k] = ws if ws >= 0 else _E1 | _E2 | st  # ... or its last character, a 1-char \s+
    state, e1, e2 = t & 15, (t >> 4) & 1, (t >> 5) & 1
    return ((state << 4) | e1 | (e2 << 1)).astype(np.uint8).ravel()


_T = _transitions()  # a global array: Numba compiles it in as a constant
_U = np.uint64
_M1 = np.uint64(0x9E3779B97F4A7C15)
_LOW56 = np.uint64((1 << 56) - 1)

# Numba notes, measured: helpers that take arrays must be plain @njit (LLVM inlines them); with
# inline="always" Numba increfs/decrefs the arrays on every call, which made the hash loop 9x slower.
# Indexing with unsigned integers drops the negative-index fix-up, which lets LLVM fuse 8 byte loads.


def _ascii_kinds() -> np.ndarray:
    c = ascii_classes()
    kinds = np.where(c & LETTER, KL, np.where(c & NUMBER, KN, np.where(c & SPACE, KWS, KO))).astype(np.uint8)
    kinds[0x27] = KAPOS
    kinds[0x20] = KSP
    kinds[[0x73, 0x64, 0x6D, 0x74]] = KSDMT
    kinds[0x6C] = KLL
    kinds[[0x76, 0x72]] = KVR
    kinds[0x65] = KE
    return kinds


# The kind of each ASCII byte, compiled in as a constant like _T (a kernel that allocated it would make
# every process that loads the kernel import numba.np.arrayobj, 0.04 s, for the allocation's environment).
_KINDS = _ascii_kinds()


@njit(cache=True, nogil=True)
def _scan(data, start, end, classes, kinds, out, m, limit):
    """Pre-token ends of ``data[start:end]`` into ``out[m:]``; returns the new ``m``. Stops (at a pre-token
    end, without the pending one) once ``m >= limit``; writes at most ``out[limit + 1]``, and the final
    end(s) only if they fit in ``out``. The caller resumes at the last end written."""
    t = _T
    s = 0
    p = start
    prev = start
    while p < end and m < limit:
        b = data[_U(p)]
        if b < 0x80:
            k = kinds[b]
            n = 1
        else:
            lead = np.int64(b)
            if lead < 0xE0:
                n = 2
                cp = lead & 0x1F
            elif lead < 0xF0:
                n = 3
                cp = lead & 0x0F
            else:
                n = 4
                cp = lead & 0x07
            if p + n > end:  # truncated sequence (invalid input): stay inside the segment
                n = end - p
                cp = 0x110000
            else:
                for q in range(1, n):
                    cp = (cp << 6) | (np.int64(data[_U(p + q)]) & 0x3F)
            c = classes[_U(cp)] if cp < 0x110000 else 0
            k = KL if c & 1 else (KN if c & 2 else (KWS if c & 4 else KO))
        x = t[_U(s + k)]
        s = x & 0xF0  # the new state's row
        # Branch-free: write both candidate ends, keep the ones the transition asks for.
        out[_U(m)] = prev
        m += x & 1
        out[_U(m)] = p
        m += (x >> 1) & 1
        prev = p
        p += n
    if p == end and p > start:
        m = _final_ends(s, prev, end, out, m)
    return m


@njit(cache=True, nogil=True)
def _scan2(data, a, a_end, b, b_end, classes, kinds, out_a, out_b, limit):
    """:func:`_scan` of two ranges at once, one character of each per step: the two automata are
    independent, so their table loads overlap instead of queueing on one loop-carried load (English text:
    1.6x the single scan). Runs while both ranges have text and both outputs are under ``limit``; a range
    that reached its end gets its final end(s) written, as :func:`_scan` does. Returns ``(m_a, m_b)``; the
    caller resumes each range at its last end written (or where it was, if none)."""
    t = _T
    s1 = 0
    p1 = a
    prev1 = a
    m1 = 0
    s2 = 0
    p2 = b
    prev2 = b
    m2 = 0
    while p1 < a_end and p2 < b_end and m1 < limit and m2 < limit:
        # The character decode is written out for each range: a helper taking arrays, if LLVM did not
        # inline it, would incref and decref them at every character.
        c1 = data[_U(p1)]
        if c1 < 0x80:
            k1 = kinds[c1]
            n1 = 1
        else:
            lead = np.int64(c1)
            if lead < 0xE0:
                n1 = 2
                cp = lead & 0x1F
            elif lead < 0xF0:
                n1 = 3
                cp = lead & 0x0F
            else:
                n1 = 4
                cp = lead & 0x07
            if p1 + n1 > a_end:
                n1 = a_end - p1
                cp = 0x110000
            else:
                for q in range(1, n1):
                    cp = (cp << 6) | (np.int64(data[_U(p1 + q)]) & 0x3F)
            c = classes[_U(cp)] if cp < 0x110000 else 0
            k1 = KL if c & 1 else (KN if c & 2 else (KWS if c & 4 else KO))
        c2 = data[_U(p2)]
        if c2 < 0x80:
            k2 = kinds[c2]
            n2 = 1
        else:
            lead = np.int64(c2)
            if lead < 0xE0:
                n2 = 2
                cp = lead & 0x1F
            elif lead < 0xF0:
                n2 = 3
                cp = lead & 0x0F
            else:
                n2 = 4
                cp = lead & 0x07
            if p2 + n2 > b_end:
                n2 = b_end - p2
                cp = 0x110000
            else:
                for q in range(1, n2):
                    cp = (cp << 6) | (np.int64(data[_U(p2 + q)]) & 0x3F)
            c = classes[_U(cp)] if cp < 0x110000 else 0
            k2 = KL if c & 1 else (KN if c & 2 else (KWS if c & 4 else KO))
        x1 = t[_U(s1 + k1)]
        x2 = t[_U(s2 + k2)]
        s1 = x1 & 0xF0
        s2 = x2 & 0xF0
        out_a[_U(m1)] = prev1
        m1 += x1 & 1
        out_a[_U(m1)] = p1
        m1 += (x1 >> 1) & 1
        prev1 = p1
        p1 += n1
        out_b[_U(m2)] = prev2
        m2 += x2 & 1
        out_b[_U(m2)] = p2
        m2 += (x2 >> 1) & 1
        prev2 = p2
        p2 += n2
    if p1 == a_end and p1 > a:
        m1 = _final_ends(s1, prev1, a_end, out_a, m1)
    if p2 == b_end and p2 > b:
        m2 = _final_ends(s2, prev2, b_end, out_b, m2)
    return m1, m2


@njit(cache=True, nogil=True)
def _final_ends(s, prev, end, out, m):
    """At the end of a range: "'l", "'v", "'r" pending there are "'" and a letter run; then the last end.
    Written only if they fit in ``out``."""
    split = s == SQL * _NK or s == SQV * _NK
    if m + 1 + split <= out.shape[0]:
        if split:
            out[m] = prev
            m += 1
        out[m] = end
        m += 1
    return m


@njit(cache=True, nogil=True)
def gpt2_split(data, start, end, classes, out, n_out):
    """Append to ``out`` (from index ``n_out``) the end offset of every pre-token of ``data[start:end]``,
    pre-tokenized as a string of its own; return the new count. ``out`` needs room for ``end - start``
    more entries (a pre-token has at least one byte). ``classes`` is :func:`char_classes`."""
    if start < 0 or end > data.shape[0] or n_out < 0 or classes.shape[0] != 0x110000:
        raise ValueError("gpt2_split: range outside data, or classes is not char_classes()")
    if end <= start:
        return n_out
    if out.shape[0] - n_out < end - start:
        raise ValueError("gpt2_split: out has no room for end - start more entries")
    return _scan(data, start, end, classes, _KINDS, out, n_out, out.shape[0])


@njit(cache=True, nogil=True)
def _word(data, p, n):
    """``data[p:p+n]`` (``1 <= n <= 8``) as a little-endian word, zero-padded: one 8-byte load where the
    array has 8 bytes from ``p``."""
    q = _U(p)
    w = _U(0)
    if q + _U(8) <= _U(data.shape[0]):
        for k in range(8):
            w |= _U(data[q + _U(k)]) << _U(8 * k)
        return w & ((_U(2) << _U(8 * n - 1)) - _U(1))
    for k in range(n):
        w |= _U(data[q + _U(k)]) << _U(8 * k)
    return w


# ---------------------------------------------------------------------------------------------------------
# Python helpers
# ---------------------------------------------------------------------------------------------------------


def _as_array(data) -> np.ndarray:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise TypeError(f"data must be bytes or a 1-d uint8 array, not {data.dtype} of shape {data.shape}")
        return np.ascontiguousarray(data)
    return np.frombuffer(data, dtype=np.uint8)  # read-only, like every file chunk: one compiled variant


def split_text(text: str) -> list[str]:
    """The pre-tokens of ``text`` (what ``regex.findall(GPT2_PATTERN, text)`` gives), via the kernel.

    >>> split_text("Hi,  it's 42!")
    ['Hi', ',', ' ', ' it', "'s", ' 42', '!']
    """
    raw = text.encode("utf-8")
    ends = np.empty(len(raw), dtype=np.int64)
    n = gpt2_split(_as_array(raw), 0, len(raw), char_classes(), ends, 0)
    out = []
    pos = 0
    for e in ends[:n].tolist():
        out.append(raw[pos:e].decode("utf-8"))
        pos = e
    return out


__all__ = ["char_classes", "gpt2_split", "split_text"]
