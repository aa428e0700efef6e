"""Model files: save and load a BPE model, read CS336 pickles, export to Hugging Face and tiktoken.

A model is ``vocab: dict[int, bytes]``, ``merges: list[tuple[bytes, bytes]]`` (creation order),
``special_tokens: list[str]`` and ``pattern: str`` (the pre-tokenization regex).

On disk, ``save_model(directory, ...)`` writes three files, each atomically (a temporary file in the same
directory, then ``os.replace``), so an interrupted save never leaves a half-written file; a directory that
does not exist yet is filled under a temporary name and renamed into place, so it appears whole or not at
all:

``vocab.json``
    ``{token: id}`` with every token written in GPT-2's byte-to-unicode alphabet, exactly like GPT-2's
    ``encoder.json`` and the CS336 fixtures. Each distinct byte string appears once, with its lowest id.
``merges.txt``
    A header line ``#version: 0.2 bpe_numba/1``, then one merge per line: the two tokens in the alphabet,
    separated by one space, in creation order, with a final newline. Hugging Face ``tokenizers`` skips
    lines starting with ``#version``, tiktoken's data-gym loader and ``transformers``' GPT2Tokenizer skip the
    first line, and the CS336 test helper keeps only lines of exactly two words (the header has three).
``bpe_numba.json``
    The metadata that the two GPT-2 files cannot hold: format name and version, the pattern, the special
    tokens in order with their ids, the ids that ``vocab.json`` cannot hold (a byte string that two ids
    share: a one-byte special token like ``"x"`` is also byte 120; a token that two merges produce), and
    the SHA-256 of ``vocab.json`` and ``merges.txt``. It is written first, so a save that is interrupted
    after it leaves files that no longer match their recorded hashes, and loading them fails loudly instead
    of silently mixing two models.

``load_model(vocab_path, merges_path)`` reads what ``save_model`` writes, and plain GPT-2 style files with
no header and no sidecar (GPT-2's own, the CS336 reference files). The sidecar is looked for next to the
vocab file and used when its recorded hashes match the two files; one that names these files but does not
match them is an error. Without a sidecar, the special tokens are the ones passed in (or none) and the
pattern is GPT-2's.

Special-token ids follow the encoding contract: a special token's id is the highest id whose bytes equal
it (so a one-byte ``"x"`` is its own id, not byte 120); one absent from the vocab gets the next free id,
in the order given, when a tokenizer is built. Ordinary text uses the lowest id of each byte string.

>>> import tempfile
>>> vocab = {i: bytes([i]) for i in range(256)} | {256: b"<|endoftext|>", 257: b" t"}
>>> d = tempfile.mkdtemp()
>>> _ = save_model(d, vocab, [(b" ", b"t")], ["<|endoftext|>"])
>>> v, m, specials, pattern = load_model(f"{d}/vocab.json", f"{d}/merges.txt")
>>> v == vocab, m, specials
(True, [(b' ', b't')], ['<|endoftext|>'])

Peers:

- ``export_hf_tokenizer_json(path, vocab, merges, special_tokens)`` writes a ``tokenizer.json`` for
  ``tokenizers.Tokenizer.from_file``: a byte-level BPE whose pre-tokenizer is ``Split`` on the exact
  pattern (matches kept, anything between them dropped, as ``regex.finditer`` does) followed by
  ``ByteLevel(use_regex=False)``, and the special tokens as ``added_tokens`` with ``special: true``.
  tokenizers also runs special tokens through the ByteLevel decoder, so ``decode(...,
  skip_special_tokens=False)`` garbles a special token containing a non-ASCII character of GPT-2's
  alphabet (the "é" of ``<|café|>``); encoding is unaffected.
- ``export_tiktoken(path, vocab, special_tokens)`` writes tiktoken's rank file (``base64(bytes) rank`` per
  line, special tokens left out) and returns the ``special_tokens`` dict for ``tiktoken.Encoding``::

      specials = export_tiktoken("model.tiktoken", vocab, ["<|endoftext|>"], merges=merges)
      enc = tiktoken.Encoding(name="my-bpe", pat_str=GPT2_PATTERN,
                              mergeable_ranks=read_tiktoken_ranks("model.tiktoken"),
                              special_tokens=specials)
      enc.encode(text, allowed_special="all")

  ``tiktoken.load.load_tiktoken_bpe(path)`` reads the same file, but it caches the contents by *path*
  (under ``TIKTOKEN_CACHE_DIR`` or the temp folder) and serves that cache later even after the file has
  changed; pass ``expected_hash=`` or use ``read_tiktoken_ranks``. ``tiktoken_encoding(vocab, special_tokens)``
  builds the ``Encoding`` directly. tiktoken merges by the rank of the *concatenated* bytes (and takes a
  whole pre-token that is itself a token at once), not by the rank of the pair: a token that no merge
  makes would come out of tiktoken (pass ``merges=`` so the rank file leaves such tokens out), and on a
  vocabulary where a byte string is reachable through two different splits the two could differ (none
  was found on trained models; see ``tests/test_model_io.py``). tiktoken also matches special tokens
  leftmost-first in an order of its own, so when one special token is a prefix of another the shorter
  one may win where this package takes the longest.

Both peers run the pattern on their own regex engines, whose Unicode tables are older than ``regex``'s:
with the versions tested (regex 2026.5, tokenizers 0.23, tiktoken 0.14), characters added in Unicode 17.0
(U+323B0, CJK Extension J, for one) are letters to ``regex`` but not to them, so text containing such
characters pre-tokenizes, and encodes, differently.

``load_pickle(path)`` reads the pickled ``(vocab, merges)`` (tuple or list) or ``{"vocab": ..., "merges":
...}`` that CS336 solutions often write, with an unpickler that refuses every global: only dict, list,
tuple, set, int, bytes, str, bool and None can be built, so a malicious pickle cannot run code.

Every problem raises :class:`BPEInputError` naming the file and the line or key, and saying how to fix it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import itertools
import json
import os
import re
import pickle
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterable, Sequence

from .errors import BPEInputError
from .options import GPT2_PATTERN

FORMAT_NAME = "bpe_numba"
FORMAT_VERSION = 1
VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
META_FILE = "bpe_numba.json"
MERGES_HEADER = f"#version: 0.2 {FORMAT_NAME}/{FORMAT_VERSION}"


class ModelFileNotFoundError(BPEInputError, FileNotFoundError):
    """A model file does not exist (also a ``FileNotFoundError``)."""


class ModelPathIsADirectoryError(BPEInputError, IsADirectoryError):
    """A directory was given where a model file was expected (also an ``IsADirectoryError``)."""


# ---------------------------------------------------------------------------------------------------------
# GPT-2's byte-to-unicode alphabet
# ---------------------------------------------------------------------------------------------------------

def gpt2_bytes_to_unicode() -> dict[int, str]:
    """GPT-2's alphabet: the 188 printable bytes map to themselves, the other 68 to ``chr(256 + n)`` in
    byte order, so every byte is one visible, non-space character.

    >>> table = gpt2_bytes_to_unicode()
    >>> table[ord("a")], table[ord(" ")], table[ord("\\n")], len(set(table.values()))
    ('a', 'Ġ', 'Ċ', 256)
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return table


