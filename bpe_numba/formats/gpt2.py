"""GPT-2 style model files: ``vocab.json`` + ``merges.txt`` in GPT-2's byte-to-unicode alphabet, plus the
``bpe_numba.json`` sidecar.

A model is ``vocab: dict[int, bytes]``, ``merges: list[tuple[bytes, bytes]]`` (creation order),
``special_tokens: list[str]`` and ``pattern: str`` (the pre-tokenization regex).

On disk, ``save_model(directory, ...)`` writes three files, each atomically (:mod:`bpe_numba.atomic`), so an
interrupted save never leaves a half-written file; a directory that does not exist yet is filled under a
temporary name and renamed into place, so it appears whole or not at all:

``vocab.json``
    ``{token: id}`` with every token written in GPT-2's byte-to-unicode alphabet, exactly like GPT-2's
    ``encoder.json`` and the CS336 fixtures. Each distinct byte string appears once, with its lowest id.
``merges.txt``
    A header line ``#version: 0.2 bpe_numba/1``, then one merge per line: the two tokens in the alphabet,
    separated by one space, in creation order, with a final newline. Hugging Face ``tokenizers`` skips
    lines starting with ``#version``, tiktoken's data-gym loader and ``transformers``' GPT2Tokenizer skip the
    first line, and the CS336 test helper keeps only lines of exactly two words (the header has three).
    A model without merges is the header alone; an empty file (no header, no merges) is refused as the
    mistake it almost always is.
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

Every problem with a file raises a :class:`~bpe_numba.errors.BPEInputError` naming the file and the line or
key, and saying how to fix it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from ..atomic import atomic_directory, atomic_write_bytes
from ..errors import BPENotADirectoryError, BPEValueError, ModelNotSavedError
from ..validation import (
    GPT2_PATTERN,
    check_input_file,
    check_merges_in_vocab,
    check_model,
    check_pattern,
    check_special_tokens,
    id_range_problem,
    MAX_ID,
)

FORMAT_NAME = "bpe_numba"
FORMAT_VERSION = 1
VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
META_FILE = "bpe_numba.json"
MERGES_HEADER = f"#version: 0.2 {FORMAT_NAME}/{FORMAT_VERSION}"
_IN_MODEL_DIR = f" ({VOCAB_FILE} and {MERGES_FILE} for a model written by save_model)"


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
        raise BPEValueError(f"{text!r}: {_describe_outside(text, bad)}")
    return text.translate(_DECODE_TABLE).encode("latin-1")


def _describe_outside(text: str, index: int) -> str:
    c = text[index]
    return (
        f"character {c!r} (U+{ord(c):04X}) at position {index} is outside GPT-2's byte-to-unicode alphabet, "
        f"so it does not stand for a byte; tokens must be written in that alphabet (bytes_to_gpt2_str), "
        f"not as raw text"
    )


# ---------------------------------------------------------------------------------------------------------
# Ids
# ---------------------------------------------------------------------------------------------------------

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


def lowest_ids(vocab: dict[int, bytes]) -> dict[bytes, int]:
    """Each distinct byte string with its lowest id (the id ordinary text encodes to)."""
    lowest: dict[bytes, int] = {}
    for i in sorted(vocab):
        lowest.setdefault(vocab[i], i)
    return lowest


def prepare_directory(directory) -> str:
    """``directory``, created if missing (with its parents); a file in its place is an error."""
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise BPENotADirectoryError(f"{directory}: exists and is not a directory; save the model to a directory path")
    os.makedirs(directory, exist_ok=True)
    return directory


def write_model_file(path, data: bytes) -> Path:
    """Write one file of an export atomically, creating its folder if needed."""
    path = Path(os.fspath(path))
    if path.parent != Path(""):
        prepare_directory(path.parent)
    atomic_write_bytes(path, data)
    return path


def write_model_directory(directory, files: Sequence[tuple[str, bytes]]) -> Path:
    """Write ``files`` (``(name, data)`` pairs) into ``directory``, each atomically and in the order given. A
    directory that does not exist yet is filled under a temporary name and renamed into place, so it
    appears whole or not at all."""
    directory = os.fspath(directory)
    if not os.path.exists(directory):
        with atomic_directory(directory) as tmp:
            for name, data in files:
                atomic_write_bytes(os.path.join(tmp, name), data)
    else:
        prepare_directory(directory)
        for name, data in files:
            atomic_write_bytes(os.path.join(directory, name), data)
    return Path(directory)


# ---------------------------------------------------------------------------------------------------------
# save_model
# ---------------------------------------------------------------------------------------------------------

def _vocab_json_text(vocab: dict[int, bytes]) -> tuple[str, list[list]]:
    """``vocab.json``'s text (one entry per line, by id) and the ``[id, token]`` entries it cannot hold."""
    lowest = lowest_ids(vocab)
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
    specials = check_special_tokens(special_tokens)
    check_model(vocab, merges)
    check_pattern(pattern)
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

    # Into an existing directory, the sidecar goes first: if the save stops after it, the old
    # vocab.json/merges.txt no longer match its hashes and loading says so, instead of pairing them with the
    # new metadata.
    directory = write_model_directory(
        directory, ((META_FILE, meta_data), (VOCAB_FILE, vocab_data), (MERGES_FILE, merges_data))
    )
    return directory / VOCAB_FILE, directory / MERGES_FILE


