"""The two tiers (plain Python or Numba kernels): which one runs, and the kernels' compilation, once per
environment and off the caller's critical path.

- :func:`choose_backend` picks the tier for ``backend="auto"`` (training and ``Tokenizer``).
- :func:`kernels_ready` says, without importing numpy or Numba, whether a warm-up has finished for this
  environment: a marker file named by a key over the package's kernel sources (every module that defines
  kernels: :func:`~bpe_numba.numba_cache.kernel_sources_digest`), the Python, numpy and Numba installations
  and ``NUMBA_CACHE_DIR``, and listing every file of Numba's cache that the kernels were loaded from (each
  one's index, ``.nbi``, and data, ``.nbc``) with its size and modification time. A file deleted,
  truncated or rewritten since then makes the kernels not ready, so a damaged cache is never trusted: the
  next warm-up loads them (Numba's loader deletes a damaged file and compiles again,
  :mod:`bpe_numba.numba_cache`) and records them anew.
- :func:`warmup` compiles (or loads) every kernel in this process by running the real paths on a small
  input, with every argument type a larger one gives them: training on both pre-tokenization engines (a
  file of several chunks, a count table and a pair hash table that grow) and a ``Tokenizer`` on the
  kernels, then writes the marker. ``bpe-numba warmup`` runs it; use it when building an image or filling
  a CI cache.
- :func:`start_background_warmup` runs the warm-up in a detached process at the lowest priority (nice 19),
  at most one at a time across processes (an ``fcntl.flock`` on a lock file), with no output (events go
  to ``warmup.log`` in the cache directory). A shell that exits at once starts it, so it is reparented to
  init: it never blocks the caller's exit nor stays its zombie, and it ends by itself (at the latest after
  :data:`BACKGROUND_LIMIT` seconds). When bpe_numba's cache directory is not writable, or a warm-up of
  this key already failed to leave Numba cache files, it starts nothing.

``train_bpe`` and ``Tokenizer`` (``backend="auto"``) use the Python tier (:mod:`bpe_numba.python_bpe`)
while the kernels are not ready and start the background warm-up, so later processes find them compiled.
This module imports neither numpy nor Numba (only :func:`warmup` does).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from .numba_cache import kernel_sources_digest

BACKENDS = ("auto", "kernels", "python")
# Inputs up to these sizes train on the Python tier under backend="auto" (measured crossovers; see the
# performance notes in python_bpe): against the helper process and the kernels from the native bundle
# (about 0.3 s of start-up), from Numba's cache (about 0.7 s), and against compiling the kernels first
# (10-15 s) while they compile in the background.
PYTHON_MAX_BYTES_NATIVE = 256 << 10
PYTHON_MAX_BYTES = 1 << 20
PYTHON_MAX_BYTES_COLD = 16 << 20
BACKGROUND_LIMIT = 900  # seconds a background warm-up may run before it ends itself
_PACKAGE_DIR = Path(__file__).resolve().parent
_key_memo: dict = {}


def cache_dir() -> Path:
    """bpe_numba's own cache directory: ``$BPE_NUMBA_CACHE_DIR``, else ``$XDG_CACHE_HOME/bpe_numba``, else
    ``~/.cache/bpe_numba``."""
    env = os.environ.get("BPE_NUMBA_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "bpe_numba"


def _installation(module: str) -> str:
    """Where ``module`` is installed and its ``__init__``'s size and time, without importing it (a new
    version rewrites the file)."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return f"{module}: missing"
    st = os.stat(spec.origin)
    return f"{module}: {spec.origin} {st.st_size} {st.st_mtime_ns}"


def environment_key() -> str:
    """Hash of what decides whether Numba's cached kernels fit this process (about 1 ms; memoized per
    ``NUMBA_CACHE_DIR``, the one input a process is likely to change)."""
    numba_dir = os.environ.get("NUMBA_CACHE_DIR", "")
    if numba_dir not in _key_memo:
        h = hashlib.sha256()
        for part in (sys.version, sys.executable, str(_PACKAGE_DIR), numba_dir, _installation("numpy"),
                     _installation("numba"), kernel_sources_digest()):
            h.update(part.encode("utf-8", "surrogateescape") + b"\0")
        _key_memo[numba_dir] = h.hexdigest()[:24]
    return _key_memo[numba_dir]


def _marker_path() -> Path:
    return cache_dir() / f"kernels-{environment_key()}.json"


