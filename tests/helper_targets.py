"""Functions for tests to run in bpe_numba's helper and worker processes (which import them by name)."""

from __future__ import annotations

import sys


def numba_start_state(_task=None) -> dict:
    """How Numba starts in this process when a kernel needs it (bpe_numba.jit.start_numba): whether it was
    imported before, whether SciPy and cffi are blocked and extensions skipped."""
    imported_before = "numba" in sys.modules
    from bpe_numba import jit

    jit.start_numba()
    import numba.core.entrypoints

    return {
        "imported_before": imported_before,
        "scipy_blocked": "scipy" in sys.modules and sys.modules["scipy"] is None,
        "cffi_blocked": "cffi" in sys.modules and sys.modules["cffi"] is None,
        "extensions_skipped": numba.core.entrypoints._already_initialized,
    }


class Unpicklable(Exception):
    def __init__(self):
        super().__init__("cannot cross a process boundary")
        self.hook = lambda: None


def raise_unpicklable():
    raise Unpicklable()


def train_in_pool_worker(path: str) -> tuple[int, bool]:
    """Train from inside a daemonic Pool worker, which may not start processes of its own."""
    from bpe_numba import train_bpe

    timings: dict = {}
    _, merges = train_bpe(path, 300, ["<|endoftext|>"], num_workers=2, chunk_size=64, timings=timings)
    return len(merges), timings["isolated"]


def helper_state(_task=None) -> dict:
    """What a helper process inherited: its SIGINT and SIGTERM handlers, by name, its process name, and
    whether it holds objects frozen out of the garbage collector (the caller's, when it was forked)."""
    import gc
    import signal

    def name(handler) -> str:
        return {signal.SIG_DFL: "SIG_DFL", signal.SIG_IGN: "SIG_IGN"}.get(handler) or handler.__name__

    with open("/proc/self/comm") as f:
        comm = f.read().strip()
    return {"SIGINT": name(signal.getsignal(signal.SIGINT)), "SIGTERM": name(signal.getsignal(signal.SIGTERM)),
            "comm": comm, "frozen": gc.get_freeze_count() > 0}


def modules_after_training(path: str) -> dict:
    """Train here (a helper process, where Numba has started lean) and say which of the modules that
    loading the kernels need not import were imported."""
    from bpe_numba import train_bpe

    train_bpe(path, 300, ["<|endoftext|>"], num_workers=2, isolate=False, backend="kernels")
    return {name: name in sys.modules for name in ("numpy.ma", "numba.np.arrayobj")}
