"""tiktoken export: rank files and ``tiktoken.Encoding`` objects.

``export_tiktoken(path, vocab, special_tokens)`` writes tiktoken's rank file (``base64(bytes) rank`` per
line, special tokens left out) and returns the ``special_tokens`` dict for ``tiktoken.Encoding``::

    specials = export_tiktoken("model.tiktoken", vocab, ["<|endoftext|>"], merges=merges)
    enc = tiktoken.Encoding(name="my-bpe", pat_str=GPT2_PATTERN,
                            mergeable_ranks=read_tiktoken_ranks("model.tiktoken"),
                            special_tokens=specials)
    enc.encode(text, allowed_special="all")

``tiktoken.load.load_tiktoken_bpe(path)`` reads the same file, but it caches the contents by *path* (under
``TIKTOKEN_CACHE_DIR`` or the temp folder) and serves that cache later even after the file has changed;
pass ``expected_hash=`` or use ``read_tiktoken_ranks``. ``tiktoken_encoding(vocab, special_tokens)`` builds
the ``Encoding`` directly.

tiktoken merges by the rank of the *concatenated* bytes (and takes a whole pre-token that is itself a token
at once), not by the rank of the pair: a token that no merge makes would come out of tiktoken (pass
``merges=`` so the rank file leaves such tokens out), and on a vocabulary where a byte string is reachable
through two different splits the two could differ (none was found on trained models; see
``tests/test_formats.py``). tiktoken also matches special tokens leftmost-first in an order of its own, so
when one special token is a prefix of another the shorter one may win where this package takes the
longest; and its regex engine knows an older Unicode than ``regex`` (see :mod:`bpe_numba.formats.hf`).
"""

from __future__ import annotations

import base64
from typing import Sequence

from ..errors import BPEValueError
from ..validation import GPT2_PATTERN, check_input_file, check_model, check_pattern, check_special_tokens, check_vocab
from .gpt2 import lowest_ids, special_token_ids, write_model_file


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
    specials = check_special_tokens(special_tokens)
    check_vocab(vocab)
    lowest = lowest_ids(vocab)
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
            raise BPEValueError(
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
    write_model_file(path, b"\n".join(lines) + b"\n")
    return special_token_ids(vocab, check_special_tokens(special_tokens))


def read_tiktoken_ranks(path) -> dict[bytes, int]:
    """Read a tiktoken rank file (no caching, unlike ``tiktoken.load.load_tiktoken_bpe``)."""
    path = check_input_file(path, "tiktoken rank")
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
                raise BPEValueError(
                    f"{path}:{n}: {line[:80]!r} is not 'base64 rank' ({exc}); the file may be cut off"
                ) from None
            if tok in ranks:
                raise BPEValueError(f"{path}:{n}: token {tok!r} repeats; each token must appear once")
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

    specials = check_special_tokens(special_tokens)
    check_pattern(pattern)
    return tiktoken.Encoding(
        name=name,
        pat_str=pattern,
        mergeable_ranks=tiktoken_ranks(vocab, specials, merges=merges),
        special_tokens=special_token_ids(vocab, specials),
    )
