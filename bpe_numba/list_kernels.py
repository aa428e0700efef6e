"""A Python ``list`` of ids filled by a kernel through CPython's C API: the last step of
:meth:`bpe_numba.Tokenizer.encode`, which returns ``list[int]``.

:func:`ids_to_list` takes ``[None] * n`` and has :func:`fill_list` put the vocab's own int objects in it with
``Py_IncRef`` and ``PyList_SetItem`` (which drops the ``None``), the two calls CPython's own list code makes.
Only those public calls are used: no object layout is assumed, and the reference counts stay exact (tested).
This kernel, unlike the others, holds the GIL: it calls the C API.

Performance notes (2026-11-30, the 19.0 M ids of ``prose_en.txt`` by GPT-2's model, one core of the shared
2-core dev machine, 7 runs each, interleaved in one process)
---------------------------------------------------------------------------------------------------------
- ``ints[ids].tolist()`` on an object array of the vocab's ints (the former ``Tokenizer._as_list``):
  0.312-0.458 s, median 0.315; it writes 19 M pointers twice (the object array, then the list) and frees
  the first copy.
- :func:`fill_list`: 0.146-0.158 s, median 0.156 (2.0-2.2x on 6 of 7 pairs), of which ``[None] * n`` takes
  0.062-0.066 s (allocating 152 MB).
- Storing the pointers straight into the list's item array (its address read with ``ctypes``, ``None``'s
  count lowered in the same loop) was no faster (0.17-0.24 s) and depends on the list's layout: not kept.
- ``ids.tolist()`` makes a new int per id: 0.44-0.53 s and 530 MB more for these ids.
"""

from __future__ import annotations

import numpy as np

from .jit import intrinsic, njit


@intrinsic
def _set_item(typingctx, list_addr, index, obj_addr):
    """``Py_IncRef(obj); PyList_SetItem(list, index, obj)`` on objects given by their addresses."""
    from numba import types

    sig = types.int32(types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        api = context.get_python_api(builder)
        obj = builder.inttoptr(args[2], api.pyobj)
        api.incref(obj)
        return api.list_setitem(builder.inttoptr(args[0], api.pyobj), args[1], obj)

    return sig, codegen


@njit(cache=True)  # holds the GIL: it calls the C API
def fill_list(list_addr, ids, addrs):
    """Item ``i`` of the list at ``list_addr`` (``n >= len(ids)`` items) becomes the object at
    ``addrs[ids[i]]``. Returns -1, or the first ``i`` whose id is out of range or whose item could not be set
    (the items from ``i`` on are left as they were)."""
    n_objs = addrs.shape[0]
    for i in range(ids.shape[0]):
        k = ids[i]
        if k < 0 or k >= n_objs:
            return i
        if _set_item(list_addr, i, addrs[k]) != 0:
            return i
    return -1


class IntObjects:
    """The ints ``0..n-1`` as Python objects, kept alive here, and their addresses for :func:`fill_list`."""

    def __init__(self, n: int):
        self.objects = list(range(n))
        self.addrs = np.array([id(x) for x in self.objects], dtype=np.int64)

    def __reduce__(self):
        return IntObjects, (len(self.objects),)  # addresses mean nothing in another process: made anew

    def ids_to_list(self, ids: np.ndarray) -> list[int]:
        """``ids.tolist()``, made of these int objects (a list of millions of ids then holds no new int).

        >>> IntObjects(300).ids_to_list(np.array([5, 299, 0], dtype=np.int32))
        [5, 299, 0]
        """
        ids = np.ascontiguousarray(ids)
        out = [None] * ids.shape[0]
        bad = fill_list(id(out), ids, self.addrs)
        if bad >= 0:
            raise ValueError(f"id {int(ids[bad])} at position {bad} is outside 0..{len(self.objects) - 1}")
        return out
