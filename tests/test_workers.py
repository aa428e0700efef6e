"""Contract 6: the result does not depend on the number of workers or the chunk size.

Tiny chunk sizes force a cut near every 16 bytes, so every safe-boundary decision is exercised many times:
special tokens containing (or ending in) whitespace must never be cut, multi-byte characters and whitespace
runs must never be split.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpe_numba import count_pretokens, train_bpe
from isolated import run_isolated
from reference import incremental_merges_from_counts, reference_pretoken_counts_text, reference_train_text
from strategies import CONTRACTIONS, DIGITS, EMOJI, LETTERS, PUNCT, WHITESPACE, corpora

SPECIALS = ["<|endoftext|>", "<|end of text|>", "<|a|>", "<|a|><|b|>", "<|sp|> ", "\n\n"]
VOCAB_SIZE = 400
WORKERS = (1, 2, 5)
CHUNK_SIZES = (16, 64, 1000, None)


def generate_text(seed: int, n_items: int, specials) -> str:
    """~40 KB of mixed-script text; specials are glued to non-whitespace so naive cuts would split them."""
    rng = random.Random(seed)
    words = ["".join(rng.choice(LETTERS) for _ in range(rng.randint(1, 7))) for _ in range(150)]
    words += ["hello", "world", "the", "The", "end", "of", "text", "\u00e9t\u00e9", "caf\u00e9"] * 5
    out = []
    for _ in range(n_items):
        r = rng.random()
        if r < 0.55:
            out.append(rng.choice(words))
        elif r < 0.62:
            out.append("".join(rng.choice(DIGITS) for _ in range(rng.randint(1, 4))))
        elif r < 0.68:
            out.append("".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 3))))
        elif r < 0.72:
            out.append(rng.choice(CONTRACTIONS))
        elif r < 0.75:
            out.append(rng.choice(EMOJI))
        elif r < 0.80 and specials:
            out.append(rng.choice(specials))
        elif r < 0.83:
            out.append(rng.choice(["\r\n", "\r", "\n", "\r\n\r\n", "   "]))
        else:
            out.append("".join(rng.choice(WHITESPACE) for _ in range(rng.randint(1, 2))))
        if rng.random() < 0.6:
            out.append(" ")
    return "".join(out)


@pytest.fixture(scope="module", params=["with-specials", "no-specials"])
def corpus(request, tmp_path_factory):
    specials = SPECIALS if request.param == "with-specials" else []
    text = generate_text(seed=1234, n_items=9000, specials=SPECIALS if specials else [])
    path = tmp_path_factory.mktemp("workers") / f"{request.param}.txt"
    path.write_bytes(text.encode("utf-8"))
    assert path.stat().st_size > 30_000  # enough for ~2000 chunks at chunk_size=16
    ref_vocab, ref_merges = reference_train_text(text, VOCAB_SIZE, specials)
    assert len(ref_merges) == VOCAB_SIZE - 256 - len(specials)
    return path, text, specials, ref_vocab, ref_merges


def test_every_worker_count_and_chunk_size_gives_the_reference(corpus):
    path, text, specials, ref_vocab, ref_merges = corpus
    failures = []
    for workers, chunk_size in itertools.product(WORKERS, CHUNK_SIZES):
        vocab, merges = train_bpe(
            path, VOCAB_SIZE, specials, num_workers=workers, chunk_size=chunk_size, progress=False
        )
        if merges != ref_merges or vocab != ref_vocab:
            first = next((i for i, (a, b) in enumerate(zip(merges, ref_merges)) if a != b), None)
            failures.append((workers, chunk_size, first))
    assert not failures, f"(num_workers, chunk_size, first differing merge index): {failures}"


@pytest.mark.parametrize("workers, chunk_size", [(2, 16), (5, 64), (1, 16), (2, None)])
def test_pretoken_counts_independent_of_chunking(corpus, workers, chunk_size):
    path, text, specials, _, _ = corpus
    expected = reference_pretoken_counts_text(text, specials)
    got = count_pretokens(path, specials, num_workers=workers, chunk_size=chunk_size)
    assert got == expected


def test_specials_not_special_when_not_given(tmp_path):
    """The same file trained without specials treats their text as ordinary text, at any chunking."""
    text = generate_text(seed=99, n_items=3000, specials=SPECIALS)
    path = tmp_path / "c.txt"
    path.write_bytes(text.encode("utf-8"))
    ref = reference_pretoken_counts_text(text, [])
    assert count_pretokens(path, [], num_workers=2, chunk_size=16) == ref
    assert any(b"<|" in tok for tok in ref)


def test_result_independent_of_hash_seed(tmp_path, package_env):
    """Contract 6: no tie-break may lean on set or dict order. Trained to exhaustion (thousands of ties)
    in two interpreters with different PYTHONHASHSEED, both equal the incremental oracle."""
    text = generate_text(seed=5, n_items=3000, specials=SPECIALS)
    path = tmp_path / "ties.txt"
    path.write_bytes(text.encode("utf-8"))
    expected = incremental_merges_from_counts(reference_pretoken_counts_text(text, SPECIALS), 10**6)
    assert len(expected) > 1000
    call = {"fn": "train_bpe", "args": [str(path), 10**6, SPECIALS], "kwargs": {"num_workers": 1, "progress": False}}
    for seed in ("0", "12345"):
        (outcome,) = run_isolated([call], dict(package_env, PYTHONHASHSEED=seed), timeout=120)
        assert outcome["ok"], outcome
        merges = [(a.encode("latin-1"), b.encode("latin-1")) for a, b in outcome["merges"]]
        assert merges == expected, f"PYTHONHASHSEED={seed}"


@settings(max_examples=max(3, settings.default.max_examples // 10))
@given(case=corpora(max_words=200), workers=st.sampled_from([2, 3]), chunk_size=st.sampled_from([16, 32]))
def test_parallel_matches_reference_on_generated_text(tmp_path, case, workers, chunk_size):
    """A few generated corpora through a real worker pool (each pool start costs about a second)."""
    text, specials, vocab_size = case
    path = tmp_path / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    ref_vocab, ref_merges = reference_train_text(text, vocab_size, specials)
    vocab, merges = train_bpe(path, vocab_size, specials, num_workers=workers, chunk_size=chunk_size,
                              progress=False)
    assert merges == ref_merges and vocab == ref_vocab