def gpt2_unicode_to_bytes() -> dict[str, int]:
    """The inverse of :func:`gpt2_bytes_to_unicode`."""
    return {c: b for b, c in gpt2_bytes_to_unicode().items()}


_BYTE_TO_CHAR = gpt2_bytes_to_unicode()
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}
# str.translate tables: latin-1 char of a byte -> its alphabet char, and back.
_ENCODE_TABLE = {b: c for b, c in _BYTE_TO_CHAR.items()}
_DECODE_TABLE = {ord(c): b for c, b in _CHAR_TO_BYTE.items()}


def bytes_to_gpt2_str(token: bytes) -> str:
    """A token's bytes written in GPT-2's alphabet.

    >>> bytes_to_gpt2_str(b" the\\n"), bytes_to_gpt2_str("é".encode())
    ('ĠtheĊ', 'Ã©')
    """
    return token.decode("latin-1").translate(_ENCODE_TABLE)


def _first_outside_alphabet(text: str) -> int:
    """Index of the first character of ``text`` outside GPT-2's alphabet, or -1."""
    for i, c in enumerate(text):
        if c not in _CHAR_TO_BYTE:
            return i
    return -1


def gpt2_str_to_bytes(text: str) -> bytes:
    """The bytes of a token written in GPT-2's alphabet; a character outside it is a :class:`BPEInputError`.

    >>> gpt2_str_to_bytes("ĠtheĊ")
    b' the\\n'
    """
    bad = _first_outside_alphabet(text)
    if bad >= 0:
        raise BPEInputError(f"{text!r}: {_describe_outside(text, bad)}")
    return text.translate(_DECODE_TABLE).encode("latin-1")


def _describe_outside(text: str, index: int) -> str:
    c = text[index]
    return (
        f"character {c!r} (U+{ord(c):04X}) at position {index} is outside GPT-2's byte-to-unicode alphabet, "
        f"so it does not stand for a byte; tokens must be written in that alphabet (bytes_to_gpt2_str), "
        f"not as raw text"
    )


# ---------------------------------------------------------------------------------------------------------
# Validation shared by the loaders and save_model
# ---------------------------------------------------------------------------------------------------------

def checked_special_tokens(special_tokens, where: str = "special_tokens") -> list[str]:
    """Special tokens as a list of distinct, non-empty ``str``; anything else is a :class:`BPEInputError`
    naming ``where`` (a file and key when they come from a model file). ``pretokenize.check_special_tokens``
    is the argument check of the training and tokenizer APIs (``TypeError`` / ``ValueError``)."""
    if special_tokens is None:
        return []
    if isinstance(special_tokens, (str, bytes)):
        raise BPEInputError(
            f"{where} must be a list of strings, not a single {type(special_tokens).__name__} "
            f"{special_tokens!r}; write [{special_tokens!r}]"
        )
    try:
        tokens = list(special_tokens)
    except TypeError:
        raise BPEInputError(f"{where} must be a list of strings, not {type(special_tokens).__name__}") from None
    seen: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str):
            raise BPEInputError(f"{where}[{i}] is {type(tok).__name__} {tok!r}; special tokens must be str")
        if not tok:
            raise BPEInputError(f"{where}[{i}] is the empty string; special tokens must be non-empty")
        if tok in seen:
            raise BPEInputError(
                f"{where}[{i}] {tok!r} repeats {where}[{seen[tok]}]; list each special token once"
            )
        seen[tok] = i
    return tokens