def _stamp(path: str) -> list[int] | None:
    """A file's size and modification time, or None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def kernels_ready() -> bool:
    """Whether a warm-up finished for this environment and Numba's cache files it listed are unchanged (no
    numpy or Numba import; about 1 ms the first time in a process)."""
    try:
        with open(_marker_path(), encoding="utf-8") as f:
            files = json.load(f)["files"]
        return bool(files) and all(_stamp(path) == stamp for path, stamp in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def choose_backend(backend, size: int | None = None, isolate: bool | None = None) -> str:
    """``"kernels"`` or ``"python"`` for ``backend`` (validated) and an input of ``size`` bytes (``None``: a
    ``Tokenizer``, whose input is not known yet).

    ``"auto"``: while the kernels are not compiled (:func:`kernels_ready`), the Python tier, and the
    kernels start compiling in the background (:func:`start_background_warmup`) for later calls; only a
    training input over :data:`PYTHON_MAX_BYTES_COLD` waits for the compilation instead. Once they are
    compiled, the kernels, except for training inputs up to :data:`PYTHON_MAX_BYTES` in a process that
    has not imported Numba (which would cost more to start than to train in Python), or up to
    :data:`PYTHON_MAX_BYTES_NATIVE` when the native bundle is there (:mod:`bpe_numba.native`: no Numba to
    start). An explicit ``isolate`` (training in a helper process or not) asks for the kernels.

    >>> choose_backend("python"), choose_backend("kernels", 1 << 30)
    ('python', 'kernels')
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; use 'auto', 'kernels' (Numba) or 'python' (no compilation)")
    if backend != "auto":
        return backend
    if isolate is not None:
        return "kernels"
    if not kernels_ready():
        if size is not None and size > PYTHON_MAX_BYTES_COLD:
            return "kernels"
        start_background_warmup()
        return "python"
    if size is None or size > PYTHON_MAX_BYTES or "numba" in sys.modules:
        return "kernels"
    from . import native

    if size > PYTHON_MAX_BYTES_NATIVE and native.enabled() and native.bundle_path().is_file():
        return "kernels"
    return "python"


def _compiled_files() -> tuple[int, dict[str, list[int]] | None]:
    """The number of kernels compiled or loaded in this process, and their files in Numba's cache (each
    index and the data files it lists) with :func:`_stamp`; None instead of the files when a kernel has
    none (Numba could not write its cache) or they cannot be read back."""
    kernels = {id(obj): obj for name, module in list(sys.modules.items())
               if name.startswith(__package__ + ".") and module is not None
               for obj in vars(module).values() if getattr(obj, "signatures", None) and hasattr(obj, "_cache")}
    files: dict[str, list[int]] = {}
    complete = True
    for kernel in kernels.values():
        cache_file = getattr(kernel._cache, "_cache_file", None)  # None: caching is off (no writable place)
        try:
            paths = [cache_file._index_path, *map(cache_file._data_path, cache_file._load_index().values())]
        except Exception:  # noqa: BLE001 - no cache file, or a damaged one: not ready
            complete = False
            continue
        complete &= len(paths) > 1
        for path in paths:
            files[str(path)] = _stamp(path)
    complete &= all(stamp is not None for stamp in files.values())
    return len(kernels), files if complete and files else None


