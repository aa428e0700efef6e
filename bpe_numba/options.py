"""Argument checks shared by training, counting and encoding, and the GPT-2 pattern.

This module imports neither numpy nor ``regex`` (a custom pattern is compiled when it is checked), so
``import bpe_numba`` and the argument checks of :func:`bpe_numba.train_bpe` stay cheap in a process that
hands the work to bpe_numba's helper process.
"""

from __future__ import annotations

import os
import sys

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

ERRORS_MODES = ("strict", "replace")
ENGINES = ("auto", "numba", "regex")


def check_special_tokens(special_tokens) -> list[str]:
    """Validate special tokens: a list of distinct, non-empty ``str``. Returns them as a list."""
    if isinstance(special_tokens, (str, bytes)):
        raise TypeError(
            f"special_tokens must be a list of strings, not a single {type(special_tokens).__name__} "
            f"({special_tokens!r}); write special_tokens=[{special_tokens!r}]"
        )
    tokens = list(special_tokens or ())
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str):
            raise TypeError(f"special_tokens[{i}] is {type(tok).__name__} {tok!r}; special tokens must be str")
        if not tok:
            raise ValueError(f"special_tokens[{i}] is the empty string; special tokens must be non-empty")
    seen: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if tok in seen:
            raise ValueError(f"special_tokens[{i}] {tok!r} repeats special_tokens[{seen[tok]}]; give each once")
        seen[tok] = i
    return tokens


_PATTERNS: dict = {}


def compiled_pattern(pattern: str):
    if pattern not in _PATTERNS:
        import regex

        _PATTERNS[pattern] = regex.compile(pattern)
    return _PATTERNS[pattern]


def check_pattern(pattern) -> str:
    """A pre-tokenization pattern: a ``str`` that ``regex`` compiles (GPT-2's is not compiled here)."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str (a regex), not {type(pattern).__name__}")
    if pattern == GPT2_PATTERN:
        return pattern
    import regex

    try:
        compiled_pattern(pattern)
    except regex.error as exc:
        raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from None
    return pattern


def resolve_engine(engine, pattern: str) -> str:
    """``"auto"`` -> ``"numba"`` for the GPT-2 pattern, ``"regex"`` otherwise; ``"numba"`` needs GPT-2's."""
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}; use 'auto', 'numba' (the GPT-2 pattern's scanner) or 'regex'")
    if engine == "auto":
        return "numba" if pattern == GPT2_PATTERN else "regex"
    if engine == "numba" and pattern != GPT2_PATTERN:
        raise ValueError(
            "engine='numba' implements only the GPT-2 pattern (GPT2_PATTERN); use engine='regex' or 'auto' "
            "for a custom pattern"
        )
    return engine


def check_input_file(input_path) -> str:
    """Return ``input_path`` as ``str`` if it names a readable regular file, else raise naming it."""
    path = os.fspath(input_path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file; check the path (relative to {os.getcwd()})")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory; pass the path of a text file inside it")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{path}: not readable; check its permissions")
    return path


def resolve_workers(num_workers) -> int:
    if num_workers is None:
        return os.cpu_count() or 1
    if isinstance(num_workers, bool) or not isinstance(num_workers, int):
        raise TypeError(f"num_workers must be an int or None, not {type(num_workers).__name__}")
    if num_workers < 1:
        raise ValueError(f"num_workers={num_workers}; use 1 or more, or None for all cores")
    return num_workers


def check_errors_mode(errors) -> None:
    if errors not in ERRORS_MODES:
        raise ValueError(f"errors={errors!r}; use 'strict' (invalid UTF-8 is an error) or 'replace' (U+FFFD)")


def resolve_progress(progress) -> bool:
    """``None`` means: show bars when stderr is a terminal."""
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)
