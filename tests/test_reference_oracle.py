"""The oracle itself must be right before anything is compared with it.

It reproduces the CS336 reference merges and vocab exactly, and hand-worked small cases pin each rule of the
contract (overlapping pair counts, left-to-right replacement, the tie-break, special-token splitting).
"""

from __future__ import annotations

import pytest
from hypothesis import given

from strategies import corpora

from reference import (
    GPT2_PATTERN,
    apply_merge,
    build_vocab,
    count_pairs,
    duplicate_concatenations,
    gpt2_bytes_to_unicode,
    gpt2_decode_token,
    incremental_merges_from_counts,
    pretokenize,
    read_gpt2_merges,
    read_gpt2_vocab,
    reference_merges_from_counts,
    reference_pretoken_counts,
    reference_pretoken_counts_text,
    reference_train_text,
    split_on_specials,
)

LITERAL_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def test_reference_reproduces_cs336_merges(cs336_dir, cs336_reference):
    vocab, merges = cs336_reference
    expected = read_gpt2_merges(cs336_dir / "train-bpe-reference-merges.txt")
    assert len(expected) == 243
    assert merges == expected


def test_reference_reproduces_cs336_vocab(cs336_dir, cs336_reference):
    vocab, merges = cs336_reference
    expected = read_gpt2_vocab(cs336_dir / "train-bpe-reference-vocab.json")
    assert set(vocab.values()) == set(expected.keys())
    assert set(vocab.keys()) == set(expected.values()) == set(range(500))
    assert len(vocab) == 500


def test_gpt2_alphabet():
    table = gpt2_bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a"
    assert sum(1 for b, c in table.items() if chr(b) == c) == 188
    assert gpt2_decode_token("Ġthe") == b" the"


def test_literal_pattern_matches_design():
    assert GPT2_PATTERN == LITERAL_PATTERN


def test_package_pattern_is_the_gpt2_pattern():
    bpe_numba = pytest.importorskip("bpe_numba")
    assert bpe_numba.GPT2_PATTERN == LITERAL_PATTERN


@pytest.mark.parametrize(
    "text, expected",
    [
        ("hello  world", [b"hello", b" ", b" world"]),
        ("I'm here, they'll", [b"I", b"'m", b" here", b",", b" they", b"'ll"]),
        ("DON'T", [b"DON", b"'", b"T"]),  # the contractions are lowercase only
        ("a\r\nb", [b"a", b"\r", b"\n", b"b"]),  # \s+(?!\S) backs off to leave \n
        ("a\r\n\r\nb", [b"a", b"\r\n\r", b"\n", b"b"]),
        ("x \n", [b"x", b" \n"]),
        ("abc123 !!?", [b"abc", b"123", b" !!?"]),
        ("\u00e9t\u00e9 \u0661\u0662", ["\u00e9t\u00e9".encode(), " \u0661\u0662".encode()]),
    ],
)
def test_pretokenize_examples(text, expected):
    assert pretokenize(text) == expected


def test_split_on_specials_leftmost_longest():
    specials = ["<|a|>", "<|a|><|b|>", "ab", "abc"]
    assert split_on_specials("x<|a|><|b|>y<|a|>z", specials) == ["x", "y", "z"]
    assert split_on_specials("zabcd", specials) == ["z", "d"]
    assert split_on_specials("zabd", specials) == ["z", "d"]
    assert split_on_specials("nothing", []) == ["nothing"]


def test_overlapping_pairs_count_and_left_to_right_replacement():
    assert count_pairs([((b"a",) * 3, 2)]) == {(b"a", b"a"): 4}
    assert apply_merge((b"a",) * 5, (b"a", b"a")) == (b"aa", b"aa", b"a")
    # "aaa" -> (a,a) count 2 -> aa a -> (aa,a)
    assert reference_train_text("aaa", 300)[1] == [(b"a", b"a"), (b"aa", b"a")]