def save_trained_model(directory, vocab, merges, special_tokens=(), pattern: str = GPT2_PATTERN) -> tuple[Path, Path]:
    """:func:`save_model` for the result of a long training run: if ``directory`` cannot be written (a full
    or read-only disk), the model is saved to a fresh directory under the system's temporary folder instead
    and :class:`~bpe_numba.errors.ModelNotSavedError` names it, so the result is not lost."""
    try:
        return save_model(directory, vocab, merges, special_tokens, pattern)
    except OSError as exc:
        reason = f"{exc.strerror} ({exc.filename})" if exc.strerror and exc.filename else str(exc)
        rescue = None
        try:
            rescue = tempfile.mkdtemp(prefix="bpe_numba_model_")
            save_model(rescue, vocab, merges, special_tokens, pattern)
        except OSError as second:
            if rescue is not None:
                shutil.rmtree(rescue, ignore_errors=True)
            raise ModelNotSavedError(
                f"could not write the model to {os.fspath(directory)}: {reason}; saving it under "
                f"{tempfile.gettempdir()} failed too ({second}), so it is lost: free some space and train again",
                os.fspath(directory), None,
            ) from exc
        raise ModelNotSavedError(
            f"could not write the model to {os.fspath(directory)}: {reason}; it was saved to {rescue} instead "
            f"(move that directory where you want it)",
            os.fspath(directory), rescue,
        ) from exc


# ---------------------------------------------------------------------------------------------------------
# load_model
# ---------------------------------------------------------------------------------------------------------