def warmup(progress: bool = False) -> dict:
    """Compile (first time) or load every kernel in this process by running the kernel paths on a small
    input, with every argument type a larger input gives them, then record them as ready
    (:func:`kernels_ready`) and save the native bundle (:mod:`bpe_numba.native`). Returns ``{"seconds": ...,
    "kernels": n, "ready": bool, "native": path or None}``; ``ready`` is False when Numba could not write its
    cache (read-only environment); ``native`` is None when no bundle could be saved or it is turned off.

    >>> bpe_numba.warmup()  # doctest: +SKIP
    {'seconds': 14.2, 'kernels': 41, 'ready': True, 'native': '/home/me/.cache/bpe_numba/native-3f2a....bin'}
    """
    import time

    import numpy as np

    from . import jit, native
    from .merge_loop import MergeLoop
    from .tokenizer import Tokenizer
    from .trainer import train_bpe
    from .validation import MIN_CHUNK_SIZE

    start = time.perf_counter()
    jit.start_numba()  # Numba compiles or loads every kernel here, and the native bundle is saved from them
    specials = ["<|endoftext|>", "<|a|>", "<|a|><|b|>"]
    text = ("Once upon a time, a cat's h\u00e9ros 42 sat.\r\n\n  <|a|><|b|> \U0001f600 x<|endoftext|>" * 20) + "end"
    # What larger inputs reach besides: a file of several chunks (the cut search on the chunk reader's
    # buffers), and more distinct pre-tokens than a new count table holds (its growth).
    words = "".join(" w" + chr(97 + i % 26) + chr(97 + i // 26 % 26) + chr(97 + i // 676) for i in range(3000))
    with tempfile.TemporaryDirectory(prefix="bpe_numba_warmup_") as tmp:
        path = os.path.join(tmp, "warmup.txt")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text + words)
        for engine in ("numba", "regex"):
            vocab, merges = train_bpe(path, 300, specials, num_workers=1, progress=progress, engine=engine,
                                      backend="kernels", isolate=False, chunk_size=MIN_CHUNK_SIZE)
            Tokenizer(vocab, merges, specials, engine=engine, backend="kernels").encode(text)
    # ... and the growth of the merge loop's pair hash table.
    loop = MergeLoop(np.frombuffer(b"abcab", dtype=np.uint8), np.array([0, 5]), np.array([2]), 2)
    loop.grow_hash(1 << 16)
    loop.run(2)
    n_kernels, files = _compiled_files()
    if files is not None:
        _write_marker({"files": files})
    bundle = native.save_bundle(retry=True)
    return {"seconds": round(time.perf_counter() - start, 3), "kernels": n_kernels, "ready": files is not None,
            "native": str(bundle) if bundle else None}


def _write_marker(content: dict, path: Path | None = None) -> None:
    """Atomically (temp file, then rename); an OS error just means no marker."""
    path = path or _marker_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(content, f)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _lock_path() -> Path:
    return cache_dir() / f"kernels-{environment_key()}.lock"


def _failed_path() -> Path:
    return cache_dir() / f"kernels-{environment_key()}.failed"


def _try_lock(path: Path):
    """An open file holding an exclusive ``flock`` on ``path``, or None if another process holds it or the
    file cannot be created."""
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a")
    except OSError:
        return None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def start_background_warmup() -> bool:
    """Start a detached, silent, nice-19 warm-up process unless the kernels are ready, one is running, an
    earlier one failed for this environment, or the cache directory is not writable. Returns whether a
    process was started. POSIX only (elsewhere it returns False)."""
    if os.name != "posix" or kernels_ready() or _failed_path().exists():
        return False
    probe = _try_lock(_lock_path())
    if probe is None:
        return False  # running already, or the cache directory is not writable
    probe.close()
    import subprocess

    code = (f"import sys; sys.path.insert(0, {str(_PACKAGE_DIR.parent)!r}); "
            "from bpe_numba.tiers import _background_main; _background_main()")
    # The shell starts the warm-up in the background and exits at once (waited for here), so the warm-up
    # is reparented to init, which reaps it: never a zombie of the caller, never waited for at its exit.
    subprocess.Popen(
        ["/bin/sh", "-c", '"$0" -c "$1" </dev/null >/dev/null 2>&1 &', sys.executable, code],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    ).wait()
    return True


def _log(event: str) -> None:
    """One JSON line per background warm-up event in ``warmup.log`` beside the marker (kept short)."""
    import time

    path = cache_dir() / "warmup.log"
    try:
        if path.exists() and path.stat().st_size > 1 << 16:
            path.unlink()
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"time": time.time(), "pid": os.getpid(), "event": event,
                                "key": environment_key()}) + "\n")
    except OSError:
        pass


def _background_main() -> None:
    """The background warm-up: take the lock (or leave: another one runs), warm up, record the outcome."""
    import signal

    signal.alarm(BACKGROUND_LIMIT)  # ends by itself even if something hangs
    os.nice(19)
    lock = _try_lock(_lock_path())
    if lock is None or kernels_ready():
        _log("busy" if lock is None else "ready already")
        return
    from .processes import _fast_exit, lean_numba_start

    _log("start")
    lean_numba_start()  # this process runs nothing but bpe_numba's kernels
    try:
        ready = warmup()["ready"]
    except Exception:  # noqa: BLE001 - silent by design; callers keep using the Python tier
        ready = False
    if not ready:
        _write_marker({"reason": "the warm-up raised or Numba wrote no cache files"}, _failed_path())
    _log("ready" if ready else "failed")
    _fast_exit(0)
