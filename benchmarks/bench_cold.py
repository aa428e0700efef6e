"""Cold start: bpe_numba's first run with an EMPTY Numba cache, then warm runs, whole process.

    python benchmarks/bench_cold.py [--repeat 7] [--cases corpus_en,cli_train] [--json OUT]

For each case a new temporary folder stands in for every cache bpe_numba and Numba may use
(``NUMBA_CACHE_DIR``, ``BPE_NUMBA_CACHE_DIR`` and ``XDG_CACHE_HOME`` point into it, and it is the working
directory), so the first process finds nothing compiled. That process runs once (whole process, timed
from outside). Any process a run leaves behind (a background compile, however detached: found by that
folder in its environment) is waited for before the next run, so the warm runs start on a filled cache and
an idle machine; such processes are reported with how long they ran on after the run ended. Then
``--repeat`` fresh processes with the same (now warm) cache; their median.

Cases (each run with ``sys.executable``):
  corpus_en  ``python -c "from bpe_numba import train_bpe; train_bpe(CORPUS_EN, 500, ['<|endoftext|>'])"``
             with CS336's ``corpus.en`` (``$BPE_NUMBA_FIXTURES``, default ``../shared/cs336``)
  cli_train  ``python -m bpe_numba train``: the 10 MB synthetic demo corpus at vocab 10000 (--demo-mb)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

try:  # a module of the benchmarks package (python -m benchmarks), or a script beside bench_train.py
    from . import bench_encode, bench_train
except ImportError:
    import bench_encode
    import bench_train

CASES = ("corpus_en", "cli_train")
LINGER_WAIT_S = 600.0  # how long to wait for processes a run left behind


def case_command(case: str, demo_mb: float | None = None) -> tuple[list[str], str, str]:
    """``(argv, label, input)`` of a case; raises FileNotFoundError when its input is missing."""
    if case == "corpus_en":
        path = os.path.join(bench_encode.fixture_dir(), "corpus.en")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found (set BPE_NUMBA_FIXTURES to the CS336 fixtures folder)")
        code = f"from bpe_numba import train_bpe; train_bpe({path!r}, 500, ['<|endoftext|>'])"
        return [sys.executable, "-c", code], 'train_bpe("corpus.en", 500, ["<|endoftext|>"])', "CS336 corpus.en"
    if case == "cli_train":
        extra = [] if demo_mb is None else ["--demo-size-mb", f"{demo_mb:g}"]
        size = "10 MB" if demo_mb is None else f"{demo_mb:g} MB"
        return ([sys.executable, "-m", "bpe_numba", "train", *extra], " ".join(["python -m bpe_numba train", *extra]),
                f"synthetic demo, {size}")
    raise ValueError(f"unknown case {case!r}; choose from {', '.join(CASES)}")


def cache_env(folder: str) -> dict:
    """The environment with every cache bpe_numba and Numba use pointed into ``folder``."""
    env = dict(os.environ)
    env.update(NUMBA_CACHE_DIR=os.path.join(folder, "numba"), BPE_NUMBA_CACHE_DIR=os.path.join(folder, "bpe_numba"),
               XDG_CACHE_HOME=os.path.join(folder, "xdg"))
    return env


def left_running(folder: str) -> list:
    """The live processes, other than this one, whose environment points ``BPE_NUMBA_CACHE_DIR`` into
    ``folder``: what the runs of a case left behind, however detached (a daemon reparented to init is no
    longer anyone's descendant, but it keeps the environment it was started with)."""
    import psutil

    mine = cache_env(folder)["BPE_NUMBA_CACHE_DIR"]
    found = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.status() != psutil.STATUS_ZOMBIE \
                    and p.environ().get("BPE_NUMBA_CACHE_DIR") == mine:
                found.append(p)
        except psutil.Error:
            pass
    return found


def _cmdline(p, limit: int = 160) -> str:
    import psutil

    try:
        text = " ".join(p.cmdline())
    except psutil.Error:
        return "?"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _running(p) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def measure(argv: list[str], case: str, timeout: float | None, folder: str) -> dict:
    """One whole-process run of a case on the caches in ``folder``, then a wait (up to LINGER_WAIT_S) for
    the processes it left running; those add ``left`` (their command lines), ``left_s`` (how long they ran
    on after the run ended) and ``left_still_running``."""
    res = bench_train.run_measured(argv, case, None, timeout, env=cache_env(folder), cwd=os.path.join(folder, "cwd"))
    end = time.perf_counter()
    procs = left_running(folder)
    if procs:
        res["left"] = [_cmdline(p) for p in procs]
        while procs and time.perf_counter() < end + LINGER_WAIT_S:
            time.sleep(0.05)
            procs = [p for p in procs if _running(p)]
        res.update(left_s=time.perf_counter() - end, left_still_running=len(procs))
    return res


def lingered(res: dict) -> str:
    """What a run left running after its exit, or ""."""
    if not res.get("left"):
        return ""
    still = res["left_still_running"]
    return (f"{len(res['left'])} process(es) ran on {res['left_s']:.1f} s after it exited"
            + (f" ({still} still running)" if still else "") + ": " + "; ".join(res["left"]))


def run_case(case: str, repeat: int, timeout: float | None, demo_mb: float | None = None, say=print) -> dict:
    """One cold run on an empty cache, then ``repeat`` warm runs; returns the figures (``ok`` False with an
    ``error`` when a run failed)."""
    argv, label, what = case_command(case, demo_mb)
    folder = tempfile.mkdtemp(prefix="bench_cold_")
    out: dict = {"case": case, "label": label, "input": what, "command": argv}
    try:
        os.makedirs(os.path.join(folder, "cwd"))
        say(f"{label}: empty cache ...")
        cold = measure(argv, case, timeout, folder)
        out["cold"] = _slim(cold)
        if not cold.get("ok"):
            out.update(ok=False, error=f"empty-cache run: {cold.get('error')}")
            return out
        linger = lingered(cold)
        say(f"{label}: empty cache {cold['wall_s']:.2f} s" + (f"; {linger}" if linger else ""))
        warm = []
        for r in range(repeat):
            res = measure(argv, case, timeout, folder)
            warm.append(_slim(res))
            if not res.get("ok"):
                out.update(ok=False, error=f"warm run {r + 1}: {res.get('error')}", warm=warm)
                return out
            say(f"{label}: warm cache run {r + 1}/{repeat}: {res['wall_s']:.2f} s")
        walls = [x["wall_s"] for x in warm]
        out.update(ok=True, warm=warm, cold_s=cold["wall_s"], warm_median_s=statistics.median(walls),
                   warm_min_s=min(walls), warm_max_s=max(walls), runs=len(walls),
                   peak_rss=max([cold["peak_rss"]] + [x["peak_rss"] for x in warm]),
                   lingered=[s for s in map(lingered, [cold] + warm) if s])
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _slim(res: dict) -> dict:
    keep = ("ok", "error", "wall_s", "peak_rss", "returncode", "left", "left_s", "left_still_running", "stderr_tail")
    return {k: res[k] for k in keep if k in res}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7, help="warm runs per case, median shown (default 7)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"any of {','.join(CASES)}")
    ap.add_argument("--demo-mb", type=float, default=None, help="cli_train's --demo-size-mb (default: its own, 10)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per process before it is killed")
    ap.add_argument("--json", dest="json_out", help="write the figures here")
    a = ap.parse_args(argv)
    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    bad = [c for c in cases if c not in CASES]
    if bad or a.repeat < 1:
        ap.error(f"choose cases from {', '.join(CASES)} and --repeat >= 1")
    results, code = [], 0
    for c in cases:
        try:
            res = run_case(c, a.repeat, a.timeout, a.demo_mb)
        except FileNotFoundError as e:
            print(f"{c}: skipped, {e}")
            continue
        results.append(res)
        if not res["ok"]:
            print(f"{c}: FAILED: {res['error']}", file=sys.stderr)
            code = 1
            continue
        print(f"{res['label']}: empty cache {res['cold_s']:.2f} s; warm cache median {res['warm_median_s']:.2f} s "
              f"({res['warm_min_s']:.2f}-{res['warm_max_s']:.2f}, {res['runs']} runs); "
              f"peak {res['peak_rss'] / 2**20:,.0f} MB")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(results, f, indent=1)
    return code


if __name__ == "__main__":
    sys.exit(main())
