"""Threads over ``nogil`` kernels: the workers of counting and encoding, inside the calling process.

The kernels release the GIL, so threads of one process run them side by side: no process start-up, no
pickling, one copy of Numba and of the model in memory. A worker function runs its kernels in bounded
slices and checks a stop flag between them, so the caller can stop every thread within a slice's time
(a few milliseconds) on Ctrl-C or on the first error.
"""

from __future__ import annotations

import threading
from typing import Callable


class Stopped(Exception):
    """Raised inside a worker whose stop flag is set (the run is being abandoned)."""


def run_threads(worker: Callable[[int, threading.Event], None], n_threads: int, *,
                on_tick: Callable[[], None] | None = None, tick: float = 0.1) -> None:
    """Run ``worker(i, stop)`` for ``i`` in ``range(n_threads)``, each in a thread of its own, and wait.

    While waiting, ``on_tick()`` is called about every ``tick`` seconds (progress bars). On the first
    exception in any worker, or an exception in this thread (Ctrl-C), ``stop`` is set, every thread is
    joined, and the exception is raised here; none outlives the call. A worker that sees ``stop`` set
    should return (or raise :class:`Stopped`, which is not reported).
    """
    stop = threading.Event()
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            worker(i, stop)
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=run, args=(i,), name=f"bpe_numba-{i}", daemon=True)
               for i in range(n_threads)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(tick)
                if on_tick is not None:
                    on_tick()
    finally:
        stop.set()
        for t in threads:
            if t.ident is not None:
                t.join()
    if errors:
        raise errors[0]
