"""Inputs benchmark (standalone): a corpus as 100 gzip files against the same text as one plain file, and
counting on a 2-worker Dask ``LocalCluster`` against counting locally.

    python benchmarks/bench_inputs.py gzip /work/corpora/prose_en.txt [--vocab-size 10000] [--repeat 3]
    python benchmarks/bench_inputs.py dask /work/corpora/prose_en.txt [--gigabytes 1] [--repeat 1]

``gzip`` splits the corpus at line ends into 100 ``.txt.gz`` files (each one document) and trains from the
directory; ``dask`` writes the corpus repeated to about ``--gigabytes`` GB as one file and trains on it
with ``executor=client`` (the cluster started beforehand, its start-up reported apart). Every file is
written under a temporary directory (``--tmp``, default the system's) and deleted at the end. Each timing
is a ``train_bpe`` call in this process after a warm-up call (Numba loaded); medians are printed as JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numba  # noqa: E402,F401 - loaded here, so train_bpe trains in this process (no helper process)

from bpe_numba import train_bpe  # noqa: E402

SPECIALS = ["<|endoftext|>"]


def _timed(fn, repeat: int) -> tuple[float, list[float], object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def split_gzip(corpus: str, directory: str, n: int) -> None:
    with open(corpus, "rb") as f:
        data = f.read()
    cuts = [0]
    for k in range(1, n):
        cut = data.find(b"\n", k * len(data) // n)
        cuts.append(cut + 1 if cut >= 0 else len(data))
    cuts.append(len(data))
    for k in range(n):
        with gzip.open(os.path.join(directory, f"part-{k:03d}.txt.gz"), "wb", compresslevel=6) as f:
            f.write(data[cuts[k] : cuts[k + 1]])


def bench_gzip(args, tmp: str) -> dict:
    parts = os.path.join(tmp, "parts")
    os.mkdir(parts)
    split_gzip(args.corpus, parts, 100)
    train_bpe(args.corpus, 300, SPECIALS, progress=False)  # warm-up: Numba and the kernels
    plain, plain_all, expected = _timed(lambda: train_bpe(args.corpus, args.vocab_size, SPECIALS, progress=False),
                                        args.repeat)
    gz, gz_all, got = _timed(lambda: train_bpe(parts, args.vocab_size, SPECIALS, progress=False), args.repeat)
    # Not equal in general: each of the 100 files is a document of its own (no pre-token crosses a cut).
    return {"corpus": args.corpus, "vocab_size": args.vocab_size, "plain_file_s": round(plain, 3),
            "gzip_dir_s": round(gz, 3), "ratio": round(gz / plain, 3), "plain_runs": plain_all, "gzip_runs": gz_all,
            "gzip_bytes": sum(os.path.getsize(os.path.join(parts, p)) for p in os.listdir(parts))}


def bench_dask(args, tmp: str) -> dict:
    import distributed

    big = os.path.join(tmp, "big.txt")
    size = os.path.getsize(args.corpus)
    with open(args.corpus, "rb") as f:
        data = f.read()
    with open(big, "wb") as f:
        for _ in range(max(1, round(args.gigabytes * 1e9 / size))):
            f.write(data)
    del data
    train_bpe(args.corpus, 300, SPECIALS, progress=False)
    local, local_all, expected = _timed(lambda: train_bpe(big, args.vocab_size, SPECIALS, progress=False), args.repeat)
    start = time.perf_counter()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        startup = time.perf_counter() - start
        client.run(lambda: train_bpe(args.corpus, 260, SPECIALS, progress=False, isolate=False))  # load kernels
        remote, remote_all, got = _timed(
            lambda: train_bpe(big, args.vocab_size, SPECIALS, executor=client, progress=False), args.repeat)
    return {"bytes": os.path.getsize(big), "vocab_size": args.vocab_size, "local_s": round(local, 3),
            "dask_s": round(remote, 3), "ratio": round(remote / local, 3), "equal": got == expected,
            "cluster_startup_s": round(startup, 3), "local_runs": local_all, "dask_runs": remote_all}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=["gzip", "dask"])
    parser.add_argument("corpus")
    parser.add_argument("--vocab-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--tmp", default=None)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bpe_numba_bench_inputs_", dir=args.tmp)
    try:
        result = (bench_gzip if args.which == "gzip" else bench_dask)(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
