"""Bad input fails loudly with a message that names the problem; odd-but-valid input trains correctly."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bpe_numba import BPEInputError, InvalidUTF8Error, count_pretokens, train_bpe
from isolated import run_isolated
from reference import (
    build_vocab,
    reference_merges_from_counts,
    reference_pretoken_counts_text,
    reference_train_text,
)


@pytest.fixture
def small_file(tmp_path):
    path = tmp_path / "small.txt"
    path.write_bytes(b"hello world, hello there.\n" * 20)
    return path


def both_entry_points(path, **kwargs):
    """Yield callables for train_bpe and count_pretokens with the same options."""
    vocab_size = kwargs.pop("vocab_size", 300)
    specials = kwargs.pop("special_tokens", ())
    return [
        ("train_bpe", lambda: train_bpe(path, vocab_size, specials, progress=False, **kwargs)),
        ("count_pretokens", lambda: count_pretokens(path, specials, **kwargs)),
    ]


# ---------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("as_str", [True, False])
def test_missing_file(tmp_path, as_str):
    path = tmp_path / "no such dir" / "missing.txt"
    arg = str(path) if as_str else path
    for name, call in both_entry_points(arg):
        with pytest.raises(FileNotFoundError) as info:
            call()
        assert str(path) in str(info.value), name


def test_empty_directory(tmp_path):
    # A directory is an input (its files); one without files is an error naming it.
    for name, call in both_entry_points(tmp_path):
        with pytest.raises(FileNotFoundError, match="holds no files") as info:
            call()
        assert str(tmp_path) in str(info.value), name


def test_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    vocab, merges = train_bpe(path, 1000, ["<|endoftext|>", "<|pad|>"], progress=False)
    assert merges == []
    assert vocab == build_vocab([], ["<|endoftext|>", "<|pad|>"])
    assert count_pretokens(path, ["<|endoftext|>"]) == {}


def test_file_of_only_special_tokens(tmp_path):
    path = tmp_path / "specials.txt"
    path.write_bytes(b"<|endoftext|>" * 1000)
    vocab, merges = train_bpe(path, 1000, ["<|endoftext|>"], progress=False, chunk_size=16, num_workers=2)
    assert merges == []
    assert vocab == build_vocab([], ["<|endoftext|>"])


def test_vocab_larger_than_corpus_can_fill(tmp_path):
    text = "the cat sat on the mat; the cat ate."
    path = tmp_path / "tiny.txt"
    path.write_bytes(text.encode())
    ref_vocab, ref_merges = reference_train_text(text, 100_000, ["<|endoftext|>"])
    vocab, merges = train_bpe(path, 100_000, ["<|endoftext|>"], progress=False)
    assert len(merges) < 100_000 - 257
    assert merges == ref_merges
    assert vocab == ref_vocab
    assert len(vocab) == 257 + len(merges)


def test_windows_line_endings_are_kept(tmp_path):
    text = "first line\r\nsecond  line\r\n\r\n  indented\r\nlone\rcarriage\r\r\n\tend\r\n"
    path = tmp_path / "crlf.txt"
    path.write_bytes(text.encode())
    counts = count_pretokens(path)
    assert counts == reference_pretoken_counts_text(text)
    assert any(b"\r" in tok for tok in counts)
    assert counts.get(b"\r\n", 0) >= 1  # the final "\r\n" at end of file stays one pre-token
    ref_vocab, ref_merges = reference_train_text(text, 330)
    vocab, merges = train_bpe(path, 330, progress=False, chunk_size=16)
    assert merges == ref_merges and vocab == ref_vocab
    assert (b"\r", b"\n") in merges


# ---------------------------------------------------------------------------------------------------------
# Invalid UTF-8
# ---------------------------------------------------------------------------------------------------------

def first_invalid_offset(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start
    raise AssertionError("data is valid UTF-8")


INVALID_CASES = {
    "lone-continuation-at-start": b"\x80hello world",
    "ff-in-middle": b"hello \xff world",
    "truncated-at-eof": "caf\u00e9 \u20ac".encode()[:-1],
    "truncated-before-space": b"abc \xe2\x82 def",
    "overlong-slash": b"path \xc0\xaf etc",
    "encoded-surrogate": b"x \xed\xa0\x80 y",
    "above-max-codepoint": b"big \xf4\x90\x80\x80 end",
    "after-long-valid-prefix": ("word\u00e9 " * 2000).encode() + b"\xfe" + b" tail" * 100,
    "two-invalid-report-first": ("a\u00e9 " * 500).encode() + b"\x80" + ("b " * 3000).encode() + b"\xff",
}


def check_invalid_utf8_outcome(outcome, path, expected, what):
    assert not outcome["ok"], f"{what}: no error raised"
    assert outcome["type"] == "InvalidUTF8Error", f"{what}: {outcome}"
    assert {"BPEInputError", "ValueError"} <= set(outcome["mro"]), what
    assert outcome["path"] == str(path), what
    assert outcome["offset"] == expected, what
    assert str(path) in outcome["message"], what
    assert re.search(rf"\b{expected}\b", outcome["message"]), what


@pytest.mark.parametrize("name", list(INVALID_CASES))
def test_invalid_utf8_names_file_and_first_offset(tmp_path, name):
    data = INVALID_CASES[name]
    path = tmp_path / f"{name}.txt"
    path.write_bytes(data)
    expected = first_invalid_offset(data)
    for entry, call in both_entry_points(path, num_workers=1):
        with pytest.raises(InvalidUTF8Error) as info:
            call()
        err = info.value
        assert isinstance(err, BPEInputError) and isinstance(err, ValueError)
        outcome = {"ok": False, "type": type(err).__name__, "mro": [c.__name__ for c in type(err).__mro__],
                   "path": os.fspath(err.path), "offset": err.offset, "message": str(err)}
        check_invalid_utf8_outcome(outcome, path, expected, entry)


def test_invalid_utf8_with_parallel_workers(tmp_path, package_env):
    """Same cases with a worker pool and tiny chunks; in a subprocess, since a failing pool may hang."""
    calls, checks = [], []
    for name, data in INVALID_CASES.items():
        path = tmp_path / f"{name}.txt"
        path.write_bytes(data)
        entries = [("count_pretokens", [str(path)])]
        if name in ("after-long-valid-prefix", "two-invalid-report-first"):  # a pool start costs ~1 s each
            entries.append(("train_bpe", [str(path), 300]))
        for fn, args in entries:
            calls.append({"fn": fn, "args": args, "kwargs": {"num_workers": 2, "chunk_size": 16}})
            checks.append((path, first_invalid_offset(data), f"{fn} on {name}"))
    # Invalid bytes in nearly every chunk, and a first chunk much slower to read than the second:
    # whichever chunk finishes first, the file's smallest invalid offset is reported.
    many = tmp_path / "many.txt"
    many.write_bytes(b"".join(b"ok%d \xff " % i for i in range(3000)))
    slow_first = tmp_path / "slow-first.txt"
    slow_first.write_bytes(b"\xff" + b"x" * 20_000_000 + b" ok \xfe ok")
    for path in (many, slow_first):
        calls.append({"fn": "count_pretokens", "args": [str(path)], "kwargs": {"num_workers": 2, "chunk_size": 16}})
        checks.append((path, first_invalid_offset(path.read_bytes()), f"count_pretokens on {path.name}"))
    outcomes = run_isolated(calls, package_env, timeout=60)
    for outcome, (path, expected, what) in zip(outcomes, checks):
        check_invalid_utf8_outcome(outcome, path, expected, what)


invalid_sequences = st.sampled_from(
    [b"\x80", b"\xbf", b"\xc0", b"\xc1\x81", b"\xe2\x82", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf0\x80",
     b"\xf4\x90\x80\x80", b"\xf5", b"\xfe", b"\xff", b"\xe2", b"\xf0\x9f\x98"]
)
valid_text = st.text(alphabet=" \n\t\u3000\u0085\u00e9ab\u20ac\U0001f600.,", max_size=60)


@given(prefix=valid_text, bad=invalid_sequences, suffix=st.binary(max_size=20), chunk_size=st.sampled_from([16, 64]))
@example(prefix="a" * 15 + " ", bad=b"\xe2\x82", suffix=b" x", chunk_size=16)
@example(prefix="\u3000" * 6, bad=b"\x85", suffix=b"", chunk_size=16)
def test_invalid_utf8_offset_property(tmp_path, prefix, bad, suffix, chunk_size):
    data = prefix.encode() + bad + suffix
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        with pytest.raises(InvalidUTF8Error) as info:
            count_pretokens(path, num_workers=1, chunk_size=chunk_size)
        assert info.value.offset == e.start
    else:  # the random suffix completed the sequence (e.g. f0 9f 98 + 80)
        assert count_pretokens(path, num_workers=1, chunk_size=chunk_size) == reference_pretoken_counts_text(text)


@given(
    data=st.lists(st.one_of(valid_text.map(str.encode), invalid_sequences, st.binary(max_size=6)), max_size=20)
    .map(b"".join),
    chunk_size=st.sampled_from([None, 16, 64]),
)
@example(data=b"a \xe2\x82 b\xe2\x82\xac\xe2 \xc2\x85\xe3\x80\x80\xc2\x85", chunk_size=16)
def test_errors_replace_equals_reference_on_replaced_text(tmp_path, data, chunk_size):
    path = tmp_path / "replace.txt"
    path.write_bytes(data)
    text = data.decode("utf-8", errors="replace")
    got = count_pretokens(path, ["<|x|>"], errors="replace", num_workers=1, chunk_size=chunk_size)
    assert got == reference_pretoken_counts_text(text, ["<|x|>"])
    ref_vocab, ref_merges = reference_train_text(text, 300, ["<|x|>"])
    vocab, merges = train_bpe(path, 300, ["<|x|>"], errors="replace", num_workers=1, chunk_size=chunk_size,
                              progress=False)
    assert merges == ref_merges and vocab == ref_vocab


def test_errors_replace_with_parallel_workers(tmp_path):
    data = b"".join(b"w\xe9rd%d \xe2\x82 \xff\xfe caf\xc3\xa9 <|x|>\xed\xa0\x80\n" % (i % 50) for i in range(2000))
    path = tmp_path / "replace.txt"
    path.write_bytes(data)
    text = data.decode("utf-8", errors="replace")
    ref_vocab, ref_merges = reference_train_text(text, 320, ["<|x|>"])
    vocab, merges = train_bpe(path, 320, ["<|x|>"], errors="replace", num_workers=2, chunk_size=16,
                              progress=False)
    assert merges == ref_merges and vocab == ref_vocab
    # The default is strict.
    with pytest.raises(InvalidUTF8Error):
        train_bpe(path, 320, ["<|x|>"], num_workers=2, chunk_size=16, progress=False)


@pytest.mark.parametrize("errors", ["ignore", "surrogateescape", "backslashreplace", "bogus", "", None])
def test_unknown_errors_mode(small_file, errors):
    for name, call in both_entry_points(small_file, errors=errors):
        with pytest.raises(ValueError):
            call()


# ---------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("vocab_size", [True, False, 300.0, "300", None, [300]])
def test_vocab_size_wrong_type(small_file, vocab_size):
    with pytest.raises(TypeError):
        train_bpe(small_file, vocab_size, progress=False)


@pytest.mark.parametrize(
    "vocab_size, specials",
    [(255, []), (0, []), (-1, []), (256, ["<|endoftext|>"]), (257, ["<|a|>", "<|b|>"])],
)
def test_vocab_size_too_small(small_file, vocab_size, specials):
    with pytest.raises(ValueError) as info:
        train_bpe(small_file, vocab_size, specials, progress=False)
    assert "vocab_size" in str(info.value)


def test_vocab_size_minimum_is_accepted(small_file):
    vocab, merges = train_bpe(small_file, 256, progress=False)
    assert merges == [] and len(vocab) == 256


@pytest.mark.parametrize("specials", ["<|endoftext|>", [b"<|endoftext|>"], [1], [None], ["ok", 3.5]])
def test_special_tokens_wrong_type(small_file, specials):
    for name, call in both_entry_points(small_file, special_tokens=specials):
        with pytest.raises(TypeError):
            call()


@pytest.mark.parametrize("specials", [[""], ["<|a|>", "<|a|>"], ["<|a|>", "", "<|b|>"]])
def test_special_tokens_bad_value(small_file, specials):
    for name, call in both_entry_points(small_file, special_tokens=specials):
        with pytest.raises(ValueError):
            call()


def test_special_tokens_as_tuple(small_file):
    vocab, _ = train_bpe(small_file, 300, ("<|a|>", "<|b|>"), progress=False)
    assert vocab[256] == b"<|a|>" and vocab[257] == b"<|b|>"


def test_arguments_are_not_mutated(small_file):
    specials = ["<|b|>", "<|a|><|b|>", "<|a|>"]  # not sorted by length: the caller's order must survive
    before = list(specials)
    vocab, _ = train_bpe(small_file, 300, specials, progress=False)
    count_pretokens(small_file, specials)
    assert specials == before
    assert [vocab[256], vocab[257], vocab[258]] == [s.encode() for s in before]


@pytest.mark.parametrize("workers", [0, -1])
def test_num_workers_below_one(small_file, workers):
    for name, call in both_entry_points(small_file, num_workers=workers):
        with pytest.raises(ValueError) as info:
            call()
        assert "num_workers" in str(info.value), name


# ---------------------------------------------------------------------------------------------------------
# Pathological sizes (slow, still run in CI)
# ---------------------------------------------------------------------------------------------------------

def run_merges(n: int) -> list[tuple[bytes, bytes]]:
    """The merges for a single pre-token of n identical ASCII letters, trained to exhaustion.

    Doubling while at least two blocks of the current size exist ((x, x) count >= 1, and on a tie of 1 it is
    the greatest pair); then the blocks fold left: (prefix, next smaller block), the greatest tuple of the
    remaining count-1 pairs. Checked against the reference for small n in test_run_merges_formula.
    """
    merges = []
    size = 1
    while n // size >= 2:
        merges.append((b"a" * size, b"a" * size))
        size *= 2
    prefix = size
    rest = n - size
    for bit in reversed(range(rest.bit_length())):
        if rest >> bit & 1:
            merges.append((b"a" * prefix, b"a" * (1 << bit)))
            prefix += 1 << bit
    return merges


def test_run_merges_formula():
    for n in list(range(1, 200)) + [1023, 1024, 1025, 4097, 10_000]:
        assert run_merges(n) == reference_merges_from_counts({b"a" * n: 1}, 10_000), n


@pytest.mark.slow
def test_ten_megabyte_run_of_one_character(tmp_path):
    n = 10_000_000
    path = tmp_path / "run.txt"
    with open(path, "wb") as f:
        f.write(b"a" * n)
    expected = run_merges(n)
    assert len(expected) == 30
    vocab, merges = train_bpe(path, 300, progress=False, num_workers=2)
    assert merges == expected
    assert len(vocab) == 256 + 30


@pytest.mark.slow
def test_twenty_megabytes_without_whitespace(tmp_path):
    # The unit starts with punctuation and ends with a letter, so the file's pre-tokens are exactly the unit's
    # times the repeat count, and scaling every count by the same factor changes no merge decision.
    unit = ",abc;d\u00e9f123\u20ac\u0661\u0662x\U0001f600!!\u03a9\u03bbabc.abc's" + "-\u4e2d\u6587ab"
    unit_bytes = unit.encode()
    repeats = 20_000_000 // len(unit_bytes)
    path = tmp_path / "nows.txt"
    with open(path, "wb") as f:
        f.write(unit_bytes * repeats)
    unit_counts = reference_pretoken_counts_text(unit)
    assert unit_counts and all(not any(c.isspace() for c in tok.decode()) for tok in unit_counts)
    scaled = {tok: c * repeats for tok, c in unit_counts.items()}
    expected = reference_merges_from_counts(scaled, 300 - 256)
    vocab, merges = train_bpe(path, 300, progress=False, num_workers=2)
    assert merges == expected


def test_chunk_size_minimum(tmp_path, monkeypatch):
    """``chunk_size`` below 4096 bytes is refused (``chunk_size=1`` used to be accepted and ran about 100x
    slower); a non-int is a type error; a file of any size still trains with any allowed chunk size."""
    from bpe_numba import BPETypeError, BPEValueError

    monkeypatch.delenv("BPE_NUMBA_MIN_CHUNK_SIZE")
    path = tmp_path / "t.txt"
    path.write_text("hello world " * 1000)
    for bad in (0, 1, 4095):
        with pytest.raises(BPEValueError, match=f"chunk_size={bad}; use at least 4096 bytes"):
            train_bpe(path, 300, chunk_size=bad, backend="kernels")
        with pytest.raises(BPEValueError, match="use at least 4096"):
            count_pretokens(path, chunk_size=bad)
    for bad in ("4096", 4096.0, True):
        with pytest.raises(BPETypeError, match="chunk_size must be an int"):
            train_bpe(path, 300, chunk_size=bad)
    assert train_bpe(path, 300, chunk_size=4096, backend="kernels") == train_bpe(path, 300, backend="kernels")
