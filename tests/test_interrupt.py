"""Ctrl-C during training or corpus encoding: the run stops promptly, leaves no worker process, no
temporary file and no partial output behind. Encoding runs on threads of the calling process: it starts
no process at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

SCRIPT = r"""
import faulthandler, signal, sys
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for stacks before killing a hang
# As in a terminal: a background job of a non-interactive shell (CI scripts) inherits SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
from bpe_numba import Tokenizer, train_bpe

chunk_size = None if sys.argv[2] == "None" else int(sys.argv[2])
print("started", flush=True)
if sys.argv[3] == "train":  # millions of distinct words: seconds of counting, then of merging
    train_bpe(sys.argv[1], 20000, ["<|endoftext|>"], num_workers=2, chunk_size=chunk_size, progress=False)
else:  # GPT-2's merges on long random words: every word is merged anew, so encoding takes seconds
    fixtures = sys.argv[4]
    tok = Tokenizer.from_files(fixtures + "/gpt2_vocab.json", fixtures + "/gpt2_merges.txt", ["<|endoftext|>"])
    print("encoding", flush=True)
    tok.encode_file(sys.argv[1], "out/ids.npy", num_workers=2, chunk_size=chunk_size, progress=False)
print("finished", flush=True)
"""

EXIT_WITHIN = 10.0  # seconds after SIGINT
WORKERS_WITHIN = 90.0  # seconds to start the helper / workers (a cold Numba cache compiles first)
CHILDREN = {"train": 1, "encode": 0}  # the training helper (its workers are threads); encoding starts none


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    """~40 MB of random lowercase words: nearly every pre-token is distinct, so pre-tokenization takes
    seconds (repeated text would be counted in a fraction of a second) and the signal lands mid-way."""
    rng = np.random.default_rng(7)
    data = rng.integers(ord("a"), ord("z") + 1, size=40_000_000, dtype=np.uint8)
    data[rng.random(data.size) < 0.15] = ord(" ")
    data[rng.random(data.size) < 0.002] = ord("\n")
    path = tmp_path_factory.mktemp("interrupt") / "big.txt"
    path.write_bytes(data.tobytes())
    return path


@pytest.fixture(scope="module")
def long_words_file(tmp_path_factory):
    """~100 MB of random lowercase words of about 1,500 letters: none repeats, and each is merged anew with
    GPT-2's 50,000 merges (those over 1,024 bytes are never cached), so encoding takes seconds on two
    threads even on a quiet machine. Removed afterwards (pytest keeps its last temporary folders)."""
    rng = np.random.default_rng(8)
    data = rng.integers(ord("a"), ord("z") + 1, size=100_000_000, dtype=np.uint8)
    data[rng.random(data.size) < 1 / 1500] = ord(" ")
    path = tmp_path_factory.mktemp("interrupt") / "long_words.txt"
    path.write_bytes(data.tobytes())
    del data
    yield path
    path.unlink()


def ours(p: psutil.Process) -> bool:
    """Whether ``p`` is a helper or worker process of bpe_numba: spawned ones run multiprocessing's
    ``spawn_main``; a forked helper keeps its caller's command line and names itself."""
    return p.name() == "bpe-numba-train" or any("spawn_main" in part or "forkserver" in part for part in p.cmdline())


def _workers(proc: psutil.Process) -> list[psutil.Process]:
    found = []
    for child in proc.children(recursive=True):
        try:
            if ours(child):
                found.append(child)
        except psutil.Error:
            pass
    return found


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.slow
@pytest.mark.parametrize(
    "job, chunk_size, target, delay",
    [
        pytest.param("train", None, "parent", 0.5, id="train-parent-early"),  # start-up or counting
        pytest.param("train", None, "process-group", 4.0, id="train-group-late"),  # merging
        pytest.param("train", 1 << 20, "parent", 4.0, id="train-1MiB-chunks-parent-late"),
        pytest.param("train", 1 << 20, "process-group", 0.5, id="train-1MiB-chunks-group-early"),
        pytest.param("encode", None, "process-group", 1.0, id="encode-default-chunks-group"),
        pytest.param("encode", 1 << 20, "parent", 1.0, id="encode-1MiB-chunks-parent"),
    ],
)
def test_sigint_stops_and_cleans_up(request, tmp_path, package_env, cs336_dir, job, chunk_size, target, delay):
    big_file = request.getfixturevalue("big_file" if job == "train" else "long_words_file")
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    (tmp_path / "out").mkdir()
    env = dict(package_env, TMPDIR=str(tmpdir), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(big_file), str(chunk_size), job, str(cs336_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
        start_new_session=True,  # its own process group: a group SIGINT cannot reach pytest
    )
    ps = psutil.Process(proc.pid)
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + WORKERS_WITHIN
        while time.monotonic() < deadline and proc.poll() is None:
            for w in _workers(ps):
                seen.setdefault(w.pid, w)
            if job == "encode" and os.listdir(tmp_path / "out"):  # the .npy's temporary file: encoding began
                break
            if job == "train" and len(_alive(list(seen.values()))) >= CHILDREN[job]:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"{job} ended before the signal: {proc.communicate()}"
        if job == "train":
            assert len(seen) >= 1, f"no helper process appeared within {WORKERS_WITHIN:.0f} s"
        else:
            assert os.listdir(tmp_path / "out"), f"encoding did not begin within {WORKERS_WITHIN:.0f} s"
        time.sleep(delay)  # early: workers still starting; late: deep in their chunks
        assert proc.poll() is None, f"{job} ended before the signal: {proc.communicate()}"
        for w in _workers(ps):
            seen.setdefault(w.pid, w)

        if target == "parent":
            os.kill(proc.pid, signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        sent = time.monotonic()
        while proc.poll() is None and time.monotonic() - sent < EXIT_WITHIN:
            try:
                for w in _workers(ps):  # a pool that replaces workers after the signal counts too
                    seen.setdefault(w.pid, w)
            except psutil.Error:
                pass
            time.sleep(0.05)
        exited = proc.poll() is not None
        elapsed = time.monotonic() - sent
        if not exited:
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(1.0)
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert exited, f"still running {EXIT_WITHIN:.0f} s after SIGINT; stderr:\n{err.decode()[-6000:]}"
        assert b"finished" not in out
        assert proc.returncode != 0
        if job == "encode":  # threads stop within a kernel slice; the rest is the interpreter's exit
            assert b"KeyboardInterrupt" in err, err.decode()[-3000:]
            assert not seen, f"encoding started processes: {list(seen)}"
            assert elapsed < 3.0, f"encoding took {elapsed:.1f} s to stop after SIGINT"

        # Workers must be gone with the parent (a short grace for the OS to deliver their exit).
        grace = time.monotonic() + 3.0
        while _alive(list(seen.values())) and time.monotonic() < grace:
            time.sleep(0.05)
        leftover = _alive(list(seen.values()))
        assert not leftover, (
            f"worker(s) {[p.pid for p in leftover]} still alive after the parent exited in {elapsed:.1f} s"
        )
        assert sorted(os.listdir(tmpdir)) == [], "temporary files left behind in TMPDIR"
        assert sorted(os.listdir(tmp_path / "out")) == [], "partial output or temporary file left behind"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for p in _alive(list(seen.values())):  # our own descendants: do not leak them into later tests
            try:
                p.kill()
            except psutil.Error:
                pass
