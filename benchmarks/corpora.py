"""The real-text corpora of the benchmarks: where they are, building them, slices and scale copies.

``prose_en.txt`` (52.4 MB of English technical prose) and ``multilingual.txt`` (12.3 MB of Spanish,
Russian, Polish and Italian man pages) are written by ``build.py`` of the project's shared folder
(``$BPE_NUMBA_SHARED/corpora/build.py``, else ``../shared/corpora/build.py`` beside the repository) from
Debian documentation packages, in about a minute. They are never committed: the suite keeps them in a cache
folder outside the repository (``default_dir()``) and builds them there on first use.

    >>> files, why = ensure_corpora(default_dir(), print)   # {"prose_en": path, ...}, or ({}, the reason)
    >>> info = write_scaled(files["prose_en"], 10**9, "/tmp/x/prose_en_1GB.txt")  # whole copies, ~1 GB
    >>> write_slice(files["prose_en"], 2 * 10**6, "/tmp/x/prose_en_2MB.txt")        # the first ~2 MB
"""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SEP = b"<|endoftext|>"
NAMES = ("prose_en", "multilingual")  # the files are NAME.txt


def default_dir() -> str:
    """``$XDG_CACHE_HOME/bpe_numba-bench/corpora``, else ``~/.cache/bpe_numba-bench/corpora``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "bpe_numba-bench", "corpora")


def build_script() -> str:
    """Where ``build.py`` should be: under ``$BPE_NUMBA_SHARED`` when set, else ``../shared`` beside the repo."""
    shared = os.environ.get("BPE_NUMBA_SHARED") or os.path.join(REPO, "..", "shared")
    return os.path.abspath(os.path.join(shared, "corpora", "build.py"))


def _present(folder: str) -> dict[str, str]:
    paths = {n: os.path.join(folder, f"{n}.txt") for n in NAMES}
    return {n: p for n, p in paths.items() if os.path.isfile(p) and os.path.getsize(p) > 0}


def ensure_corpora(folder: str, log) -> tuple[dict[str, str], str]:
    """``({name: path}, "")`` when both corpora are in ``folder`` (built there by ``build.py`` if
    missing), else ``({}, reason)`` saying what is missing and how to get it."""
    folder = os.path.abspath(folder)
    files = _present(folder)
    if len(files) == len(NAMES):
        return files, ""
    script = build_script()
    if not os.path.isfile(script):
        return {}, (f"no real-text corpora in {folder} and no build script at {script}; set BPE_NUMBA_SHARED "
                    f"to the shared folder holding corpora/build.py, or pass --corpora DIR with prose_en.txt "
                    f"and multilingual.txt")
    log(f"real-text corpora: building them in {folder} with {script} (about a minute, once) ...")
    os.makedirs(folder, exist_ok=True)
    proc = subprocess.run([sys.executable, script, folder], capture_output=True, text=True)
    files = _present(folder)
    if proc.returncode != 0 or len(files) != len(NAMES):
        tail = " ".join((proc.stderr or proc.stdout).split())[-300:]
        return {}, f"{script} {folder} failed (exit {proc.returncode}): {tail}"
    return files, ""


def warm_page_cache(path: str, block: int = 16 << 20) -> float:
    """Read the file once, so a timed run that follows does not wait for the disk. Returns the seconds."""
    import time

    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(block)
        while f.readinto(buf):
            pass
    return time.perf_counter() - t0


def write_slice(src: str, nbytes: int, dst: str) -> int:
    """Write the first ``nbytes`` bytes of ``src`` or a little less into ``dst``: up to the last
    ``<|endoftext|>`` in them, or, when that would keep less than half (a long document), up to the last
    newline, so the slice is valid UTF-8. Returns the size written."""
    with open(src, "rb") as f:
        data = f.read(nbytes)
    cut = data.rfind(SEP)
    if cut < nbytes // 2:
        cut = data.rfind(b"\n") + 1
    if cut <= 0:
        raise ValueError(f"{src}: no line or document boundary in its first {nbytes:,} bytes")
    _write_atomic(dst, [data[:cut]])
    return cut


def _write_atomic(dst: str, pieces) -> None:
    tmp = dst + ".part"
    try:
        with open(tmp, "wb") as f:
            for p in pieces:
                f.write(p)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_scaled(src: str, target_bytes: int, dst: str) -> dict:
    """Write ``src`` repeated to about ``target_bytes`` bytes into ``dst``: whole copies joined by
    ``<|endoftext|>`` (unless ``src`` already ends with it), then a last copy cut just before an
    ``<|endoftext|>``, so every document is whole, the file is valid UTF-8 and ends as ``src`` does.

    Returns ``{"copies", "joined", "partial_bytes", "partial_separators", "bytes"}``: the layout, from which
    :func:`expected_ids` derives the ids of the whole file from those of ``src``.
    """
    with open(src, "rb") as f:
        data = f.read()
    joined = not data.endswith(SEP)
    unit = len(data) + (len(SEP) if joined else 0)
    copies = target_bytes // unit if target_bytes >= len(data) else 0
    rest = target_bytes - copies * unit
    cut = max(0, data.rfind(SEP, 0, rest)) if rest > 0 else 0
    if copies == 0 and cut == 0:
        raise ValueError(f"{src}: no document boundary ({SEP.decode()}) in its first {target_bytes:,} bytes")
    def pieces():
        for i in range(copies):
            yield data
            if joined and (i < copies - 1 or cut):
                yield SEP
        yield data[:cut]

    _write_atomic(dst, pieces())
    return {"copies": int(copies), "joined": joined, "partial_bytes": cut,
            "partial_separators": data.count(SEP, 0, cut), "bytes": os.path.getsize(dst)}


def check_scaled_ids(ids, src_ids, layout: dict, eot_id: int) -> int | None:
    """Compare the ids of a :func:`write_scaled` file with those its layout implies from the ids of its
    source (special tokens are hard boundaries, so the file's ids are the source's, copy after copy,
    ``eot_id`` between copies, then the source's up to the separator where the last copy was cut).
    Returns the index of the first difference, or None when equal. ``ids`` may be memory-mapped."""
    import numpy as np

    src_ids = np.asarray(src_ids, dtype=np.int64)
    unit = np.concatenate([src_ids, [eot_id]]) if layout["joined"] else src_ids
    eots = np.flatnonzero(src_ids == eot_id)
    k = layout["partial_separators"]
    tail = src_ids[: eots[k]] if layout["partial_bytes"] else src_ids[:0]
    pieces = [unit] * layout["copies"] + [tail]
    if layout["joined"] and not layout["partial_bytes"] and layout["copies"]:
        pieces[-2] = src_ids  # no separator after the last whole copy
    pos = 0
    for want in pieces:
        got = np.asarray(ids[pos : pos + len(want)], dtype=np.int64)
        n = min(len(got), len(want))
        diff = np.flatnonzero(got[:n] != want[:n])
        if len(diff):
            return pos + int(diff[0])
        if n < len(want):
            return pos + n
        pos += len(want)
    return None if pos == len(ids) else pos
