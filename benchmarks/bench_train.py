"""Side-by-side BPE training benchmark: bpe_numba against rustbpe, HF tokenizers and gigatoken.

    python benchmarks/bench_train.py FILE --vocab-size 10000 [--special-token "<|endoftext|>"]
        [--repeat 3] [--tools bpe_numba,rustbpe,hf,gigatoken[,python_baseline]] [--json OUT] [--no-compare]

Each run is a fresh subprocess (``_run_one.py``): wall time is measured from outside (process start to
exit, so it includes interpreter start-up and imports), and the run also reports the time of the training
call alone. Peak memory is the peak of the summed RSS of the process and all its descendants, *sampled*
every ~10 ms with psutil (a spike shorter than that can be missed; pages shared between processes are
counted once per process). Every tool does the same number of merges, ``vocab_size - 256 -
len(specials)``; see benchmarks/README.md for how each tool's vocab_size convention is translated.

Between two measured processes the machine settles (:func:`run_measured`): after a process that held a lot
of memory, the next one starts only after :data:`SETTLE_S_PER_GIB` seconds per GiB of its peak. On the
2-core virtual machine of the development, the host reclaimed the memory a process had freed over about
10 s and took CPU time from whatever ran then: after a process that had touched 4 GiB, two busy threads
lost 5-23 % of each second to the host ("steal" in ``/proc/stat``) for 10-11 s, and none after 10 s of
idling. Run back to back, each tool's run would pay for the run before it (in a round-robin, always the
same tool's). Each run's ``steal_s`` (host steal over the run, both cores, from ``/proc/stat``) is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

try:  # a module of the benchmarks package (python -m benchmarks), or a script beside _run_one.py
    from ._run_one import EXIT_MISSING
except ImportError:
    from _run_one import EXIT_MISSING

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RUNNER = os.path.join(HERE, "_run_one.py")
ALL_TOOLS = ("bpe_numba", "rustbpe", "hf", "gigatoken")  # the default --tools
TOOLS = ALL_TOOLS + ("python_baseline",)  # python_baseline: benchmarks/baseline_python.py (slow; opt in)
# Seconds to wait, per GiB of the previous measured process's peak memory, before starting the next one
# (at most SETTLE_MAX_S; see the module docstring). $BPE_NUMBA_BENCH_SETTLE overrides it (0: no waiting).
SETTLE_S_PER_GIB = float(os.environ.get("BPE_NUMBA_BENCH_SETTLE", "3"))
SETTLE_MAX_S = 15.0
_settled_at = 0.0  # time.monotonic() from which the next measured process may start


def _steal_s() -> float | None:
    """Seconds of CPU the host has taken from this virtual machine since boot (all cores), or None where
    ``/proc/stat`` has no steal field."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def steal_note(res: dict) -> str:
    """``", host steal 0.42 s"`` for a run the host took CPU time from (0.05 s or more), else ``""``."""
    steal = res.get("steal_s")
    return f", host steal {steal:.2f} s" if steal is not None and steal >= 0.05 else ""


def settle_delay(peak_rss: int) -> float:
    """Seconds to wait after a measured process whose peak memory was ``peak_rss`` bytes.

    >>> settle_delay(0)
    0.0
    """
    return min(SETTLE_MAX_S, max(0.0, SETTLE_S_PER_GIB) * peak_rss / 2**30)


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _tree_pids(root: int) -> list[int] | None:
    """``root`` and its descendants from Linux's ``/proc/PID/task/TID/children``, or None where that is not
    available. psutil's ``children(recursive=True)`` reads every process of the machine (1.2 ms here);
    every 10 ms that took about a tenth of a core from the measured process, which a 2-thread run has no
    spare core to absorb."""
    pids: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:  # gone meanwhile
            continue
        pids.append(pid)
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                    todo.extend(int(x) for x in f.read().split())
            except FileNotFoundError:
                if not os.path.exists(f"/proc/{pid}/task"):
                    break  # the process ended
                if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                    continue  # the thread ended
                return None  # no children files in this kernel
            except OSError:
                continue
    return pids


def _tree_rss(proc) -> int:
    """The summed resident memory of ``proc`` (a ``psutil.Process``) and its descendants, in bytes."""
    import psutil

    pids = _tree_pids(proc.pid) if sys.platform.startswith("linux") else None
    if pids is not None:
        total = 0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/statm", "rb") as f:
                    total += int(f.read().split()[1]) * _PAGE
            except (OSError, IndexError, ValueError):
                pass
        return total
    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_once(tool: str, file: str, vocab: int, specials: list[str], merges_out: str | None,
             workers: int | None, timeout: float | None, interval: float = 0.01) -> dict:
    """Run one tool in a fresh process; return its result plus wall_s and peak_rss."""
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as rf:
        result_path = rf.name
    cmd = [sys.executable, RUNNER, tool, file, str(vocab), *specials, "--result", result_path]
    if merges_out:
        cmd += ["--merges-out", merges_out]
    if workers:
        cmd += ["--workers", str(workers)]
    return run_measured(cmd, tool, result_path, timeout, interval=interval)


