"""The native bundle: the kernels' machine code, run without importing Numba.

Numba's start-up dominates a short run. Importing it takes 0.2-0.3 s beyond numpy, and loading cached
kernels another 0.1-0.17 s, in every process. The machine code those kernels run is already in Numba's
cache files, and llvmlite alone links it in about 10 ms (llvmlite's import: 0.03-0.04 s).

Saving (:func:`save_bundle`, in a process where Numba has compiled or loaded the kernels: the warm-up, or
a training run that needed Numba). For every overload of a kernel, the bundle records:

- the object code, from Numba's cache file (or from memory when caching is off);
- the argument and return types;
- the symbol of Numba's internal entry point.

The file is ``native-<key>.bin`` in :func:`bpe_numba.tiers.cache_dir`. The key covers Python, numpy, Numba,
llvmlite, the kernel sources and every ``NUMBA_*`` variable. The file holds the host CPU's name and
features, and a SHA-256 of its content. It is checked by loading it in a fresh process before it replaces
the old one (atomically): a bundle that does not link never lands. When that check fails, a
``native-<key>.failed`` file stops later attempts, except the warm-up's (``bpe-numba warmup``).

Loading (:func:`overloads`, on a kernel's first call in a process where Numba is not started):

- numba's C helper modules (``_helperlib``, ``_dynfunc``, ``_nrt_python``) are loaded on their own,
  without the ``numba`` package, for the symbols Numba registers with LLVM (those the objects name);
- the objects are linked by llvmlite's MCJIT, as Numba links them;
- each overload is called through ``ctypes`` with Numba's internal calling convention:
  ``status = f(&ret, &excinfo, args...)``, where each array argument is passed as its fields
  ``(meminfo=NULL, parent=NULL, nitems, itemsize, data, *shape, *strides)`` and tuples are flattened.
  ``ctypes`` releases the GIL during the call of a ``nogil`` kernel and keeps it for the others.
- A status other than 0 raises the kernel's exception, unpickled as Numba would.

The arguments must match an overload exactly: dtype, dimensions, C-contiguous and aligned arrays, and
writable where the overload writes. Anything else goes to Numba (:mod:`bpe_numba.jit`). Arrays come in
without a Numba reference count (``meminfo`` NULL), so the kernels' reference counting leaves them alone;
a kernel that allocates scratch arrays inside (the encoding kernels) uses Numba's runtime (NRT) from its
extension module, whose import sets it up (with ``malloc``, where Numba makes it use CPython's allocator).

Off when ``BPE_NUMBA_NATIVE=0``, when ``NUMBA_DISABLE_JIT`` is set, and outside Linux. Then, and whenever
the bundle is missing, stale, damaged or for another CPU, the kernels run through Numba as before.

Performance notes (2026-11-30, the 2-core development machine; scripts in ``/work/scratch/s25``)
------------------------------------------------------------------------------------------------
- A fresh process, after numpy (0.08-0.11 s): llvmlite's import 0.02-0.04 s, reading the bundle (0.47 MB,
  26 objects) 2 ms, linking it 12-15 ms (numba's three helper modules 1 ms of it), the first kernel calls
  3-5 ms. Through Numba: its import 0.20-0.29 s beyond numpy, loading the cached kernels 0.1-0.17 s.
- Whole training process on ``prose_en.txt`` at vocab 10K (``e2e.py``, fresh processes, the same merges):
  0.87-1.05 s against 1.09-1.29 s with ``BPE_NUMBA_NATIVE=0``; the training call's start-up phase 0.12-0.23
  s against 0.35-0.50 s. The same file repeated to 1 GB: 3.91, 4.82 and 4.56 s against 5.03, 3.91 and 4.78
  s (interleaved): the kernels' own time is the same machine code either way.
- Matching the arguments of a call costs about 3 us per array argument in Python (``flatten``'s 8 arrays:
  25 us, 45 us before each dtype was resolved once per overload instead of at every call), most of it
  ``ndarray.ctypes.data``; the count and merge loops make tens of calls per file, so this is not seen.
- Registering with LLVM only the Numba symbols the objects name (16 of about 270) left linking at 12-15
  ms: the time is in adding and finalizing the objects.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import pickle
import sys
from pathlib import Path

FORMAT = 2
_MAGIC = b"bpe_numba native bundle\n"
# Per process: "kernels" ({name: tuple of NativeOverload}, linked once), "engine" (which holds their code),
# ("saved", path) (the overloads known to be in the bundle at path).
_loaded: dict = {}


def enabled() -> bool:
    """Whether this process may use the native bundle."""
    return (sys.platform.startswith("linux") and os.environ.get("BPE_NUMBA_NATIVE", "1") != "0"
            and os.environ.get("NUMBA_DISABLE_JIT", "0") in ("", "0"))


def bundle_path() -> Path:
    """Where this environment's bundle is (it may not exist)."""
    from .tiers import _installation, cache_dir, environment_key

    h = hashlib.sha256(f"{FORMAT}\0{environment_key()}\0{_installation('llvmlite')}".encode("utf-8", "surrogateescape"))
    for name in sorted(os.environ):
        if name.startswith("NUMBA_"):
            h.update(f"\0{name}={os.environ[name]}".encode("utf-8", "surrogateescape"))
    return cache_dir() / f"native-{h.hexdigest()[:24]}.bin"