def _read_text(path: str) -> tuple[bytes, str]:
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BPEValueError(
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
        raise BPEValueError(
            f"{_where_key(path, text, key, 2)}: key {key!r} appears twice in the {what}; JSON keeps only the "
            f"last one, which would silently lose a token: remove the duplicate or re-save the model"
        ) from None
    except json.JSONDecodeError as exc:
        truncated = " (the file looks cut off: re-save or re-download it)" if exc.pos >= len(text.rstrip()) else ""
        raise BPEValueError(
            f"{path}:{exc.lineno}:{exc.colno}: malformed JSON in the {what}: {exc.msg}{truncated}"
        ) from None


class _DuplicateKey(Exception):
    pass


def _parse_vocab_json(path: str, text: str, raw_specials: set[str]) -> dict[int, bytes]:
    raw = _parse_json(path, text, "vocab")
    if not isinstance(raw, dict):
        raise BPEValueError(
            f"{path}: the vocab must be a JSON object {{token: id}}, not a JSON {type(raw).__name__}; "
            f"is this the vocab file (GPT-2 style vocab.json)?"
        )
    vocab: dict[int, bytes] = {}
    owner: dict[int, str] = {}
    for key, idx in raw.items():
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise BPEValueError(
                f"{_where_key(path, text, key)}: the id of {key!r} is {json.dumps(idx)}; ids must be integers"
            )
        if idx < 0:
            raise BPEValueError(f"{_where_key(path, text, key)}: the id of {key!r} is {idx}; ids must be >= 0")
        if idx > MAX_ID:
            raise BPEValueError(
                f"{_where_key(path, text, key)}: the id of {key!r} is {idx}; {id_range_problem(idx, 0)}"
            )
        if idx in owner:
            raise BPEValueError(
                f"{_where_key(path, text, key)}: id {idx} is given to both {owner[idx]!r} and {key!r}; each id "
                f"must name one token: fix or re-save the vocab"
            )
        bad = _first_outside_alphabet(key)
        if bad >= 0:
            if key not in raw_specials:
                raise BPEValueError(f"{_where_key(path, text, key)}: key {key!r}: {_describe_outside(key, bad)}")
            # A special token stored as raw text (as Hugging Face does): take its UTF-8 bytes.
            token = key.encode("utf-8")
        else:
            token = key.translate(_DECODE_TABLE).encode("latin-1")
        owner[idx] = key
        vocab[idx] = token
    if vocab:
        top = max(vocab)
        problem = id_range_problem(top, len(vocab))
        if problem:  # a decode table would need a slot per id up to it
            raise BPEValueError(f"{_where_key(path, text, owner[top])}: the id of {owner[top]!r} is {top}: {problem}")
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
            raise BPEValueError(
                f"{path}:{n}: {line!r} has {len(parts)} token(s); each merges line must be two tokens separated "
                f"by a space{cut}"
            )
        pair = []
        for part in parts:
            bad = _first_outside_alphabet(part)
            if bad >= 0:
                raise BPEValueError(f"{path}:{n}: token {part!r}: {_describe_outside(part, bad)}")
            pair.append(part.translate(_DECODE_TABLE).encode("latin-1"))
        merges.append((pair[0], pair[1]))
        line_numbers.append(n)
    if not merges and not lines[0].startswith("#version"):
        raise BPEValueError(
            f"{path}: empty (no merges and no '#version' header line); a merges file lists one merge per line. "
            f"If the model really has no merges, give the file the header line {MERGES_HEADER!r} (as save_model "
            f"writes it)"
        )
    return merges, line_numbers


def _read_sidecar(meta_path: str):
    data, text = _read_text(meta_path)
    meta = _parse_json(meta_path, text, "model metadata")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise BPEValueError(
            f"{meta_path}: not a {FORMAT_NAME} metadata file (no \"format\": \"{FORMAT_NAME}\"); remove or "
            f"rename it if it belongs to something else"
        )
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BPEValueError(f"{meta_path}: \"version\" is {version!r}; expected a positive integer")
    if version > FORMAT_VERSION:
        raise BPEValueError(
            f"{meta_path}: format version {version} was written by a newer bpe_numba (this one reads up to "
            f"{FORMAT_VERSION}); upgrade bpe_numba"
        )
    return meta


def _meta_field(meta: dict, meta_path: str, key: str, kind, default=None):
    value = meta.get(key, default)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BPEValueError(f"{meta_path}: \"{key}\" is {value!r}; expected {getattr(kind, '__name__', kind)}")
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
    raise BPEValueError(
        f"{meta_path}: does not match {changed} (SHA-256 differs): the file was edited, replaced or a save was "
        f"interrupted. Save the model again, or delete {META_FILE} to load the two files as plain GPT-2 files "
        f"(special-token ids and duplicated tokens recorded only there are then lost)"
    )


def _apply_sidecar(meta: dict, meta_path: str, vocab: dict[int, bytes]) -> tuple[list[str], list[int | None], str]:
    pattern = check_pattern(
        _meta_field(meta, meta_path, "pattern", str, GPT2_PATTERN), f"{meta_path}: the pattern", BPEValueError
    )
    extra = _meta_field(meta, meta_path, "extra_ids", list, [])
    for k, entry in enumerate(extra):
        ok = (
            isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int)
            and not isinstance(entry[0], bool) and entry[0] >= 0 and isinstance(entry[1], str)
        )
        if not ok:
            raise BPEValueError(f"{meta_path}: extra_ids[{k}] is {entry!r}; expected [id, token]")
        idx, token = entry
        if idx in vocab:
            raise BPEValueError(
                f"{meta_path}: extra_ids[{k}] gives id {idx} to {token!r}, but {VOCAB_FILE} already has id {idx}; "
                f"save the model again"
            )
        problem = id_range_problem(idx, len(vocab) + len(extra) if vocab else MAX_ID)  # first pass: no vocab yet
        if problem:
            raise BPEValueError(f"{meta_path}: extra_ids[{k}] gives id {idx} to {token!r}: {problem}")
        bad = _first_outside_alphabet(token)
        if bad >= 0:
            raise BPEValueError(f"{meta_path}: extra_ids[{k}] token {token!r}: {_describe_outside(token, bad)}")
        vocab[idx] = token.translate(_DECODE_TABLE).encode("latin-1")
    entries = _meta_field(meta, meta_path, "special_tokens", list, [])
    contents: list[str] = []
    ids: list[int | None] = []
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("content"), str):
            raise BPEValueError(
                f"{meta_path}: special_tokens[{k}] is {entry!r}; expected {{\"content\": str, \"id\": int}}"
            )
        idx = entry.get("id")
        if idx is not None and (isinstance(idx, bool) or not isinstance(idx, int)):
            raise BPEValueError(f"{meta_path}: special_tokens[{k}] id is {idx!r}; expected an integer or null")
        contents.append(entry["content"])
        ids.append(idx)
    check_special_tokens(contents, f"{meta_path}: special_tokens", BPEValueError)
    return contents, ids, pattern


def load_model(vocab_path, merges_path, special_tokens: Sequence[str] | None = None):
    """Read a model: ``(vocab, merges, special_tokens, pattern)``.

    Reads what :func:`save_model` writes (``vocab.json``, ``merges.txt`` and the ``bpe_numba.json`` next to
    them) and plain GPT-2 style files without header or sidecar. ``special_tokens=None`` takes the saved
    ones (none for plain files); a list replaces them. The pattern is the saved one, else GPT-2's.
    Raises :class:`BPEInputError` naming the file and line or key of any problem.
    """
    vocab_path = check_input_file(vocab_path, "vocab", _IN_MODEL_DIR)
    merges_path = check_input_file(merges_path, "merges", _IN_MODEL_DIR)
    vocab_data, vocab_text = _read_text(vocab_path)
    merges_data, merges_text = _read_text(merges_path)
    given = None if special_tokens is None else check_special_tokens(special_tokens)

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
                raise BPEValueError(
                    f"{meta_path}: special token {content!r} is recorded with id {idx}, but id {idx} is "
                    f"{vocab.get(idx)!r} in {vocab_path}; save the model again"
                )
    check_merges_in_vocab(
        vocab, merges, lambda i: f"{merges_path}:{line_numbers[i]}", f"{vocab_path}"
    )
    return vocab, merges, (given if given is not None else saved), pattern