def checkout_env(env: dict | None = None) -> dict:
    """``env`` (default: this process's environment) with this checkout first on ``PYTHONPATH``: every
    measured process imports the bpe_numba of the checkout that the results are labelled with (its ``git
    describe``), never an older copy installed in site-packages.

    >>> checkout_env({"PYTHONPATH": "elsewhere"})["PYTHONPATH"] == REPO + os.pathsep + "elsewhere"
    True
    """
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(x for x in (REPO, env.get("PYTHONPATH")) if x)
    return env


_compiled = False


def compile_checkout() -> None:
    """Byte-compile this checkout's bpe_numba (once per run of a benchmark), as ``pip install`` does for an
    installed package: otherwise a measured process compiles the modules whose ``.pyc`` is missing or stale
    from source, and keeps doing so where ``PYTHONDONTWRITEBYTECODE`` is set (it was in the development
    sandbox: 0.04-0.09 s of each process's start-up). Other tools are measured as installed."""
    global _compiled
    if not _compiled:
        import compileall

        compileall.compile_dir(os.path.join(REPO, "bpe_numba"), quiet=1)
        _compiled = True


def run_measured(cmd: list[str], tool: str, result_path: str | None, timeout: float | None, *,
                 env: dict | None = None, cwd: str | None = None, interval: float = 0.01) -> dict:
    """Run ``cmd`` (a worker that writes its JSON result to ``result_path``) in a fresh process, sampling
    the summed RSS of its process tree every ``interval`` s; kill the tree after ``timeout`` s. Returns the
    worker's result (or an error record) plus ``wall_s`` (from outside, until the process exits, even when
    a process it left behind still holds its output pipes), ``peak_rss``, ``rss_samples`` and
    ``returncode``, and ``steal_s`` (see the module docstring; None where unknown). ``result_path`` is
    removed; without one (``None``), the run is ok when the process exits with status 0. The process gets
    ``env`` (default: this one's) through :func:`checkout_env`, with the checkout byte-compiled
    (:func:`compile_checkout`). It starts once the machine has settled from the previous measured process
    (:func:`settle_delay`)."""
    import psutil

    global _settled_at
    compile_checkout()
    time.sleep(max(0.0, _settled_at - time.monotonic()))
    peak = 0
    samples = 0
    stop = threading.Event()
    steal0 = _steal_s()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=checkout_env(env),
                            cwd=cwd)
    ps = psutil.Process(proc.pid)

    def sampler():
        nonlocal peak, samples
        while not stop.is_set():
            rss = _tree_rss(ps)
            samples += 1
            if rss > peak:
                peak = rss
            stop.wait(interval)

    def drain(stream, sink: list) -> None:  # reads to EOF, which comes late if a descendant holds the pipe
        for chunk in iter(lambda: stream.read(1 << 16), ""):
            sink.append(chunk)

    errs: list[str] = []
    threads = [threading.Thread(target=sampler, daemon=True),
               threading.Thread(target=drain, args=(proc.stdout, []), daemon=True),
               threading.Thread(target=drain, args=(proc.stderr, errs), daemon=True)]
    for th in threads:
        th.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        for c in ps.children(recursive=True):
            try:
                c.kill()
            except psutil.Error:
                pass
        proc.kill()
        proc.wait()
    wall = time.perf_counter() - t0
    steal1 = _steal_s()
    stop.set()
    threads[0].join()
    _settled_at = time.monotonic() + settle_delay(peak)
    pipes_deadline = time.perf_counter() + 1.0  # a process left behind may hold the pipes: don't wait for it
    for th in threads[1:]:
        th.join(timeout=max(0.0, pipes_deadline - time.perf_counter()))
    err = "".join(errs)
    res: dict = {}
    if result_path is not None:
        try:
            with open(result_path) as f:
                res = json.loads(f.read() or "{}")
        except (OSError, ValueError):
            pass
        finally:
            try:
                os.unlink(result_path)
            except OSError:
                pass
    elif proc.returncode == 0:
        res = {"tool": tool, "ok": True}
    if timed_out:
        res = {"tool": tool, "ok": False, "missing": False, "error": f"timeout after {timeout} s"}
    elif not res:
        res = {"tool": tool, "ok": False, "missing": False,
               "error": f"exited {proc.returncode}" + ("" if result_path is None else " without a result")
                        + f": {err.strip()[-2000:]}"}
    steal = None if steal0 is None or steal1 is None else round(steal1 - steal0, 2)
    res.update(wall_s=wall, peak_rss=peak, rss_samples=samples, returncode=proc.returncode, steal_s=steal)
    if proc.returncode == EXIT_MISSING:
        res["missing"] = True
    if not res.get("ok"):
        res["stderr_tail"] = err.strip()[-4000:]
    return res


