"""The processes bpe_numba starts: chunk workers (:func:`map_chunks`) and the training helper
(:func:`run_in_helper`), with private pipes. Workers are started with ``spawn``; the helper is forked where
that is safe (:func:`helper_start_method`) and spawned elsewhere.

Both kinds run nothing but bpe_numba's own code. Their kernels run from the native bundle when it fits
(:mod:`bpe_numba.native`, no Numba at all); if a kernel needs Numba, they start it lean
(:func:`lean_numba_start`, through :func:`bpe_numba.jit.on_numba_start`): they skip what Numba pays for
*other* code in the environment and for compiling, which in a process that has SciPy and a package with a
Numba extension (awkward, pulled in by gigatoken) came to about 0.8-1 s per process on the 2-core
development machine:

- ``numba.np.arraymath`` imports ``scipy.linalg`` to probe for BLAS (0.2-0.4 s); bpe_numba's kernels use no
  linear algebra, so SciPy is marked unavailable in these processes (and so is cffi, which Numba imports
  with pycparser to type cffi functions: 0.03-0.06 s; and PyYAML, imported only to read a
  ``.numba_config.yaml``, when there is none);
- on its first compile or cache load Numba imports every installed ``numba_extensions`` entry point
  (0.3-0.4 s for awkward); these processes type no foreign objects, so that step is marked done;
- loading a kernel from the cache first refreshes every typing and lowering registry (0.15-0.3 s), which
  loading does not need (:func:`_load_cached_kernels_without_refresh`).
- typing a read-only array argument imports ``numpy.ma`` to rule out a masked array (0.04-0.05 s); an
  exact ``np.ndarray`` is typed without it (:func:`_type_arrays_without_masked_probe`).

The caller's own process is never changed this way.

Neither kind outlives the process that started it, however that process ends (Ctrl-C, an exception,
SIGTERM, SIGKILL, a notebook restart): each calls :func:`_die_with_parent` first thing. The only other
process bpe_numba starts is the background warm-up of :mod:`bpe_numba.tiers`, which is detached on purpose
(it finishes compiling for later processes, once) and ends by itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Iterable, Iterator

from .jit import on_numba_start
from .progress import progress_bar, relay_progress_to

HELPER_GRACE = 5.0  # seconds the training helper gets to stop cleanly after SIGINT before it is killed


def lean_numba_start() -> None:
    """Start Numba for bpe_numba's kernels alone; only for processes that bpe_numba started itself.

    Numba has no public switch for either step. If a future Numba renames the flag, the extensions load
    as usual: slower, never wrong.
    """
    if "numba" in sys.modules:
        return
    blocked = ["scipy", "cffi"]  # `import scipy` raises ImportError: Numba then reports no BLAS
    if not os.path.exists(".numba_config.yaml"):
        blocked.append("yaml")  # Numba imports PyYAML (0.03-0.05 s) only to read that file
    for name in blocked:
        if name not in sys.modules:
            sys.modules[name] = None
    import numba.core.entrypoints

    numba.core.entrypoints._already_initialized = True
    _load_cached_kernels_without_refresh()
    _type_arrays_without_masked_probe()


def _type_arrays_without_masked_probe() -> None:
    """Type exact ``np.ndarray`` arguments without asking whether they are masked arrays.

    Numba types in C the arrays it can; the others (read-only ones, as bpe_numba passes its text) go through
    ``typeof``, whose first step, ``isinstance(val, np.ma.MaskedArray)``, imports ``numpy.ma``: 0.04-0.05 s
    in the first call of a process. An exact ``np.ndarray`` is never a masked array, so for those the same
    type is computed without that step; anything else (a subclass, a dtype Numba refuses) goes to Numba's
    own function. If a future Numba renames what this relies on, nothing is changed.
    """
    import numpy as np
    from numba.core import types
    from numba.core.typing import typeof
    from numba.np import numpy_support

    numbas = typeof.typeof_impl.dispatch(np.ndarray)
    if getattr(numbas, "__qualname__", "") != "_typeof_ndarray" or not hasattr(numpy_support, "map_layout"):
        return

    @typeof.typeof_impl.register(np.ndarray)
    def _typeof_exact_ndarray(val, c):
        if type(val) is not np.ndarray:
            return numbas(val, c)
        try:
            dtype = numpy_support.from_dtype(val.dtype)
        except Exception:  # noqa: BLE001 - Numba's own function raises its own error for this dtype
            return numbas(val, c)
        return types.Array(dtype, val.ndim, numpy_support.map_layout(val), readonly=not val.flags.writeable)


def _load_cached_kernels_without_refresh() -> None:
    """Load kernels from Numba's on-disk cache without first refreshing the compiler's registries.

    ``numba.core.caching.Cache.load_overload`` refreshes the target context (80 more Numba modules and
    every typing and lowering registry: 0.15-0.3 s here) before it unpickles a cached function, which
    needs only the runtime (NRT) initialized: the object code is linked by the code generator, built with
    the context. Whatever does need the registries refreshes them itself (``compile_extra`` before any
    compilation, ``BaseContext.get_function`` on a miss). If a future Numba changes these names, nothing
    is changed.
    """
    from numba.core import caching
    from numba.core.runtime import rtsys

    method = caching.Cache.load_overload
    if (getattr(method, "__qualname__", "") != "Cache.load_overload" or not hasattr(caching.Cache, "_load_overload")
            or not hasattr(rtsys, "initialize")):
        return

    def load_overload(self, sig, target_context):
        rtsys.initialize(target_context)  # what the skipped refresh would have done first; idempotent
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)

    caching.Cache.load_overload = load_overload


_PR_SET_PDEATHSIG, _PR_SET_NAME = 1, 15  # prctl options (linux/prctl.h)


def _prctl(option: int, arg) -> None:
    """Linux's ``prctl(option, arg)``; nothing where the C library has no ``prctl``."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(option, arg, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _die_with_parent() -> None:
    """End this process (a child of ours) as soon as its parent is gone, however the parent ended.

    On Linux the kernel does it: ``PR_SET_PDEATHSIG`` sends SIGKILL when the thread that started this
    process exits (``run_in_helper`` and ``map_chunks`` wait in that thread until their children are
    reaped); a parent that died before the request is caught by the check after it. Everywhere, a daemon
    thread waits on the parent's sentinel (an end of a pipe that only the parent holds, at EOF once it is
    gone) and, on POSIX, checks every second that this process has not been reparented, then exits at once
    (the children of this process, its own workers, end the same way).
    """
    import multiprocessing
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # without prctl in this libc, the thread below still watches
    if os.name == "posix" and os.getppid() != parent.pid:
        os._exit(1)  # the parent died before the request took effect

    def watch() -> None:
        from multiprocessing.connection import wait

        while not wait([parent.sentinel], timeout=1.0):
            if os.name == "posix" and os.getppid() != parent.pid:
                break
        os._exit(1)

    threading.Thread(target=watch, name="bpe_numba-parent-watch", daemon=True).start()


