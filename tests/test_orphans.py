"""A caller that is killed leaves nothing running: SIGKILL or SIGTERM to ``bpe-numba train``, or to a process
inside ``train_bpe``, ends the training helper and every worker within 2 s (none of them can clean up after
a SIGKILL, so each must notice that its parent is gone). ``encode_file`` runs on threads of the caller and
starts no process (test_interrupt.py checks that)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from test_interrupt import big_file  # noqa: F401 - a fixture: 40 MB of random words
from test_interrupt import ours

SCRIPT = r"""
import sys
from bpe_numba import train_bpe

print("started", flush=True)
# The helper, and its own pre-tokenization workers.
train_bpe(sys.argv[1], 20000, ["<|endoftext|>"], num_workers=2, chunk_size=4 << 20, engine="regex", progress=False)
print("finished", flush=True)
"""

GONE_WITHIN = 2.0  # seconds after the caller is killed
START_WITHIN = 90.0  # seconds for the helper / workers to appear (a cold Numba cache compiles first)
MARK = "BPE_NUMBA_TEST_RUN"  # in the caller's environment, so inherited by every process it starts


def _started_by(run: str) -> list[psutil.Process]:
    """Every live process (zombies excluded) whose environment carries ``MARK=run``: all that the caller
    started, directly or not, wherever they were reparented to."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(MARK) == run and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:
            pass
    return found


def _spawned(run: str) -> list[psutil.Process]:
    """The helper and worker processes among them."""
    found = []
    for p in _started_by(run):
        try:
            if ours(p):
                found.append(p)
        except psutil.Error:
            pass
    return found


def _describe(p: psutil.Process) -> str:
    try:
        return f"{p.pid}: {' '.join(p.cmdline())[:120]}"
    except psutil.Error:
        return str(p.pid)


@pytest.mark.slow
@pytest.mark.parametrize(
    "job, sig, expected, delay",
    [
        pytest.param("cli", signal.SIGKILL, 1, 1.5, id="cli-sigkill"),  # the helper (its workers are threads)
        pytest.param("cli", signal.SIGKILL, 1, 0.0, id="cli-sigkill-helper-starting"),
        pytest.param("cli", signal.SIGTERM, 1, 1.5, id="cli-sigterm"),
        pytest.param("train-regex", signal.SIGKILL, 3, 1.5, id="train-regex-sigkill"),  # helper + its 2 workers
    ],
)
def test_killed_caller_leaves_nothing_running(tmp_path, big_file, package_env, job, sig, expected, delay):
    if job == "cli":
        cmd = [sys.executable, "-m", "bpe_numba", "train", str(big_file), "--vocab-size", "20000", "--no-progress"]
    else:
        cmd = [sys.executable, "-c", SCRIPT, str(big_file), job]
    run = f"{os.getpid()}-{time.monotonic_ns()}"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(package_env, **{MARK: run}),
                            cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + START_WITHIN
        seen: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None and len(seen) < expected:
            seen.update(p.pid for p in _spawned(run))
            time.sleep(0.02)
        assert len(seen) >= expected, (
            f"{expected} helper/worker process(es) did not appear within {START_WITHIN:.0f} s: "
            f"{proc.communicate()[1].decode()[-3000:]}"
        )
        time.sleep(delay)  # 0: the children are still starting; 1.5 s: well into the job
        assert proc.poll() is None, f"{job} ended before the signal: {proc.communicate()[1].decode()[-3000:]}"

        proc.send_signal(sig)
        proc.wait(timeout=30)
        killed = time.monotonic()
        while _started_by(run) and time.monotonic() - killed < GONE_WITHIN:
            time.sleep(0.05)
        leftover = [_describe(p) for p in _started_by(run)]
        assert not leftover, f"still running {GONE_WITHIN:.0f} s after {sig.name} to the caller: {leftover}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in _started_by(run):  # our own descendants: do not leak them into later tests
            try:
                p.kill()
            except psutil.Error:
                pass
