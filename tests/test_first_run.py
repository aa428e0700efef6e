"""The first run on a new machine (empty caches) and the background warm-up of the kernels."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_tokenizer import _MEMORY_SCRIPT

TESTS_DIR = Path(__file__).resolve().parent


def _events(cache: Path) -> list[dict]:
    log = cache / "warmup.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _wait_for_outcome(cache: Path, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = _events(cache)
        if any(e["event"] in ("ready", "failed") for e in events):
            return events
        time.sleep(0.5)
    pytest.fail(f"no background warm-up finished within {timeout:.0f} s; events: {_events(cache)}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0)
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _stop_warmups(cache: Path) -> None:
    """End the background warm-ups this test caused (their pids are in the log), so none writes into a
    removed temporary directory."""
    for e in _events(cache):
        if e["event"] == "start" and _alive(e["pid"]):
            os.kill(e["pid"], signal.SIGTERM)


@pytest.fixture
def fresh_env(tmp_path, package_env):
    """bpe_numba's cache in a new directory (Numba's own cache stays where it is, so a warm-up loads)."""
    env = dict(package_env, BPE_NUMBA_CACHE_DIR=str(tmp_path / "bpe_cache"))
    yield env
    _stop_warmups(tmp_path / "bpe_cache")


def _run(code: str, env: dict, timeout: float = 120) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.skipif(os.name != "posix", reason="the background warm-up is POSIX only")
def test_two_concurrent_starts_run_one_warmup_that_ends_by_itself(fresh_env, tmp_path):
    cache = tmp_path / "bpe_cache"
    ready = "from bpe_numba.tiers import kernels_ready; print(kernels_ready())"
    assert _run(ready, fresh_env).split() == ["False"]
    start = "from bpe_numba.tiers import start_background_warmup as s; print(s())"
    starters = [subprocess.Popen([sys.executable, "-c", start], stdout=subprocess.PIPE, text=True, env=fresh_env)
                for _ in range(2)]
    started = [p.communicate(timeout=60)[0].split() for p in starters]
    assert ["True"] in started, started
    events = _wait_for_outcome(cache, timeout=300)
    assert [e["event"] for e in events if e["event"] in ("start", "ready", "failed")] == ["start", "ready"], events
    assert all(e["event"] in ("start", "ready", "busy", "ready already") for e in events), events
    pid = next(e["pid"] for e in events if e["event"] == "start")
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pid), "the warm-up process did not end by itself after finishing"
    assert _run(ready, fresh_env).split() == ["True"]
    # Ready now: another start does nothing.
    assert _run(start, fresh_env).split() == ["False"]


def test_no_warmup_when_the_cache_dir_is_not_writable(tmp_path, package_env):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    env = dict(package_env, BPE_NUMBA_CACHE_DIR=str(blocker / "cache"))
    code = (
        "from bpe_numba.tiers import start_background_warmup, kernels_ready; from bpe_numba import train_bpe; "
        "import sys; t = {}; train_bpe(sys.argv[1], 300, timings=t); "
        "print(start_background_warmup(), kernels_ready(), t['backend'])"
    )
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world " * 100)
    out = subprocess.run([sys.executable, "-c", code, str(corpus)], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False", "python"]


def test_a_failed_warmup_is_not_retried(fresh_env, tmp_path):
    from bpe_numba import tiers as W

    code = "from bpe_numba import tiers as W; print(W._failed_path())"
    failed = Path(_run(code, fresh_env).strip())
    failed.parent.mkdir(parents=True)
    failed.write_text("{}")
    assert _run("from bpe_numba.tiers import start_background_warmup as s; print(s())", fresh_env).split() == ["False"]
    assert not _events(tmp_path / "bpe_cache")
    assert W.choose_backend("kernels") == "kernels"


def test_ready_needs_the_listed_numba_files_unchanged(fresh_env, tmp_path):
    code = ("import sys; from bpe_numba import tiers as W; "
            "W._write_marker({'files': {p: W._stamp(p) for p in sys.argv[1:]}}); print(W.kernels_ready())")
    index, data = tmp_path / "k.nbi", tmp_path / "k.1.nbc"
    index.write_bytes(b"index")
    data.write_bytes(b"data" * 100)
    out = subprocess.run([sys.executable, "-c", code, str(index), str(data)], capture_output=True, text=True,
                         env=fresh_env)
    assert out.stdout.split() == ["True"], out.stderr
    ready = "from bpe_numba.tiers import kernels_ready; print(kernels_ready())"
    with open(data, "r+b") as f:  # truncated: a damaged cache is never claimed ready
        f.truncate(100)
    assert _run(ready, fresh_env).split() == ["False"]
    data.write_bytes(b"data" * 100)  # rewritten (same size, another time)
    os.utime(data, ns=(1, 1))
    assert _run(ready, fresh_env).split() == ["False"]
    data.unlink()
    assert _run(ready, fresh_env).split() == ["False"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is only dependable on Linux")
def test_cs336_tests_pass_on_empty_caches(cs336_dir, tmp_path, package_env):
    """The public CS336 checks in a fresh process whose Numba and bpe_numba caches are empty."""
    pytest.importorskip("psutil")
    pytest.importorskip("tiktoken")
    tiktoken_cache = cs336_dir.parent / "tiktoken_cache"
    if not tiktoken_cache.is_dir():
        pytest.skip(f"tiktoken's gpt2 files not found at {tiktoken_cache}; it cannot download them offline")
    work = tmp_path / "work"
    work.mkdir()
    scripts = [
        ("CS336 checks", [str(TESTS_DIR / "cs336_first_run.py"), str(cs336_dir), str(work)]),
        ("encode_iterable under the memory limit",
         ["-c", _MEMORY_SCRIPT, str(cs336_dir), str(work / "stories_5M.txt"), str(TESTS_DIR)]),
    ]
    for k, (name, args) in enumerate(scripts):
        caches = {d: tmp_path / f"{d}{k}" for d in ("numba", "bpe_numba", "xdg")}
        for path in caches.values():
            path.mkdir()
        env = dict(package_env, NUMBA_CACHE_DIR=str(caches["numba"]), BPE_NUMBA_CACHE_DIR=str(caches["bpe_numba"]),
                   XDG_CACHE_HOME=str(caches["xdg"]), TIKTOKEN_CACHE_DIR=str(tiktoken_cache))
        start = time.perf_counter()
        try:
            out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600)
        finally:
            _stop_warmups(caches["bpe_numba"])
        took = time.perf_counter() - start
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout.splitlines()[-1])
        print(f"{name} on empty caches: {took:.1f} s whole process; {result}")
        if k == 0:
            assert result["failures"] == [], result
        else:
            assert result["enforced"], "the limit did not hold back a 200 MB allocation: the test proves nothing"
            assert result["n"] == result["expected"] > 1_000_000 and result["mismatches"] == 0, result


AFTER_WARMUP = """
import sys
import numpy as np
import bpe_numba.merge_loop as ML
from bpe_numba import count_pretokens, train_bpe
from bpe_numba.tiers import kernels_ready

