"""Tokenizer: encode / encode_iterable / decode equal the reference encoder and tiktoken's gpt2."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bpe_numba import BPEInputError, Tokenizer
from reference import read_gpt2_merges, read_gpt2_vocab, reference_encode, reference_train_text
from strategies import SPECIAL_CANDIDATES, corpora, fragments

ALL_UNICODE = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
MIXED = st.lists(fragments, max_size=30).map("".join)


@pytest.fixture(scope="session")
def gpt2_model(cs336_dir):
    vocab = {i: b for b, i in read_gpt2_vocab(cs336_dir / "gpt2_vocab.json").items()}
    return vocab, read_gpt2_merges(cs336_dir / "gpt2_merges.txt")


@pytest.fixture(scope="session")
def tiktoken_gpt2(cs336_dir):
    tiktoken = pytest.importorskip("tiktoken")
    cache = cs336_dir.parent / "tiktoken_cache"
    if not cache.is_dir():
        pytest.skip(f"tiktoken's gpt2 files not found at {cache}; it cannot download them offline")
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(cache))
    return tiktoken.get_encoding("gpt2")


@pytest.fixture(scope="session")
def gpt2(gpt2_model):
    return Tokenizer(*gpt2_model, ["<|endoftext|>"])


@pytest.fixture(scope="session")
def gpt2_plain(gpt2_model):
    return Tokenizer(*gpt2_model)


# ---------------------------------------------------------------------------------------------------------
# GPT-2 against tiktoken
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["corpus.en", "german.txt", "address.txt", "tinystories_sample.txt"])
def test_gpt2_files_equal_tiktoken(name, cs336_dir, gpt2, gpt2_plain, tiktoken_gpt2):
    text = (cs336_dir / name).read_text(encoding="utf-8")
    ids = gpt2.encode(text)
    assert ids == tiktoken_gpt2.encode(text, allowed_special={"<|endoftext|>"})
    assert {type(i) for i in ids} == {int}
    assert gpt2_plain.encode(text) == tiktoken_gpt2.encode(text, disallowed_special=())
    assert gpt2.decode(ids) == text


@given(st.one_of(ALL_UNICODE, MIXED), st.sampled_from([None, "<|endoftext|>"]))
@example("Hello, world! It's 2026.\r\n\r\n  <|endoftext|>Next  doc\t\x85x", "<|endoftext|>")
@example("<|endoftext|><|endoftext|>", None)
def test_gpt2_equals_tiktoken(gpt2, gpt2_plain, tiktoken_gpt2, text, special):
    # tiktoken's regex engine knows Unicode 16, `regex` knows 17; the characters where they differ are all
    # unassigned (Cn) in this Python's Unicode database, so they are left out here (see test_formats.py).
    text = "".join(c for c in text if unicodedata.category(c) != "Cn")
    if special is None:
        ids, expected = gpt2_plain.encode(text), tiktoken_gpt2.encode(text, disallowed_special=())
    else:
        ids, expected = gpt2.encode(text), tiktoken_gpt2.encode(text, allowed_special={special})
    assert ids == expected
    assert gpt2.decode(ids) == text


def test_gpt2_long_runs(gpt2, tiktoken_gpt2):
    """One pre-token of a megabyte takes the heap path; a megabyte of spaces is one whitespace run."""
    for text in ["x" * 1_000_000, "\U0001f600" * 100_000, " " * 1_000_000, "ab" * 300_000 + "!"]:
        start = time.perf_counter()
        ids = gpt2.encode(text)
        took = time.perf_counter() - start
        assert ids == tiktoken_gpt2.encode(text)
        assert took < 10, f"{len(text):,} chars of {text[:2]!r} took {took:.1f} s: not linear any more?"


# ---------------------------------------------------------------------------------------------------------
# Trained models against the reference encoder
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["numba", "regex"])
@given(corpora(), st.one_of(MIXED, ALL_UNICODE), st.data())
def test_encode_equals_reference(engine, corpus, text, data):
    train_text, specials, vocab_size = corpus
    vocab, merges = reference_train_text(train_text, vocab_size, specials)
    # Encode with the training specials, a subset, or others that were not in training at all.
    specials = data.draw(st.one_of(st.just(specials), st.lists(st.sampled_from(SPECIAL_CANDIDATES), unique=True, max_size=3)))
    tok = Tokenizer(vocab, merges, specials, engine=engine)
    for sample in (text, train_text, text + "".join(specials) + train_text[:40]):
        ids = tok.encode(sample)
        assert ids == reference_encode(sample, vocab, merges, specials)
        assert tok.decode(ids) == sample


@given(corpora(), st.lists(st.integers(0, 10_000), max_size=8), st.data())
def test_encode_iterable_equals_encode_at_any_split(corpus, cuts, data):
    text, specials, vocab_size = corpus
    vocab, merges = reference_train_text(text, vocab_size, specials)
    tok = Tokenizer(vocab, merges, specials)
    text = text * data.draw(st.integers(1, 3))
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    assert list(tok.encode_iterable(iter(pieces))) == tok.encode(text)


def test_encode_iterable_splits_specials_and_words(monkeypatch):
    """Small windows force many cuts; items split words and special tokens in every place."""
    import bpe_numba.tokenizer as T

    monkeypatch.setattr(T, "_WINDOW", 64)
    specials = ["<|endoftext|>", "<|a|>", "<|a|><|b|>"]
    text = ("the cat sat<|endoftext|>on the mat.<|a|><|b|> and <|a|> then\n\n  again " * 40) + "end"
    vocab, merges = reference_train_text(text, 330, specials)
    tok = Tokenizer(vocab, merges, specials)
    expected = reference_encode(text, vocab, merges, specials)
    for step in (1, 2, 3, 5, 7, 13, 64, 1000):
        pieces = [text[i : i + step] for i in range(0, len(text), step)]
        assert list(tok.encode_iterable(pieces)) == expected, step
    assert list(tok.encode_iterable(iter(()))) == []
    assert list(tok.encode_iterable(["", "", ""])) == []


@pytest.mark.parametrize("window", [64, 1 << 14])
def test_custom_pattern(monkeypatch, window):
    """Another pattern goes through regex; units are whole segments, encode_iterable cuts only at specials."""
    import bpe_numba.tokenizer as T

    monkeypatch.setattr(T, "_WINDOW", window)
    pattern = r"\w+ \w+|\s+|\W"
    specials = ["<|e|>", "<|e|><|f|>"]
    text = "alpha beta gamma<|e|>delta epsilon<|e|><|f|> zeta eta theta, " * 30 + "end word"
    vocab, merges = reference_train_text(text, 320, specials)
    tok = Tokenizer(vocab, merges, specials, pattern=pattern)
    assert tok.engine == "regex"
    expected = reference_encode(text, vocab, merges, specials, pattern=pattern)
    assert expected != reference_encode(text, vocab, merges, specials)  # the pattern matters here
    assert tok.encode(text) == expected
    for step in (1, 7, 100):
        assert list(tok.encode_iterable(text[i : i + step] for i in range(0, len(text), step))) == expected
    with pytest.raises(ValueError, match="engine='numba' implements only the GPT-2 pattern"):
        Tokenizer(vocab, merges, specials, pattern=pattern, engine="numba")
    words = Tokenizer(vocab, merges, specials, pattern=r"\w+")  # punctuation and spaces match nothing
    for sample in ("!!<|e|>ab, cd", "?", "<|e|>", "", "x y"):
        assert words.encode(sample) == reference_encode(sample, vocab, merges, specials, pattern=r"\w+")


def test_one_byte_special_keeps_its_own_id():
    vocab, merges = reference_train_text("xyx axa xx", 270, ["x"])
    tok = Tokenizer(vocab, merges, ["x"])
    assert tok.encode("x") == [256]
    assert Tokenizer(vocab, merges).encode("x") == [ord("x")]


def test_specials_missing_from_vocab_are_appended():
    vocab = {i: bytes([i]) for i in range(256)}
    tok = Tokenizer(vocab, [], ["<|endoftext|>", "<|pad|>"])
    assert tok.encode("a<|pad|>b<|endoftext|>") == [97, 257, 98, 256]
    assert tok.vocab[256] == b"<|endoftext|>" and tok.vocab[257] == b"<|pad|>"
    assert vocab == {i: bytes([i]) for i in range(256)}, "the caller's vocab must not change"


@pytest.mark.parametrize("budget, block", [(1, 8), (5, 9), (64, 17)])
def test_kernel_slices_and_scan_blocks_are_exact(monkeypatch, budget, block):
    """A kernel call returns after ``budget`` bytes and the scanner hands over ``block - 4`` pre-token ends
    at a time; resuming anywhere, also right before a special token, changes no id."""
    import bpe_numba.encoding as E

    monkeypatch.setattr(E, "_BUDGET", budget)
    monkeypatch.setattr(E, "_SCAN_BLOCK", block)
    specials = ["<|endoftext|>", "<|a|>", "<|a|><|b|>"]
    text = "the cat<|endoftext|><|endoftext|>sat on<|a|><|b|> the mat<|a|>. x \n\n  y" * 7
    vocab, merges = reference_train_text(text, 300, specials)
    tok = Tokenizer(vocab, merges, specials, backend="kernels")
    for sample in (text, "<|a|>" + text + "<|a|>", "", "<|a|>", "  \n"):
        assert tok.encode(sample) == reference_encode(sample, vocab, merges, specials)


@given(st.one_of(ALL_UNICODE, MIXED, st.text("ab 's\n\t!1", max_size=40)), st.integers(1, 12))
@example("don't  stop\n\n 'll x'l 42!!", 1)
def test_three_byte_scanner_equals_gpt2_split(text, limit):
    """The encoder's scanner (ASCII three bytes a step) finds gpt2_scan's pre-token ends, also when it
    stops every ``limit`` ends and resumes."""
    import numpy as np

    from bpe_numba import encode_kernels as K
    from bpe_numba.gpt2_scan import _KINDS, char_classes, gpt2_split

    raw = text.encode("utf-8")
    data = np.frombuffer(raw, dtype=np.uint8)
    expected = np.empty(len(raw), dtype=np.int64)
    expected = expected[: gpt2_split(data, 0, len(raw), char_classes(), expected, 0)].tolist()
    kinds = _KINDS
    buf = np.empty(limit + 4, dtype=np.int64)
    ends, i = [], 0
    while i < len(raw):
        n = K._scan3(data, i, len(raw), char_classes(), kinds, buf, 0, limit)
        ends += buf[:n].tolist()
        i = ends[-1]
    assert ends == expected


def _cache_text() -> str:
    """Many distinct pre-tokens of every length class the cache keeps apart: under 8 bytes, 8 to 15, 16
    and more (some over ``MAX_CACHED``), with up to dozens of ids each."""
    words = []
    for i in range(600):
        n = 1 + (i * 7) % 40
        words.append("".join("abcdefgh"[(i * 5 + 3 * k) % 8] for k in range(n)))
    return " ".join(words) + " " + "q" * 1100 + " fin"


def test_cache_overflow_keeps_results_exact(monkeypatch):
    """Tiny caches are emptied again and again while encoding, by either table or the arena filling up, or
    never take a pre-token that cannot fit; ids must not change."""
    import bpe_numba.encoding as E
    from bpe_numba import encode_kernels as K

    text = _cache_text()
    vocab, merges = reference_train_text(text, 400)
    expected = reference_encode(text, vocab, merges)
    for exact, long, arena in [(8, 4, 1 << 12), (1 << 12, 4, 1 << 12), (1 << 12, 1 << 12, 40)]:
        monkeypatch.setattr(E, "_CACHE_SIZES", (exact, long, arena))
        tok = Tokenizer(vocab, merges, backend="kernels")
        for _ in range(3):
            assert tok.encode(text) == expected
        assert tok._encoders[0].cache.state[K.CLEARS] > 0, "the caches never overflowed: the test proves nothing"


def test_ids_beyond_20_bits_and_pretokens_of_many_ids():
    """Ids of 2**20 and more cannot be kept inline in the cache; pre-tokens of more than 6 ids neither."""
    text = _cache_text()
    vocab, merges = reference_train_text(text, 330)
    big = {i + (1 << 20 if i >= 256 else 0): b for i, b in vocab.items()}  # as far as the vocab check allows
    tok = Tokenizer(big, merges, backend="kernels")
    expected = reference_encode(text, big, merges)
    assert max(expected) >= 1 << 20 and max(len(w) for w in text.split()) > 16
    for _ in range(2):
        assert tok.encode(text) == expected


def test_pretokens_that_differ_only_in_trailing_nul_bytes():
    """The cache keys pre-tokens by their bytes and length: one NUL byte more is another pre-token."""
    runs = ["!" * n + "\x00" * z for n in (6, 7, 8, 14, 15, 16) for z in (0, 1, 2)]
    text = " ".join(runs * 3) + "\x00"
    vocab, merges = reference_train_text(text, 300)
    tok = Tokenizer(vocab, merges, backend="kernels")
    for sample in (text, " ".join(reversed(runs))):
        assert tok.encode(sample) == reference_encode(sample, vocab, merges)


def test_encode_from_several_threads_at_once():
    """Each thread that encodes takes a cache of its own from the tokenizer's pool."""
    import threading

    texts = [_cache_text()[k:] + f" {k}" * 50 for k in range(0, 400, 50)]
    vocab, merges = reference_train_text(texts[0], 400)
    tok = Tokenizer(vocab, merges, backend="kernels")
    expected = [reference_encode(t, vocab, merges) for t in texts]
    got: dict[int, list] = {}

    def run(k: int) -> None:
        got[k] = [tok.encode(texts[k]) for _ in range(20)]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, e in enumerate(expected):
        assert got[k] == [e] * 20


