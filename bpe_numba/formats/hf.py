"""Hugging Face export: a ``tokenizer.json`` that ``tokenizers.Tokenizer.from_file`` loads, and a directory
that ``transformers.AutoTokenizer.from_pretrained`` loads; both encode to the same ids as
:class:`bpe_numba.Tokenizer`.

``tokenizer.json`` is a byte-level BPE whose pre-tokenizer is ``Split`` on the exact pattern (matches kept,
anything between them dropped, as ``regex.finditer`` does) followed by ``ByteLevel(use_regex=False)``, and
the special tokens as ``added_tokens`` with ``special: true``. :func:`save_hf_pretrained` adds
``tokenizer_config.json`` (``PreTrainedTokenizerFast``, the eos/bos/pad tokens, the other special tokens,
no clean-up of spaces in ``decode``), which transformers 4.57 needs to load the directory at all and 5.x to
know its eos and pad tokens::

    save_hf_pretrained("my-tokenizer", vocab, merges, ["<|endoftext|>"])   # eos_token="<|endoftext|>"
    AutoTokenizer.from_pretrained("my-tokenizer")

Known decode problem of tokenizers (0.22 and 0.23 at least; upstream issues #1392, #1915, #1996): it runs
special tokens through the ByteLevel decoder too, so ``decode(..., skip_special_tokens=False)`` garbles a
special token whose characters all belong to GPT-2's alphabet and one of which is not ASCII (``<|é|>``
comes back with U+FFFD for the é; ``<|é中|>`` or ``<|é|> `` are fine, since ``中`` and the space are outside
the alphabet). Encoding is unaffected. :func:`misdecoded_special_tokens` finds such tokens and
:func:`save_hf_pretrained` warns about them.

tokenizers runs the pattern on its own regex engine, whose Unicode tables are older than ``regex``'s: with
the versions tested (regex 2026.5, tokenizers 0.23), characters added in Unicode 17.0 (U+323B0, CJK
Extension J, for one) are letters to ``regex`` but not to it, so text containing such characters
pre-tokenizes, and encodes, differently.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Sequence

from ..errors import BPEValueError
from ..validation import GPT2_PATTERN, check_model, check_one_of_specials, check_pattern, check_special_tokens
from .gpt2 import (
    bytes_to_gpt2_str,
    gpt2_unicode_to_bytes,
    lowest_ids,
    special_token_ids,
    write_model_directory,
    write_model_file,
)

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
HF_FILES = (TOKENIZER_FILE, TOKENIZER_CONFIG_FILE)


class _FirstSpecial:
    def __repr__(self) -> str:
        return "FIRST_SPECIAL"


#: ``eos_token``'s default in :func:`save_hf_pretrained`: the first special token (none without any).
FIRST_SPECIAL = _FirstSpecial()
_ALPHABET = frozenset(gpt2_unicode_to_bytes())


def hf_tokenizer_dict(
    vocab: dict[int, bytes],
    merges: Sequence[tuple[bytes, bytes]],
    special_tokens: Sequence[str] = (),
    pattern: str = GPT2_PATTERN,
) -> dict:
    """The ``tokenizer.json`` contents as a dict (see :func:`export_hf_tokenizer_json`)."""
    specials = check_special_tokens(special_tokens)
    check_model(vocab, merges)
    check_pattern(pattern)
    # Each byte string once, with the id ordinary text encodes to; ids whose bytes repeat a lower id's
    # (never produced by encoding) cannot be keys of the model's {string: id} map and are left out.
    model_vocab = {bytes_to_gpt2_str(tok): i for tok, i in lowest_ids(vocab).items()}
    ids = special_token_ids(vocab, specials)
    # One key per id where possible: tokenizers keeps a single token per id when it writes the file again
    # (transformers' save_pretrained, a Trainer's checkpoints), and if it kept the alphabet form ("<|sp|>Ġ"
    # for "<|sp|> ") of a special token's id, the reloaded special token would get a new id. The alphabet
    # form stays only where the BPE model needs it: a single byte, or a merge's part or result.
    in_merges = {tok for a, b in merges for tok in (a, b, a + b)}
    for tok in specials:
        tok_bytes = tok.encode("utf-8")
        alias = bytes_to_gpt2_str(tok_bytes)
        if alias != tok and model_vocab.get(alias) == ids[tok] and len(tok_bytes) > 1 and tok_bytes not in in_merges:
            del model_vocab[alias]
    added = []
    for tok in specials:
        # tokenizers ignores the ids in "added_tokens" and takes each one's id from the model vocab (by its
        # raw content), so the model vocab must map the raw content to the special id.
        tok_bytes = tok.encode("utf-8")
        clash = model_vocab.get(tok)
        if clash is not None and clash != ids[tok] and vocab.get(clash) != tok_bytes:
            raise BPEValueError(
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
    return write_model_file(path, _json_bytes(hf_tokenizer_dict(vocab, merges, special_tokens, pattern)))


def misdecoded_special_tokens(special_tokens: Sequence[str]) -> list[str]:
    """The special tokens that tokenizers' ``decode(..., skip_special_tokens=False)`` garbles: every
    character in GPT-2's alphabet (which its ByteLevel decoder then maps to bytes) and one not ASCII.

    >>> misdecoded_special_tokens(["<|endoftext|>", "<|é|>", "<|é中|>", "<|é|> "])
    ['<|é|>']
    """
    return [t for t in special_tokens if not t.isascii() and all(c in _ALPHABET for c in t)]


def hf_tokenizer_config(
    special_tokens: Sequence[str] = (),
    *,
    eos_token: str | None = FIRST_SPECIAL,
    bos_token: str | None = None,
    pad_token: str | None = None,
) -> dict:
    """The ``tokenizer_config.json`` contents as a dict (see :func:`save_hf_pretrained`).

    >>> hf_tokenizer_config(["<|endoftext|>", "<|pad|>"], pad_token="<|pad|>")["eos_token"]
    '<|endoftext|>'
    """
    specials = check_special_tokens(special_tokens)
    if eos_token is FIRST_SPECIAL:
        eos_token = specials[0] if specials else None
    named = {"eos_token": eos_token, "bos_token": bos_token, "pad_token": pad_token}
    for name, tok in named.items():
        if tok is not None:
            check_one_of_specials(tok, specials, name)
    config: dict = {
        "tokenizer_class": "PreTrainedTokenizerFast",  # transformers 5 loads it as TokenizersBackend
        # The ids decode to exactly the text; transformers' clean-up would drop the space in " ." and " 's".
        "clean_up_tokenization_spaces": False,
    }
    config.update((name, tok) for name, tok in named.items() if tok is not None)
    used = set(named.values())
    # Listed so that transformers counts them in all_special_tokens / all_special_ids (they are special
    # in tokenizer.json either way: skip_special_tokens drops them).
    others = [t for t in specials if t not in used]
    if others:
        config["additional_special_tokens"] = others
    return config


def save_hf_pretrained(
    directory,
    vocab: dict[int, bytes],
    merges: Sequence[tuple[bytes, bytes]],
    special_tokens: Sequence[str] = (),
    pattern: str = GPT2_PATTERN,
    *,
    eos_token: str | None = FIRST_SPECIAL,
    bos_token: str | None = None,
    pad_token: str | None = None,
) -> Path:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` into ``directory`` (created if missing; a new
    directory appears whole), each atomically, for ``transformers.AutoTokenizer.from_pretrained(directory)``
    (4.57 and 5.x tested). Returns the directory.

    ``eos_token``, ``bos_token`` and ``pad_token`` must each be one of ``special_tokens`` or ``None``;
    ``eos_token`` defaults to the first special token. Nothing is added around the ids (no post-processor),
    so the ids equal :meth:`bpe_numba.Tokenizer.encode`'s. Warns (``UserWarning``) about special tokens that
    tokenizers decodes wrongly (:func:`misdecoded_special_tokens`).
    """
    tokenizer = hf_tokenizer_dict(vocab, merges, special_tokens, pattern)
    config = hf_tokenizer_config(special_tokens, eos_token=eos_token, bos_token=bos_token, pad_token=pad_token)
    bad = misdecoded_special_tokens(check_special_tokens(special_tokens))
    if bad:
        warnings.warn(
            f"tokenizers decodes the special token{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} "
            f"wrongly with skip_special_tokens=False (a character of GPT-2's byte alphabet such as 'é' comes "
            f"back as U+FFFD; tokenizers issues #1392, #1915, #1996); the ids are right. Use ASCII or add a "
            f"character outside that alphabet to avoid it",
            UserWarning,
            stacklevel=2,
        )
    return write_model_directory(directory, ((TOKENIZER_FILE, _json_bytes(tokenizer)),
                                             (TOKENIZER_CONFIG_FILE, _json_bytes(config))))


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
