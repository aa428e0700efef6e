"""Hugging Face ``tokenizers`` export: a ``tokenizer.json`` that ``tokenizers.Tokenizer.from_file`` loads
and that encodes to the same ids as :class:`bpe_numba.Tokenizer`.

A byte-level BPE whose pre-tokenizer is ``Split`` on the exact pattern (matches kept, anything between them
dropped, as ``regex.finditer`` does) followed by ``ByteLevel(use_regex=False)``, and the special tokens as
``added_tokens`` with ``special: true``. tokenizers also runs special tokens through the ByteLevel decoder,
so ``decode(..., skip_special_tokens=False)`` garbles a special token containing a non-ASCII character of
GPT-2's alphabet (the "é" of ``<|café|>``); encoding is unaffected.

tokenizers runs the pattern on its own regex engine, whose Unicode tables are older than ``regex``'s: with
the versions tested (regex 2026.5, tokenizers 0.23), characters added in Unicode 17.0 (U+323B0, CJK
Extension J, for one) are letters to ``regex`` but not to it, so text containing such characters
pre-tokenizes, and encodes, differently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..errors import BPEValueError
from ..validation import GPT2_PATTERN, check_model, check_pattern, check_special_tokens
from .gpt2 import bytes_to_gpt2_str, lowest_ids, special_token_ids, write_model_file


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
    data = json.dumps(hf_tokenizer_dict(vocab, merges, special_tokens, pattern), ensure_ascii=False, indent=1)
    return write_model_file(path, (data + "\n").encode("utf-8"))