rng = np.random.default_rng(3)
data = rng.integers(97, 123, size=300_000, dtype=np.uint8)  # about 30 K distinct words
data[rng.random(data.size) < 0.15] = 32
path = sys.argv[1]
open(path, "wb").write(data.tobytes())
grows = []
grow_hash = ML.MergeLoop.grow_hash
ML.MergeLoop.grow_hash = lambda self, pairs: grows.append(pairs) or grow_hash(self, pairs)
for engine in ("numba", "regex"):
    train_bpe(path, 3000, num_workers=2, isolate=False, backend="kernels", engine=engine)
    count_pretokens(path, num_workers=2, engine=engine)
print(kernels_ready(), len(grows) > 0)
"""


def test_warmup_command_records_the_kernels_as_ready(fresh_env, tmp_path):
    """After ``bpe-numba warmup`` on empty caches, larger inputs compile nothing more: a training of several
    chunks whose count tables and pair hash table grow leaves Numba's cache files as the warm-up recorded
    them (a kernel compiled for new argument types rewrites its index file)."""
    fresh_env = dict(fresh_env, NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"))
    out = subprocess.run([sys.executable, "-m", "bpe_numba", "warmup", "--json"], capture_output=True, text=True,
                         env=fresh_env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["ready"] is True and report["kernels"] > 10, report
    code = ("import sys; from bpe_numba import Tokenizer; from bpe_numba.tiers import kernels_ready; "
            "print(kernels_ready(), Tokenizer({i: bytes([i]) for i in range(256)}, []).backend)")
    assert _run(code, fresh_env).split() == ["True", "kernels"]
    out = subprocess.run([sys.executable, "-c", AFTER_WARMUP, str(tmp_path / "words.txt")], capture_output=True,
                         text=True, env=fresh_env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]  # still ready, and the pair hash table did grow