def map_chunks(fn, tasks: Iterable, *, workers: int, ordered: bool, initializer=None, initargs=()) -> Iterator:
    """``fn`` over ``tasks``: in this process with one worker (or inside a daemonic process, which may not
    have children), else in ``workers`` spawned processes with at most two tasks in flight per worker (so
    results never pile up in memory), in task order or as they finish.

    Each worker has a private pipe to this process, so no lock is ever shared with a worker: on an error or
    Ctrl-C in the caller (including a ``GeneratorExit``) every worker is killed and reaped before the
    exception propagates, and none can outlive the call, nor this process if that is killed
    (:func:`_die_with_parent`). (``multiprocessing.Pool.terminate`` can hang when a worker holds the shared
    result queue's lock while writing a large result.)
    """
    if workers <= 1 or not can_start_processes():
        if initializer is not None:
            initializer(*initargs)
        for task in tasks:
            yield fn(task)
        return

    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("spawn")
    procs, conns = [], []
    try:
        with _main_module_hidden():
            for _ in range(workers):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker_main, args=(child, _packed(fn, initializer, initargs)), daemon=True)
                proc.start()
                child.close()
                procs.append(proc)
                conns.append(parent)
        tasks = iter(tasks)
        busy = {c: 0 for c in conns}
        owner = {c: p for c, p in zip(conns, procs)}
        n_sent = 0
        done: dict[int, object] = {}  # finished out of order (ordered mode)
        next_out = 0
        exhausted = False
        while True:
            if not exhausted:
                for c in conns:
                    while busy[c] < 2 and not exhausted:
                        task = next(tasks, None)
                        if task is None:
                            exhausted = True
                            break
                        c.send((n_sent, task))
                        busy[c] += 1
                        n_sent += 1
            if exhausted and not any(busy.values()):
                break
            for c in wait([c for c in conns if busy[c]]):
                try:
                    kind, index, payload = c.recv()
                except EOFError:
                    proc = owner[c]
                    proc.join(1)
                    raise RuntimeError(
                        f"a worker process died (exit code {proc.exitcode}); if the system ran out of memory, "
                        f"use fewer workers or a smaller chunk_size"
                    ) from None
                busy[c] -= 1
                if kind == "error":
                    raise RuntimeError(f"a worker process failed:\n{payload}")
                if not ordered:
                    yield payload
                    continue
                done[index] = payload
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
        for c in conns:
            c.send(None)
        for proc in procs:
            proc.join(10)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        for proc in procs:
            proc.join()
        for c in conns:
            c.close()


