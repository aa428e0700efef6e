"""IdsWriter: the .npy of encode_file, written by a thread of its own with direct I/O where the file system
takes it, through the page cache otherwise; whole-block writes, the last one padded and cut, the header
rewritten with the final length; the writer thread's errors reach the caller."""

from __future__ import annotations

import errno
import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bpe_numba.npy_writer as W
from bpe_numba import Tokenizer


@pytest.fixture
def small_stage(monkeypatch):
    """Two blocks of staging and one queued array, so that small inputs cross every boundary."""
    monkeypatch.setattr(W, "STAGE", 2 * W.BLOCK)
    monkeypatch.setattr(W, "QUEUED", 1)


def write_arrays(path, arrays, dtype, direct: bool | None = None):
    with open(path, "wb") as f:
        w = W.IdsWriter(f, dtype)
        if direct is False:  # through the page cache, as where direct I/O is refused
            w.direct = W._direct_io(w.fd, on=False)
        for a in arrays:
            w.put(a)
        w.close(sum(len(a) for a in arrays))
        assert not w._thread.is_alive()
        return w


@pytest.mark.parametrize("direct", [None, False])
@pytest.mark.parametrize("dtype", ["<u2", "<u4"])
@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 5000), max_size=8))
def test_round_trip(tmp_path_factory, small_stage, direct, dtype, sizes):
    path = tmp_path_factory.mktemp("w") / "ids.npy"
    rng = np.random.default_rng(len(sizes))
    arrays = [rng.integers(0, 60000, n).astype(dtype) for n in sizes]
    write_arrays(path, arrays, np.dtype(dtype), direct)
    expected = np.concatenate(arrays) if arrays else np.zeros(0, dtype)
    got = np.load(path)
    assert got.dtype == np.dtype(dtype) and np.array_equal(got, expected)
    assert os.path.getsize(path) == 128 + expected.nbytes  # cut to its length: no padding left


@pytest.mark.parametrize("direct", [None, False])
def test_ids_ending_on_a_staging_boundary(tmp_path, small_stage, direct):
    """Header and ids filling the staging buffer exactly, once and twice: nothing left for the last write."""
    for blocks in (1, 2):
        n = (blocks * W.STAGE - 128) // 2
        arrays = [np.arange(n, dtype="<u2")]
        write_arrays(tmp_path / "ids.npy", arrays, np.dtype("<u2"), direct)
        assert np.array_equal(np.load(tmp_path / "ids.npy"), arrays[0])
        assert os.path.getsize(tmp_path / "ids.npy") == blocks * W.STAGE


def test_direct_io_where_linux_allows_it(tmp_path):
    w = write_arrays(tmp_path / "ids.npy", [np.arange(10, dtype="<u2")], np.dtype("<u2"))
    if hasattr(os, "O_DIRECT"):
        assert w.direct, "ext4, xfs and tmpfs take O_DIRECT"
    assert np.load(tmp_path / "ids.npy").tolist() == list(range(10))


def test_einval_on_a_direct_write_falls_back_to_the_page_cache(tmp_path, small_stage, monkeypatch):
    """Some file systems take the flag and refuse the writes: the same bytes then go through the page cache."""
    real = os.write
    refused = []

    def write(fd, data):
        if not refused:
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data)

    monkeypatch.setattr(W.os, "write", write)
    monkeypatch.setattr(W, "_direct_io", lambda fd, on=True: on)  # the flag taken, the writes not
    arrays = [np.arange(n, dtype="<u2") for n in (3000, 7000, 10)]
    w = write_arrays(tmp_path / "ids.npy", arrays, np.dtype("<u2"))
    assert refused and not w.direct
    assert np.array_equal(np.load(tmp_path / "ids.npy"), np.concatenate(arrays))


def test_writer_error_reaches_put_and_close(tmp_path, small_stage, monkeypatch):
    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(W.os, "write", full)
    with open(tmp_path / "ids.npy", "wb") as f:
        w = W.IdsWriter(f, np.dtype("<u2"))
        with pytest.raises(OSError, match="No space left"):
            for _ in range(10):  # the first arrays fill the staging buffer; its write fails
                w.put(np.zeros(4000, dtype="<u2"))
        with pytest.raises(OSError, match="No space left"):
            w.close(0)
        assert not w._thread.is_alive()


def test_abort_stops_the_thread(tmp_path, small_stage):
    with open(tmp_path / "ids.npy", "wb") as f:
        w = W.IdsWriter(f, np.dtype("<u2"))
        w.put(np.zeros(5000, dtype="<u2"))
        w.abort()
        assert not w._thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name == "bpe_numba-writer"]


def test_encode_file_across_many_writes(tmp_path, small_stage):
    """encode_file with staging of two blocks: many writes, the header rewritten in the file's first block."""
    text = "Once upon a time, a cat sat on the mat.<|endoftext|>Über café 42 😀\n" * 400
    tok = Tokenizer({i: bytes([i]) for i in range(256)}, [], ["<|endoftext|>"], backend="kernels")
    src = tmp_path / "in.txt"
    src.write_bytes(text.encode("utf-8"))
    n = tok.encode_file(src, tmp_path / "ids.npy", num_workers=2, chunk_size=1000, progress=False)
    ids = np.load(tmp_path / "ids.npy")
    assert n == len(ids) > 2 * W.STAGE // 2 and ids.tolist() == tok.encode(text)