def check_model(vocab, merges, special_tokens=None) -> None:
    """Check an in-memory model; raise :class:`BPEInputError` naming the first problem.

    ``vocab`` must be a dict of non-negative ``int`` ids to ``bytes``; ``merges`` a sequence of 2-tuples of
    ``bytes`` whose parts and concatenation are all byte strings of the vocab; ``special_tokens`` distinct,
    non-empty strings.

    >>> check_model({0: b"a", 1: b"b", 2: b"ab"}, [(b"a", b"b")])
    >>> check_model({0: b"a"}, [(b"a", b"b")])
    Traceback (most recent call last):
    ...
    bpe_numba.errors.BPEInputError: merges[0] (b'a', b'b'): part b'b' is not in the vocab; every merge part must be a token of the vocab (was the vocab built from these merges?)
    """
    checked_special_tokens(special_tokens)
    check_vocab(vocab)
    check_merges(vocab, merges)


def check_vocab(vocab) -> None:
    """The vocab part of :func:`check_model`: a dict of non-negative ``int`` ids to ``bytes``."""
    _check_vocab(vocab, "vocab")


def check_merges(vocab, merges) -> None:
    """The merges part of :func:`check_model` (``vocab`` already checked): 2-tuples of ``bytes`` whose parts
    and concatenation are byte strings of the vocab."""
    _check_merges(merges, "merges")
    _check_merges_against_vocab(vocab, merges, lambda i: f"merges[{i}] {tuple(merges[i])!r}", "the vocab")


def _check_vocab(vocab, where: str) -> None:
    if not isinstance(vocab, dict):
        raise BPEInputError(f"{where} must be a dict of int ids to bytes, not {type(vocab).__name__}")
    for key, value in vocab.items():
        if isinstance(key, bytes) and isinstance(value, int) and not isinstance(value, bool):
            raise BPEInputError(
                f"{where} maps bytes to ids ({key!r}: {value!r}); it must map ids to bytes: "
                f"use {{i: b for b, i in vocab.items()}}"
            )
        if isinstance(key, bool) or not isinstance(key, int):
            hint = "; convert it with int()" if type(key).__module__ == "numpy" else ""
            raise BPEInputError(f"{where} key {key!r} is {type(key).__name__}; ids must be int{hint}")
        if key < 0:
            raise BPEInputError(f"{where} id {key} is negative; ids must be >= 0")
        if not isinstance(value, bytes):
            hint = "; encode text with .encode('utf-8')" if isinstance(value, str) else ""
            raise BPEInputError(f"{where}[{key}] is {type(value).__name__} {value!r}; tokens must be bytes{hint}")


def _check_merges(merges, where: str) -> None:
    if isinstance(merges, (str, bytes, dict)) or not isinstance(merges, Sequence):
        raise BPEInputError(f"{where} must be a list of (bytes, bytes) pairs, not {type(merges).__name__}")
    for i, pair in enumerate(merges):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise BPEInputError(f"{where}[{i}] is {pair!r}; each merge must be a pair (bytes, bytes)")
        for part in pair:
            if not isinstance(part, bytes):
                raise BPEInputError(
                    f"{where}[{i}] {tuple(pair)!r}: {type(part).__name__} {part!r} is not bytes; each merge "
                    f"must be a pair (bytes, bytes)"
                )


def _check_merges_against_vocab(vocab, merges, label, vocab_name: str) -> None:
    known = set(vocab.values())
    for i, (left, right) in enumerate(merges):
        for part in (left, right):
            if part not in known:
                raise BPEInputError(
                    f"{label(i)}: part {part!r} is not in {vocab_name}; every merge part must be a token of "
                    f"the vocab (was the vocab built from these merges?)"
                )
        if left + right not in known:
            raise BPEInputError(
                f"{label(i)}: the merged token {left + right!r} is not in {vocab_name}; every merge must "
                f"produce a token of the vocab (was the vocab built from these merges?)"
            )


def _check_pattern(pattern, where: str) -> str:
    import regex

    if not isinstance(pattern, str):
        raise BPEInputError(f"{where}: the pattern must be a str, not {type(pattern).__name__}")
    try:
        regex.compile(pattern)
    except regex.error as exc:
        raise BPEInputError(f"{where}: the pattern {pattern!r} does not compile ({exc}); fix the regex") from None
    return pattern


def special_token_ids(vocab: dict[int, bytes], special_tokens: Iterable[str]) -> dict[str, int]:
    """Each special token's id under the encoding contract: the highest id whose bytes equal it, or else
    the next id after the largest, in the order given.

    >>> vocab = {i: bytes([i]) for i in range(256)} | {256: b"x"}
    >>> special_token_ids(vocab, ["x", "<|endoftext|>"])
    {'x': 256, '<|endoftext|>': 257}
    """
    highest: dict[bytes, int] = {}
    for i, tok in vocab.items():
        if i > highest.get(tok, -1):
            highest[tok] = i
    next_id = max(vocab, default=-1) + 1
    ids: dict[str, int] = {}
    for tok in special_tokens:
        found = highest.get(tok.encode("utf-8"))
        if found is None:
            found = next_id
            next_id += 1
        ids[tok] = found
    return ids


def _lowest_ids(vocab: dict[int, bytes]) -> dict[bytes, int]:
    """Each distinct byte string with its lowest id (the id ordinary text encodes to)."""
    lowest: dict[bytes, int] = {}
    for i in sorted(vocab):
        lowest.setdefault(vocab[i], i)
    return lowest


