"""encode_file: a .npy of ids equal to encode() of the whole file, for any threads and chunk size, written
in file order by threads of this process, with memory bounded whatever the file's size."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpe_numba import BPEInputError, FileChangedError, InvalidUTF8Error, Tokenizer
from reference import reference_encode, reference_train_text
from strategies import fragments

SPECIALS = ["<|endoftext|>", "<|a|>", "<|a|><|b|>"]
TEXT = (
    "Once upon a time, a cat sat on the mat.<|endoftext|>The dog's ball rolled away!\r\n\r\n"
    "  <|a|><|b|>Über café 42 naïve 😀👍🏽 x<|a|> end\n"
) * 60


@pytest.fixture(scope="module")
def model():
    vocab, merges = reference_train_text(TEXT, 400, SPECIALS)
    return Tokenizer(vocab, merges, SPECIALS, backend="kernels"), reference_encode(TEXT, vocab, merges, SPECIALS)


@pytest.mark.parametrize("workers, chunk_size", [(1, None), (1, 64), (2, 64), (2, 1000), (5, 300)])
def test_equals_encode(tmp_path, model, workers, chunk_size):
    tok, expected = model
    src = tmp_path / "in.txt"
    src.write_bytes(TEXT.encode("utf-8"))
    out = tmp_path / "ids.npy"
    n = tok.encode_file(src, out, num_workers=workers, chunk_size=chunk_size, progress=False)
    ids = np.load(out)
    assert ids.dtype == np.uint16
    assert n == len(ids) and ids.tolist() == expected
    assert sorted(os.listdir(tmp_path)) == ["ids.npy", "in.txt"]


def test_large_ids_use_uint32(tmp_path):
    vocab = {i: bytes([i]) for i in range(256)}
    vocab[70_000] = b"<|big|>"
    tok = Tokenizer(vocab, [], ["<|big|>"])
    src = tmp_path / "in.txt"
    src.write_text("a<|big|>b")
    tok.encode_file(src, tmp_path / "ids.npy", progress=False)
    ids = np.load(tmp_path / "ids.npy")
    assert ids.dtype == np.uint32 and ids.tolist() == [97, 70_000, 98]


def test_empty_file(tmp_path, model):
    src = tmp_path / "in.txt"
    src.write_bytes(b"")
    assert model[0].encode_file(src, tmp_path / "ids.npy", progress=False) == 0
    assert np.load(tmp_path / "ids.npy").shape == (0,)


@pytest.mark.parametrize("workers", [1, 2])
def test_invalid_utf8_names_offset_and_keeps_old_output(tmp_path, model, workers):
    tok = model[0]
    data = TEXT.encode("utf-8")
    bad_at = len(data) - 500
    src = tmp_path / "in.txt"
    src.write_bytes(data[:bad_at] + b"\xff" + data[bad_at:])
    out = tmp_path / "ids.npy"
    out.write_bytes(b"previous")
    with pytest.raises(InvalidUTF8Error) as info:
        tok.encode_file(src, out, num_workers=workers, chunk_size=256, progress=False)
    assert info.value.offset == bad_at and str(src) in str(info.value)
    assert out.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["ids.npy", "in.txt"]
    tok.encode_file(src, out, errors="replace", chunk_size=256, progress=False)
    assert np.load(out).tolist() == tok.encode(data[:bad_at].decode() + "\ufffd" + data[bad_at:].decode())


def test_invalid_utf8_early_stops_every_thread(tmp_path, model):
    """The threads ahead of a chunk with invalid UTF-8 wait for it to be written: they must stop too."""
    data = TEXT.encode("utf-8") * 8
    src = tmp_path / "in.txt"
    src.write_bytes(data[:100] + b"\xc3\x28" + data[100:])
    with pytest.raises(InvalidUTF8Error) as info:
        model[0].encode_file(src, tmp_path / "ids.npy", num_workers=3, chunk_size=300, progress=False)
    assert info.value.offset == 100
    assert sorted(os.listdir(tmp_path)) == ["in.txt"]


def test_bad_paths(tmp_path, model):
    tok = model[0]
    src = tmp_path / "in.txt"
    src.write_text("hello")
    with pytest.raises(FileNotFoundError, match="no such file"):
        tok.encode_file(tmp_path / "missing.txt", tmp_path / "ids.npy")
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        tok.encode_file(src, tmp_path / "nodir" / "ids.npy")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        tok.encode_file(src, tmp_path)
    with pytest.raises(ValueError, match="num_workers=0"):
        tok.encode_file(src, tmp_path / "ids.npy", num_workers=0)
    with pytest.raises(ValueError, match="errors='ignore'"):
        tok.encode_file(src, tmp_path / "ids.npy", errors="ignore")
    assert not isinstance(BPEInputError("x"), OSError)


@given(st.lists(st.one_of(fragments, st.sampled_from(SPECIALS)), max_size=60), st.integers(1, 400),
       st.integers(1, 3))
def test_any_chunk_size_and_threads_equal_encode(model, pieces, chunk_size, workers):
    tok = model[0]
    text = "".join(pieces)
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "in.txt")
        with open(src, "wb") as f:
            f.write(text.encode("utf-8"))
        out = os.path.join(d, "ids.npy")
        n = tok.encode_file(src, out, num_workers=workers, chunk_size=chunk_size, progress=False)
        ids = np.load(out).tolist()
    assert n == len(ids) and ids == tok.encode(text)


@pytest.mark.parametrize("kind", ["python", "regex", "custom-pattern"])
def test_other_tiers_and_engines(tmp_path, kind):
    """The Python tier, the regex engine and a custom pattern (cut only at special tokens) give encode's ids."""
    pattern = r"\w+|\s+|[^\w\s]+" if kind == "custom-pattern" else None
    vocab, merges = reference_train_text(TEXT, 330, SPECIALS)
    options = {"backend": "python"} if kind == "python" else {"engine": "regex"}
    tok = Tokenizer(vocab, merges, SPECIALS, **({"pattern": pattern} if pattern else {}), **options)
    src = tmp_path / "in.txt"
    src.write_bytes(TEXT.encode("utf-8"))
    for workers, chunk in [(1, None), (2, 200)]:
        tok.encode_file(src, tmp_path / "ids.npy", num_workers=workers, chunk_size=chunk, progress=False)
        expected = reference_encode(TEXT, vocab, merges, SPECIALS, pattern=pattern)
        assert np.load(tmp_path / "ids.npy").tolist() == expected
    bad = tmp_path / "bad.txt"
    bad.write_bytes(TEXT.encode("utf-8")[:1000] + b"\xff" + TEXT.encode("utf-8"))
    with pytest.raises(InvalidUTF8Error) as info:
        tok.encode_file(bad, tmp_path / "ids.npy", num_workers=2, chunk_size=200, progress=False)
    assert info.value.offset == 1000


