"""``njit`` and ``intrinsic`` for the kernel modules, without importing Numba until a kernel needs it.

The kernel modules decorate with :func:`njit` and :func:`intrinsic` from here instead of Numba's, so that
importing them loads no Numba. A kernel is then a :class:`LazyKernel`. Its first call in a process looks
for the kernel's machine code in the native bundle (:mod:`bpe_numba.native`, saved after Numba compiled or
loaded the kernels once). It uses that code when the bundle holds an overload for the argument types and
Numba has not been started in this process yet; such a process never imports Numba (0.3-0.45 s saved
per process). Otherwise, or when the types match no bundled overload, Numba is started
(:func:`start_numba`) and the call goes to the kernel's Numba dispatcher.

Starting Numba makes every kernel and intrinsic of the package Numba's own:

- the dispatchers are created with the options given to :func:`njit`;
- every module of the package that holds a :class:`LazyKernel` or :class:`LazyIntrinsic` as a global gets
  the Numba object in its place, so that kernels compiled from then on call the other kernels and the
  intrinsics directly;
- a kernel module imported later gets Numba's objects at once.

Before that, :func:`start_numba` installs the cache wrappers of :mod:`bpe_numba.numba_cache` and runs the
hook that :func:`on_numba_start` set (bpe_numba's own processes start Numba lean:
:func:`bpe_numba.processes.lean_numba_start`).

Attribute lookups on a :class:`LazyKernel` (``signatures``, ``py_func``, ``_cache``...) go to its
dispatcher, so they start Numba.
"""

from __future__ import annotations

import sys
import threading

_LOCK = threading.RLock()
_kernels: list["LazyKernel"] = []
_intrinsics: list["LazyIntrinsic"] = []
_state: dict = {"numba": False, "hook": None}


def numba_started() -> bool:
    """Whether the kernels of this process are Numba's (:func:`start_numba` ran)."""
    return _state["numba"]


def on_numba_start(hook) -> None:
    """Run ``hook()`` just before this process imports Numba for the kernels (at once if it already did)."""
    if _state["numba"]:
        hook()
    else:
        _state["hook"] = hook


def njit(*args, **options):
    """Numba's ``njit`` for bpe_numba's kernels, deferred: ``@njit(cache=True, nogil=True)``."""
    if args and callable(args[0]) and not options:
        return _kernel(args[0], {})
    return lambda fn: _kernel(fn, options)


def intrinsic(fn):
    """Numba's ``@intrinsic``, deferred: the typing function is handed to Numba when it starts."""
    if _state["numba"]:
        from numba.core.extending import intrinsic as numba_intrinsic

        return numba_intrinsic(fn)
    with _LOCK:
        lazy = LazyIntrinsic(fn)
        _intrinsics.append(lazy)
        return lazy


def _kernel(fn, options: dict):
    """A :class:`LazyKernel` (every kernel is listed in ``_kernels``), or its dispatcher once Numba runs."""
    with _LOCK:
        lazy = LazyKernel(fn, options)
        _kernels.append(lazy)
        if not _state["numba"]:
            return lazy
        import numba

        lazy.dispatcher = numba.njit(**options)(fn)
        return lazy.dispatcher


class LazyIntrinsic:
    """An ``@intrinsic`` until Numba starts (it is only ever called from compiled kernels)."""

    def __init__(self, fn):
        self.fn = fn
        self.real = None
        self.__name__, self.__qualname__, self.__module__ = fn.__name__, fn.__qualname__, fn.__module__
        self.__doc__ = fn.__doc__

    def __call__(self, *args):
        raise TypeError(f"{self.__qualname__} is a Numba intrinsic: it can only be called from a kernel")


class LazyKernel:
    """A kernel of bpe_numba: its native code (:mod:`bpe_numba.native`) while Numba is not started, else its
    Numba dispatcher."""

    def __init__(self, fn, options: dict):
        self.function = fn
        self.options = dict(options)
        self.dispatcher = None
        self.native = None  # None: not looked up yet; then a tuple of native overloads, maybe empty
        self.__name__, self.__qualname__, self.__module__ = fn.__name__, fn.__qualname__, fn.__module__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def name(self) -> str:
        return f"{self.__module__}.{self.__qualname__}"

    def __call__(self, *args):
        native = self.native
        if native is None:
            native = self._look_up()
        for overload in native:
            flat = overload.match(args)
            if flat is not None:
                return overload.call(flat)
        dispatcher = self.dispatcher
        if dispatcher is None:
            start_numba()
            dispatcher = self.dispatcher
        return dispatcher(*args)

    def _look_up(self) -> tuple:
        """The native overloads of this kernel, when Numba is not started."""
        with _LOCK:
            if self.native is None:
                found = ()
                if not _state["numba"]:
                    from . import native

                    found = native.overloads(self.name)
                self.native = found
            return self.native

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if self.dispatcher is None:
            start_numba()
        return getattr(self.dispatcher, name)

    def __repr__(self) -> str:
        return f"<bpe_numba kernel {self.name}>"


def start_numba() -> None:
    """Import Numba and give every kernel and intrinsic its Numba object (idempotent, thread-safe)."""
    if _state["numba"]:
        return
    with _LOCK:
        if _state["numba"]:
            return
        hook, _state["hook"] = _state["hook"], None
        if hook is not None:
            hook()
        from . import numba_cache

        numba_cache.install()
        import numba
        from numba.core.extending import intrinsic as numba_intrinsic

        for lazy in _intrinsics:
            lazy.real = numba_intrinsic(lazy.fn)
        for kernel in _kernels:
            kernel.dispatcher = numba.njit(**kernel.options)(kernel.function)
        swap = {id(obj): obj.real for obj in _intrinsics}
        swap.update((id(kernel), kernel.dispatcher) for kernel in _kernels)
        package = __name__.rpartition(".")[0] + "."
        for name, module in list(sys.modules.items()):
            if name.startswith(package) and module is not None:
                namespace = vars(module)
                for key, value in list(namespace.items()):
                    if isinstance(value, (LazyKernel, LazyIntrinsic)) and id(value) in swap:
                        namespace[key] = swap[id(value)]
        _state["numba"] = True