# ---------------------------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------------------------

def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and ``os.replace``.

    Readers see the old file or the new one, never a mix; on any exception the temporary file is removed
    and the old file is left as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            fd = -1  # the file object owns it now
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync_directory(directory: str) -> None:
    # Makes the renames durable on POSIX; directories cannot be opened this way on Windows.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _prepare_directory(directory) -> str:
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise BPEInputError(f"{directory}: exists and is not a directory; save the model to a directory path")
    os.makedirs(directory, exist_ok=True)
    return directory


# ---------------------------------------------------------------------------------------------------------
# save_model
# ---------------------------------------------------------------------------------------------------------

def _vocab_json_text(vocab: dict[int, bytes]) -> tuple[str, list[list]]:
    """``vocab.json``'s text (one entry per line, by id) and the ``[id, token]`` entries it cannot hold."""
    lowest = _lowest_ids(vocab)
    lines = []
    extra = []
    for i in sorted(vocab):
        token = bytes_to_gpt2_str(vocab[i])
        if lowest[vocab[i]] == i:
            lines.append(f"  {json.dumps(token, ensure_ascii=False)}: {i}")
        else:
            extra.append([i, token])
    return "{\n" + ",\n".join(lines) + "\n}\n", extra


def _merges_text(merges) -> str:
    lines = [MERGES_HEADER]
    lines.extend(f"{bytes_to_gpt2_str(a)} {bytes_to_gpt2_str(b)}" for a, b in merges)
    return "\n".join(lines) + "\n"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_model(
    directory,
    vocab: dict[int, bytes],
    merges: Sequence[tuple[bytes, bytes]],
    special_tokens: Sequence[str] = (),
    pattern: str = GPT2_PATTERN,
) -> tuple[Path, Path]:
    """Write ``vocab.json``, ``merges.txt`` and ``bpe_numba.json`` into ``directory`` (created if missing),
    each atomically. Returns the paths of ``vocab.json`` and ``merges.txt``, the two that
    :func:`load_model` and GPT-2 style readers take.

    The model is checked first (:func:`check_model`), so nothing is written for an invalid one.
    """
    specials = checked_special_tokens(special_tokens)
    check_model(vocab, merges)
    _check_pattern(pattern, "pattern")
    vocab_text, extra = _vocab_json_text(vocab)
    vocab_data = vocab_text.encode("utf-8")
    merges_data = _merges_text(merges).encode("utf-8")
    ids = special_token_ids(vocab, specials)
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "vocab_file": VOCAB_FILE,
        "merges_file": MERGES_FILE,
        "vocab_sha256": _sha256(vocab_data),
        "merges_sha256": _sha256(merges_data),
        "pattern": pattern,
        # id is null for a special token that is not in the vocab: a tokenizer appends it.
        "special_tokens": [{"content": t, "id": ids[t] if ids[t] in vocab else None} for t in specials],
        "extra_ids": extra,
    }
    meta_data = (json.dumps(meta, ensure_ascii=False, indent=2) + "\n").encode("utf-8")

    files = ((META_FILE, meta_data), (VOCAB_FILE, vocab_data), (MERGES_FILE, merges_data))
    directory = os.fspath(directory)
    if not os.path.exists(directory):
        # A new directory appears whole or not at all: the files are written into a temporary sibling that
        # is renamed into place.
        parent = os.path.dirname(os.path.abspath(directory))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(os.path.abspath(directory))}.", suffix=".tmp")
        try:
            for name, data in files:
                atomic_write_bytes(Path(tmp) / name, data)
            os.rename(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_directory(parent)
        return Path(directory) / VOCAB_FILE, Path(directory) / MERGES_FILE
    directory = _prepare_directory(directory)
    # Into an existing directory, the sidecar goes first: if the save stops after it, the old
    # vocab.json/merges.txt no longer match its hashes and loading says so, instead of pairing them with
    # the new metadata.
    for name, data in files:
        atomic_write_bytes(Path(directory) / name, data)
    _fsync_directory(directory)
    return Path(directory) / VOCAB_FILE, Path(directory) / MERGES_FILE


# ---------------------------------------------------------------------------------------------------------
# load_model
# ---------------------------------------------------------------------------------------------------------

def _check_model_file(path, what: str) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileNotFoundError(f"{path}: no such {what} file; check the path (relative to {os.getcwd()})")
    if os.path.isdir(path):
        raise ModelPathIsADirectoryError(
            f"{path}: is a directory; pass the {what} file inside it ({VOCAB_FILE} and {MERGES_FILE} for a "
            f"model written by save_model)"
        )
    return path


def _read_text(path: str) -> tuple[bytes, str]:
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BPEInputError(
            f"{path}:{line}: not UTF-8 (byte offset {exc.start}: {exc.reason}); model files are UTF-8 text: "
            f"re-save the file as UTF-8, or check that this is the right file"
        ) from None
    return data, text.removeprefix("\ufeff")


def _line_of_key(text: str, key: str, occurrence: int = 1) -> int | None:
    """Best-effort line number of the ``occurrence``-th appearance of a JSON object key in ``text``."""
    for form in (json.dumps(key, ensure_ascii=False), json.dumps(key)):
        found = list(itertools.islice(re.finditer(re.escape(form) + r"\s*:", text), occurrence))
        if len(found) == occurrence:
            return text.count("\n", 0, found[-1].start()) + 1
    return None


def _where_key(path: str, text: str, key: str, occurrence: int = 1) -> str:
    line = _line_of_key(text, key, occurrence)
    return f"{path}:{line}" if line else path


def _parse_json(path: str, text: str, what: str):
    def no_duplicate_keys(pairs):
        seen = {}
        for k, v in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen[k] = v
        return seen

    try:
        return json.loads(text, object_pairs_hook=no_duplicate_keys)
    except _DuplicateKey as dup:
        key = dup.args[0]
        raise BPEInputError(
            f"{_where_key(path, text, key, 2)}: key {key!r} appears twice in the {what}; JSON keeps only the "
            f"last one, which would silently lose a token: remove the duplicate or re-save the model"
        ) from None
    except json.JSONDecodeError as exc:
        truncated = " (the file looks cut off: re-save or re-download it)" if exc.pos >= len(text.rstrip()) else ""
        raise BPEInputError(
            f"{path}:{exc.lineno}:{exc.colno}: malformed JSON in the {what}: {exc.msg}{truncated}"
        ) from None


class _DuplicateKey(Exception):
    pass


def _parse_vocab_json(path: str, text: str, raw_specials: set[str]) -> dict[int, bytes]:
    raw = _parse_json(path, text, "vocab")
    if not isinstance(raw, dict):
        raise BPEInputError(
            f"{path}: the vocab must be a JSON object {{token: id}}, not a JSON {type(raw).__name__}; "
            f"is this the vocab file (GPT-2 style vocab.json)?"
        )
    vocab: dict[int, bytes] = {}
    owner: dict[int, str] = {}
    for key, idx in raw.items():
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise BPEInputError(
                f"{_where_key(path, text, key)}: the id of {key!r} is {json.dumps(idx)}; ids must be integers"
            )
        if idx < 0:
            raise BPEInputError(f"{_where_key(path, text, key)}: the id of {key!r} is {idx}; ids must be >= 0")
        if idx in owner:
            raise BPEInputError(
                f"{_where_key(path, text, key)}: id {idx} is given to both {owner[idx]!r} and {key!r}; each id "
                f"must name one token: fix or re-save the vocab"
            )
        bad = _first_outside_alphabet(key)
        if bad >= 0:
            if key not in raw_specials:
                raise BPEInputError(f"{_where_key(path, text, key)}: key {key!r}: {_describe_outside(key, bad)}")
            # A special token stored as raw text (as Hugging Face does): take its UTF-8 bytes.
            token = key.encode("utf-8")
        else:
            token = key.translate(_DECODE_TABLE).encode("latin-1")
        owner[idx] = key
        vocab[idx] = token
    return vocab


def _parse_merges_txt(path: str, text: str) -> tuple[list[tuple[bytes, bytes]], list[int]]:
    """Merges and the line number of each. The first line is skipped when it starts with ``#version``."""
    merges: list[tuple[bytes, bytes]] = []
    line_numbers: list[int] = []
    lines = text.split("\n")
    for n, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if n == 1 and line.startswith("#version"):
            continue
        if not line.strip():
            continue
        # No character of the alphabet is whitespace, so splitting on whitespace loses nothing.
        parts = line.split()
        if len(parts) != 2:
            last = n == len(lines) or (n == len(lines) - 1 and not lines[-1])
            cut = ""
            if last and len(parts) == 1:
                cut = " (the last line: the file looks cut off, re-save or re-download it)"
            raise BPEInputError(
                f"{path}:{n}: {line!r} has {len(parts)} token(s); each merges line must be two tokens separated "
                f"by a space{cut}"
            )
        pair = []
        for part in parts:
            bad = _first_outside_alphabet(part)
            if bad >= 0:
                raise BPEInputError(f"{path}:{n}: token {part!r}: {_describe_outside(part, bad)}")
            pair.append(part.translate(_DECODE_TABLE).encode("latin-1"))
        merges.append((pair[0], pair[1]))
        line_numbers.append(n)
    return merges, line_numbers


def _read_sidecar(meta_path: str):
    data, text = _read_text(meta_path)
    meta = _parse_json(meta_path, text, "model metadata")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise BPEInputError(
            f"{meta_path}: not a {FORMAT_NAME} metadata file (no \"format\": \"{FORMAT_NAME}\"); remove or "
            f"rename it if it belongs to something else"
        )
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BPEInputError(f"{meta_path}: \"version\" is {version!r}; expected a positive integer")
    if version > FORMAT_VERSION:
        raise BPEInputError(
            f"{meta_path}: format version {version} was written by a newer bpe_numba (this one reads up to "
            f"{FORMAT_VERSION}); upgrade bpe_numba"
        )
    return meta


def _meta_field(meta: dict, meta_path: str, key: str, kind, default=None):
    value = meta.get(key, default)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BPEInputError(f"{meta_path}: \"{key}\" is {value!r}; expected {getattr(kind, '__name__', kind)}")
    return value


def _find_sidecar(vocab_path: str, merges_path: str, vocab_data: bytes, merges_data: bytes):
    """The sidecar's metadata if it describes these two files, else None (an error if it names them but
    their contents changed)."""
    meta_path = os.path.join(os.path.dirname(vocab_path) or ".", META_FILE)
    if not os.path.isfile(meta_path):
        return None, meta_path
    meta = _read_sidecar(meta_path)
    vocab_ok = meta.get("vocab_sha256") == _sha256(vocab_data)
    merges_ok = meta.get("merges_sha256") == _sha256(merges_data)
    if vocab_ok and merges_ok:
        return meta, meta_path
    same_names = (
        meta.get("vocab_file") == os.path.basename(vocab_path)
        and meta.get("merges_file") == os.path.basename(merges_path)
        and os.path.samefile(os.path.dirname(vocab_path) or ".", os.path.dirname(merges_path) or ".")
    )
    if not same_names:
        return None, meta_path  # metadata of other files in the same folder
    changed = " and ".join(p for p, ok in ((vocab_path, vocab_ok), (merges_path, merges_ok)) if not ok)
    raise BPEInputError(
        f"{meta_path}: does not match {changed} (SHA-256 differs): the file was edited, replaced or a save was "
        f"interrupted. Save the model again, or delete {META_FILE} to load the two files as plain GPT-2 files "
        f"(special-token ids and duplicated tokens recorded only there are then lost)"
    )


def _apply_sidecar(meta: dict, meta_path: str, vocab: dict[int, bytes]) -> tuple[list[str], list[int | None], str]:
    pattern = _check_pattern(_meta_field(meta, meta_path, "pattern", str, GPT2_PATTERN), meta_path)
    extra = _meta_field(meta, meta_path, "extra_ids", list, [])
    for k, entry in enumerate(extra):
        ok = (
            isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int)
            and not isinstance(entry[0], bool) and entry[0] >= 0 and isinstance(entry[1], str)
        )
        if not ok:
            raise BPEInputError(f"{meta_path}: extra_ids[{k}] is {entry!r}; expected [id, token]")
        idx, token = entry
        if idx in vocab:
            raise BPEInputError(
                f"{meta_path}: extra_ids[{k}] gives id {idx} to {token!r}, but {VOCAB_FILE} already has id {idx}; "
                f"save the model again"
            )
        bad = _first_outside_alphabet(token)
        if bad >= 0:
            raise BPEInputError(f"{meta_path}: extra_ids[{k}] token {token!r}: {_describe_outside(token, bad)}")
        vocab[idx] = token.translate(_DECODE_TABLE).encode("latin-1")
    entries = _meta_field(meta, meta_path, "special_tokens", list, [])
    contents: list[str] = []
    ids: list[int | None] = []
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("content"), str):
            raise BPEInputError(
                f"{meta_path}: special_tokens[{k}] is {entry!r}; expected {{\"content\": str, \"id\": int}}"
            )
        idx = entry.get("id")
        if idx is not None and (isinstance(idx, bool) or not isinstance(idx, int)):
            raise BPEInputError(f"{meta_path}: special_tokens[{k}] id is {idx!r}; expected an integer or null")
        contents.append(entry["content"])
        ids.append(idx)
    checked_special_tokens(contents, f"{meta_path}: special_tokens")
    return contents, ids, pattern


