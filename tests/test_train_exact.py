"""bpe_numba must equal the reference oracle exactly: merges, vocab ids, and pre-token counts."""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bpe_numba import count_pretokens, train_bpe
from reference import (
    build_vocab,
    incremental_merges_from_counts,
    reference_pretoken_counts,
    reference_pretoken_counts_text,
    reference_train_text,
)
from strategies import LETTERS, corpora


def assert_well_typed(vocab, merges):
    """Plain Python types: users serialize these (json, pickle) and compare them with ==."""
    assert type(vocab) is dict and type(merges) is list
    assert all(type(k) is int and type(v) is bytes for k, v in vocab.items())
    assert all(type(m) is tuple and len(m) == 2 and type(m[0]) is bytes and type(m[1]) is bytes for m in merges)


def assert_same_as_reference(path, text, vocab_size, specials, **options):
    ref_vocab, ref_merges = reference_train_text(text, vocab_size, specials)
    vocab, merges = train_bpe(path, vocab_size, specials, progress=False, **options)
    assert_well_typed(vocab, merges)
    assert merges == ref_merges
    assert vocab == ref_vocab
    return vocab, merges


# ---------------------------------------------------------------------------------------------------------
# The CS336 fixture
# ---------------------------------------------------------------------------------------------------------

def test_cs336_fixture_exact(cs336_dir, cs336_reference):
    ref_vocab, ref_merges = cs336_reference
    vocab, merges = train_bpe(cs336_dir / "corpus.en", 500, ["<|endoftext|>"], progress=False)
    assert_well_typed(vocab, merges)
    assert len(merges) == 243
    assert merges == ref_merges
    assert set(vocab.values()) == set(ref_vocab.values())
    # Ids: bytes first, then the special token, then merges in creation order.
    assert vocab == ref_vocab
    assert vocab[256] == b"<|endoftext|>"
    assert all(vocab[i] == bytes([i]) for i in range(256))
    assert [vocab[257 + i] for i in range(len(merges))] == [a + b for a, b in merges]


def test_cs336_to_exhaustion(cs336_dir):
    """All 8198 merges corpus.en can give: the late ones are thousands of ties at counts 1-2."""
    path = cs336_dir / "corpus.en"
    expected = incremental_merges_from_counts(reference_pretoken_counts(path, ["<|endoftext|>"]), 10**6)
    assert len(expected) > 8000
    vocab, merges = train_bpe(path, 10**6, ["<|endoftext|>"], progress=False)
    assert merges == expected
    assert vocab == build_vocab(expected, ["<|endoftext|>"])


def test_cs336_pretoken_counts(cs336_dir):
    path = cs336_dir / "corpus.en"
    text = path.read_bytes().decode("utf-8")
    assert count_pretokens(path, ["<|endoftext|>"], num_workers=1) == reference_pretoken_counts_text(
        text, ["<|endoftext|>"]
    )


# ---------------------------------------------------------------------------------------------------------
# Generated text
# ---------------------------------------------------------------------------------------------------------

@given(case=corpora(), chunk_size=st.sampled_from([None, 16, 64]), as_str=st.booleans())
@example(case=("", [], 300), chunk_size=None, as_str=False)
@example(case=("<|a|><|b|><|a|>ab<|b|>abcab c", ["<|a|>", "abc", "<|a|><|b|>", "ab"], 300), chunk_size=16,
         as_str=True)
@example(case=("x<|end of text|>y <|end of text|> z<|end of", ["<|end of text|>"], 280), chunk_size=16,
         as_str=False)
@example(case=("a" * 14 + "<|end of text|>b " * 3, ["<|end of text|>"], 280), chunk_size=16, as_str=False)
@example(case=("a" * 14 + "<|sp|> x" + " y<|sp|> " * 5, ["<|sp|> "], 280), chunk_size=16, as_str=False)
@example(case=("\ufeffbom\ufeff \ufeff\x00nul\x00 \ufeff", [], 300), chunk_size=None, as_str=False)  # no BOM stripping
@example(case=("it's IT'S it\u2019s they'll THEY'LL we've 're 'll'", [], 320), chunk_size=None, as_str=False)
@example(case=("a\r\nb\r\n\r\nc\rd \r\n e\r\r\n", [], 300), chunk_size=16, as_str=False)
@example(case=("\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f44d\U0001f3fd\U0001f44d\U0001f3fd x", [], 330),
         chunk_size=None, as_str=False)