def _packed(*objects) -> bytes:
    """``objects`` pickled apart from the process object, so that a child unpickles them (importing numpy,
    say) only after :func:`_die_with_parent`: a parent killed while the child starts is noticed at once."""
    import pickle

    return pickle.dumps(objects, protocol=pickle.HIGHEST_PROTOCOL)


def _unpacked(payload: bytes) -> tuple:
    import pickle

    return pickle.loads(payload)


def _worker_main(conn, payload: bytes) -> None:
    """A worker: run ``fn`` on each ``(index, task)`` received until ``None``; send back each result or the
    traceback of its exception. Exits without the interpreter's teardown (nothing is left to flush)."""
    import traceback

    _die_with_parent()
    # Ctrl-C goes to the whole process group; the parent handles it and kills the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    on_numba_start(lean_numba_start)  # when a kernel first needs Numba (jit); maybe never
    fn, initializer, initargs = _unpacked(payload)
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the parent is gone
            break
        if message is None:
            break
        index, task = message
        try:
            reply = ("ok", index, fn(task))
        except Exception:  # noqa: BLE001 - reported to the parent, which raises it
            reply = ("error", index, traceback.format_exc())
        try:
            conn.send(reply)
        except OSError:  # the parent is gone (interrupted)
            break
    _fast_exit(0)


