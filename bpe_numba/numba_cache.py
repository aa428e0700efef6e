"""Numba's on-disk cache, for bpe_numba's kernels only: a damaged file is deleted and its kernel compiled
again, and with no writable cache location at all the kernels are compiled in memory, with one warning.

Numba trusts its cache files. A truncated index (``.nbi``) or data file (``.nbc``), left by a full disk or
a process killed while it saved, raises ``EOFError`` or ``UnpicklingError`` from the first call of the
kernel, in every later process; a data file of another function (swapped, or stale next to a newer index)
would be run as this one. And when neither ``NUMBA_CACHE_DIR``, the package's ``__pycache__`` nor the
user's cache directory can be written, ``cache=True`` raises ``RuntimeError`` when the kernel module is
imported. Numba has no option for any of this, so three of its methods are wrapped; the wrappers act only
on functions of this package, and the user's own Numba functions keep Numba's behaviour:

- ``Cache._load_overload``: an exception while loading, or a data file that is not this function's (its
  module, qualified name and argument types are checked before the code is linked), deletes the
  function's index and data files and returns nothing, so Numba compiles the kernel and saves it anew.
- ``Cache._save_overload``: an error while saving (a damaged index that could not be deleted, a full
  disk) becomes a warning; the kernel just compiled runs from memory.
- ``Dispatcher.enable_caching``: no cache location leaves caching off, with one warning per process.
- ``Cache._index_key``: the key under which a kernel is cached also holds :func:`kernel_sources_digest`.
  Numba checks only the kernel's own file, while a kernel is compiled with the helpers, tables and
  intrinsics of the package's other kernel modules: after a change to one of those, the kernels that use it
  would be loaded as they were. With the digest in the key, any such change compiles them again.

They are installed by :func:`bpe_numba.jit.start_numba` just before the kernels become Numba dispatchers,
so in every process that runs a kernel through Numba (the caller's own included), and never earlier:
``import bpe_numba`` loads no Numba. If a future Numba renames these methods, nothing is wrapped: Numba's
own behaviour, never a wrong result.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

_PACKAGE = __name__.rpartition(".")[0]
_PACKAGE_DIR = Path(__file__).resolve().parent
# A module that defines kernels (they take the decorators of .jit) or imports Numba itself.
_KERNEL_MODULE = re.compile(rb"^(?:from|import) numba\b|^from \.jit import", re.M)
_state = {"installed": False, "warned_no_cache": False}
_digest: dict[Path, str] = {}


class NumbaCacheWarning(RuntimeWarning):
    """Numba's cache could not be used for a kernel of bpe_numba (it still runs, compiled in memory)."""


def _ours(py_func) -> bool:
    return getattr(py_func, "__module__", "").startswith(_PACKAGE + ".")


def kernel_sources_digest() -> str:
    """sha256 of every module of this package that defines kernels or imports Numba (the kernels, and what
    they compile in), read once per process (about 1 ms)."""
    if _PACKAGE_DIR not in _digest:
        h = hashlib.sha256()
        for path in sorted(_PACKAGE_DIR.glob("*.py")):
            source = path.read_bytes()
            if _KERNEL_MODULE.search(source):
                h.update(path.name.encode() + b"\0" + source + b"\0")
        _digest[_PACKAGE_DIR] = h.hexdigest()
    return _digest[_PACKAGE_DIR]


def install() -> None:
    """Wrap Numba's cache methods for this package's functions (idempotent)."""
    if _state["installed"]:
        return
    _state["installed"] = True
    from numba.core import caching, dispatcher, sigutils

    cache_cls, dispatcher_cls = caching.Cache, dispatcher.Dispatcher
    needed = [(cache_cls, "_load_overload"), (cache_cls, "_save_overload"), (cache_cls, "_index_key"),
              (dispatcher_cls, "enable_caching")]
    if not all(callable(getattr(owner, name, None)) for owner, name in needed):
        return
    load, save, enable = cache_cls._load_overload, cache_cls._save_overload, dispatcher_cls.enable_caching
    index_key = cache_cls._index_key

    def _index_key(self, sig, codegen):
        key = index_key(self, sig, codegen)
        return key + (kernel_sources_digest(),) if _ours(self._py_func) else key

    def _load_overload(self, sig, target_context):
        if not _ours(self._py_func):
            return load(self, sig, target_context)
        if not self._enabled:
            return None
        try:
            data = self._cache_file.load(self._index_key(sig, target_context.codegen()))
            if data is None:
                return None
            problem = _not_this_function(self._py_func, sigutils.normalize_signature(sig)[0], data)
            if problem:
                raise ValueError(problem)
            return self._impl.rebuild(target_context, data)
        except Exception as exc:  # noqa: BLE001 - any damage: compile again (the next save replaces the files)
            _delete_files(self)
            warnings.warn(f"{_describe(self)} was damaged ({type(exc).__name__}: {exc}); deleted, compiling again",
                          NumbaCacheWarning, stacklevel=2)
            return None

    def _save_overload(self, sig, data):
        if not _ours(self._py_func):
            return save(self, sig, data)
        try:
            return save(self, sig, data)
        except Exception as exc:  # noqa: BLE001 - the compiled kernel runs from memory
            warnings.warn(f"{_describe(self)} could not be saved ({type(exc).__name__}: {exc}); the kernel runs "
                          f"from memory in this process", NumbaCacheWarning, stacklevel=2)

    def enable_caching(self):
        try:
            enable(self)
        except RuntimeError:
            if not _ours(self.py_func):
                raise
            if not _state["warned_no_cache"]:
                _state["warned_no_cache"] = True
                warnings.warn(
                    f"no writable directory for Numba's cache (NUMBA_CACHE_DIR is unset or not writable, and "
                    f"neither {_PACKAGE_DIR / '__pycache__'} nor the user's cache directory can be written): "
                    f"bpe_numba's kernels are compiled in memory, again in every process; set NUMBA_CACHE_DIR "
                    f"to a writable directory", NumbaCacheWarning, stacklevel=2)

    cache_cls._index_key = _index_key
    cache_cls._load_overload = _load_overload
    cache_cls._save_overload = _save_overload
    dispatcher_cls.enable_caching = enable_caching


def _not_this_function(py_func, args, data) -> str:
    """Why the unpickled cache entry ``data`` (Numba's reduced ``CompileResult``) is not ``py_func``
    compiled for ``args``, or ``""``."""
    try:
        fndesc, signature = data[1], data[3]
        found = (fndesc.modname, fndesc.qualname, tuple(signature.args))
    except (TypeError, IndexError, AttributeError):
        return f"not a compiled function: {type(data).__name__}"
    if found[:2] != (py_func.__module__, py_func.__qualname__):
        return f"it holds {found[0]}.{found[1]}"
    if found[2] != tuple(args):
        return "it holds the function compiled for other argument types"
    return ""


def _describe(cache) -> str:
    return f"Numba's cache of {cache._py_func.__module__}.{cache._py_func.__qualname__} ({cache._cache_file._index_path})"


def _delete_files(cache) -> None:
    """The function's index and every data file of it (another process may be writing them: at worst it
    compiles again)."""
    index = cache._cache_file._index_path
    base = os.path.basename(index)[: -len(".nbi")]
    folder = os.path.dirname(index)
    try:
        names = [n for n in os.listdir(folder) if n.startswith(base + ".") and n.endswith(".nbc")]
    except OSError:
        names = []
    for path in [index, *(os.path.join(folder, n) for n in names)]:
        try:
            os.unlink(path)
        except OSError:
            pass