def load_merges(path: str) -> list:
    with open(path) as f:
        return [tuple(bytes.fromhex(x) for x in m) if m is not None else None for m in json.load(f)]


def first_diff(a: list, b: list) -> int | None:
    """0-based index of the first differing merge, or None when identical (same length)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y or x is None:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def compare_merges(ref: list, m: list) -> dict:
    """How a tool's merges compare with the reference's (bpe_numba's): ``first_diff`` (0-based index of
    the first differing merge, None when identical), ``identical_to_bpe_numba``, ``shared_merges_pct``
    (share of the reference's merges the tool also made, in any order), ``unrecoverable_merges`` and, when
    they differ, the two merges at ``first_diff`` as reprs."""
    d = first_diff(ref, m)
    shared = set(ref) & {x for x in m if x is not None}
    out = {"first_diff": d, "identical_to_bpe_numba": d is None,
           "unrecoverable_merges": sum(1 for x in m if x is None),
           "shared_merges_pct": 100.0 * len(shared) / max(1, len(ref))}
    if d is not None:
        show = lambda x: None if x is None else [repr(x[0]), repr(x[1])]  # noqa: E731
        out["first_diff_bpe_numba"] = show(ref[d]) if d < len(ref) else None
        out["first_diff_tool"] = show(m[d]) if d < len(m) else None
    return out


def fmt_mb(n: int) -> str:
    return f"{n / 2**20:,.0f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--vocab-size", type=int, default=10000)
    ap.add_argument("--special-token", action="append", dest="specials", default=None,
                    help='special token (repeatable); default "<|endoftext|>". Pass --no-special for none')
    ap.add_argument("--no-special", action="store_true", help="train without special tokens")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tools", default=",".join(ALL_TOOLS),
                    help=f"any of {','.join(TOOLS)} (python_baseline: the pure-Python trainer, slow)")
    ap.add_argument("--json", dest="json_out", help="write all raw figures here")
    ap.add_argument("--no-compare", action="store_true", help="skip the merge-by-merge comparison")
    ap.add_argument("--workers", type=int, default=None, help="num_workers for bpe_numba (default: its own)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per run before it is killed")
    a = ap.parse_args(argv)

    try:
        import psutil  # noqa: F401
    except ImportError:
        print("bench_train.py needs psutil (pip install psutil)", file=sys.stderr)
        return 2
    if not os.path.isfile(a.file):
        print(f"no such file: {a.file}", file=sys.stderr)
        return 2
    specials = [] if a.no_special else (a.specials or ["<|endoftext|>"])
    tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad:
        print(f"unknown tool(s) {bad}; choose from {', '.join(TOOLS)}", file=sys.stderr)
        return 2
    expected = a.vocab_size - 256 - len(specials)
    size = os.path.getsize(a.file)
    print(f"file: {a.file} ({size / 1e6:,.1f} MB), vocab_size {a.vocab_size}, specials {specials}, "
          f"expected merges {expected}, repeat {a.repeat}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")

    tmpdir = tempfile.mkdtemp(prefix="bench_train_")
    runs: dict[str, list[dict]] = {t: [] for t in tools}
    skipped: dict[str, str] = {}
    merges_path = {t: os.path.join(tmpdir, f"{t}.merges.json") for t in tools}
    try:
        for r in range(a.repeat):  # round-robin, so slow drift in machine load hits every tool alike
            for t in tools:
                if t in skipped:
                    continue
                want_merges = (r == 0 and not a.no_compare)
                res = run_once(t, a.file, a.vocab_size, specials, merges_path[t] if want_merges else None,
                               a.workers, a.timeout)
                res["repeat"] = r
                runs[t].append(res)
                if res.get("missing"):
                    skipped[t] = res.get("error", "not installed")
                    print(f"  {t}: skipped, not installed ({skipped[t]})")
                    continue
                if res.get("ok"):
                    print(f"  {t} run {r + 1}/{a.repeat}: wall {res['wall_s']:.2f} s, train call "
                          f"{res['train_s']:.2f} s, peak {fmt_mb(res['peak_rss'])} MB, merges {res['merges']}",
                          flush=True)
                else:
                    print(f"  {t} run {r + 1}/{a.repeat}: FAILED: {res.get('error')}", flush=True)
                    if res.get("traceback"):
                        print("    " + res["traceback"].strip().replace("\n", "\n    "))
                    elif res.get("stderr_tail"):
                        print("    " + res["stderr_tail"][-1500:].replace("\n", "\n    "))

        # ----- summary -----
        summary: dict[str, dict] = {}
        for t in tools:
            ok = [x for x in runs[t] if x.get("ok")]
            if not ok:
                continue
            summary[t] = {
                "wall_s_median": statistics.median(x["wall_s"] for x in ok),
                "train_s_median": statistics.median(x["train_s"] for x in ok),
                "peak_rss_max": max(x["peak_rss"] for x in ok),
                "merges": ok[0]["merges"],
                "runs_ok": len(ok),
            }
        ref_merges = None
        if not a.no_compare and "bpe_numba" in summary and os.path.exists(merges_path["bpe_numba"]):
            ref_merges = load_merges(merges_path["bpe_numba"])
        for t, s in summary.items():
            s["first_diff"] = None
            s["identical_to_bpe_numba"] = None
            if ref_merges is not None and t != "bpe_numba" and os.path.exists(merges_path[t]):
                s.update(compare_merges(ref_merges, load_merges(merges_path[t])))

        base = summary.get("bpe_numba", {}).get("wall_s_median")
        print()
        print(f"Results: median of {a.repeat} run(s); wall = whole fresh process measured from outside "
              f"(start-up + imports + training); train = the training call alone, timed inside;")
        print("peak = max over runs of the sampled (every ~10 ms) summed RSS of the process tree.")
        hdr = ["tool", "wall s", "train s", "peak MB", "merges", "wall vs bpe_numba", "first diff at merge #",
               "shared merges"]
        rows = []
        for t in tools:
            if t in summary:
                s = summary[t]
                ratio = f"{s['wall_s_median'] / base:.2f}x" if base else "n/a"
                if t == "bpe_numba":
                    fd = "(reference)"
                elif s["identical_to_bpe_numba"] is None:
                    fd = "n/a"
                elif s["identical_to_bpe_numba"]:
                    fd = "identical"
                else:
                    fd = str(s["first_diff"])
                merges = str(s["merges"]) + ("" if s["merges"] == expected else f" (!= {expected})")
                shared = f"{s['shared_merges_pct']:.1f}%" if "shared_merges_pct" in s else "-"
                rows.append([t, f"{s['wall_s_median']:.2f}", f"{s['train_s_median']:.2f}",
                             fmt_mb(s["peak_rss_max"]), merges, ratio, fd, shared])
            elif t in skipped:
                rows.append([t, "-", "-", "-", "-", "-", "skipped: not installed", "-"])
            else:
                rows.append([t, "-", "-", "-", "-", "-", "FAILED (see above)", "-"])
        widths = [max(len(str(r[i])) for r in [hdr] + rows) for i in range(len(hdr))]
        line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(hdr, widths)))
        print(line)
        print("-" * len(line))
        for r in rows:
            print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                            for i, (c, w) in enumerate(zip(r, widths))))
        print()
        if "bpe_numba" in summary and "rustbpe" in summary:
            print(f"bpe_numba / rustbpe wall ratio: "
                  f"{summary['bpe_numba']['wall_s_median'] / summary['rustbpe']['wall_s_median']:.2f}")
        else:
            print("bpe_numba / rustbpe wall ratio: n/a (needs both tools)")
        if ref_merges is not None:
            print("first diff at merge #: 0-based index of the first merge that differs from bpe_numba's; "
                  "the other tools break ties between equal-count pairs differently, after which the lists "
                  "drift apart. shared merges: share of bpe_numba's merges that the tool also made (any order).")

        if a.json_out:
            doc = {
                "file": os.path.abspath(a.file), "file_bytes": size, "vocab_size": a.vocab_size,
                "specials": specials, "expected_merges": expected, "repeat": a.repeat, "tools": tools,
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                            "python": platform.python_version()},
                "memory_note": "peak_rss: sampled every ~10 ms, sum of RSS over the process tree",
                "runs": runs, "summary": summary, "skipped": skipped,
            }
            with open(a.json_out, "w") as f:
                json.dump(doc, f, indent=2)
            print(f"raw figures written to {a.json_out}")
    finally:
        for p in merges_path.values():
            try:
                os.unlink(p)
            except OSError:
                pass
        try:
            os.rmdir(tmpdir)
        except OSError:
            pass
    failed = [t for t in tools if t not in summary and t not in skipped]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
