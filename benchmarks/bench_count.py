"""Pre-tokenization benchmark: ``count_pretokens`` with 1 and 2 workers, warm, in one process.

    python benchmarks/bench_count.py FILE [--workers 1,2] [--repeat 5] [--json OUT]

One fresh process per file (``run_file``): it imports bpe_numba, calls
``count_pretokens(FILE, ["<|endoftext|>"], num_workers=w)`` once for each ``w`` (loads the kernels, fills
the page cache; not timed), then times the whole call ``--repeat`` times per ``w``, round-robin over the
worker counts, with ``time.perf_counter``. Reported: the median seconds and MB/s (10^6 bytes) per worker
count, the speed-up of each against the first, the number of distinct pre-tokens, and whether every call
gave the same counts (they must: the result does not depend on the number of workers). Peak memory is the
sampled RSS of the process tree (``bench_train.run_measured``), over the whole process.

Each call is also split in two (:func:`_chunk_clock`): the counting, from the first chunk the threads start
to the last one they finish, and the rest of the call (planning and starting the threads before; summing
the threads' tables and building the ``dict`` after), so that the whole call's speed-up reads as
``(C1 + rest1) / (C2 + rest2)``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time

try:  # a module of the benchmarks package (python -m benchmarks), or a script beside bench_train.py
    from . import bench_train
    from ._run_one import report_outcome
except ImportError:
    import bench_train
    from _run_one import report_outcome

SPECIALS = ["<|endoftext|>"]
WORKER_FLAG = "--_run-one"


@contextlib.contextmanager
def _chunk_clock():
    """Yields a list that gets ``(start, end)`` (``time.perf_counter``) of every chunk the counting threads
    count inside: ``bpe_numba.corpus_count._count_chunk`` is wrapped meanwhile (a file's chunks, counted by
    the Numba engine; nothing is recorded for other inputs or engines)."""
    from bpe_numba import corpus_count

    spans: list = []
    inner = corpus_count._count_chunk

    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spans.append((t, time.perf_counter()))  # list.append is atomic under the GIL

    corpus_count._count_chunk = timed
    try:
        yield spans
    finally:
        corpus_count._count_chunk = inner


def measure(path: str, workers: list[int], repeat: int) -> dict:
    """In this process: one untimed call per worker count, then ``repeat`` timed calls of each, with the
    counting part of each (``counting_seconds``; None where :func:`_chunk_clock` saw no chunk)."""
    import hashlib

    from bpe_numba import count_pretokens

    def call(w: int) -> dict:
        return count_pretokens(path, SPECIALS, num_workers=w, progress=False)

    digests = set()
    distinct = total = None
    t0 = time.perf_counter()
    for w in workers:
        counts = call(w)
        distinct, total = len(counts), sum(counts.values())
        digests.add(hashlib.sha1(repr(sorted(counts.items())).encode()).hexdigest())
        del counts
    first_s = time.perf_counter() - t0
    secs: dict[int, list[float]] = {w: [] for w in workers}
    counting: dict[int, list] = {w: [] for w in workers}
    with _chunk_clock() as spans:
        for _ in range(repeat):
            for w in workers:
                spans.clear()
                t = time.perf_counter()
                counts = call(w)
                secs[w].append(time.perf_counter() - t)
                counting[w].append(max(e for _, e in spans) - min(s for s, _ in spans) if spans else None)
                if len(counts) != distinct or sum(counts.values()) != total:
                    digests.add(f"run with {w} workers: {len(counts)} distinct, {sum(counts.values())} in all")
                del counts
    return {"seconds": {str(w): s for w, s in secs.items()}, "distinct": distinct, "pretokens": total,
            "same_counts": len(digests) == 1, "untimed_first_calls_s": first_s,
            "counting_seconds": {str(w): c for w, c in counting.items()}}


def worker_main(argv) -> int:
    ap = argparse.ArgumentParser(prog="bench_count " + WORKER_FLAG)
    ap.add_argument("file")
    ap.add_argument("--workers", required=True)
    ap.add_argument("--repeat", type=int, required=True)
    ap.add_argument("--result", required=True)
    a = ap.parse_args(argv)
    res: dict = {"tool": "count_pretokens"}
    code = report_outcome(res, lambda: measure(a.file, [int(x) for x in a.workers.split(",")], a.repeat))
    with open(a.result, "w") as f:
        json.dump(res, f)
    return code


def run_file(path: str, workers: list[int], repeat: int, timeout: float | None) -> dict:
    """Measure ``path`` in a fresh process; returns the worker's figures plus, per worker count, the
    median seconds and MB/s (``rows``, with the median counting seconds, their speed-up and the median rest of
    the call where the calls were split), and the process's ``wall_s`` and ``peak_rss``."""
    fd, result_path = tempfile.mkstemp(suffix=".json", prefix="bench_count_")
    os.close(fd)
    cmd = [sys.executable, "-m", "benchmarks.bench_count", WORKER_FLAG, os.path.abspath(path),
           "--workers", ",".join(map(str, workers)), "--repeat", str(repeat), "--result", result_path]
    res = bench_train.run_measured(cmd, "count_pretokens", result_path, timeout)  # the checkout on PYTHONPATH
    if not res.get("ok"):
        return res
    size = os.path.getsize(path)
    rows = []
    base = count_base = None
    for w in workers:
        secs = res["seconds"][str(w)]
        med = statistics.median(secs)
        base = base or med
        row = {"workers": w, "seconds_median": med, "seconds_min": min(secs), "mb_per_s": size / 1e6 / med,
               "speedup": base / med, "runs": len(secs)}
        counting = res.get("counting_seconds", {}).get(str(w)) or []
        if counting and None not in counting:
            c = statistics.median(counting)
            count_base = count_base or c
            row.update(counting_median=c, counting_speedup=count_base / c,
                       rest_median=statistics.median(s - k for s, k in zip(secs, counting)))
        rows.append(row)
    res["rows"] = rows
    return res


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == [WORKER_FLAG]:
        return worker_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--workers", default="1,2", help="worker counts, comma-separated (default 1,2)")
    ap.add_argument("--repeat", type=int, default=5, help="timed calls per worker count (default 5)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds before the process is killed")
    ap.add_argument("--json", dest="json_out", help="write the figures here")
    a = ap.parse_args(argv)
    try:
        workers = [int(x) for x in a.workers.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--workers takes numbers, e.g. 1,2 (got {a.workers!r})")
    if not workers or min(workers) < 1 or a.repeat < 1:
        ap.error("--workers needs numbers >= 1 and --repeat at least 1")
    if not os.path.isfile(a.file):
        ap.error(f"no such file: {a.file}")
    res = run_file(a.file, workers, a.repeat, a.timeout)
    if not res.get("ok"):
        print(f"FAILED: {res.get('error')}\n{res.get('traceback') or res.get('stderr_tail') or ''}", file=sys.stderr)
        return 1
    print(f"{a.file}: {os.path.getsize(a.file) / 1e6:,.1f} MB, {res['distinct']:,} distinct pre-tokens, "
          f"median of {a.repeat}, peak {res['peak_rss'] / 2**20:,.0f} MB (process tree)")
    for r in res["rows"]:
        split = (f"; counting {r['counting_median']:.3f} s ({r['counting_speedup']:.2f}x), "
                 f"the rest {r['rest_median'] * 1e3:.1f} ms" if "counting_median" in r else "")
        print(f"  num_workers={r['workers']}: {r['seconds_median']:.3f} s, {r['mb_per_s']:,.1f} MB/s, "
              f"{r['speedup']:.2f}x the first{split}")
    print("same counts with every worker count" if res["same_counts"] else "COUNTS DIFFER between worker counts")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(res, f, indent=1)
    return 0 if res["same_counts"] else 1


if __name__ == "__main__":
    sys.exit(main())