def test_matches_reference_on_generated_text(tmp_path, case, chunk_size, as_str):
    text, specials, vocab_size = case
    path = tmp_path / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    arg = str(path) if as_str else path
    assert_same_as_reference(arg, text, vocab_size, specials, num_workers=1, chunk_size=chunk_size)
    counts = count_pretokens(arg, specials, num_workers=1, chunk_size=chunk_size)
    assert counts == reference_pretoken_counts_text(text, specials)
    assert all(type(k) is bytes and type(v) is int for k, v in counts.items())


# ---------------------------------------------------------------------------------------------------------
# Adversarial corpora
# ---------------------------------------------------------------------------------------------------------

ALL_TIES = (
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 !\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~"
)


@pytest.mark.parametrize(
    "name, text, vocab_size",
    [
        pytest.param("all-ties", ALL_TIES, 100_000, id="all-ties"),
        pytest.param("all-ties-partial", ALL_TIES, 256 + 17, id="all-ties-partial"),
        pytest.param("run-a-1001", "a" * 1001, 10_000, id="run-a-1001"),
        pytest.param("run-ab-500", "ab" * 500, 10_000, id="run-ab-500"),
        pytest.param("run-ab-500-partial", "ab" * 500, 256 + 5, id="run-ab-500-partial"),
        pytest.param("run-space-1001", " " * 1001 + "x", 10_000, id="run-space-1001"),
        pytest.param("run-newline-1001", "\n" * 1001, 10_000, id="run-newline-1001"),
        pytest.param("run-e-acute-500", "\u00e9" * 500, 10_000, id="run-e-acute-500"),
        pytest.param("runs-of-every-length", " ".join("a" * n for n in range(1, 40)), 10_000, id="runs-of-every-length"),
        pytest.param("tie-between-words", "ab ab ba ba cd cd", 10_000, id="tie-between-words"),
    ],
)
def test_adversarial_corpora(tmp_path, name, text, vocab_size):
    path = tmp_path / f"{name}.txt"
    path.write_bytes(text.encode("utf-8"))
    assert_same_as_reference(path, text, vocab_size, [], num_workers=1)


def test_all_ties_order_is_greatest_pair_first(tmp_path):
    path = tmp_path / "ties.txt"
    path.write_bytes(ALL_TIES.encode())
    _, merges = train_bpe(path, 256 + 3, progress=False, num_workers=1)
    # Every pair occurs once, and stays at count 1; the greatest pair of bytes wins each time.
    assert merges == [(b"}", b"~"), (b"|", b"}~"), (b"{", b"|}~")]


def test_long_run_merges_are_doublings(tmp_path):
    path = tmp_path / "run.txt"
    path.write_bytes(b"a" * 1024)
    _, merges = train_bpe(path, 256 + 10, progress=False, num_workers=1)
    assert merges == [(b"a" * 2**k, b"a" * 2**k) for k in range(10)]


def test_vocab_exactly_minimum_gives_no_merges(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"hello hello hello")
    vocab, merges = train_bpe(path, 256 + 2, ["<|x|>", "<|y|>"], progress=False, num_workers=1)
    assert merges == []
    assert vocab == build_vocab([], ["<|x|>", "<|y|>"])


def test_special_tokens_order_sets_ids(tmp_path):
    path = tmp_path / "c.txt"
    text = "hi<|b|>hi<|a|>hi hi"
    path.write_bytes(text.encode())
    for specials in (["<|a|>", "<|b|>"], ["<|b|>", "<|a|>"]):
        vocab, _ = assert_same_as_reference(path, text, 270, specials, num_workers=1)
        assert [vocab[256], vocab[257]] == [s.encode() for s in specials]


