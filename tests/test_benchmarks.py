"""The benchmark suite measures the checkout it belongs to: every measured process imports this checkout's
bpe_numba, even when another copy is installed in site-packages (the results are labelled with the
checkout's ``git describe``)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKER = "import bpe_numba, json, sys; json.dump({'ok': True, 'module': bpe_numba.__file__}, open(sys.argv[1], 'w'))"


def test_measured_processes_import_the_checkout(tmp_path):
    stale = tmp_path / "site" / "bpe_numba"  # an older install that comes first on the path
    stale.mkdir(parents=True)
    (stale / "__init__.py").write_text("raise ImportError('the stale copy was imported')\n")
    result = tmp_path / "result.json"
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        from benchmarks import bench_train
        res = bench_train.run_measured([sys.executable, "-c", {WORKER!r}, {str(result)!r}], "probe",
                                       {str(result)!r}, 60, env={{"PYTHONPATH": {str(stale.parent)!r}}},
                                       cwd={str(tmp_path)!r})
        print(json.dumps(res))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res.get("ok"), res
    assert Path(res["module"]).resolve() == REPO / "bpe_numba" / "__init__.py"


def test_a_measured_process_starts_after_the_previous_one_settles(monkeypatch):
    """After a process, the next measured one waits SETTLE_S_PER_GIB seconds per GiB of its peak memory
    (the host may still be reclaiming that memory); each run records the host's steal over it."""
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks import bench_train

    monkeypatch.setattr(bench_train, "SETTLE_S_PER_GIB", 60.0)  # a ~10 MB interpreter: about half a second
    monkeypatch.setattr(bench_train, "_settled_at", 0.0)
    cmd = [sys.executable, "-c", "import time; time.sleep(0.3)"]  # lives long enough to be sampled
    first = bench_train.run_measured(cmd, "probe", None, 60)
    ended = bench_train.time.monotonic()
    assert first["ok"] and first["peak_rss"] > 0, first
    assert first["steal_s"] is None or first["steal_s"] >= 0
    second = bench_train.run_measured(cmd, "probe", None, 60)
    assert second["ok"]
    waited = bench_train.time.monotonic() - ended - second["wall_s"]
    assert waited >= 0.9 * bench_train.settle_delay(first["peak_rss"]) > 0.05

    monkeypatch.setattr(bench_train, "SETTLE_S_PER_GIB", 0.0)  # $BPE_NUMBA_BENCH_SETTLE=0: no waiting
    bench_train.run_measured(cmd, "probe", None, 60)
    started = bench_train.time.monotonic()
    third = bench_train.run_measured(cmd, "probe", None, 60)
    assert bench_train.time.monotonic() - started - third["wall_s"] < 0.5


def test_measured_processes_find_the_checkout_byte_compiled(tmp_path, monkeypatch):
    """As after ``pip install``: no measured process compiles bpe_numba's modules from source."""
    import importlib.util

    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks import bench_train

    module = REPO / "bpe_numba" / "atomic.py"
    cached = Path(importlib.util.cache_from_source(str(module)))
    cached.unlink(missing_ok=True)
    monkeypatch.setattr(bench_train, "_compiled", False)
    monkeypatch.setattr(bench_train, "SETTLE_S_PER_GIB", 0.0)
    assert bench_train.run_measured([sys.executable, "-c", "pass"], "probe", None, 60)["ok"]
    assert cached.exists() and cached.stat().st_mtime >= module.stat().st_mtime


def test_the_memory_sampler_sums_the_whole_process_tree(monkeypatch):
    """The sampler's cheap walk of ``/proc/PID/task/TID/children`` finds children and grandchildren and
    sums what psutil's full scan of the machine sums; without the children files it falls back to psutil."""
    import os
    import time

    import psutil
    import pytest

    sys.path.insert(0, str(REPO))
    from benchmarks import bench_train

    if not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists():
        pytest.skip("this kernel has no /proc/PID/task/TID/children")
    grand = ("import subprocess, sys, time; "
             "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); time.sleep(30)")
    kids = [subprocess.Popen([sys.executable, "-c", grand]) for _ in range(2)]
    try:
        me = psutil.Process()
        deadline = time.monotonic() + 20
        while sum(len(psutil.Process(k.pid).children()) for k in kids) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        everyone = [me] + me.children(recursive=True)
        ours = {k.pid for k in kids} | {c.pid for k in kids for c in psutil.Process(k.pid).children()}
        assert len(ours) == 4 and ours <= {p.pid for p in everyone}
        assert sorted(bench_train._tree_pids(os.getpid())) == sorted(p.pid for p in everyone)
        want = sum(p.memory_info().rss for p in everyone)
        assert abs(bench_train._tree_rss(me) - want) < 8 << 20  # the processes' pages move a little
        monkeypatch.setattr(bench_train, "_tree_pids", lambda pid: None)
        assert abs(bench_train._tree_rss(me) - want) < 8 << 20
    finally:
        for k in kids:
            try:
                for c in psutil.Process(k.pid).children():
                    c.kill()
            except psutil.Error:
                pass
            k.kill()
            k.wait()


def test_count_calls_are_split_into_counting_and_the_rest(tmp_path, monkeypatch):
    """``bench_count`` times the counting of each call (first chunk started to last chunk finished) inside
    the whole call, on every worker count, and leaves ``corpus_count`` as it found it."""
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks import bench_count
    from bpe_numba import corpus_count

    words = [f"w{i}x{i * 7919 % 1013}" for i in range(5000)]
    text = "<|endoftext|>".join(" ".join(words[(d * 37 + j) % len(words)] for j in range(300)) for d in range(400))
    path = tmp_path / "t.txt"
    path.write_text(text)
    inner = corpus_count._count_chunk
    res = bench_count.measure(str(path), [1, 2], 2)
    assert corpus_count._count_chunk is inner
    assert res["same_counts"]
    for w in ("1", "2"):
        calls, counting = res["seconds"][w], res["counting_seconds"][w]
        assert len(counting) == len(calls) == 2
        assert all(c is not None and 0 < c < s for c, s in zip(counting, calls)), (w, calls, counting)
