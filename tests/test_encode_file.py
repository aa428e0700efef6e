"""encode_file: a .npy of ids equal to encode() of the whole file, for any workers and chunk size."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bpe_numba import BPEInputError, InvalidUTF8Error, Tokenizer
from reference import reference_encode, reference_train_text

SPECIALS = ["<|endoftext|>", "<|a|>", "<|a|><|b|>"]
TEXT = (
    "Once upon a time, a cat sat on the mat.<|endoftext|>The dog's ball rolled away!\r\n\r\n"
    "  <|a|><|b|>Über café 42 naïve 😀👍🏽 x<|a|> end\n"
) * 60


@pytest.fixture(scope="module")
def model():
    vocab, merges = reference_train_text(TEXT, 400, SPECIALS)
    return Tokenizer(vocab, merges, SPECIALS), reference_encode(TEXT, vocab, merges, SPECIALS)


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
