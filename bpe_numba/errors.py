"""Exceptions raised for bad input. Each message names what is wrong and how to fix it."""

from __future__ import annotations


class BPEInputError(ValueError):
    """The input file or an argument cannot be used as given."""


class InvalidUTF8Error(BPEInputError):
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