def load_model(vocab_path, merges_path, special_tokens: Sequence[str] | None = None):
    """Read a model: ``(vocab, merges, special_tokens, pattern)``.

    Reads what :func:`save_model` writes (``vocab.json``, ``merges.txt`` and the ``bpe_numba.json`` next to
    them) and plain GPT-2 style files without header or sidecar. ``special_tokens=None`` takes the saved
    ones (none for plain files); a list replaces them. The pattern is the saved one, else GPT-2's.
    Raises :class:`BPEInputError` naming the file and line or key of any problem.
    """
    vocab_path = _check_model_file(vocab_path, "vocab")
    merges_path = _check_model_file(merges_path, "merges")
    vocab_data, vocab_text = _read_text(vocab_path)
    merges_data, merges_text = _read_text(merges_path)
    given = None if special_tokens is None else checked_special_tokens(special_tokens)

    meta, meta_path = _find_sidecar(vocab_path, merges_path, vocab_data, merges_data)
    saved: list[str] = []
    saved_ids: list[int | None] = []
    pattern = GPT2_PATTERN
    if meta is not None:
        saved, saved_ids, pattern = _apply_sidecar(meta, meta_path, {})  # validate before the big parse
    raw_specials = set(saved) | set(given or ())
    vocab = _parse_vocab_json(vocab_path, vocab_text, raw_specials)
    merges, line_numbers = _parse_merges_txt(merges_path, merges_text)
    if meta is not None:
        _apply_sidecar(meta, meta_path, vocab)
        for content, idx in zip(saved, saved_ids):
            if idx is not None and vocab.get(idx) != content.encode("utf-8"):
                raise BPEInputError(
                    f"{meta_path}: special token {content!r} is recorded with id {idx}, but id {idx} is "
                    f"{vocab.get(idx)!r} in {vocab_path}; save the model again"
                )
    _check_merges_against_vocab(
        vocab, merges, lambda i: f"{merges_path}:{line_numbers[i]}", f"{vocab_path}"
    )
    return vocab, merges, (given if given is not None else saved), pattern