def test_tie_break_is_greatest_pair_of_bytes():
    # Pre-tokens "ab", " cd": every pair has count 1; (b"c", b"d") is the greatest tuple.
    assert reference_train_text("ab cd", 257)[1] == [(b"c", b"d")]
    # (b"ab", b"c") > (b"a", b"bc") because b"ab" > b"a".
    assert max([(b"a", b"bc"), (b"ab", b"c")]) == (b"ab", b"c")


def test_counts_weighted_by_pretoken_frequency():
    counts = reference_pretoken_counts_text("xy xy xy ab ab")
    assert counts == {b"xy": 1, b" xy": 2, b" ab": 2}
    merges = reference_train_text("xy xy xy ab ab", 257)[1]
    assert merges == [(b"x", b"y")]  # (x,y) count 3 beats (' ',x) 2 and (a,b) 2


def test_specials_are_removed_and_never_merged():
    vocab, merges = reference_train_text("aa<|s|>aa<|s|>aa", 400, ["<|s|>"])
    assert merges == [(b"a", b"a")]
    assert vocab[256] == b"<|s|>" and vocab[257] == b"aa" and len(vocab) == 258


def test_build_vocab_layout():
    vocab = build_vocab([(b"a", b"b"), (b"ab", b"c")], ["<|x|>", "y"])
    assert [vocab[i] for i in range(256)] == [bytes([i]) for i in range(256)]
    assert vocab[256] == b"<|x|>" and vocab[257] == b"y" and vocab[258] == b"ab" and vocab[259] == b"abc"


def test_duplicate_concatenations_helper():
    assert duplicate_concatenations([(b"ab", b"c"), (b"a", b"bc")]) == [b"abc"]
    assert duplicate_concatenations([(b"a", b"b")]) == []


# ---------------------------------------------------------------------------------------------------------
# The second (incremental) oracle must agree with the plain one
# ---------------------------------------------------------------------------------------------------------

def test_incremental_oracle_on_cs336(cs336_dir, cs336_reference):
    counts = reference_pretoken_counts(cs336_dir / "corpus.en", ["<|endoftext|>"])
    assert incremental_merges_from_counts(counts, 243) == cs336_reference[1]


def test_incremental_oracle_to_exhaustion(cs336_dir):
    # Late merges are almost all ties at count 1-2: the tie-break decides nearly every step.
    text = (cs336_dir / "corpus.en").read_bytes().decode()[:6000]
    counts = reference_pretoken_counts_text(text)
    slow = reference_merges_from_counts(counts, 10**6)
    assert len(slow) > 1000
    assert incremental_merges_from_counts(counts, 10**6) == slow


@given(case=corpora())
def test_incremental_oracle_on_generated_text(case):
    text, specials, vocab_size = case
    counts = reference_pretoken_counts_text(text, specials)
    n = vocab_size - 256 - len(specials)
    assert incremental_merges_from_counts(counts, n) == reference_merges_from_counts(counts, n)
    assert incremental_merges_from_counts(counts, 10**6) == reference_merges_from_counts(counts, 10**6)


def test_no_two_merges_give_the_same_bytes_in_a_seeded_search():
    """Can two merges produce one byte string, e.g. (ab, c) and later (a, bc)? Not with single bytes:
    (ab, c) needs the a-b adjacency merged before b-c, (a, bc) the reverse, and merges are global. For
    longer pieces no search found one either (here 3000 corpora; when this was written, 800k random ones and
    every two-word corpus over {a, b} up to length 7 with counts 1-3). If this ever fails, the corpus it
    prints is the duplicate-merge example test_train_exact should train bpe_numba on."""
    import random

    rng = random.Random(0)
    for _ in range(3000):
        counts = {}
        for _ in range(rng.randint(1, 6)):
            word = "".join(rng.choice("ab" if rng.random() < 0.5 else "abc") * rng.randint(1, 3)
                           for _ in range(rng.randint(1, 5)))
            counts[word.encode()] = counts.get(word.encode(), 0) + rng.choice([1, 1, 2, 3, 7])
        merges = reference_merges_from_counts(counts, 1000)
        assert not duplicate_concatenations(merges), (counts, merges)