def test_special_token_text_never_merged_across(tmp_path):
    # Without the special, "x<|s|>x" would give pairs across the token; with it, only "xx" pairs inside words.
    text = "xx<|s|>xx<|s|>xx<|s|>"
    path = tmp_path / "c.txt"
    path.write_bytes(text.encode())
    vocab, merges = assert_same_as_reference(path, text, 10_000, ["<|s|>"], num_workers=1)
    assert merges == [(b"x", b"x")]
    assert all(b"<" not in a + b and b"|" not in a + b for a, b in merges)


def test_thousands_of_merges_over_many_unique_words(tmp_path):
    """6000 merges over ~9000 distinct mixed-script words: tens of thousands of live pairs (enough, when
    written, to make the merge loop grow its pair hash table), checked against the incremental oracle."""
    rng = random.Random(6)
    alphabet = "abcdefghijklmnopqrstuvwxyz" + LETTERS
    text = " ".join("".join(rng.choice(alphabet) for _ in range(rng.randint(3, 12))) for _ in range(8000))
    path = tmp_path / "unique.txt"
    path.write_bytes(text.encode())
    expected = incremental_merges_from_counts(reference_pretoken_counts_text(text), 6000)
    assert len(expected) == 6000
    vocab, merges = train_bpe(path, 256 + 6000, progress=False, num_workers=1)
    assert merges == expected
    assert vocab == build_vocab(expected)


@given(st.lists(st.tuples(st.sampled_from(["\x00", "\x01", "a", "b", "\x7f"]), st.integers(1, 12)), min_size=1,
                max_size=12), st.integers(1, 4))
def test_ties_between_long_symbols_with_equal_prefixes(tmp_path_factory, runs, copies):
    """Symbols longer than 7 bytes that share their first 7 (NUL bytes included), tied at equal counts: the
    kernels order such ties by a 7-byte key and fall back to the bytes only there, so each branch of that
    comparison decides some merge here, as the reference's plain bytes comparison does."""
    word = "".join(ch * n for ch, n in runs)
    words = [word, word[:-1], word + "\x00", "\x00" * 7 + word, "\x00" * 8 + word]
    words += [word[:k] + c for k in (5, 6, 7, 8) for c in ("\x00", "a", "b")]  # differ at the 6th..9th byte
    text = " ".join(w for w in words for _ in range(copies))
    path = tmp_path_factory.mktemp("ties") / "t.txt"
    path.write_bytes(text.encode("utf-8"))
    assert_same_as_reference(path, text, 256 + 400, [], backend="kernels")


def test_symbol_order_keys_and_comparison_match_bytes():
    """The merge kernels order tied pairs by each symbol's 7-byte key (composed from its parts' keys at each
    merge) and compare bytes only when two long symbols share those 7 bytes: every created symbol's key
    equals the one computed from its bytes, and the comparison of every two symbols equals Python's."""
    import itertools

    import numpy as np

    from bpe_numba import merge_kernels as K
    from bpe_numba.merge_loop import MergeLoop

    bases = [b"\x00" * 9, b"aaaaaaab", b"aaaaaaa", b"aaaaaa\x00b", b"aaaaab", b"ab\x00\x00\x00\x00\x00\x00c"]
    words = [w[:k] for w in bases for k in range(2, len(w) + 1)]
    blob = b"".join(words)
    offsets = np.concatenate([[0], np.cumsum([len(w) for w in words])]).astype(np.int64)
    counts = np.arange(len(words), 0, -1, dtype=np.int64)
    loop = MergeLoop(np.frombuffer(blob, dtype=np.uint8).copy(), offsets, counts, 400)
    loop.run(400)
    S = loop.S
    n_syms = int(S.sc[K.N_SYMS])
    assert n_syms > 256 + 20
    raw = S.raw
    symbols = [bytes(raw[S.sym_src[s] : S.sym_src[s] + S.sym_len[s]]) for s in range(n_syms)]
    for s, b in enumerate(symbols):
        want = int.from_bytes(b[:7].ljust(7, b"\0"), "big") << 8 | min(len(b), 255)
        assert int(S.sym_key[s]) == want, (s, b)
    for s, t in itertools.product(range(240, n_syms), repeat=2):
        want = (symbols[s] > symbols[t]) - (symbols[s] < symbols[t])
        assert K._sym_cmp(s, t, raw, S.sym_src, S.sym_len, S.sym_key) == want, (symbols[s], symbols[t])