# ---------------------------------------------------------------------------------------------------------
# Pickles
# ---------------------------------------------------------------------------------------------------------

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
    path = _check_model_file(path, "pickle")
    with open(path, "rb") as f:
        data = f.read()
    try:
        obj = _PlainUnpickler(io.BytesIO(data)).load()
    except _RefusedGlobal as exc:
        if exc.args[0] == "_codecs.encode":  # how pickle protocols 0-2 store bytes
            fix = "re-pickle it with protocol 3 or newer (the default), which stores bytes directly"
        else:
            fix = "pickle (vocab, merges) built from plain Python types (convert numpy ints with int())"
        raise BPEInputError(
            f"{path}: refused to unpickle: it asks for {exc.args[0]}, and only plain dict/list/tuple/set/int/"
            f"bytes/str/bool/None values are loaded (no code from the file runs). If you made this file, "
            f"{fix}; never unpickle a file you did not make with plain pickle.load"
        ) from None
    except Exception as exc:  # truncated or not a pickle at all: EOFError, UnpicklingError, ValueError...
        raise BPEInputError(
            f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); the file may be truncated or in "
            f"another format (vocab.json and merges.txt are read with load_model)"
        ) from None

    saved_specials: object = []
    pattern: object = GPT2_PATTERN
    if isinstance(obj, dict):
        missing = [k for k in ("vocab", "merges") if k not in obj]
        if missing:
            raise BPEInputError(
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
        raise BPEInputError(
            f"{path}: the pickle holds a {kind}; expected (vocab, merges) or {{'vocab': ..., 'merges': ...}}"
        )
    _check_vocab(vocab, f"{path}: vocab")
    _check_merges(merges, f"{path}: merges")
    merges = [tuple(pair) for pair in merges]
    _check_merges_against_vocab(vocab, merges, lambda i: f"{path}: merges[{i}] {merges[i]!r}", "the vocab")
    specials = checked_special_tokens(saved_specials, f"{path}: special_tokens")
    pattern = _check_pattern(pattern, path)
    if special_tokens is not None:
        specials = checked_special_tokens(special_tokens)
    return dict(vocab), merges, specials, pattern


# ---------------------------------------------------------------------------------------------------------
# Hugging Face tokenizers
# ---------------------------------------------------------------------------------------------------------

def hf_tokenizer_dict(
    vocab: dict[int, bytes],
    merges: Sequence[tuple[bytes, bytes]],
    special_tokens: Sequence[str] = (),
    pattern: str = GPT2_PATTERN,
) -> dict:
    """The ``tokenizer.json`` contents as a dict (see :func:`export_hf_tokenizer_json`)."""
    specials = checked_special_tokens(special_tokens)
    check_model(vocab, merges)
    _check_pattern(pattern, "pattern")
    # Each byte string once, with the id ordinary text encodes to; ids whose bytes repeat a lower id's
    # (never produced by encoding) cannot be keys of the model's {string: id} map and are left out.
    model_vocab = {bytes_to_gpt2_str(tok): i for tok, i in _lowest_ids(vocab).items()}
    ids = special_token_ids(vocab, specials)
    added = []
    for tok in specials:
        # tokenizers ignores the ids in "added_tokens" and takes each one's id from the model vocab (by its
        # raw content), so the model vocab must map the raw content to the special id.
        tok_bytes = tok.encode("utf-8")
        clash = model_vocab.get(tok)
        if clash is not None and clash != ids[tok] and vocab.get(clash) != tok_bytes:
            raise BPEInputError(
                f"special token {tok!r}: its text is also how the vocab writes the different token "
                f"{vocab[clash]!r} (id {clash}) in GPT-2's alphabet, and tokenizer.json cannot tell them apart; "
                f"rename the special token"
            )
        # When ``clash`` has the same bytes (a one-byte special "x" is also byte 120), those bytes never reach
        # the model as ordinary text: every occurrence is split off as the special token first.
        model_vocab[tok] = ids[tok]
        added.append({
            "id": ids[tok], "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True,
        })
    seen_pairs = set()
    hf_merges = []
    for a, b in merges:
        if (a, b) in seen_pairs:  # tokenizers would let a repeated pair take the later rank
            continue
        seen_pairs.add((a, b))
        hf_merges.append(f"{bytes_to_gpt2_str(a)} {bytes_to_gpt2_str(b)}")
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": sorted(added, key=lambda t: t["id"]),
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                # Keep the matches, drop what lies between them: regex.finditer's semantics, for any pattern.
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Removed", "invert": True},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": dict(sorted(model_vocab.items(), key=lambda kv: kv[1])),
            "merges": hf_merges,
        },
    }


