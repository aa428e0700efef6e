"""The demo corpus (bpe_numba.synthetic): deterministic, pinned word lists, real words as its longest tokens."""

from __future__ import annotations

import hashlib
import re

import pytest

from bpe_numba import BPEInputError, count_pretokens, train_bpe
from bpe_numba import synthetic
from bpe_numba.synthetic import DOC_SEPARATOR, generate_text, iter_documents, write_corpus


def test_deterministic_and_prefix_closed():
    a = generate_text(300_000, seed=3)
    assert a == generate_text(300_000, seed=3)
    assert generate_text(100_000, seed=3) == a[: len(generate_text(100_000, seed=3))]
    assert a != generate_text(300_000, seed=4)
    assert a.endswith(DOC_SEPARATOR) and a.count("<|endoftext|>") == a.count(DOC_SEPARATOR)
    assert next(iter_documents(3)) == a.split(DOC_SEPARATOR)[0]


def test_output_is_pinned():
    """Benchmarks and the README's figures use this corpus: a change to it must be deliberate (update the
    hash here, and re-measure)."""
    text = generate_text(200_000, seed=0).encode("utf-8")
    assert (len(text), hashlib.sha256(text).hexdigest()) == (
        200_070, "ea3c86282801d034f94e69ff67f6db556177b68f8a5474045170c60d41536229")


def test_statistics_stay_tinystories_like(tmp_path):
    path = tmp_path / "demo.txt"
    write_corpus(path, 1_000_000)
    counts = count_pretokens(path, ["<|endoftext|>"])
    assert 3_300 <= len(counts) <= 4_200  # 3,733 before the compounds were removed
    assert counts[b" the"] > 10_000 and counts[b" was"] > 5_000


def real_words() -> set[str]:
    """Every word of the lexicon and of the templates, with the inflections the generator makes."""
    data = synthetic._data()
    skip = {"about", "onsets", "nuclei", "codas", "adjective_suffixes", "noun_suffixes"}
    words: set[str] = set()
    for key, value in data.items():
        if key in skip:
            continue
        for item in value:
            text = item[0] if isinstance(item, list) else item
            words.update(w.lower() for w in re.findall(r"[A-Za-z]+", re.sub(r"\{\w+\}", " ", text)))
    for key, rules in [("nouns", [synthetic._plural]), ("animals", [synthetic._plural]),
                       ("people", [synthetic._plural]), ("adjectives", [synthetic._adverb]),
                       ("verbs_transitive", [synthetic._past, synthetic._ing]),
                       ("verbs_intransitive", [synthetic._past, synthetic._ing])]:
        for rule in rules:
            base, other = synthetic._split_pairs(data[key], rule)
            words.update(other)
            words.update(synthetic._ing(b) for b in base if rule is synthetic._past)
    return words


def test_longest_tokens_of_the_default_demo_are_real_words(tmp_path):
    """`python -m bpe_numba train`: 10 MB, vocab 10,000. Its longest tokens used to be glued compounds
    (' headbandpumpkin', ' contestcarousel') and made-up words."""
    path = tmp_path / "demo.txt"
    write_corpus(path, 10_000_000)
    vocab, _ = train_bpe(path, 10_000, ["<|endoftext|>"], progress=False)
    longest = sorted((t for i, t in vocab.items() if i != 256), key=len, reverse=True)[:10]
    known = real_words()
    made_up = [t for t in longest if t.decode().strip().lower() not in known]
    assert not made_up, f"longest tokens {longest}: not words of the lexicon: {made_up}"


def test_damaged_word_lists_are_a_clear_error(monkeypatch):
    raw = synthetic.resources.files("bpe_numba").joinpath("data/words.json").read_bytes()
    with pytest.raises(RuntimeError, match=r"data/words.json is damaged or was edited: its SHA-256 is [0-9a-f]{64}"):
        synthetic._checked_data(raw.replace(b'"cat"', b'"cot"'), "data/words.json")
    assert synthetic._checked_data(raw, "data/words.json")["nouns"][0] == "ball"
    for cached in (synthetic._data, synthetic._lexicon, synthetic._grammar, synthetic._doubling):
        cached.cache_clear()
    monkeypatch.setattr(synthetic, "_DATA_SHA256", "0" * 64)
    try:
        with pytest.raises(RuntimeError, match="reinstall bpe_numba"):
            generate_text(1000)
    finally:
        synthetic._data.cache_clear()


def test_bad_arguments(tmp_path):
    for call in (lambda: generate_text(-1), lambda: generate_text(10, seed="x"), lambda: generate_text(1.5),
                 lambda: write_corpus(tmp_path / "x.txt", -5)):
        with pytest.raises(BPEInputError):
            call()
    assert list(tmp_path.iterdir()) == []