@given(st.lists(st.one_of(MIXED, ALL_UNICODE), max_size=12), st.integers(1, 3))
def test_encode_batch_equals_encode(gpt2, texts, threads):
    assert gpt2.encode_batch(texts, num_threads=threads) == [gpt2.encode(t) for t in texts]


def test_encode_batch_refuses_bad_input(small):
    tok = small[0]
    assert tok.encode_batch([]) == []
    with pytest.raises(TypeError, match="not a single str; use encode"):
        tok.encode_batch("abc")
    with pytest.raises(TypeError, match=r"texts\[1\] is bytes"):
        tok.encode_batch(["ok", b"no"])
    with pytest.raises(BPEInputError, match=r"texts\[2\]: the text holds a lone surrogate"):
        tok.encode_batch(["a", "b", "c\ud800"], num_threads=2)
    with pytest.raises(ValueError, match="num_threads=0"):
        tok.encode_batch(["a"], num_threads=0)
    with pytest.raises(TypeError, match="num_threads must be an int or None, not str"):
        tok.encode_batch(["a"], num_threads="2")


# ---------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    vocab, merges = reference_train_text("low lower lowest newer wider", 270, ["<|eot|>"])
    return Tokenizer(vocab, merges, ["<|eot|>"]), vocab, merges


def test_decode_unknown_ids_are_named(small):
    tok = small[0]
    n = len(tok.vocab)
    with pytest.raises(BPEInputError, match=rf"ids\[2\] = {n} is not a token id"):
        tok.decode([1, 2, n])
    with pytest.raises(BPEInputError, match=r"ids\[1\] = -1 is not a token id"):
        tok.decode([5, -1])
    with pytest.raises(TypeError, match=r"ids\[0\] is float"):
        tok.decode([1.0])
    assert tok.decode([]) == ""
    assert tok.decode(iter([104, 105])) == "hi"


