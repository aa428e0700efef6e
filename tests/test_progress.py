"""Progress is an option, not a side effect: bars on stderr when asked, silence otherwise."""

from __future__ import annotations

import re

import pytest

from bpe_numba import count_pretokens, train_bpe
from reference import reference_train_text

TEXT = "the quick brown fox jumps over the lazy dog; the dog sleeps.\n" * 200


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(TEXT.encode())
    return path


def test_progress_true_draws_a_merge_bar_on_stderr(corpus, capfd):
    n = len(reference_train_text(TEXT, 280)[1])
    assert n == 24  # the corpus fills the vocab, so the bar total is the merge count
    train_bpe(corpus, 280, progress=True, num_workers=1)
    out, err = capfd.readouterr()
    assert out == ""
    assert "merge" in err
    assert re.search(rf"\b\d+/{n}\b", err), f"no 'k/{n}' counter in the bar: {err!r}"


@pytest.mark.parametrize("progress", [False, None])  # None: stderr is captured here, not a terminal
@pytest.mark.parametrize("workers, chunk_size", [(1, None), (2, 64)])
def test_no_output_when_not_asked(corpus, capfd, progress, workers, chunk_size):
    train_bpe(corpus, 300, progress=progress, num_workers=workers, chunk_size=chunk_size)
    count_pretokens(corpus, progress=progress, num_workers=workers, chunk_size=chunk_size)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
