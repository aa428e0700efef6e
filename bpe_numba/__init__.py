"""bpe_numba: exact CS336-semantics byte-level BPE training on flat arrays with Numba kernels.

>>> from bpe_numba import train_bpe
>>> vocab, merges = train_bpe("corpus.txt", 10_000, ["<|endoftext|>"])  # doctest: +SKIP
>>> ids = Tokenizer(vocab, merges, ["<|endoftext|>"]).encode("Once upon a time")  # doctest: +SKIP

Importing the package compiles nothing and imports neither numpy nor Numba; the kernels load when
training or encoding starts: from the native bundle (their machine code, saved once Numba has compiled
them, run without importing Numba: ``bpe_numba.native``), else from Numba's on-disk cache. Until they are
compiled, small inputs train and encode in plain Python while the kernels compile in the background
(``bpe_numba.warmup()`` compiles them at once, e.g. when building an image).

The import rule (``tests/test_imports.py`` checks it): the modules a caller's process needs to check
arguments and hand the work on import neither numpy nor Numba at top level (nor ``regex``, except the
plain-Python tier): ``bpe_numba`` itself, ``__main__``, ``cli``, ``trainer``, ``validation``, ``errors``,
``atomic``, ``progress``, ``processes``, ``threads``, ``tiers``, ``sources``, ``counts_file``,
``numba_cache``, ``jit``, ``native``, ``python_bpe`` and ``formats``. They import the rest inside the
functions that need it, and only there. Every other module may import numpy at top level. No module
imports Numba at top level: the kernel modules (``*_kernels.py``, ``gpt2_scan``, ``intrinsics``) take
their decorators from ``bpe_numba.jit``, which imports Numba in the process that runs the work, and only
when a kernel needs it (no native bundle, or argument types the bundle lacks).
"""

from .errors import (
    BPEFileNotFoundError,
    BPEInputError,
    BPEIsADirectoryError,
    BPENotADirectoryError,
    BPEPermissionError,
    BPETypeError,
    BPEValueError,
    FileChangedError,
    InvalidUTF8Error,
    ModelNotSavedError,
)
from .validation import GPT2_PATTERN
from .trainer import train_bpe, train_bpe_from_counts
from .counts_file import load_counts, save_counts

__version__ = "0.1.0"

__all__ = [
    "train_bpe", "Tokenizer", "count_pretokens", "warmup", "GPT2_PATTERN", "__version__",
    "train_bpe_from_counts", "save_counts", "load_counts",
    # errors (bpe_numba.errors): BPEInputError is the root, each subclass also derives from its builtin
    "BPEInputError", "BPEValueError", "BPETypeError", "BPEFileNotFoundError", "BPEIsADirectoryError",
    "BPENotADirectoryError", "BPEPermissionError", "InvalidUTF8Error", "FileChangedError", "ModelNotSavedError",
]


def __getattr__(name: str):
    # Loaded on first use: a process that only trains through the helper process never imports numpy.
    if name == "Tokenizer":
        from .tokenizer import Tokenizer

        return Tokenizer
    if name == "count_pretokens":
        from .pretokenize import count_pretokens

        return count_pretokens
    if name == "warmup":
        from .tiers import warmup

        return warmup
    raise AttributeError(f"module 'bpe_numba' has no attribute {name!r}")