def test_decode_replaces_invalid_utf8(small):
    assert small[0].decode([0xE2, 0x82]) == "\ufffd"


def test_encode_rejects_non_str(small):
    tok = small[0]
    with pytest.raises(TypeError, match="takes a str, not bytes"):
        tok.encode(b"abc")
    with pytest.raises(TypeError, match="item 1 is int"):
        list(tok.encode_iterable(["ok", 3]))
    with pytest.raises(BPEInputError, match="lone surrogate '\\\\ud800' at index 2"):
        tok.encode("ab\ud800")


def test_bad_models_are_refused(small):
    _, vocab, merges = small
    with pytest.raises(ValueError, match="repeats"):
        Tokenizer(vocab, merges, ["<|eot|>", "<|eot|>"])
    with pytest.raises(BPEInputError, match=r"merges\[0\].*not in the vocab"):
        Tokenizer(vocab, [(b"q", b"zz")] + merges)
    broken = dict(vocab)
    del broken[ord("e")]
    with pytest.raises(BPEInputError, match="no token for byte 101"):
        Tokenizer(broken, merges)
    with pytest.raises(BPEInputError, match=r"vocab\[3\] is str"):
        Tokenizer({**vocab, 3: "d"}, merges)
    with pytest.raises(BPEInputError, match=r"merges\[1\] is"):
        Tokenizer(vocab, [merges[0], (b"a",)])