def _fast_exit(code: int) -> None:
    """End a process of ours at once: its work is sent and its children are reaped, so the interpreter's
    teardown (0.2-0.3 s of garbage collection over Numba's objects) would only add to the caller's wait."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(code)


@contextlib.contextmanager
def _main_module_hidden():
    """Start spawned processes without re-running the caller's ``__main__``.

    ``spawn`` normally re-imports the main script in every child, which fails (or trains again) in a
    script without an ``if __name__ == "__main__"`` guard. Our children only need this package, so while
    they start, ``__main__`` is made to look like an interactive session (no ``__file__``, no spec).
    """
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        for k in saved:
            if k == "__spec__":
                main.__spec__ = None
            else:
                del main.__dict__[k]
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def can_start_processes() -> bool:
    """False inside a daemonic process (a ``multiprocessing.Pool`` worker), which may not have children."""
    import multiprocessing

    return not multiprocessing.current_process().daemon


def helper_start_method() -> str:
    """How :func:`run_in_helper` starts its process: ``"fork"`` on Linux when this process runs a single
    thread and has not imported Numba, else ``"spawn"``.

    A forked helper skips a new interpreter's start and the imports of bpe_numba's modules: it runs 0.15 s
    sooner on the development machine (0.24-0.31 s from the call to the helper's first line, against 0.44
    s spawned; most of what is left is importing numpy and Numba). A fork is safe where no other thread
    exists (none can hold a lock that the child would inherit locked; native threads count too, such as
    the BLAS pool that importing numpy can start, so the kernel's list of this process's threads is what is
    checked). Without Numba here, the child starts it lean as a spawned helper would. The helper resets the
    signal handlers it inherits (:func:`_helper_main`) and names itself ``bpe-numba-train``.
    """
    if sys.platform.startswith("linux") and "numba" not in sys.modules:
        try:
            if len(os.listdir("/proc/self/task")) == 1:
                return "fork"
        except OSError:
            pass
    return "spawn"


def run_in_helper(fn, *args):
    """``fn(*args)`` in a fresh helper process (:func:`helper_start_method`) that starts Numba lean; returns
    its result. The helper's progress bars are drawn here.

    An exception in the helper is raised here as the same exception (with the helper's traceback as a
    note) when it can be pickled, else as a ``RuntimeError`` carrying that traceback. On Ctrl-C, or any
    exception here, the helper gets SIGINT (it stops its own workers and exits) and is killed if it has
    not exited after :data:`HELPER_GRACE` seconds; it never outlives the call, nor this process if that is
    killed (:func:`_die_with_parent`).
    """
    import multiprocessing

    reader, writer = multiprocessing.Pipe(duplex=False)
    payload = _packed(fn, args)
    proc = None
    bars: dict = {}
    try:
        proc = _start_helper(writer, payload)
        writer.close()
        while True:
            try:
                message = reader.recv()
            except EOFError:
                proc.join(HELPER_GRACE)
                if proc.exitcode == 130:  # interrupted on its own (a SIGINT sent to it alone)
                    raise KeyboardInterrupt from None
                raise RuntimeError(
                    f"the bpe_numba helper process died (exit code {proc.exitcode}); if the system ran out "
                    f"of memory, train on a smaller file or with fewer workers"
                ) from None
            if message[0] != "bar":
                break
            _, i, op, arg = message
            if op == "open":
                bars[i] = progress_bar(True, **arg)
            elif op == "update":
                bars[i].update(arg)
            else:
                bars.pop(i).close()
        kind, payload, tb = message
        proc.join()
    finally:
        for bar in bars.values():
            bar.close()
        if proc is not None and proc.pid is not None and proc.exitcode is None:
            _stop(proc)
        reader.close()
        writer.close()
    if kind == "ok":
        return payload
    if isinstance(payload, BaseException):
        payload.add_note(f"(raised in bpe_numba's helper process)\n{tb}")
        raise payload
    raise RuntimeError(f"the bpe_numba helper process failed:\n{tb}")


def _start_helper(writer, payload: bytes):
    """The started helper process: forked where :func:`helper_start_method` says so, else spawned, and
    spawned too when the fork fails (a caller too large for the system to fork: ``ENOMEM``).

    Before a fork the caller's objects are frozen out of the garbage collector (``gc.freeze``, as Python's
    documentation advises before a fork), so that the helper's collections do not write to them, which
    would copy the caller's pages into the helper; the caller unfreezes them as soon as the fork is done.
    """
    import gc
    import multiprocessing

    if helper_start_method() == "fork":
        proc = multiprocessing.get_context("fork").Process(target=_helper_main, args=(writer, payload, True),
                                                           daemon=False)
        gc.freeze()
        try:
            proc.start()
            return proc
        except OSError:
            pass
        finally:
            gc.unfreeze()
    proc = multiprocessing.get_context("spawn").Process(target=_helper_main, args=(writer, payload, False),
                                                        daemon=False)
    with _main_module_hidden():
        proc.start()
    return proc


def _stop(proc) -> None:
    """SIGINT, then a kill after the grace period; always reaped."""
    try:
        if os.name == "posix":
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
        else:
            proc.terminate()
        proc.join(HELPER_GRACE)
    finally:
        if proc.exitcode is None:
            proc.kill()
        proc.join()


def _interrupt_once(signum, frame):
    # A Ctrl-C reaches the helper twice (from the terminal and forwarded by the caller); a second
    # KeyboardInterrupt must not cut short the clean-up of the first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _round_trips(exc: BaseException) -> bool:
    import pickle

    try:
        return type(pickle.loads(pickle.dumps(exc))) is type(exc)
    except Exception:  # noqa: BLE001 - sent as its traceback instead
        return False


def _forked_start() -> None:
    """In a forked helper: the caller's Python signal handlers are the caller's business, so they go back
    to what a spawned helper starts with (SIGINT to Python's handler unless it is ignored, the others to
    the default); and the process takes a name of its own (``ps``, ``top``), as it keeps the caller's
    command line."""
    for sig in signal.valid_signals():
        try:
            handler = signal.getsignal(sig)
            if sig == signal.SIGINT:
                if handler is not signal.SIG_IGN:
                    signal.signal(sig, signal.default_int_handler)
            elif callable(handler):
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):  # a signal Python cannot handle
            pass
    _prctl(_PR_SET_NAME, b"bpe-numba-train")


def _helper_main(conn, payload: bytes, forked: bool = False) -> None:
    import traceback

    _die_with_parent()
    if forked:
        _forked_start()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt_once)
    on_numba_start(lean_numba_start)  # when a kernel first needs Numba (jit); maybe never
    relay_progress_to(conn)
    code = 0
    try:
        fn, args = _unpacked(payload)
        reply = ("ok", fn(*args), None)
    except KeyboardInterrupt:
        _fast_exit(130)  # the caller was interrupted too and raises its own KeyboardInterrupt
    except BaseException as exc:  # noqa: BLE001 - raised again in the caller
        reply = ("error", exc if _round_trips(exc) else None, traceback.format_exc())
        code = 1
    try:
        try:
            conn.send(reply)
        except Exception:  # noqa: BLE001 - an unpicklable result or exception
            conn.send(("error", None, reply[2] or traceback.format_exc()))
    except OSError:  # the caller is gone
        code = 1
    _fast_exit(code)
