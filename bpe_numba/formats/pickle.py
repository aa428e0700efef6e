"""CS336-style pickles: ``load_pickle(path)`` reads a pickled ``(vocab, merges)`` (tuple or list) or
``{"vocab": ..., "merges": ...}``, as CS336 solutions often write them, without running code from the file.

The unpickler refuses every global: only dict, list, tuple, set, int, bytes, str, bool and None can be
built, so a malicious pickle cannot run code.
"""

from __future__ import annotations

import io
import pickle
from typing import Sequence

from ..errors import BPEValueError
from ..validation import (
    GPT2_PATTERN,
    check_input_file,
    check_merge_pairs,
    check_merges_in_vocab,
    check_pattern,
    check_special_tokens,
    check_vocab,
)


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _PlainUnpickler(pickle.Unpickler):
    """Builds only what pickle's opcodes make without a global: dict, list, tuple, set, frozenset, int,
    float, bytes, bytearray (protocol 5), str, bool and None. ``find_class`` refuses everything, so no
    callable can be reached and no code runs."""

    def find_class(self, module, name):
        raise _RefusedGlobal(f"{module}.{name}")

    def persistent_load(self, pid):
        raise _RefusedGlobal(f"persistent id {pid!r}")


def load_pickle(path, special_tokens: Sequence[str] | None = None):
    """Read a pickled ``(vocab, merges)`` (tuple or list) or ``{"vocab": ..., "merges": ...}`` dict
    (optionally with ``"special_tokens"`` and ``"pattern"``) without running code from it.

    Returns ``(vocab, merges, special_tokens, pattern)`` like :func:`load_model`; ``special_tokens`` given
    here replace any in the pickle. A pickle that names any global (a class, a function such as
    ``os.system``, numpy types) is refused with :class:`BPEInputError` before anything is called.
    """
    path = check_input_file(path, "pickle")
    with open(path, "rb") as f:
        data = f.read()
    try:
        obj = _PlainUnpickler(io.BytesIO(data)).load()
    except _RefusedGlobal as exc:
        if exc.args[0] == "_codecs.encode":  # how pickle protocols 0-2 store bytes
            fix = "re-pickle it with protocol 3 or newer (the default), which stores bytes directly"
        else:
            fix = "pickle (vocab, merges) built from plain Python types (convert numpy ints with int())"
        raise BPEValueError(
            f"{path}: refused to unpickle: it asks for {exc.args[0]}, and only plain dict/list/tuple/set/int/"
            f"bytes/str/bool/None values are loaded (no code from the file runs). If you made this file, "
            f"{fix}; never unpickle a file you did not make with plain pickle.load"
        ) from None
    except Exception as exc:  # truncated or not a pickle at all: EOFError, UnpicklingError, ValueError...
        raise BPEValueError(
            f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); the file may be truncated or in "
            f"another format (vocab.json and merges.txt are read with load_model)"
        ) from None

    saved_specials: object = []
    pattern: object = GPT2_PATTERN
    if isinstance(obj, dict):
        missing = [k for k in ("vocab", "merges") if k not in obj]
        if missing:
            raise BPEValueError(
                f"{path}: the pickled dict has no {' or '.join(repr(k) for k in missing)} key (keys: "
                f"{sorted(map(str, obj))}); expected {{'vocab': ..., 'merges': ...}}"
            )
        vocab, merges = obj["vocab"], obj["merges"]
        saved_specials = obj.get("special_tokens") or []
        pattern = obj.get("pattern", GPT2_PATTERN)
    elif isinstance(obj, (tuple, list)) and len(obj) == 2:
        vocab, merges = obj
    else:
        kind = f"{type(obj).__name__} of length {len(obj)}" if isinstance(obj, (tuple, list)) else type(obj).__name__
        raise BPEValueError(
            f"{path}: the pickle holds a {kind}; expected (vocab, merges) or {{'vocab': ..., 'merges': ...}}"
        )
    check_vocab(vocab, f"{path}: vocab")
    check_merge_pairs(merges, f"{path}: merges")
    merges = [tuple(pair) for pair in merges]
    check_merges_in_vocab(vocab, merges, lambda i: f"{path}: merges[{i}] {merges[i]!r}", "the vocab")
    specials = check_special_tokens(saved_specials, f"{path}: special_tokens", BPEValueError)
    pattern = check_pattern(pattern, f"{path}: the pattern", BPEValueError)
    if special_tokens is not None:
        specials = check_special_tokens(special_tokens)
    return dict(vocab), merges, specials, pattern