def overloads(name: str) -> tuple:
    """The native overloads of the kernel ``name`` (``module.qualname``); empty when there are none. The
    bundle is linked at the first call (:mod:`bpe_numba.jit` calls this under its lock)."""
    if "kernels" not in _loaded:
        kernels = {}
        if enabled():
            try:
                kernels = _link(_read(bundle_path()))
            except Exception:  # noqa: BLE001 - no bundle, or not for this process: Numba runs the kernels
                kernels = {}
        _loaded["kernels"] = kernels
    return _loaded["kernels"].get(name, ())


def _read(path: Path) -> dict:
    """The bundle at ``path``; a damaged one is deleted (ValueError)."""
    data = path.read_bytes()
    head = len(_MAGIC) + 32
    if data[:len(_MAGIC)] != _MAGIC or hashlib.sha256(data[head:]).digest() != data[len(_MAGIC):head]:
        with contextlib.suppress(OSError):
            path.unlink()
        raise ValueError(f"{path} is damaged (deleted)")
    content = pickle.loads(data[head:])
    if content.get("format") != FORMAT:
        raise ValueError(f"{path} has format {content.get('format')}")
    return content


def _host() -> tuple[str, str]:
    import llvmlite.binding as ll

    try:
        features = ll.get_host_cpu_features().flatten()
    except RuntimeError:
        features = ""
    return ll.get_host_cpu_name(), features


def _numba_extension(name: str):
    """numba's C extension ``numba.<name>``, loaded without importing the ``numba`` package."""
    full = "numba." + name
    if full in sys.modules:
        return sys.modules[full]
    import importlib.machinery
    import importlib.util

    spec = importlib.util.find_spec("numba")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("numba is not installed")
    base = os.path.join(list(spec.submodule_search_locations)[0], *name.split("."))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if os.path.exists(base + suffix):
            loader = importlib.machinery.ExtensionFileLoader(full, base + suffix)
            spec = importlib.util.spec_from_file_location(full, base + suffix, loader=loader)
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
            return module
    raise ImportError(f"no extension module {full}")


def _numba_symbols() -> dict[str, int]:
    """The symbols Numba registers with LLVM (``numba.core.base._load_global_helpers`` and
    ``numba.core.runtime.nrt``) and their addresses, from the same extension modules."""
    import builtins

    symbols = {"_Py_NoneStruct": id(None)}
    for module in ("_helperlib", "_dynfunc"):
        for py_name, address in _numba_extension(module).c_helpers.items():
            symbols["numba_" + py_name] = address
    for py_name, address in _numba_extension("core.runtime._nrt_python").c_helpers.items():
        symbols[py_name if py_name.startswith("_") else "NRT_" + py_name] = address
    for obj in vars(builtins).values():
        if isinstance(obj, type) and issubclass(obj, BaseException):
            symbols[f"PyExc_{obj.__name__}"] = id(obj)
    return symbols