def export_hf_tokenizer_json(
    path,
    vocab: dict[int, bytes],
    merges: Sequence[tuple[bytes, bytes]],
    special_tokens: Sequence[str] = (),
    pattern: str = GPT2_PATTERN,
) -> Path:
    """Write a Hugging Face ``tokenizer.json`` (atomically) that ``tokenizers.Tokenizer.from_file`` loads
    and that encodes to the same ids as this package's tokenizer.

    Byte-level BPE: ``Split`` on ``pattern`` (matches kept) then ``ByteLevel(use_regex=False)``, the
    ``ByteLevel`` decoder, and each special token as an added token with ``special: true`` (so
    ``decode(ids)`` skips them unless ``skip_special_tokens=False``). Ids whose bytes repeat a lower id's are
    not in the file; a special token whose text equals the alphabet form of another token is an error.
    """
    data = json.dumps(hf_tokenizer_dict(vocab, merges, special_tokens, pattern), ensure_ascii=False, indent=1)
    path = Path(os.fspath(path))
    if path.parent != Path(""):
        _prepare_directory(path.parent)
    atomic_write_bytes(path, (data + "\n").encode("utf-8"))
    return path


# ---------------------------------------------------------------------------------------------------------
# tiktoken
# ---------------------------------------------------------------------------------------------------------

