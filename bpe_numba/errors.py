"""The exceptions bpe_numba raises for bad input. Each message names what is wrong and how to fix it.

One hierarchy, rooted at :class:`BPEInputError`. The root derives from ``Exception`` only, on purpose: bad
input is not always a bad *value* (a missing file is an ``OSError``, a wrong type a ``TypeError``). Every
error raised is one of the subclasses below, and each also derives from the builtin exception it stands for,
so a caller may catch either:

>>> try:
...     raise BPEFileNotFoundError("corpus.txt: no such file")
... except FileNotFoundError as exc:
...     isinstance(exc, BPEInputError)
True

``except BPEInputError`` catches every problem with what the caller gave (arguments, input files, model
files, the output location), and nothing else: a bug inside bpe_numba raises a builtin exception and keeps
its traceback (the ``bpe-numba`` command shows those, and only those, with a traceback).
"""

from __future__ import annotations


class BPEInputError(Exception):
    """Root of bpe_numba's bad-input errors (never raised itself: see the subclasses)."""


class BPEValueError(BPEInputError, ValueError):
    """An argument or a file's contents has the right type but cannot be used."""


class BPETypeError(BPEInputError, TypeError):
    """An argument has the wrong type."""


class BPEFileNotFoundError(BPEInputError, FileNotFoundError):
    """An input file (or the folder of an output file) does not exist."""


class BPEIsADirectoryError(BPEInputError, IsADirectoryError):
    """A directory was given where a file is expected."""


class BPENotADirectoryError(BPEInputError, NotADirectoryError):
    """A file was given, or stands in the way, where a directory is expected."""


class BPEPermissionError(BPEInputError, PermissionError):
    """An input cannot be read, or an output location cannot be written."""


class InvalidUTF8Error(BPEValueError):
    """The input file is not valid UTF-8.

    ``path`` and ``offset`` (the byte offset of the first invalid byte) are attributes, so callers can
    point at the problem without parsing the message.
    """

    def __init__(self, path: str, offset: int, detail: str = ""):
        self.path = path
        self.offset = offset
        self.detail = detail
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{path}: invalid UTF-8 at byte offset {offset}{extra}; fix the file, or pass "
            f"errors='replace' to decode invalid bytes as U+FFFD"
        )

    def __reduce__(self):  # crosses process boundaries (the training helper)
        return type(self), (self.path, self.offset, self.detail)


class FileChangedError(BPEValueError):
    """The input file changed (was truncated, extended or rewritten) while it was being read."""

    def __init__(self, path: str, detail: str):
        self.path = path
        self.detail = detail
        super().__init__(f"{path}: the file changed while it was read ({detail}); read a copy that "
                         f"nothing writes to")

    def __reduce__(self):
        return type(self), (self.path, self.detail)


class ModelNotSavedError(BPEInputError, OSError):
    """Training finished but the model could not be written where asked.

    ``out_dir`` is where it was to go; ``saved_to`` is the fresh directory (under the system's temporary
    folder) that holds it instead, or ``None`` if that failed too.
    """

    def __init__(self, message: str, out_dir: str, saved_to: str | None):
        super().__init__(message)
        self.out_dir = out_dir
        self.saved_to = saved_to

    def __reduce__(self):
        return type(self), (self.args[0], self.out_dir, self.saved_to)


__all__ = [
    "BPEInputError",
    "BPEValueError",
    "BPETypeError",
    "BPEFileNotFoundError",
    "BPEIsADirectoryError",
    "BPENotADirectoryError",
    "BPEPermissionError",
    "InvalidUTF8Error",
    "ModelNotSavedError",
]
