"""The bpe-numba command, through a subprocess: train -> encode -> inspect, and every bad-argument path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bpe_numba import Tokenizer

CORPUS = ("Once upon a time there was a cat.<|endoftext|>The cat's ball rolled away! 42 days later...\n") * 300


def run(args, env, cwd, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "bpe_numba", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def trained(workdir, package_env):
    out = run(["train", "corpus.txt", "--vocab-size", "300", "--special-token", "<|endoftext|>",
               "--workers", "1", "--out", "model", "--json"], package_env, workdir)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_train_writes_model_and_reports(trained, workdir):
    from bpe_numba import train_bpe

    vocab, merges = train_bpe(workdir / "corpus.txt", 300, ["<|endoftext|>"], num_workers=1, progress=False)
    tok = Tokenizer.from_files(workdir / "model" / "vocab.json", workdir / "model" / "merges.txt")
    assert tok.vocab == vocab and tok.merges == merges and tok.special_tokens == ["<|endoftext|>"]
    assert trained["merges"] == len(merges) and trained["vocab_size"] == 300
    assert set(trained["seconds"]) >= {"pretokenize", "intern", "merges", "write", "total"}
    assert trained["unique_pretokens"] > 0 and trained["peak_rss_mb"]["main"] > 0
    longest = trained["longest_tokens"][0]
    assert longest["bytes"] == max(len(b) for i, b in vocab.items() if i != 256)
    assert sorted(p.name for p in (workdir / "model").iterdir()) == ["bpe_numba.json", "merges.txt", "vocab.json"]


def test_train_human_report(workdir, package_env):
    out = run(["train", "corpus.txt", "--vocab-size", "280", "--workers", "1"], package_env, workdir)
    assert out.returncode == 0, out.stderr
    assert "merges" in out.stdout and "pre-tokenize" in out.stdout and "longest tokens:" in out.stdout
    assert "model not saved" in out.stdout


def test_encode_then_inspect(trained, workdir, package_env):
    out = run(["encode", "--model", "model", "corpus.txt", "-o", "ids.npy", "--json"], package_env, workdir)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    tok = Tokenizer.from_files(workdir / "model" / "vocab.json", workdir / "model" / "merges.txt")
    ids = np.load(workdir / "ids.npy")
    assert ids.tolist() == tok.encode(CORPUS) and report["tokens"] == len(ids)
    assert report["bytes_per_token"] == pytest.approx(len(CORPUS.encode()) / len(ids), rel=1e-3)

    out = run(["inspect", "model", "--sample", "corpus.txt", "--json"], package_env, workdir)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["vocab_size"] == 300 and info["special_tokens"] == {"<|endoftext|>": 256}
    assert info["sample_tokens"] == len(ids)
    out = run(["inspect", "model"], package_env, workdir)
    assert out.returncode == 0 and "bytes/token" in out.stdout, out.stderr


def test_train_on_embedded_default(tmp_path, package_env):
    out = run(["train", "--demo-size-mb", "0.3", "--vocab-size", "400", "--json"], package_env, tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["special_tokens"] == ["<|endoftext|>"] and report["merges"] == 400 - 257
    assert list(tmp_path.iterdir()) == [], "the embedded corpus must not be left behind"


BAD = [
    (["train", "missing.txt"], "missing.txt: no such file"),
    (["train", "corpus.txt", "--vocab-size", "100"], "vocab_size=100 is below"),
    (["train", "corpus.txt", "--vocab-size", "ten"], "'ten' is not an integer"),
    (["train", "corpus.txt", "--workers", "0"], "0 is not positive"),
    (["train", "corpus.txt", "--special-token", ""], "empty string"),
    (["train", "corpus.txt", "--special-token", "a", "--special-token", "a"], "repeats"),
    (["train", "corpus.txt", "--out", "corpus.txt"], "is a file"),
    (["train", "bad.txt"], "invalid UTF-8 at byte offset 3"),
    (["train", "corpus.txt", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["encode", "corpus.txt", "-o", "x.npy"], "the following arguments are required: --model"),
    (["encode", "--model", "nomodel", "corpus.txt", "-o", "x.npy"], "nomodel: not a directory"),
    (["encode", "--model", "empty", "corpus.txt", "-o", "x.npy"], "vocab.json: missing"),
    (["encode", "--model", "model", "missing.txt", "-o", "x.npy"], "missing.txt: no such file"),
    (["encode", "--model", "model", "corpus.txt", "-o", "nodir/x.npy"], "does not exist; create it first"),
    (["encode", "--model", "model", "bad.txt", "-o", "x.npy"], "invalid UTF-8 at byte offset 3"),
    (["inspect", "nomodel"], "nomodel: not a directory"),
    (["inspect", "model", "--sample", "missing.txt"], "missing.txt: no such file"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_arguments_exit_2_with_one_line(trained, workdir, package_env, args, message):
    (workdir / "bad.txt").write_bytes(b"abc\xffdef")
    (workdir / "empty").mkdir(exist_ok=True)
    out = run(args, package_env, workdir)
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert message in lines[0] and "Traceback" not in out.stderr
    assert not (workdir / "x.npy").exists()


def test_no_command_prints_help(package_env, tmp_path):
    out = run([], package_env, tmp_path)
    assert out.returncode == 2 and "train" in out.stderr and "encode" in out.stderr
