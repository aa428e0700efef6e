"""Pre-token counts as a file: count once (or on a cluster), train many times.

Layout (little-endian)::

    b"BPECOUNT"     8 bytes, the magic
    version         uint32 (FORMAT_VERSION)
    header length   uint32
    checksum        32 bytes, the SHA-256 of everything after it
    header          JSON: special_tokens, pattern, entries, the two dtypes, payload bytes
    payload         lengths (one per entry), counts (one per entry), the pre-tokens' bytes

Lengths and counts are stored in the smallest unsigned type that holds them, entries in a canonical order
(by length, then by bytes), so the same counts always give the same file whatever the threads or
machines that counted them. The checksum is checked on every load; the file is written
atomically (:mod:`bpe_numba.atomic`).

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "counts.bin")
>>> save_counts(path, {b"the": 3, b" cat": 2}, special_tokens=["<|endoftext|>"])
>>> sorted(load_counts(path).items())
[(b' cat', 2), (b'the', 3)]
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Sequence

from .atomic import atomic_file
from .errors import BPEValueError
from .validation import GPT2_PATTERN, check_input_file, check_pattern, check_special_tokens

MAGIC = b"BPECOUNT"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sII32s")  # magic, version, header length, SHA-256 of all that follows
_MAX_HEADER = 1 << 20
_REMEDY = "re-create it with `bpe-numba count` (or save_counts)"


def _smallest_uint(top: int):
    import numpy as np

    for dt in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


def canonical_order(blob, offsets):
    """The permutation that sorts the entries by length, then by bytes.

    >>> import numpy as np
    >>> blob = np.frombuffer(b"bbaabc", np.uint8); canonical_order(blob, np.array([0, 2, 4, 5, 6])).tolist()
    [2, 3, 1, 0]
    """
    import numpy as np

    lengths = np.diff(offsets)
    order = np.argsort(lengths, kind="stable")
    bounds = np.flatnonzero(np.diff(lengths[order], prepend=-1, append=-1))
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        idx = order[a:b]
        width = int(lengths[idx[0]])
        if b - a < 2 or width == 0:
            continue
        if width > 64:  # rare: sort in Python
            keys = [blob[offsets[i] : offsets[i] + width].tobytes() for i in idx.tolist()]
            order[a:b] = idx[sorted(range(b - a), key=keys.__getitem__)]
            continue
        words = -(-width // 8)
        rows = np.zeros((b - a, 8 * words), dtype=np.uint8)
        rows[:, :width] = blob[offsets[idx][:, None] + np.arange(width)]
        cols = rows.view(">u8")  # big-endian words compare as the bytes do
        order[a:b] = idx[np.lexsort(cols.T[::-1])]
    return order


def write_counts(path, counted, special_tokens: Sequence[str] = (), pattern: str = GPT2_PATTERN) -> None:
    """Write ``counted`` (``(blob, offsets, counts)`` arrays) to ``path`` atomically, in canonical order."""
    import numpy as np

    blob, offsets, counts = counted
    order = canonical_order(blob, offsets)
    lengths = np.diff(offsets)[order]
    len_dt = _smallest_uint(int(lengths.max()) if len(lengths) else 0).newbyteorder("<")
    cnt_dt = _smallest_uint(int(counts.max()) if len(counts) else 0).newbyteorder("<")
    header = json.dumps({
        "format": "bpe_numba pre-token counts",
        "special_tokens": list(special_tokens),
        "pattern": pattern,
        "entries": int(len(order)),
        "length_dtype": len_dt.name,
        "count_dtype": cnt_dt.name,
        "payload_bytes": int(len(order) * (len_dt.itemsize + cnt_dt.itemsize) + lengths.sum()),
    }).encode("utf-8")
    digest = hashlib.sha256()
    with atomic_file(path) as f:
        f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header), bytes(32)))

        def put(data: bytes) -> None:
            digest.update(data)
            f.write(data)

        put(header)
        put(lengths.astype(len_dt).tobytes())
        put(counts[order].astype(cnt_dt).tobytes())
        step = 1 << 18
        for a in range(0, len(order), step):  # the bytes in canonical order, a slice at a time
            starts, n = offsets[:-1][order[a : a + step]], lengths[a : a + step]
            into = np.cumsum(n) - n
            put(blob[np.repeat(starts - into, n) + np.arange(int(n.sum()))].tobytes())
        f.seek(_PREFIX.size - 32)
        f.write(digest.digest())


def read_header(path, data: bytes | None = None) -> tuple[dict, int]:
    """``(header, payload start)`` of a counts file: magic, version and header checked, not the checksum
    (:func:`read_counts` checks it)."""
    path = check_input_file(path, "counts")
    if data is None:
        with open(path, "rb") as f:
            data = f.read(_PREFIX.size)
            n_header = _PREFIX.unpack_from(data)[2] if len(data) == _PREFIX.size and data[:8] == MAGIC else 0
            data += f.read(min(n_header, _MAX_HEADER))
    if len(data) < _PREFIX.size or data[:8] != MAGIC:
        raise BPEValueError(f"{path}: not a bpe_numba counts file (it does not start with {MAGIC!r}); {_REMEDY}")
    _, version, n_header, _ = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise BPEValueError(f"{path}: counts file format version {version}, but this bpe_numba reads version "
                            f"{FORMAT_VERSION}; {_REMEDY} with this version")
    try:
        header = json.loads(data[_PREFIX.size : _PREFIX.size + n_header].decode("utf-8"))
        header["special_tokens"] = check_special_tokens(header["special_tokens"], f"{path}: special_tokens",
                                                        BPEValueError)
        check_pattern(header["pattern"], f"{path}: pattern", BPEValueError)
        header["entries"] = int(header["entries"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BPEValueError(f"{path}: the header is damaged ({exc}); {_REMEDY}") from None
    return header, _PREFIX.size + n_header


def read_counts(path) -> tuple[dict, tuple]:
    """``(header, (blob, offsets, counts))`` of a counts file, checked: magic, version, checksum, sizes."""
    import numpy as np

    path = check_input_file(path, "counts")
    with open(path, "rb") as f:
        data = f.read()
    header, start = read_header(path, data)
    if hashlib.sha256(memoryview(data)[_PREFIX.size :]).digest() != data[_PREFIX.size - 32 : _PREFIX.size]:
        raise BPEValueError(f"{path}: the checksum does not match (the file is damaged or truncated); {_REMEDY}")
    payload = memoryview(data)[start:]
    n = header["entries"]
    try:
        len_dt = np.dtype(header["length_dtype"]).newbyteorder("<")
        cnt_dt = np.dtype(header["count_dtype"]).newbyteorder("<")
        if len(payload) != int(header["payload_bytes"]):
            raise ValueError(f"{len(payload):,} bytes of counts where it says {header['payload_bytes']:,}")
    except (ValueError, KeyError, TypeError) as exc:
        raise BPEValueError(f"{path}: the header does not fit the file ({exc}); {_REMEDY}") from None
    lengths = np.frombuffer(payload, dtype=len_dt, count=n).astype(np.int64)
    counts = np.frombuffer(payload, dtype=cnt_dt, count=n, offset=n * len_dt.itemsize).astype(np.int64)
    blob = np.frombuffer(payload, dtype=np.uint8, offset=n * (len_dt.itemsize + cnt_dt.itemsize))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] != blob.shape[0] or (n and (counts.min() < 1 or lengths.min() < 1)):
        raise BPEValueError(f"{path}: the lengths, counts and bytes do not agree; {_REMEDY}")
    return header, (blob, offsets, counts)


def save_counts(path, counts: dict, special_tokens: Sequence[str] = (), pattern: str = GPT2_PATTERN) -> None:
    """Save pre-token counts (``{bytes: int}``, as :func:`bpe_numba.count_pretokens` gives them) to ``path``,
    with the special tokens and pattern they were counted with; atomically (temporary file, then rename).

    Train from the file with :func:`bpe_numba.train_bpe_from_counts` (or ``bpe-numba train --counts``).
    """
    from .sources import CountsInput

    special_tokens = check_special_tokens(special_tokens)
    pattern = check_pattern(pattern)
    write_counts(path, counted_of(CountsInput.of(counts)), special_tokens, pattern)


def load_counts(path) -> dict[bytes, int]:
    """The counts saved in ``path`` (see :func:`save_counts`), checked (format version, checksum)."""
    _, (blob, offsets, counts) = read_counts(path)
    raw = blob.tobytes()
    o = offsets.tolist()
    return {raw[o[j] : o[j + 1]]: c for j, c in enumerate(counts.tolist())}


def counts_metadata(path) -> dict:
    """The header of a counts file: ``special_tokens``, ``pattern``, ``entries`` ... (checksum not checked)."""
    return read_header(path)[0]


def counted_of(source) -> tuple:
    """``(blob, offsets, counts)`` arrays of a :class:`~bpe_numba.sources.CountsInput`."""
    import numpy as np

    if source.path is not None:
        return read_counts(source.path)[1]
    lengths = np.frombuffer(source.lengths, dtype=np.int64) if len(source.lengths) else np.zeros(0, np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    counts = np.frombuffer(source.counts, dtype=np.int64) if len(source.counts) else np.zeros(0, np.int64)
    return np.frombuffer(source.blob, dtype=np.uint8), offsets, counts.copy()


__all__ = ["save_counts", "load_counts", "counts_metadata", "FORMAT_VERSION"]