# ---------------------------------------------------------------------------------------------------------
# The CS336 memory test: encode_iterable under an address-space limit of the current RSS + 1 MB
# ---------------------------------------------------------------------------------------------------------

_MEMORY_SCRIPT = r"""
import json, resource, sys
import psutil
sys.path.insert(0, sys.argv[3])
from reference import read_gpt2_merges, read_gpt2_vocab
from bpe_numba import Tokenizer

fixtures, path = sys.argv[1], sys.argv[2]
vocab = {i: b for b, i in read_gpt2_vocab(fixtures + "/gpt2_vocab.json").items()}
tok = Tokenizer(vocab, read_gpt2_merges(fixtures + "/gpt2_merges.txt"), ["<|endoftext|>"])
with open(path, encoding="utf-8") as f:
    expected = tok.encode(f.read())
limit = psutil.Process().memory_info().rss + 1_000_000
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
n = mismatches = 0
with open(path, encoding="utf-8") as f:
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        try:
            bytearray(200_000_000)
            enforced = False
        except MemoryError:
            enforced = True
        want = iter(expected)
        for i in tok.encode_iterable(f):
            n += 1
            mismatches += i != next(want, None)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
print(json.dumps({"enforced": enforced, "n": n, "expected": len(expected), "mismatches": mismatches}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is only dependable on Linux")
def test_encode_iterable_under_memory_limit(cs336_dir, tmp_path, package_env):
    pytest.importorskip("psutil")
    from bpe_numba.synthetic import write_corpus

    path = tmp_path / "5mb.txt"
    write_corpus(path, 5_000_000)
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(cs336_dir), str(path), os.path.dirname(__file__)],
        capture_output=True, text=True, env=package_env, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = __import__("json").loads(out.stdout.splitlines()[-1])
    assert result["enforced"], "the limit did not hold back a 200 MB allocation: the test proves nothing"
    assert result["n"] == result["expected"] > 1_000_000 and result["mismatches"] == 0, result


# ---------------------------------------------------------------------------------------------------------
# Round trips: train -> save / pickle / export -> load -> identical model and ids
# ---------------------------------------------------------------------------------------------------------

def test_round_trips_in_every_format(tmp_path):
    import pickle

    from bpe_numba import train_bpe
    from bpe_numba.formats import read_tiktoken_ranks

    specials = ["<|endoftext|>", "<|a|>", "<|a|><|b|>", "x"]
    text = ("Once upon a time, Ünïcödé cats 42<|endoftext|> sat\r\n<|a|><|b|> on x mats 😀. " * 50)
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
    vocab, merges = train_bpe(tmp_path / "corpus.txt", 420, specials, num_workers=1, progress=False,
                              out_dir=tmp_path / "model")
    tok = Tokenizer(vocab, merges, specials)
    sample = text + " unseen wörds <|a|>x<|endoftext|>"
    ids = tok.encode(sample)
    assert ids == reference_encode(sample, vocab, merges, specials)

    loaded = Tokenizer.from_files(tmp_path / "model" / "vocab.json", tmp_path / "model" / "merges.txt")
    assert (loaded.vocab, loaded.merges, loaded.special_tokens) == (vocab, merges, specials)
    assert loaded.encode(sample) == ids

    tok.save(tmp_path / "saved")
    again = Tokenizer.from_files(tmp_path / "saved" / "vocab.json", tmp_path / "saved" / "merges.txt")
    assert again.encode(sample) == ids

    with open(tmp_path / "model.pkl", "wb") as f:
        pickle.dump((vocab, merges), f)
    from_pickle = Tokenizer.from_pickle(tmp_path / "model.pkl", specials)
    assert (from_pickle.vocab, from_pickle.merges) == (vocab, merges) and from_pickle.encode(sample) == ids

    tokenizers = pytest.importorskip("tokenizers")
    tok.export_hf(tmp_path / "tokenizer.json")
    assert tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json")).encode(sample).ids == ids

    tiktoken = pytest.importorskip("tiktoken")
    # tiktoken matches special tokens leftmost-first, not longest-first: leave out the prefix-sharing one.
    plain = [t for t in specials if t != "<|a|>"]
    tok2 = Tokenizer(vocab, merges, plain)
    special_ids = tok2.export_tiktoken(tmp_path / "model.tiktoken")
    enc = tiktoken.Encoding(name="t", pat_str=tok2.pattern, mergeable_ranks=read_tiktoken_ranks(tmp_path / "model.tiktoken"),
                            special_tokens=special_ids)
    assert enc.encode(sample, allowed_special="all") == tok2.encode(sample)
