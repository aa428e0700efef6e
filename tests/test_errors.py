"""One exception hierarchy: every bad-input error is a BPEInputError *and* the builtin it stands for."""

from __future__ import annotations

import pickle

import pytest

import bpe_numba
from bpe_numba import (
    BPEFileNotFoundError,
    BPEInputError,
    BPEIsADirectoryError,
    BPENotADirectoryError,
    BPEPermissionError,
    BPETypeError,
    BPEValueError,
    InvalidUTF8Error,
    ModelNotSavedError,
    Tokenizer,
    count_pretokens,
    train_bpe,
)
from bpe_numba.counts_file import load_counts
from bpe_numba.formats import load_model, save_model

PAIRS = [
    (BPEValueError, ValueError),
    (BPETypeError, TypeError),
    (BPEFileNotFoundError, FileNotFoundError),
    (BPEIsADirectoryError, IsADirectoryError),
    (BPENotADirectoryError, NotADirectoryError),
    (BPEPermissionError, PermissionError),
    (InvalidUTF8Error, ValueError),
    (ModelNotSavedError, OSError),
]


def make(cls):
    if cls is InvalidUTF8Error:
        return cls("in.txt", 7, "invalid start byte")
    if cls is ModelNotSavedError:
        return cls("could not write the model to out", "out", "/tmp/bpe_numba_model_x")
    return cls("in.txt: no such file")


@pytest.mark.parametrize("cls, builtin", PAIRS, ids=[c.__name__ for c, _ in PAIRS])
def test_each_error_is_both_and_survives_pickling(cls, builtin):
    err = make(cls)
    assert isinstance(err, BPEInputError) and isinstance(err, builtin)
    for catch in (BPEInputError, builtin):
        with pytest.raises(catch):
            raise err
    copy = pickle.loads(pickle.dumps(err))  # errors cross from the helper process as themselves
    assert type(copy) is cls and str(copy) == str(err) and vars(copy) == vars(err)
    assert getattr(bpe_numba, cls.__name__) is cls and cls.__name__ in bpe_numba.__all__


def test_the_root_is_no_builtin_on_purpose():
    """BPEInputError is not a ValueError: a missing file (OSError) or a wrong type (TypeError) is bad input
    too, and ``except ValueError`` must not catch an OSError. Nothing raises the root itself."""
    assert BPEInputError.__bases__ == (Exception,)
    for builtin in (ValueError, TypeError, OSError):
        assert not issubclass(BPEInputError, builtin)
    assert not isinstance(BPEValueError("x"), OSError) and not isinstance(BPEFileNotFoundError("x"), ValueError)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("hello world hello there\n" * 20)
    return path


def bad_calls(text_file, tmp_path):
    vocab = {i: bytes([i]) for i in range(256)}
    (tmp_path / "bad.txt").write_bytes(b"ok \xff")
    (tmp_path / "a_file").write_text("x")
    return [
        (BPEFileNotFoundError, lambda: train_bpe(tmp_path / "missing.txt", 300)),
        (BPEIsADirectoryError, lambda: load_counts(tmp_path)),  # (a directory is an input of count_pretokens)
        (InvalidUTF8Error, lambda: count_pretokens(tmp_path / "bad.txt")),
        (BPETypeError, lambda: train_bpe(text_file, "300")),
        (BPEValueError, lambda: train_bpe(text_file, 100)),
        (BPETypeError, lambda: train_bpe(text_file, 300, "<|endoftext|>")),
        (BPEValueError, lambda: train_bpe(text_file, 300, ["<s>", "<s>"])),
        (BPEValueError, lambda: train_bpe(text_file, 300, num_workers=0)),
        (BPETypeError, lambda: train_bpe(text_file, 300, num_workers=1.5)),
        (BPEValueError, lambda: train_bpe(text_file, 300, errors="ignore")),
        (BPEValueError, lambda: train_bpe(text_file, 300, engine="fast")),
        (BPEValueError, lambda: train_bpe(text_file, 300, pattern="(")),
        (BPETypeError, lambda: train_bpe(text_file, 300, pattern=b"x")),
        (BPEValueError, lambda: count_pretokens(text_file, chunk_size=0)),
        (BPENotADirectoryError, lambda: train_bpe(text_file, 300, out_dir=tmp_path / "a_file")),
        (BPETypeError, lambda: Tokenizer([b"a"], [])),
        (BPEValueError, lambda: Tokenizer({0: b"a"}, [])),
        (BPEValueError, lambda: Tokenizer(vocab | {10**11: b"ab"}, [])),
        (BPETypeError, lambda: Tokenizer(vocab, []).encode(b"bytes")),
        (BPEValueError, lambda: Tokenizer(vocab, []).decode([300])),
        (BPEValueError, lambda: Tokenizer(vocab, []).encode_file(text_file, text_file)),
        (BPEFileNotFoundError, lambda: Tokenizer(vocab, []).encode_file(text_file, tmp_path / "no" / "x.npy")),
        (BPEFileNotFoundError, lambda: load_model(tmp_path / "vocab.json", tmp_path / "merges.txt")),
        (BPENotADirectoryError, lambda: save_model(tmp_path / "a_file", vocab, [])),
        (BPEValueError, lambda: save_model(tmp_path / "m", vocab, [(b"a", b"zz")])),
    ]


def test_every_bad_input_raises_a_bpe_error(text_file, tmp_path):
    for expected, call in bad_calls(text_file, tmp_path):
        with pytest.raises(BPEInputError) as info:
            call()
        assert type(info.value) is expected, (expected, info.value)


def test_encode_file_onto_its_input_leaves_it_untouched(text_file):
    before = text_file.read_bytes()
    tok = Tokenizer({i: bytes([i]) for i in range(256)}, [])
    with pytest.raises(BPEValueError, match="is the input file"):
        tok.encode_file(text_file, text_file)
    link = text_file.parent / "link.txt"
    link.symlink_to(text_file)
    with pytest.raises(BPEValueError, match="is the input file"):
        tok.encode_file(link, text_file)
    assert text_file.read_bytes() == before
