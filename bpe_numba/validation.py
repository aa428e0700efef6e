"""Every check of what a caller gives bpe_numba: arguments, input and output paths, and models.

Each check raises one of :mod:`bpe_numba.errors` (a :class:`~bpe_numba.errors.BPEInputError` that is also
the matching builtin) with a message that names the argument, file, line or key and says how to fix it.

This module imports neither numpy nor ``regex`` (a custom pattern is compiled when it is checked), so
``import bpe_numba`` and the argument checks of :func:`bpe_numba.train_bpe` stay cheap in a process that
hands the work to bpe_numba's helper process.

>>> check_special_tokens(["<|endoftext|>", "<|pad|>"])
['<|endoftext|>', '<|pad|>']
>>> check_model({0: b"a", 1: b"b", 2: b"ab"}, [(b"a", b"b")])
>>> check_model({0: b"a"}, [(b"a", b"b")])
Traceback (most recent call last):
...
bpe_numba.errors.BPEValueError: merges[0] (b'a', b'b'): part b'b' is not in the vocab; every merge part must be a token of the vocab (was the vocab built from these merges?)
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Callable, Sequence

from .atomic import temp_name
from .errors import (
    BPEFileNotFoundError,
    BPEIsADirectoryError,
    BPENotADirectoryError,
    BPEPermissionError,
    BPETypeError,
    BPEValueError,
)

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

ERRORS_MODES = ("strict", "replace")
ENGINES = ("auto", "numba", "regex")
#: Token ids are held in int32 arrays by the kernels.
MAX_ID = 2**31 - 1
#: How far the largest id may lie above the number of tokens (a decode table has one slot per id).
MAX_ID_GAP = 1 << 20


# ---------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------

def check_special_tokens(special_tokens, where: str = "special_tokens", type_error=BPETypeError) -> list[str]:
    """Special tokens as a list of distinct, non-empty ``str`` (``None`` is no special tokens).

    ``where`` names them in messages (a file and key when they come from a model file, whose wrong types
    are then a :class:`BPEValueError`: pass ``type_error=BPEValueError``).
    """
    if special_tokens is None:
        return []
    if isinstance(special_tokens, (str, bytes)):
        raise type_error(
            f"{where} must be a list of strings, not a single {type(special_tokens).__name__} "
            f"{special_tokens!r}; write [{special_tokens!r}]"
        )
    try:
        tokens = list(special_tokens)
    except TypeError:
        raise type_error(f"{where} must be a list of strings, not {type(special_tokens).__name__}") from None
    seen: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str):
            raise type_error(f"{where}[{i}] is {type(tok).__name__} {tok!r}; special tokens must be str")
        if not tok:
            raise BPEValueError(f"{where}[{i}] is the empty string; special tokens must be non-empty")
        if tok in seen:
            raise BPEValueError(f"{where}[{i}] {tok!r} repeats {where}[{seen[tok]}]; list each special token once")
        seen[tok] = i
    return tokens


def check_one_of_specials(token, special_tokens: Sequence[str], name: str) -> str:
    """``token`` (the argument ``name``) as one of ``special_tokens``, or an error listing them.

    >>> check_one_of_specials("<|pad|>", ["<|endoftext|>"], "pad_token")
    Traceback (most recent call last):
    ...
    bpe_numba.errors.BPEValueError: pad_token='<|pad|>' is not a special token of this tokenizer (its special tokens: '<|endoftext|>'); give one of them, or build the tokenizer with '<|pad|>' among its special tokens
    """
    if not isinstance(token, str):
        raise BPETypeError(f"{name} must be a str, one of the special tokens, not {type(token).__name__}")
    if token not in special_tokens:
        known = ", ".join(map(repr, special_tokens)) or "none"
        raise BPEValueError(
            f"{name}={token!r} is not a special token of this tokenizer (its special tokens: {known}); give one "
            f"of them, or build the tokenizer with {token!r} among its special tokens"
        )
    return token


_PATTERNS: dict = {}


def compiled_pattern(pattern: str):
    if pattern not in _PATTERNS:
        import regex

        _PATTERNS[pattern] = regex.compile(pattern)
    return _PATTERNS[pattern]


def check_pattern(pattern, where: str = "pattern", type_error=BPETypeError) -> str:
    """A pre-tokenization pattern: a ``str`` that ``regex`` compiles (GPT-2's is not compiled here)."""
    if not isinstance(pattern, str):
        raise type_error(f"{where} must be a str (a regex), not {type(pattern).__name__}")
    if pattern == GPT2_PATTERN:
        return pattern
    import regex

    try:
        compiled_pattern(pattern)
    except regex.error as exc:
        raise BPEValueError(f"{where} {pattern!r} does not compile ({exc}); fix the regex") from None
    return pattern


def resolve_engine(engine, pattern: str) -> str:
    """``"auto"`` -> ``"numba"`` for the GPT-2 pattern, ``"regex"`` otherwise; ``"numba"`` needs GPT-2's."""
    if engine not in ENGINES:
        raise BPEValueError(f"engine={engine!r}; use 'auto', 'numba' (the GPT-2 pattern's scanner) or 'regex'")
    if engine == "auto":
        return "numba" if pattern == GPT2_PATTERN else "regex"
    if engine == "numba" and pattern != GPT2_PATTERN:
        raise BPEValueError(
            "engine='numba' implements only the GPT-2 pattern (GPT2_PATTERN); use engine='regex' or 'auto' "
            "for a custom pattern"
        )
    return engine


MIN_CHUNK_SIZE = 4096  # bytes


def check_chunk_size(chunk_size) -> int | None:
    """``chunk_size`` (bytes per task) as an ``int``, or None (the default): at least
    :data:`MIN_CHUNK_SIZE`, since a smaller chunk only adds work (each is read and searched for a cut:
    ``chunk_size=1`` made training about 100x slower). The test suite lowers the minimum with the
    environment variable ``BPE_NUMBA_MIN_CHUNK_SIZE`` (its processes inherit it), to take every cut
    decision many times with chunks of a few bytes."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise BPETypeError(f"chunk_size must be an int (bytes) or None, not {type(chunk_size).__name__} {chunk_size!r}")
    minimum = int(os.environ.get("BPE_NUMBA_MIN_CHUNK_SIZE", MIN_CHUNK_SIZE))
    if chunk_size < max(minimum, 1):
        raise BPEValueError(f"chunk_size={chunk_size}; use at least {max(minimum, 1)} bytes (smaller chunks only "
                            f"add work), or None for the default")
    return chunk_size


def resolve_workers(num_workers, name: str = "num_workers") -> int:
    """``num_workers`` checked (an int of 1 or more), or all cores for ``None``; errors call it ``name``."""
    if num_workers is None:
        return os.cpu_count() or 1
    if isinstance(num_workers, bool) or not isinstance(num_workers, int):
        raise BPETypeError(f"{name} must be an int or None, not {type(num_workers).__name__}")
    if num_workers < 1:
        raise BPEValueError(f"{name}={num_workers}; use 1 or more, or None for all cores")
    return num_workers


def check_errors_mode(errors) -> None:
    if errors not in ERRORS_MODES:
        raise BPEValueError(f"errors={errors!r}; use 'strict' (invalid UTF-8 is an error) or 'replace' (U+FFFD)")


def resolve_progress(progress) -> bool:
    """``None`` means: show bars when stderr is a terminal."""
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


# ---------------------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------------------

def check_input_file(input_path, what: str = "", hint: str = "") -> str:
    """Return ``input_path`` as ``str`` if it names a readable file, else raise naming it.

    ``what`` names the kind of file in messages ("vocab" -> "no such vocab file"); ``hint`` is added when a
    directory was given.
    """
    path = os.fspath(input_path)
    kind = f"{what} file" if what else "file"
    if not os.path.exists(path):
        raise BPEFileNotFoundError(f"{path}: no such {kind}; check the path (relative to {os.getcwd()})")
    if os.path.isdir(path):
        raise BPEIsADirectoryError(f"{path}: is a directory; pass the {what or 'text'} file inside it{hint}")
    if not os.access(path, os.R_OK):
        raise BPEPermissionError(f"{path}: not readable; check its permissions")
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise BPEValueError(f"{path}: is {kind}; bpe_numba reads its input in parallel chunks and more than "
                            f"once, so write the stream to a regular file first (e.g. `cat ... > corpus.txt`)")
    return path


def _probe_writable(directory: str) -> OSError | None:
    """Create and remove a temporary file in ``directory``: the one test that sees read-only mounts, ACLs
    and root alike. Returns the error, or None."""
    probe = temp_name(os.path.join(directory, "probe"))
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        return exc
    try:
        os.unlink(probe)
    except OSError:
        pass
    return None


def check_output_dir(out_dir, what: str = "out_dir") -> str:
    """Check, before any long work, that the directory ``out_dir`` exists or can be created, and that files
    can be written into it. Nothing is left behind."""
    path = os.fspath(out_dir)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise BPENotADirectoryError(f"{what} {path!r} is a file; give a directory for the model files")
        target = path
    else:
        target = os.path.dirname(os.path.abspath(path))
        while not os.path.exists(target):
            target = os.path.dirname(target)
        if not os.path.isdir(target):
            raise BPENotADirectoryError(
                f"{what} {path!r} cannot be created: {target} is a file, not a directory; choose another path"
            )
    error = _probe_writable(target)
    if error is not None:
        raise BPEPermissionError(
            f"{what} {path!r}: cannot write into {target} ({error.strerror or error}); choose a writable "
            f"directory or fix its permissions"
        )
    return path


def check_output_file(output_path, inputs: dict[str, object]) -> str:
    """Check an output file path before writing it: not a directory, its folder exists, and it is none of
    the ``inputs`` (see :func:`check_not_overwriting`). Returns it as ``str``."""
    out = os.fspath(output_path)
    if os.path.isdir(out):
        raise BPEIsADirectoryError(f"{out}: is a directory; give the path of the .npy file to write")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise BPEFileNotFoundError(f"{out}: the directory {parent} does not exist; create it first")
    check_not_overwriting(out, inputs)
    return out


def check_not_overwriting(output_path, inputs: dict[str, object]) -> None:
    """Refuse an output path that is one of the ``inputs`` (``{description: path}``): the same file (inode,
    so hard links and symbolic links count) or the same path."""
    out = os.fspath(output_path)
    for what, path in inputs.items():
        path = os.fspath(path)
        same = os.path.abspath(out) == os.path.abspath(path)
        if not same and os.path.exists(out) and os.path.exists(path):
            try:
                same = os.path.samefile(out, path)
            except OSError:
                same = False
        if same:
            raise BPEValueError(
                f"output {out} is {what} ({path}); writing there would destroy it: choose another output path"
            )


# ---------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------

def check_model(vocab, merges, special_tokens=None) -> None:
    """Check an in-memory model; raise naming the first problem.

    ``vocab`` must be a dict of non-negative ``int`` ids to ``bytes``; ``merges`` a sequence of 2-tuples of
    ``bytes`` whose parts and concatenation are all byte strings of the vocab; ``special_tokens`` distinct,
    non-empty strings.
    """
    check_special_tokens(special_tokens)
    check_vocab(vocab)
    check_merges(vocab, merges)


def check_vocab(vocab, where: str = "vocab") -> None:
    """The vocab part of :func:`check_model`: a dict of ``int`` ids (``0 <= id <= MAX_ID``, and not far above
    the number of tokens) to ``bytes``."""
    if not isinstance(vocab, dict):
        raise BPEValueError(f"{where} must be a dict of int ids to bytes, not {type(vocab).__name__}")
    for key, value in vocab.items():
        if isinstance(key, bytes) and isinstance(value, int) and not isinstance(value, bool):
            raise BPEValueError(
                f"{where} maps bytes to ids ({key!r}: {value!r}); it must map ids to bytes: "
                f"use {{i: b for b, i in vocab.items()}}"
            )
        if isinstance(key, bool) or not isinstance(key, int):
            hint = "; convert it with int()" if type(key).__module__ == "numpy" else ""
            raise BPEValueError(f"{where} key {key!r} is {type(key).__name__}; ids must be int{hint}")
        if key < 0:
            raise BPEValueError(f"{where} id {key} is negative; ids must be >= 0")
        if not isinstance(value, bytes):
            hint = "; encode text with .encode('utf-8')" if isinstance(value, str) else ""
            raise BPEValueError(f"{where}[{key}] is {type(value).__name__} {value!r}; tokens must be bytes{hint}")
    if vocab:
        top = max(vocab)
        problem = id_range_problem(top, len(vocab))
        if problem:
            raise BPEValueError(f"{where} id {top}: {problem}")


def id_range_problem(token_id: int, n_tokens: int) -> str:
    """Why ``token_id`` cannot be an id of a vocab of ``n_tokens`` tokens, or ``""``."""
    if token_id > MAX_ID:
        return f"ids must be at most {MAX_ID:,} (2**31 - 1)"
    if token_id >= n_tokens + MAX_ID_GAP:
        return (
            f"it lies far above the vocab's {n_tokens:,} tokens; ids must be nearly consecutive (below the "
            f"number of tokens + {MAX_ID_GAP:,})"
        )
    return ""


def check_merges(vocab, merges) -> None:
    """The merges part of :func:`check_model` (``vocab`` already checked): 2-tuples of ``bytes`` whose parts
    and concatenation are byte strings of the vocab."""
    check_merge_pairs(merges, "merges")
    check_merges_in_vocab(vocab, merges, lambda i: f"merges[{i}] {tuple(merges[i])!r}", "the vocab")


def check_merge_pairs(merges, where: str) -> None:
    if isinstance(merges, (str, bytes, dict)) or not isinstance(merges, Sequence):
        raise BPEValueError(f"{where} must be a list of (bytes, bytes) pairs, not {type(merges).__name__}")
    for i, pair in enumerate(merges):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise BPEValueError(f"{where}[{i}] is {pair!r}; each merge must be a pair (bytes, bytes)")
        for part in pair:
            if not isinstance(part, bytes):
                raise BPEValueError(
                    f"{where}[{i}] {tuple(pair)!r}: {type(part).__name__} {part!r} is not bytes; each merge "
                    f"must be a pair (bytes, bytes)"
                )


def check_merges_in_vocab(vocab, merges, label: Callable[[int], str], vocab_name: str) -> None:
    """Every merge's parts and result are byte strings of ``vocab``; ``label(i)`` names merge ``i``."""
    known = set(vocab.values())
    for i, (left, right) in enumerate(merges):
        for part in (left, right):
            if part not in known:
                raise BPEValueError(
                    f"{label(i)}: part {part!r} is not in {vocab_name}; every merge part must be a token of "
                    f"the vocab (was the vocab built from these merges?)"
                )
        if left + right not in known:
            raise BPEValueError(
                f"{label(i)}: the merged token {left + right!r} is not in {vocab_name}; every merge must "
                f"produce a token of the vocab (was the vocab built from these merges?)"
            )