def tiktoken_ranks(
    vocab: dict[int, bytes], special_tokens: Sequence[str] = (), *, merges: Sequence[tuple[bytes, bytes]] | None = None
) -> dict[bytes, int]:
    """tiktoken's ``mergeable_ranks``: byte string -> rank, where the rank is the token's (lowest) id.

    Special tokens are left out (a byte string whose lowest id is a special token's id; single bytes always
    stay, tiktoken needs them). tiktoken joins any two adjacent pieces whose concatenation has a rank, so a
    token that no merge produces (a special token of the training run that is not special now) would come
    out of tiktoken but never out of merge-by-merge BPE: pass ``merges`` to keep only the single bytes and
    the merge results. ``merges`` also checks that the ids follow the merge order, which tiktoken relies on.
    """
    specials = checked_special_tokens(special_tokens)
    _check_vocab(vocab, "vocab")
    lowest = _lowest_ids(vocab)
    special_ids = set(special_token_ids(vocab, specials).values())
    keep = lambda tok, i: i not in special_ids or len(tok) == 1  # noqa: E731
    if merges is None:
        return {tok: i for tok, i in lowest.items() if keep(tok, i)}
    check_model(vocab, merges)
    ranks = {tok: i for tok, i in lowest.items() if len(tok) == 1}
    previous = None
    for k, (a, b) in enumerate(merges):
        tok = a + b
        if tok in ranks:
            continue  # a later merge making the same bytes: tiktoken knows the byte string once
        i = lowest[tok]
        if previous is not None and i < previous[1]:
            raise BPEInputError(
                f"merges[{k}] {(a, b)!r} makes id {i}, below the id {previous[1]} of merges[{previous[0]}]: tiktoken "
                f"applies merges in id order, and this vocab's ids do not follow the merge order"
            )
        previous = (k, i)
        if keep(tok, i):
            ranks[tok] = i
    return ranks


def export_tiktoken(
    path,
    vocab: dict[int, bytes],
    special_tokens: Sequence[str] = (),
    *,
    merges: Sequence[tuple[bytes, bytes]] | None = None,
) -> dict[str, int]:
    """Write tiktoken's rank file (``base64(token) rank`` per line, by rank; special tokens left out),
    atomically. Returns the ``special_tokens`` dict ``{token: id}`` to give ``tiktoken.Encoding``.
    See :func:`tiktoken_ranks` for ``merges`` (recommended)."""
    ranks = tiktoken_ranks(vocab, special_tokens, merges=merges)
    by_rank = sorted(ranks.items(), key=lambda kv: kv[1])
    lines = [base64.b64encode(tok) + b" " + str(rank).encode("ascii") for tok, rank in by_rank]
    path = Path(os.fspath(path))
    if path.parent != Path(""):
        _prepare_directory(path.parent)
    atomic_write_bytes(path, b"\n".join(lines) + b"\n")
    return special_token_ids(vocab, checked_special_tokens(special_tokens))


def read_tiktoken_ranks(path) -> dict[bytes, int]:
    """Read a tiktoken rank file (no caching, unlike ``tiktoken.load.load_tiktoken_bpe``)."""
    path = _check_model_file(path, "tiktoken rank")
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                if len(parts) != 2:
                    raise ValueError("expected two fields")
                tok, rank = base64.b64decode(parts[0], validate=True), int(parts[1])
            except ValueError as exc:
                raise BPEInputError(
                    f"{path}:{n}: {line[:80]!r} is not 'base64 rank' ({exc}); the file may be cut off"
                ) from None
            if tok in ranks:
                raise BPEInputError(f"{path}:{n}: token {tok!r} repeats; each token must appear once")
            ranks[tok] = rank
    return ranks


def tiktoken_encoding(
    vocab: dict[int, bytes],
    special_tokens: Sequence[str] = (),
    pattern: str = GPT2_PATTERN,
    name: str = "bpe_numba",
    *,
    merges: Sequence[tuple[bytes, bytes]] | None = None,
):
    """A ``tiktoken.Encoding`` for the model (tiktoken must be installed); see :func:`tiktoken_ranks` for
    ``merges`` (recommended). Encode with ``allowed_special="all"`` to split on the special tokens.

    tiktoken matches special tokens leftmost-first in an order of its own, not longest-first: when one
    special token is a prefix of another (``<|a|>`` and ``<|a|><|b|>``), the shorter one may win.
    """
    import tiktoken

    specials = checked_special_tokens(special_tokens)
    _check_pattern(pattern, "pattern")
    return tiktoken.Encoding(
        name=name,
        pat_str=pattern,
        mergeable_ranks=tiktoken_ranks(vocab, specials, merges=merges),
        special_tokens=special_token_ids(vocab, specials),
    )


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MERGES_FILE",
    "META_FILE",
    "VOCAB_FILE",
    "ModelFileNotFoundError",
    "ModelPathIsADirectoryError",
    "atomic_write_bytes",
    "bytes_to_gpt2_str",
    "check_model",
    "checked_special_tokens",
    "export_hf_tokenizer_json",
    "export_tiktoken",
    "gpt2_bytes_to_unicode",
    "gpt2_str_to_bytes",
    "gpt2_unicode_to_bytes",
    "hf_tokenizer_dict",
    "load_model",
    "load_pickle",
    "read_tiktoken_ranks",
    "save_model",
    "special_token_ids",
    "tiktoken_encoding",
    "tiktoken_ranks",
]