def _link(content: dict) -> dict:
    """Link the bundle's objects; ``{kernel name: (NativeOverload, ...)}``."""
    import llvmlite.binding as ll

    if (content["cpu"], content["features"]) != _host():
        raise ValueError("the bundle is for another CPU")
    symbols = _numba_symbols()
    for name in content["symbols"]:  # those the objects name (the others: about 10 ms of calls)
        ll.add_symbol(name, symbols[name])
    ll.initialize_native_target()
    ll.initialize_native_asmprinter()
    target = ll.Target.from_triple(ll.get_process_triple())
    machine = target.create_target_machine(cpu=content["cpu"], features=content["features"], opt=3,
                                           reloc="static", codemodel="jitdefault", jit=True)
    engine = ll.create_mcjit_compiler(ll.parse_assembly(""), machine)
    for obj in content["objects"]:
        engine.add_object_file(ll.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    _loaded["engine"] = engine  # the code lives as long as the engine
    kernels = {}
    for name, entries in content["kernels"].items():
        kernels[name] = tuple(NativeOverload(name, engine.get_function_address(e["symbol"]), e["args"], e["ret"],
                                             e["nogil"]) for e in entries)
    return kernels


_INTS = {(8, True): ctypes.c_int8, (16, True): ctypes.c_int16, (32, True): ctypes.c_int32, (64, True): ctypes.c_int64,
         (8, False): ctypes.c_uint8, (16, False): ctypes.c_uint16, (32, False): ctypes.c_uint32,
         (64, False): ctypes.c_uint64}
_FLOATS = {32: ctypes.c_float, 64: ctypes.c_double}


def _ctypes_of(spec) -> list:
    """The C types that one argument of ``spec`` is passed as (Numba flattens arrays and tuples)."""
    kind = spec[0]
    if kind == "a":
        ndim = spec[2]
        # meminfo, parent, nitems, itemsize, data, then shape and strides
        fields = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
        return fields + [ctypes.c_int64] * (2 * ndim)
    if kind == "t":
        return [c for sub in spec[1] for c in _ctypes_of(sub)]
    return [_scalar_ctype(spec)]


def _scalar_ctype(spec):
    kind = spec[0]
    if kind == "i":
        return _INTS[(spec[1], spec[2])]
    if kind == "b":
        return ctypes.c_uint8
    if kind == "f":
        return _FLOATS[spec[1]]
    raise ValueError(f"no C type for {spec!r}")


def _return_ctype(spec):
    if spec[0] == "n":
        return ctypes.c_int64  # a place Numba may leave untouched
    if spec[0] == "t":
        fields = [(f"f{i}", _scalar_ctype(s)) for i, s in enumerate(spec[1])]
        return type("Ret", (ctypes.Structure,), {"_fields_": fields})
    return _scalar_ctype(spec)


def _with_dtypes(spec):
    """``spec`` with each array's dtype name resolved to its ``np.dtype``, once, for :func:`_flatten`."""
    import numpy as np

    if spec[0] == "a":
        return ("a", np.dtype(spec[1]), *spec[2:])
    if spec[0] == "t":
        return ("t", tuple(_with_dtypes(sub) for sub in spec[1]))
    return spec


def _flatten(spec, value, out: list) -> bool:
    """Append ``value``'s C arguments for ``spec`` (dtypes resolved: :func:`_with_dtypes`) to ``out``; False
    if it does not match."""
    import numpy as np

    kind = spec[0]
    if kind == "a":
        if (not isinstance(value, np.ndarray) or value.ndim != spec[2] or value.dtype != spec[1]
                or not value.flags.c_contiguous or not value.flags.aligned
                or (not spec[3] and not value.flags.writeable)):
            return False
        out += (None, None, value.size, value.itemsize, value.ctypes.data, *value.shape, *value.strides)
        return True
    if kind == "t":
        if not isinstance(value, tuple) or len(value) != len(spec[1]):
            return False
        return all(_flatten(sub, item, out) for sub, item in zip(spec[1], value))
    if kind == "b":
        if not isinstance(value, (bool, np.bool_)):
            return False
        out.append(int(value))
        return True
    if isinstance(value, (bool, np.bool_)):
        return False
    if kind == "i":
        if not isinstance(value, (int, np.integer)):
            return False
        bits, signed = spec[1], spec[2]
        value = int(value)
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not low <= value <= high:
            return False
        out.append(value)
        return True
    if kind == "f":
        if not isinstance(value, (float, np.floating)):
            return False
        out.append(float(value))
        return True
    return False


class NativeOverload:
    """One compiled overload of a kernel, called through ``ctypes``."""

    __slots__ = ("name", "specs", "ret", "_fn", "_ret_type")

    def __init__(self, name: str, address: int, specs, ret, nogil: bool):
        self.name, self.specs, self.ret = name, tuple(_with_dtypes(spec) for spec in specs), ret
        self._ret_type = _return_ctype(ret)
        argtypes = [c for spec in self.specs for c in _ctypes_of(spec)]
        # CFUNCTYPE releases the GIL during the call (nogil kernels); PYFUNCTYPE keeps it (a kernel that
        # calls the C API, such as list_kernels.fill_list).
        factory = ctypes.CFUNCTYPE if nogil else ctypes.PYFUNCTYPE
        prototype = factory(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, *argtypes)
        self._fn = prototype(address)

    def match(self, args) -> list | None:
        """The flat C arguments for ``args``, or None if they do not fit this overload."""
        if len(args) != len(self.specs):
            return None
        flat: list = []
        for spec, value in zip(self.specs, args):
            if not _flatten(spec, value, flat):
                return None
        return flat

    def call(self, flat: list):
        ret = self._ret_type()
        excinfo = ctypes.c_void_p()
        status = self._fn(ctypes.byref(ret), ctypes.byref(excinfo), *flat)
        if status != 0:
            raise self._error(status, excinfo.value)
        kind = self.ret[0]
        if kind == "n":
            return None
        if kind == "t":
            return tuple(getattr(ret, f"f{i}") for i in range(len(self.ret[1])))
        if kind == "b":
            return bool(ret.value)
        return ret.value

    def _error(self, status: int, excinfo: int | None) -> BaseException:
        """The exception the kernel raised: Numba's excinfo holds ``(class, args, location)`` pickled."""
        if status > 0 and excinfo:
            try:
                buf = ctypes.c_void_p.from_address(excinfo).value
                size = ctypes.c_int32.from_address(excinfo + 8).value
                exc_class, exc_args = pickle.loads(ctypes.string_at(buf, size))[:2]
                if isinstance(exc_class, type) and issubclass(exc_class, BaseException):
                    return exc_class(*(exc_args or ()))
            except Exception:  # noqa: BLE001 - not a static exception: report the status
                pass
        return RuntimeError(f"the kernel {self.name} failed (Numba status {status})")


def _spec(ty):
    """The bundle's description of the Numba type ``ty``, or None where it has none."""
    from numba.core import types

    if isinstance(ty, types.Array):
        if ty.layout != "C" or not ty.aligned or not isinstance(ty.dtype, (types.Integer, types.Float, types.Boolean)):
            return None
        return ("a", str(ty.dtype), ty.ndim, not ty.mutable)
    if isinstance(ty, types.Boolean):
        return ("b",)
    if isinstance(ty, types.Integer):
        return ("i", ty.bitwidth, ty.signed)
    if isinstance(ty, types.Float):
        return ("f", ty.bitwidth)
    if isinstance(ty, types.NoneType):
        return ("n",)
    if isinstance(ty, types.BaseTuple):
        subs = tuple(_spec(t) for t in ty.types)
        return None if None in subs else ("t", subs)
    return None


def _object_code(dispatcher, sig, cres) -> bytes | None:
    """The object code of one overload: from Numba's cache file, else from memory (compiled here)."""
    cache = getattr(dispatcher, "_cache", None)
    cache_file = getattr(cache, "_cache_file", None)
    if cache_file is not None:
        with contextlib.suppress(Exception):
            data = cache_file.load(cache._index_key(sig, cres.target_context.codegen()))
            if data is not None and data[0][1] == "object":
                return data[0][2][0]
    with contextlib.suppress(Exception):
        libdata = cres.library.serialize_using_object_code()
        if libdata[1] == "object":
            return libdata[2][0]
    return None


def save_bundle(retry: bool = False) -> Path | None:
    """Add the overloads this process's Numba compiled or loaded to the bundle (a no-op when it holds them
    all). Returns the bundle's path, or None when there is none. Never raises: a bundle is an optimisation.
    ``retry`` (the warm-up's): try again even if an earlier bundle did not link (its ``.failed`` file)."""
    from . import jit

    if not enabled() or not jit.numba_started():
        return None
    symbols = {cres.fndesc.llvm_func_name for kernel in list(jit._kernels) if kernel.dispatcher is not None
               for cres in list(kernel.dispatcher.overloads.values())}
    path = bundle_path()
    if retry:
        with contextlib.suppress(OSError):
            path.with_suffix(".failed").unlink()
    elif symbols <= _loaded.get(("saved", path), set()):  # this process saved or found them all already
        return path
    try:
        saved = _save(path)
    except Exception:  # noqa: BLE001 - no bundle: the kernels keep running through Numba
        return None
    if saved is not None:
        _loaded[("saved", path)] = symbols
    return saved


def _save(path: Path) -> Path | None:
    from . import jit

    failed = path.with_suffix(".failed")
    if failed.exists():
        return None
    try:
        content = _read(path)
    except (OSError, ValueError, pickle.UnpicklingError, EOFError):
        content = None
    cpu, features = _host()
    if content is None or (content["cpu"], content["features"]) != (cpu, features):
        content = {"format": FORMAT, "cpu": cpu, "features": features, "objects": [], "kernels": {}}
    added = 0
    for kernel in list(jit._kernels):
        if kernel.dispatcher is None:
            continue
        entries = content["kernels"].setdefault(kernel.name, [])
        have = {e["symbol"] for e in entries}
        for sig, cres in list(kernel.dispatcher.overloads.items()):
            symbol = cres.fndesc.llvm_func_name
            specs = [_spec(t) for t in cres.signature.args]
            ret = _spec(cres.signature.return_type)
            if symbol in have or None in specs or ret is None:
                continue
            obj = _object_code(kernel.dispatcher, sig, cres)
            if obj is None:
                continue
            content["objects"].append(obj)
            entries.append({"symbol": symbol, "args": specs, "ret": ret, "object": len(content["objects"]) - 1,
                            "nogil": bool(kernel.options.get("nogil"))})
            added += 1
        if not entries:
            del content["kernels"][kernel.name]
    if not added:
        return path if path.exists() else None
    # An undefined symbol's name is in the object's string table: every symbol an object may need is kept.
    content["symbols"] = sorted(name for name in _numba_symbols()
                                if any(name.encode() in obj for obj in content["objects"]))
    payload = pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL)
    from .atomic import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    data = _MAGIC + hashlib.sha256(payload).digest() + payload
    if not atomic_write_bytes(path, data, check=_links_in_fresh_process):
        with contextlib.suppress(OSError):
            failed.write_text("the native bundle did not link in a fresh process; the kernels run through Numba\n")
        return None
    return path


def _links_in_fresh_process(path: str) -> bool:
    """Whether a fresh Python process links the bundle at ``path`` and calls none of Numba."""
    import subprocess

    package_parent = str(Path(__file__).resolve().parent.parent)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from bpe_numba import native; "
            "from pathlib import Path; native._link(native._read(Path(sys.argv[2]))); "
            "sys.exit(3 if 'numba' in sys.modules else 0)")
    try:
        done = subprocess.run([sys.executable, "-c", code, package_parent, path], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0
