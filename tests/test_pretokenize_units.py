"""The unit-counting path of pre-tokenization (Numba hash table of the text between safe cuts, then the
regex once per distinct unit) against the plain regex over the whole text, on inputs large enough to
grow the kernel's table several times and with units that straddle every kind of boundary."""

from __future__ import annotations

import random

import pytest

from bpe_numba import count_pretokens
from bpe_numba.pretokenize import find_safe_cut
from reference import reference_pretoken_counts_text

SPECIALS = ["<|endoftext|>", "<|end of text|>"]


def _many_distinct_units(seed: int) -> str:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz\u00e9\u00df\u0436"
    seps = [" ", "  ", "\n", " \n", "\t", "\u00a0", "\r\n", ", ", ". ", "'s ", " 42 "]
    parts = []
    for i in range(60_000):  # ~50 000 distinct units: the table starts with room for 8 192
        parts.append("".join(rng.choice(letters) for _ in range(rng.randint(1, 9))))
        parts.append(rng.choice(seps))
        if i % 997 == 0:
            parts.append(rng.choice(SPECIALS))
    return "".join(parts)


@pytest.mark.parametrize("workers, chunk_size", [(1, None), (2, 4096)])
def test_unit_counting_equals_regex_over_whole_text(tmp_path, workers, chunk_size):
    text = _many_distinct_units(1)
    path = tmp_path / "units.txt"
    path.write_bytes(text.encode("utf-8"))
    got = count_pretokens(path, SPECIALS, num_workers=workers, chunk_size=chunk_size)
    assert got == reference_pretoken_counts_text(text, SPECIALS)


@pytest.mark.parametrize(
    "data, lo, hi, specials, expected",
    [
        (b"ab cd", 0, 5, [], 2),  # 'b' then ' '
        (b"a\n\nb", 0, 4, [], 1),  # only the first whitespace after a printable byte
        (b"\xc3\xa9 x", 0, 4, [], -1),  # the byte before is not ASCII: not provably safe
        (b"<end of> x", 0, 10, [b"<end of>"], 8),  # never inside a special token
        (b"x y", 2, 3, [], -1),  # the window [lo, hi) excludes the only cut
    ],
)
def test_find_safe_cut(data, lo, hi, specials, expected):
    assert find_safe_cut(data, lo, hi, specials) == expected
