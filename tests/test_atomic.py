"""Atomic writes (bpe_numba.atomic): permissions as a plain open()/mkdir() would give them under the caller's
umask, every writer going through the helper, and the clean-up of what a SIGKILLed write leaves behind."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bpe_numba import Tokenizer, train_bpe
from bpe_numba.atomic import atomic_directory, atomic_file, atomic_write_bytes, remove_stale_temps, temp_name
from bpe_numba.formats import export_hf_tokenizer_json, export_tiktoken, save_model
from bpe_numba.synthetic import write_corpus

VOCAB = {i: bytes([i]) for i in range(256)} | {256: b"ab"}
MERGES = [(b"a", b"b")]


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(VOCAB, MERGES, ["<|endoftext|>"])


def test_new_files_and_directories_follow_the_umask(tmp_path, umask, tok):
    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    model = tmp_path / "model"
    save_model(model, VOCAB, MERGES, ["<|endoftext|>"])
    assert mode(model) == dir_mode
    assert {p.name: mode(p) for p in model.iterdir()} == dict.fromkeys(
        ["vocab.json", "merges.txt", "bpe_numba.json"], file_mode)
    text = tmp_path / "in.txt"
    text.write_text("ab ab<|endoftext|>abc\n" * 50)
    tok.encode_file(text, tmp_path / "ids.npy", progress=False)
    write_corpus(tmp_path / "corpus.txt", 10_000)
    export_hf_tokenizer_json(tmp_path / "tokenizer.json", VOCAB, MERGES)
    export_tiktoken(tmp_path / "model.tiktoken", VOCAB, merges=MERGES)
    for name in ("ids.npy", "corpus.txt", "tokenizer.json", "model.tiktoken"):
        assert mode(tmp_path / name) == file_mode, name
    with atomic_directory(tmp_path / "d") as d:
        Path(d, "x").write_bytes(b"x")
    assert mode(tmp_path / "d") == dir_mode
    out = tmp_path / "trained"
    train_bpe(text, 260, ["<|endoftext|>"], out_dir=out, progress=False)
    assert mode(out) == dir_mode and mode(out / "vocab.json") == file_mode


def test_replaced_files_keep_their_permissions(tmp_path, umask, tok):
    """Like open(path, "w") on an existing file: 0644 stays 0644 under umask 077 (it used to become 0600)."""
    text = tmp_path / "in.txt"
    text.write_text("ab ab abc\n" * 50)
    ids = tmp_path / "ids.npy"
    ids.write_bytes(b"old")
    os.chmod(ids, 0o644)
    tok.encode_file(text, ids, progress=False)
    assert mode(ids) == 0o644 and np.load(ids).tolist() == tok.encode(text.read_text())
    model = tmp_path / "model"
    save_model(model, VOCAB, MERGES)
    os.chmod(model / "vocab.json", 0o640)
    os.chmod(model / "merges.txt", 0o604)
    save_model(model, VOCAB, MERGES, ["<s>"])
    assert mode(model / "vocab.json") == 0o640 and mode(model / "merges.txt") == 0o604
    assert mode(model / "bpe_numba.json") == 0o666 & ~umask


def test_read_only_target_is_replaced_and_stays_read_only(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"old")
    os.chmod(path, 0o444)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and mode(path) == 0o444


def test_failure_inside_the_block_leaves_the_target_and_no_temp(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(path) as f:
            f.write(b"partial")
            raise KeyboardInterrupt
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "new") as d:
            Path(d, "x").write_bytes(b"x")
            raise RuntimeError("stop")
    assert sorted(os.listdir(tmp_path)) == ["f.bin"] and path.read_bytes() == b"old"


def test_a_write_its_check_rejects_leaves_the_target_and_no_temp(tmp_path):
    """``atomic_write_bytes(check=...)``: the check sees the whole new content at the temporary path; only
    when it accepts does the file replace the target."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    seen = []

    def check(temp: str) -> bool:
        seen.append((os.path.dirname(temp) == str(tmp_path), Path(temp).read_bytes()))
        return len(seen) > 1  # the first write is rejected, the second accepted

    assert atomic_write_bytes(path, b"new", check=check) is False
    assert sorted(os.listdir(tmp_path)) == ["f.bin"] and path.read_bytes() == b"old"
    assert atomic_write_bytes(path, b"newer", check=check) is True
    assert sorted(os.listdir(tmp_path)) == ["f.bin"] and path.read_bytes() == b"newer"
    assert seen == [(True, b"new"), (True, b"newer")]


HOLD = r"""
import sys, time
from bpe_numba.atomic import atomic_directory, atomic_file
d = sys.argv[1]
with atomic_directory(d + "/model") as tmp:
    open(tmp + "/vocab.json", "w").write("{")
    with atomic_file(d + "/ids.npy") as f:
        f.write(b"partial")
        print("ready", flush=True)
        time.sleep(120)
"""


def hold_temps(directory, env):
    """A process that is in the middle of writing ``directory/model`` and ``directory/ids.npy``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def hidden(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith("."))


def test_temps_of_a_killed_write_are_removed_by_the_next_save_there(tmp_path, package_env):
    killed = hold_temps(tmp_path, package_env)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    leftovers = hidden(tmp_path)
    assert len(leftovers) == 2 and all(n.endswith(".tmp") for n in leftovers)
    alive = hold_temps(tmp_path, package_env)  # a save in progress in the same folder is left alone
    try:
        in_progress = [n for n in hidden(tmp_path) if n not in leftovers]
        assert len(in_progress) == 2
        save_model(tmp_path / "model", VOCAB, MERGES)  # a new directory: cleans its parent
        assert hidden(tmp_path) == in_progress
        assert sorted(os.listdir(tmp_path / "model")) == ["bpe_numba.json", "merges.txt", "vocab.json"]
    finally:
        alive.kill()
        alive.wait(timeout=30)
    atomic_write_bytes(tmp_path / "other.txt", b"x")  # any write into the folder cleans it
    assert hidden(tmp_path) == []


def test_only_our_temporary_names_are_removed(tmp_path):
    dead = 2**22 + 12345  # above the default pid_max: no such process
    ours = Path(temp_name(str(tmp_path / "vocab.json"))).name.replace(f"-{os.getpid()}-", f"-{dead}-")
    others = [".vocab.json.tmp", ".x.bpe_numba-00000000-1-0000abcd.tmp", "vocab.json.tmp", ours[1:]]
    for name in [ours, *others]:
        (tmp_path / name).write_bytes(b"")
    assert remove_stale_temps(str(tmp_path)) == [ours]
    assert sorted(os.listdir(tmp_path)) == sorted(others)