def test_file_changed_while_encoding(tmp_path, model, monkeypatch):
    """A file that grows while it is read is an error naming it; the old output stays, no temporary file."""
    import bpe_numba.encoding as E

    tok = model[0]
    src = tmp_path / "in.txt"
    src.write_bytes(TEXT.encode("utf-8"))
    out = tmp_path / "ids.npy"
    out.write_bytes(b"previous")
    real = E.ThreadEncoder.encode

    def encode_and_append(self, data, *args, **kwargs):
        with open(src, "ab") as f:
            f.write(b"more")
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(E.ThreadEncoder, "encode", encode_and_append)
    with pytest.raises(FileChangedError, match="the file changed while it was read") as info:
        tok.encode_file(src, out, num_workers=2, chunk_size=500, progress=False)
    assert str(src) in str(info.value)
    assert out.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["ids.npy", "in.txt"]


def test_progress_bar(tmp_path, model, capfd):
    src = tmp_path / "in.txt"
    src.write_bytes(TEXT.encode("utf-8"))
    model[0].encode_file(src, tmp_path / "ids.npy", chunk_size=1000, progress=True)
    assert "encode" in capfd.readouterr().err


def test_memory_does_not_grow_with_the_file(tmp_path, model, monkeypatch):
    """Peak memory (numpy's allocations, traced) is about chunk size x threads: the same for a file 4 times
    larger. The caches are made small here, so the chunks' share is what is measured."""
    import tracemalloc

    import bpe_numba.encoding as E

    monkeypatch.setattr(E, "_CACHE_SIZES", (1 << 12, 1 << 8, 1 << 14))
    vocab, merges = reference_train_text(TEXT, 400, SPECIALS)
    tok = Tokenizer(vocab, merges, SPECIALS, backend="kernels")
    block = TEXT.encode("utf-8")
    peaks = []
    for size in (4 << 20, 16 << 20):
        src = tmp_path / f"{size}.txt"
        src.write_bytes(block * (size // len(block)))
        tok.encode_file(src, tmp_path / "ids.npy", num_workers=2, chunk_size=256 << 10, progress=False)  # warm
        tracemalloc.start()
        try:
            tok.encode_file(src, tmp_path / "ids.npy", num_workers=2, chunk_size=256 << 10, progress=False)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    small, large = peaks
    assert large < small + (2 << 20), f"peak {small / 1e6:.1f} MB for 4 MiB, {large / 1e6:.1f} MB for 16 MiB"
    assert large < 16 << 20, f"peak {large / 1e6:.1f} MB with 256 KiB chunks"
