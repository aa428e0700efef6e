"""The Python tier (``backend="python"``): exactly the contract, identical to the kernels.

Besides its own tests, this module re-runs the behavioural tests of ``test_train_exact.py`` and
``test_tokenizer.py`` (imported below, so pytest collects them here too) with ``backend="auto"`` meaning
the Python tier, through the autouse fixture ``_python_tier``; the Tokenizer fixtures they use are
redefined here on the Python tier.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import bpe_numba.tiers as tiers
from bpe_numba import InvalidUTF8Error, Tokenizer, train_bpe
from bpe_numba import python_bpe
from reference import (
    read_gpt2_merges,
    read_gpt2_vocab,
    reference_encode,
    reference_merges_from_counts,
    reference_pretoken_counts_text,
    reference_train_text,
)
from strategies import SPECIAL_CANDIDATES, WHITESPACE, corpora, fragments
from test_tokenizer import (  # noqa: F401 - collected and run here on the Python tier
    _MEMORY_SCRIPT,
    gpt2_model,
    test_bad_models_are_refused,
    test_custom_pattern,
    test_decode_replaces_invalid_utf8,
    test_decode_unknown_ids_are_named,
    test_encode_equals_reference,
    test_encode_iterable_equals_encode_at_any_split,
    test_encode_iterable_splits_specials_and_words,
    test_encode_rejects_non_str,
    test_gpt2_equals_tiktoken,
    test_gpt2_files_equal_tiktoken,
    test_gpt2_long_runs,
    test_one_byte_special_keeps_its_own_id,
    test_round_trips_in_every_format,
    test_specials_missing_from_vocab_are_appended,
    tiktoken_gpt2,
)
from test_train_exact import (  # noqa: F401 - collected and run here on the Python tier
    test_adversarial_corpora,
    test_all_ties_order_is_greatest_pair_first,
    test_cs336_fixture_exact,
    test_cs336_to_exhaustion,
    test_long_run_merges_are_doublings,
    test_matches_reference_on_generated_text,
    test_special_token_text_never_merged_across,
    test_special_tokens_order_sets_ids,
    test_thousands_of_merges_over_many_unique_words,
    test_vocab_exactly_minimum_gives_no_merges,
)

_choose = tiers.choose_backend


@pytest.fixture(autouse=True)
def _python_tier(monkeypatch):
    """``backend="auto"`` means the Python tier in this module (explicit backends keep their meaning)."""
    monkeypatch.setattr(tiers, "choose_backend",
                        lambda backend, size=None, isolate=None: "python" if backend == "auto" else _choose(backend, size, isolate))


@pytest.fixture(scope="module")
def gpt2(gpt2_model):
    return Tokenizer(*gpt2_model, ["<|endoftext|>"], backend="python")


@pytest.fixture(scope="module")
def gpt2_plain(gpt2_model):
    return Tokenizer(*gpt2_model, backend="python")


@pytest.fixture(scope="module")
def small():
    vocab, merges = reference_train_text("low lower lowest newer wider", 270, ["<|eot|>"])
    return Tokenizer(vocab, merges, ["<|eot|>"], backend="python"), vocab, merges


def test_fixtures_are_on_the_python_tier(gpt2, small):
    assert gpt2.backend == "python" and small[0].backend == "python"
    assert Tokenizer({i: bytes([i]) for i in range(256)}, []).backend == "python"  # through _python_tier


# ---------------------------------------------------------------------------------------------------------
# Pre-tokenization by units
# ---------------------------------------------------------------------------------------------------------

UNSAFE_SPACES = st.lists(
    st.one_of(fragments, st.sampled_from(["  ", " \n ", "\t ", "\u3000 ", "\xa0 ", "\x1c ", " ", "a ", "\u00e9 "]),
              st.text(alphabet=WHITESPACE + "ab ", max_size=6)),
    max_size=40,
).map("".join)


@given(UNSAFE_SPACES, st.lists(st.sampled_from(SPECIAL_CANDIDATES), unique=True, max_size=3),
       st.sampled_from([1, 3, 16, 1 << 16]))
@example("a  b\n c \u3000 d\x1c e", [], 1)
@example(" lead  and trail ", ["x"], 2)
def test_unit_counts_equal_reference(monkeypatch, text, specials, block):
    """Units (split at spaces after non-whitespace) give the reference counts, whatever the block size."""
    monkeypatch.setattr(python_bpe, "_BLOCK", block)
    assert python_bpe.count_pretokens_text(text, specials) == reference_pretoken_counts_text(text, specials)


# ---------------------------------------------------------------------------------------------------------
# The merge loop
# ---------------------------------------------------------------------------------------------------------

@given(corpora(max_words=60))
def test_merges_equal_reference(corpus):
    text, specials, vocab_size = corpus
    counts = reference_pretoken_counts_text(text, specials)
    n = vocab_size - 256 - len(specials)
    assert python_bpe.merges_from_counts(counts, n) == reference_merges_from_counts(counts, n)


@given(st.lists(st.tuples(st.text(alphabet="ab", min_size=1, max_size=9), st.integers(1, 4)), min_size=1, max_size=12))
def test_two_letter_words(words):
    """Two letters give many overlapping runs and ties."""
    counts: dict[bytes, int] = {}
    for w, c in words:
        counts[w.encode()] = counts.get(w.encode(), 0) + c
    assert python_bpe.merges_from_counts(counts, 200) == reference_merges_from_counts(counts, 200)


# ---------------------------------------------------------------------------------------------------------
# Both backends, the same results
# ---------------------------------------------------------------------------------------------------------

@given(corpora(), st.data())
def test_backends_train_the_same(tmp_path_factory, corpus, data):
    text, specials, vocab_size = corpus
    path = tmp_path_factory.mktemp("c") / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    results = []
    for backend in ("python", "kernels"):
        timings: dict = {}
        results.append(train_bpe(path, vocab_size, specials, backend=backend, timings=timings, progress=False,
                                 num_workers=1))
        assert timings["backend"] == backend
    assert results[0] == results[1]
    vocab, merges = results[0]
    tok_py = Tokenizer(vocab, merges, specials, backend="python")
    tok_k = Tokenizer(vocab, merges, specials, backend="kernels")
    sample = data.draw(st.lists(fragments, max_size=20).map("".join)) + text
    ids = tok_py.encode(sample)
    assert ids == tok_k.encode(sample) == tok_py.encode_to_array(sample).tolist()
    assert list(tok_py.encode_iterable(iter([sample[:7], sample[7:]]))) == ids
    assert tok_py.decode(ids) == tok_k.decode(ids) == sample


def test_backends_agree_on_invalid_utf8(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"hello w\xc3\xa9rld \xff\xfe tail")
    offsets = []
    for backend in ("python", "kernels"):
        with pytest.raises(InvalidUTF8Error) as info:
            train_bpe(path, 300, backend=backend, num_workers=1)
        offsets.append((info.value.path, info.value.offset))
    assert offsets[0] == offsets[1] == (str(path), 13)
    assert train_bpe(path, 300, errors="replace", backend="python") == train_bpe(path, 300, errors="replace",
                                                                                 backend="kernels", num_workers=1)


def test_backend_is_validated(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"backend='numba'; use 'auto', 'kernels' \(Numba\) or 'python'"):
        train_bpe(path, 300, backend="numba")
    with pytest.raises(ValueError, match="backend=None"):
        Tokenizer({i: bytes([i]) for i in range(256)}, [], backend=None)


def test_long_pretoken_heap_equals_rescan():
    """Pre-tokens over 32 bytes take the heap; it must pick the same merges as the plain rescan."""
    text = "abababab aaaaaaaaaaaa abcabcabc " * 20
    vocab, merges = reference_train_text(text, 300)
    tok = Tokenizer(vocab, merges, backend="python")
    for sample in ("ab" * 40, "a" * 77, "abc" * 30 + "a", "ba" * 33, "ab" * 40 + "c" * 60):
        assert tok.encode(sample) == reference_encode(sample, vocab, merges)
    # Merges out of creation order: (ab, a) ranks before (a, b), which makes its left part. Merging every
    # (a, b) in one pass would be wrong here; one at a time, (ab, a) follows each new ab at once.
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"aba", 257: b"ab"}
    merges = [(b"ab", b"a"), (b"a", b"b")]
    tok = Tokenizer(vocab, merges, backend="python")
    for sample in ("ab" * 40, "ab" * 3, "b" + "ab" * 50):
        assert tok.encode(sample) == reference_encode(sample, vocab, merges)


# ---------------------------------------------------------------------------------------------------------
# Fresh processes: no numpy for small training; encode_iterable under the CS336 memory limit
# ---------------------------------------------------------------------------------------------------------

def test_python_tier_imports_neither_numpy_nor_numba(tmp_path, package_env):
    path = tmp_path / "c.txt"
    path.write_text("the cat sat on the mat<|endoftext|>" * 50)
    code = (
        "import sys; from bpe_numba import train_bpe; t = {}; "
        f"train_bpe({str(path)!r}, 300, ['<|endoftext|>'], timings=t, backend='python'); "
        "print(t['backend'], 'numpy' in sys.modules, 'numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=package_env, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["python", "False", "False"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is only dependable on Linux")
def test_python_encode_iterable_under_memory_limit(cs336_dir, tmp_path, package_env):
    pytest.importorskip("psutil")
    from bpe_numba.synthetic import write_corpus

    script = _MEMORY_SCRIPT.replace('["<|endoftext|>"])', '["<|endoftext|>"], backend="python")')
    assert script != _MEMORY_SCRIPT
    path = tmp_path / "5mb.txt"
    write_corpus(path, 5_000_000)
    out = subprocess.run([sys.executable, "-c", script, str(cs336_dir), str(path), os.path.dirname(__file__)],
                         capture_output=True, text=True, env=package_env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = __import__("json").loads(out.stdout.splitlines()[-1])
    assert result["enforced"], "the limit did not hold back a 200 MB allocation: the test proves nothing"
    assert result["n"] == result["expected"] > 1_000_000 and result["mismatches"] == 0, result


def test_gpt2_construction_is_fast_without_numba(cs336_dir, package_env):
    """The GPT-2 model's 50K merges build a Python-tier Tokenizer without Numba (a gross-regression guard)."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[2]); from reference import read_gpt2_merges, read_gpt2_vocab; "
        "from bpe_numba import Tokenizer; d = sys.argv[1]; "
        "vocab = {i: b for b, i in read_gpt2_vocab(d + '/gpt2_vocab.json').items()}; "
        "merges = read_gpt2_merges(d + '/gpt2_merges.txt'); t = time.perf_counter(); "
        "tok = Tokenizer(vocab, merges, ['<|endoftext|>'], backend='python'); took = time.perf_counter() - t; "
        "print(took, tok.encode('Hello, world!<|endoftext|>') == [15496, 11, 995, 0, 50256], 'numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(cs336_dir), os.path.dirname(__file__)],
                         capture_output=True, text=True, env=package_env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    took, same, numba_loaded = out.stdout.split()
    assert same == "True" and numba_loaded == "False"
    assert float(took) < 5, f"constructing the GPT-2 tokenizer took {took} s"
