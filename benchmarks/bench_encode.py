"""Side-by-side encoding benchmark: bpe_numba's GPT-2 tokenizer against tiktoken's ``gpt2`` encoding and
gigatoken's tokenizer built from the same GPT-2 files.

    python benchmarks/bench_encode.py INPUT [--repeat 3] [--workers K] [--json [OUT]]
        [--tools tiktoken,tiktoken_batch,gigatoken,bpe_numba,bpe_numba_file] [--timeout S]

Rows (each measured in a fresh process, so caches and memory never carry over from one tool to another):

* ``tiktoken encode, 1 thread``: ``enc.encode(text, allowed_special={"<|endoftext|>"})``, the baseline.
* ``tiktoken encode_batch, K threads``: the text split after every ``<|endoftext|>`` (one document per
  item), ``enc.encode_batch(docs, num_threads=K, allowed_special=...)``; the split is inside the timing.
* ``gigatoken encode_batch([text]), K threads, first call``: gigatoken's ``Tokenizer`` (an HF ``tokenizers``
  BPE model of GPT-2's files with the byte-level pre-tokenizer and ``<|endoftext|>`` as a special token),
  ``tok.encode_batch([text])``: one document, which gigatoken cuts at safe places and encodes on its K
  threads (``RAYON_NUM_THREADS=K``; its ``encode`` uses one thread). ``... warm``: the same call again in
  the same process (its caches filled).
* ``gigatoken encode_files(FILE), K threads`` (``gigatoken_file``, not in the default ``--tools``):
  ``tok.encode_files(INPUT)``, the whole file as one document, read by gigatoken (memory-mapped).
* ``bpe_numba encode, 1 thread, cold``: the first ``Tokenizer.encode(text)`` on a fresh tokenizer (kernels
  compiled, pre-token cache empty). ``... warm``: the same call again in the same process.
* ``bpe_numba encode_file, num_workers=K``: ``tok.encode_file(INPUT, OUT.npy, num_workers=K)``; reads the
  file itself, so reading and decoding the input and writing the ``.npy`` are inside the timing; K threads
  of the process encode it.

MB/s is input bytes (10**6) per second of the call alone, median over ``--repeat`` fresh processes; model
loading (``tiktoken.get_encoding``; bpe_numba: reading the two GPT-2 files and building the ``Tokenizer``;
gigatoken: building its tokenizer) is timed separately. Peak memory is the summed RSS of the process and
its children, sampled every ~10 ms with psutil. Every run's ids are checked against tiktoken's (and the ``.npy`` against ``encode``): any
difference is printed and the exit status is 1.

The GPT-2 files come from ``$BPE_NUMBA_FIXTURES`` (default ``$BPE_NUMBA_SHARED/cs336``, else
``../shared/cs336`` next to the repository);
``TIKTOKEN_CACHE_DIR`` defaults to the ``tiktoken_cache`` folder beside that, so tiktoken works offline.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time

try:  # a module of the benchmarks package (python -m benchmarks), or a script beside bench_train.py
    from . import bench_train
    from ._run_one import ToolMissing, dist_version, report_outcome, require_tool
except ImportError:
    import bench_train
    from _run_one import ToolMissing, dist_version, report_outcome, require_tool

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
EOT = "<|endoftext|>"
TOOLS = ("tiktoken", "tiktoken_batch", "gigatoken", "gigatoken_file", "bpe_numba", "bpe_numba_file")
WORKER_FLAG = "--_run-one"  # internal: run one measurement in this (fresh) process


# ---------------------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------------------

def fixture_dir() -> str:
    """``$BPE_NUMBA_FIXTURES``, else ``$BPE_NUMBA_SHARED/cs336``, else ``../shared/cs336`` beside the repo."""
    shared = os.environ.get("BPE_NUMBA_SHARED") or os.path.join(REPO, "..", "shared")
    return os.path.abspath(os.environ.get("BPE_NUMBA_FIXTURES") or os.path.join(shared, "cs336"))


def model_paths(fixtures: str) -> tuple[str, str]:
    return os.path.join(fixtures, "gpt2_vocab.json"), os.path.join(fixtures, "gpt2_merges.txt")


def tiktoken_cache_dir(fixtures: str) -> str:
    return os.environ.get("TIKTOKEN_CACHE_DIR") or os.path.join(os.path.dirname(fixtures), "tiktoken_cache")


# ---------------------------------------------------------------------------------------------------------
# Worker side: one measurement in a fresh process
# ---------------------------------------------------------------------------------------------------------

def read_gpt2_model(vocab_path: str, merges_path: str):
    """``(vocab: {id: bytes}, merges: [(bytes, bytes)], reader)`` from GPT-2 style files."""
    from bpe_numba.formats import load_model

    vocab, merges, _specials, _pattern = load_model(vocab_path, merges_path)
    return vocab, merges, "bpe_numba.formats.load_model"


def _import_bpe_numba():
    try:
        import bpe_numba
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "bpe_numba":
            raise
        sys.path.append(REPO)  # not installed: use the checkout this script belongs to
        import bpe_numba
    return bpe_numba


def _import_tiktoken():
    return require_tool("tiktoken")


def gigatoken_gpt2(vocab_path: str, merges_path: str):
    """gigatoken's ``Tokenizer`` for GPT-2's files: an HF ``tokenizers`` BPE model with the byte-level
    pre-tokenizer (GPT-2's pattern) and ``<|endoftext|>`` as a special token, handed to gigatoken."""
    gigatoken = require_tool("gigatoken")
    require_tool("tokenizers")
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    hf = Tokenizer(models.BPE.from_file(vocab_path, merges_path))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.add_special_tokens([AddedToken(EOT, special=True, normalized=False)])
    return gigatoken.Tokenizer(hf)


def _one_row(batch):
    """The ids of a one-document awkward result of gigatoken, as a numpy view (no copy)."""
    import numpy as np

    offsets = np.asarray(batch.layout.offsets.data)
    if len(offsets) != 2:
        raise ValueError(f"expected one document from gigatoken, got {len(offsets) - 1}")
    return np.asarray(batch.layout.content.data)[offsets[0] : offsets[1]]


def _cpu() -> float:
    """CPU seconds of this process (all threads) and of its children that have been waited for."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def _timed(fn, *args, **kwargs):
    c0, t0 = _cpu(), time.perf_counter()
    out = fn(*args, **kwargs)
    t1, c1 = time.perf_counter(), _cpu()
    return out, t1 - t0, c1 - c0


def _read_text(path: str) -> str:
    with open(path, "rb") as f:  # no newline translation, as bpe_numba reads files
        return f.read().decode("utf-8")


def _save_ids(path: str, ids) -> None:
    import numpy as np

    np.save(path, ids if isinstance(ids, np.ndarray) else np.asarray(ids, dtype=np.int32))  # no copy of an array


def split_documents(text: str) -> list[str]:
    """The text cut right after every ``<|endoftext|>``: each document keeps its separator, so encoding the
    pieces one by one gives exactly the ids of the whole (special tokens are hard boundaries)."""
    parts = text.split(EOT)
    docs = [p + EOT for p in parts[:-1]]
    if parts[-1]:
        docs.append(parts[-1])
    return docs


def measure(tool: str, input_path: str, ids_out: str, workers: int, vocab_path: str, merges_path: str) -> dict:
    import numpy as np

    res: dict = {}
    if tool in ("tiktoken", "tiktoken_batch"):
        tiktoken, res["import_s"], _ = _timed(_import_tiktoken)
        res["tiktoken_version"] = getattr(tiktoken, "__version__", "?")
        enc, res["load_s"], _ = _timed(tiktoken.get_encoding, "gpt2")
        text = _read_text(input_path)
        if tool == "tiktoken":
            ids, res["call_s"], res["call_cpu_s"] = _timed(enc.encode, text, allowed_special={EOT})
            # tiktoken keeps no cache between calls; a second call shows whether the first paid a start-up
            again, res["second_call_s"], _ = _timed(enc.encode, text, allowed_special={EOT})
            res["second_call_same_ids"] = again == ids
            del again
        else:
            c0, t0 = _cpu(), time.perf_counter()
            docs = split_documents(text)
            t_split = time.perf_counter()
            batches = enc.encode_batch(docs, num_threads=workers, allowed_special={EOT})
            t1, c1 = time.perf_counter(), _cpu()
            res.update(call_s=t1 - t0, call_cpu_s=c1 - c0, split_s=t_split - t0, documents=len(docs),
                       num_threads=workers)
            ids = list(itertools.chain.from_iterable(batches))
            del batches
    elif tool in ("gigatoken", "gigatoken_file"):
        os.environ["RAYON_NUM_THREADS"] = str(workers)  # read when gigatoken's thread pool starts
        gigatoken, res["import_s"], _ = _timed(require_tool, "gigatoken")
        res["gigatoken_version"] = dist_version("gigatoken")
        tok, res["load_s"], _ = _timed(gigatoken_gpt2, vocab_path, merges_path)
        res["num_threads"] = workers
        if tool == "gigatoken":
            # encode() runs on one thread; encode_batch splits a long document at safe places and uses them all
            text = _read_text(input_path)
            batch, res["call_s"], res["call_cpu_s"] = _timed(tok.encode_batch, [text])
            ids = _one_row(batch)
            again, res["warm_s"], res["warm_cpu_s"] = _timed(tok.encode_batch, [text])  # its caches now filled
            res["warm_same_ids"] = bool(np.array_equal(_one_row(again), ids))
            del again, text
        else:
            batch, res["call_s"], res["call_cpu_s"] = _timed(tok.encode_files, input_path)  # reads the file itself
            ids = _one_row(batch)
    elif tool == "bpe_numba":
        bpe_numba, res["import_s"], _ = _timed(_import_bpe_numba)
        (vocab, merges, loader), res["read_model_s"], _ = _timed(read_gpt2_model, vocab_path, merges_path)
        tok, res["build_s"], _ = _timed(bpe_numba.Tokenizer, vocab, merges, [EOT])
        res.update(load_s=res["read_model_s"] + res["build_s"], model_loader=loader)
        del vocab, merges
        text = _read_text(input_path)
        ids, res["call_s"], res["call_cpu_s"] = _timed(tok.encode, text)  # cold: the pre-token cache is empty
        warm, res["warm_s"], res["warm_cpu_s"] = _timed(tok.encode, text)
        res["warm_same_ids"] = warm == ids
        del warm
    elif tool == "bpe_numba_file":
        bpe_numba, res["import_s"], _ = _timed(_import_bpe_numba)
        if not hasattr(bpe_numba.Tokenizer, "encode_file"):
            raise ToolMissing("Tokenizer.encode_file is not available in this version of bpe_numba")
        (vocab, merges, loader), res["read_model_s"], _ = _timed(read_gpt2_model, vocab_path, merges_path)
        tok, res["build_s"], _ = _timed(bpe_numba.Tokenizer, vocab, merges, [EOT])
        res.update(load_s=res["read_model_s"] + res["build_s"], model_loader=loader, num_workers=workers)
        del vocab, merges
        n, res["call_s"], res["call_cpu_s"] = _timed(tok.encode_file, input_path, ids_out, num_workers=workers)
        res["returned_count"] = n
        return res  # ids_out is the .npy that encode_file wrote
    else:
        raise ValueError(f"unknown tool {tool!r}")
    res["ids"] = len(ids)
    _save_ids(ids_out, ids)
    return res


def worker_main(argv) -> int:
    ap = argparse.ArgumentParser(prog="bench_encode.py " + WORKER_FLAG)
    ap.add_argument("tool", choices=TOOLS)
    ap.add_argument("input")
    ap.add_argument("--ids-out", required=True)
    ap.add_argument("--result", required=True)
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--merges", required=True)
    a = ap.parse_args(argv)
    res = {"tool": a.tool}

    code = report_outcome(res, lambda: measure(a.tool, a.input, a.ids_out, a.workers, a.vocab, a.merges))
    with open(a.result, "w") as f:
        json.dump(res, f)
    return code


# ---------------------------------------------------------------------------------------------------------
# Orchestrator side
# ---------------------------------------------------------------------------------------------------------

def run_once(tool: str, input_path: str, ids_out: str, workers: int, vocab_path: str, merges_path: str,
             env: dict, timeout: float | None, interval: float = 0.01) -> dict:
    """Run one measurement in a fresh process; add its wall time (from outside) and sampled peak RSS."""
    fd, result_path = tempfile.mkstemp(suffix=".json", prefix="bench_encode_")
    os.close(fd)
    cmd = [sys.executable, os.path.abspath(__file__), WORKER_FLAG, tool, input_path, "--ids-out", ids_out,
           "--result", result_path, "--workers", str(workers), "--vocab", vocab_path, "--merges", merges_path]
    res = bench_train.run_measured(cmd, tool, result_path, timeout, env=env, interval=interval)
    res["process_wall_s"] = res.pop("wall_s")
    return res


def first_difference(a, b, block: int = 1 << 24) -> int | None:
    """Index of the first position where two id arrays differ (or where the shorter one ends), None if
    equal. Compares block by block, so memory-mapped arrays of any size need little memory."""
    import numpy as np

    n = min(len(a), len(b))
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        diff = np.flatnonzero(np.asarray(a[lo:hi], dtype=np.int64) != np.asarray(b[lo:hi], dtype=np.int64))
        if len(diff):
            return lo + int(diff[0])
    return None if len(a) == len(b) else n


def describe_mismatch(got, want, i: int, got_name: str, want_name: str, vocab_path: str) -> str:
    """Where two id sequences first differ (index ``i``), with the tokens around it."""
    lines = [f"{got_name}: {len(got):,} ids, {want_name}: {len(want):,} ids; first difference at id #{i:,}"]
    try:
        from bpe_numba.formats import gpt2_str_to_bytes

        with open(vocab_path, encoding="utf-8") as f:
            tokens = {idx: gpt2_str_to_bytes(tok) for tok, idx in json.load(f).items()}
    except (OSError, ValueError):
        tokens = {}
    lo = max(0, i - 5)
    for name, ids in ((got_name, got), (want_name, want)):
        hi = min(len(ids), i + 6)
        shown = " ".join(f"{x}:{tokens.get(x, b'?')!r}" for x in (int(v) for v in ids[lo:hi]))
        lines.append(f"  {name} ids[{lo}:{hi}]: {shown}")
    return "\n".join(lines)


WARM_ROWS = ("bpe_numba_warm", "gigatoken_warm")  # second calls, in the process of the row before
ROWS = (
    # (row key, tool process, label; {K} = workers)
    ("tiktoken", "tiktoken", "tiktoken encode, 1 thread"),
    ("tiktoken_batch", "tiktoken_batch", "tiktoken encode_batch, {K} threads"),
    ("gigatoken_first", "gigatoken", "gigatoken encode_batch([text]), {K} threads, first call"),
    ("gigatoken_warm", "gigatoken", "gigatoken encode_batch([text]), {K} threads, warm"),
    ("gigatoken_file", "gigatoken_file", "gigatoken encode_files(FILE), {K} threads"),
    ("bpe_numba_cold", "bpe_numba", "bpe_numba encode, 1 thread, cold"),
    ("bpe_numba_warm", "bpe_numba", "bpe_numba encode, 1 thread, warm"),
    ("bpe_numba_file", "bpe_numba_file", "bpe_numba encode_file, num_workers={K}"),
)


def run_rows(input_path: str, tools: list[str], repeat: int, workers: int, vocab_path: str, merges_path: str,
             env: dict, timeout: float | None, say=print, before_run=None, keep_reference: str | None = None) -> dict:
    """Run every tool ``repeat`` times (fresh processes, round-robin), check every run's ids against
    tiktoken's (and bpe_numba ``encode``'s), and summarize. ``before_run(tool, r)`` is called before each
    process starts (for progress lines). Returns ``{"rows", "runs", "skipped", "mismatches", "compared"}``:
    ``rows`` one flat summary record per table row (see ROWS), ``runs`` every process's raw figures,
    ``compared`` whether tiktoken ran so that ids were checked against it. With ``keep_reference``, tiktoken's
    ids (a ``.npy``) are moved there at the end instead of being deleted."""
    import numpy as np

    size = os.path.getsize(input_path)
    tmpdir = tempfile.mkdtemp(prefix="bench_encode_")
    runs: dict[str, list[dict]] = {t: [] for t in tools}
    skipped: dict[str, str] = {}
    mismatches: list[str] = []
    refs: dict[str, str] = {}  # tiktoken / bpe_numba -> the ids file of its first good run (kept to the end)

    def check_ids(t: str, res: dict, path: str) -> int:
        """Compare one run's ids with the references; return the number of problems found."""
        before = len(mismatches)
        ids = np.load(path, mmap_mode="r")
        res["ids_dtype"] = str(ids.dtype)
        res.setdefault("ids", len(ids))
        name = f"{t} (run {res['repeat'] + 1})"
        if t == "bpe_numba_file" and res.get("returned_count") != len(ids):
            mismatches.append(f"{name}: encode_file returned {res.get('returned_count')!r} but its .npy holds "
                              f"{len(ids):,} ids")
        if res.get("warm_same_ids") is False:
            mismatches.append(f"{name}: the warm encode call gave different ids from the cold call")
        if res.get("second_call_same_ids") is False:
            mismatches.append(f"{name}: the second encode call gave different ids from the first")
        if t in ("tiktoken", "bpe_numba") and t not in refs:
            refs[t] = path
        for ref_tool, ref_path in refs.items():
            if ref_path == path or (t == "tiktoken" and ref_tool != "tiktoken"):
                continue  # tiktoken is the truth: the others are checked against it, not it against them
            ref = np.load(ref_path, mmap_mode="r")
            i = first_difference(ids, ref)
            res[f"same_ids_as_{ref_tool}"] = i is None
            res[f"first_diff_vs_{ref_tool}"] = i
            if i is not None:
                mismatches.append(describe_mismatch(ids, ref, i, name, f"{ref_tool} (run 1)", vocab_path))
        del ids
        if path not in refs.values():
            os.unlink(path)
        return len(mismatches) - before

    try:
        for r in range(repeat):  # round-robin, so drift in machine load hits every tool alike
            for t in tools:
                if t in skipped:
                    continue
                ids_path = os.path.join(tmpdir, f"{t}.{r}.npy")
                if before_run is not None:
                    before_run(t, r)
                res = run_once(t, input_path, ids_path, workers, vocab_path, merges_path, env, timeout)
                res["repeat"] = r
                runs[t].append(res)
                if res.get("missing"):
                    skipped[t] = res.get("error", "not installed")
                    say(f"  {t}: not available ({skipped[t]})")
                    continue
                if not res.get("ok"):
                    say(f"  {t} run {r + 1}/{repeat}: FAILED: {res.get('error')}")
                    tail = res.get("traceback") or res.get("stderr_tail") or ""
                    if tail:
                        say("    " + tail.strip()[-1500:].replace("\n", "\n    "))
                    continue
                bad_ids = check_ids(t, res, ids_path)
                extra = f", warm {size / 1e6 / res['warm_s']:,.2f} MB/s" if "warm_s" in res else ""
                say(f"  {t} run {r + 1}/{repeat}: {size / 1e6 / res['call_s']:,.2f} MB/s{extra} "
                    f"(call {res['call_s']:.2f} s, load {res['load_s']:.2f} s, "
                    f"peak {res['peak_rss'] / 2**20:,.0f} MB{bench_train.steal_note(res)})"
                    + ("  IDS MISMATCH" if bad_ids else ""))
    finally:
        if keep_reference and "tiktoken" in refs:
            os.replace(refs["tiktoken"], keep_reference)
        for name in os.listdir(tmpdir):
            try:
                os.unlink(os.path.join(tmpdir, name))
            except OSError:
                pass
        try:
            os.rmdir(tmpdir)
        except OSError:
            pass

    # ----- summary rows -----
    rows: list[dict] = []
    for key, tool, label in ROWS:
        if tool not in tools:
            continue
        label = label.format(K=workers)
        row = {"row": key, "label": label, "tool": tool, "input_bytes": size, "repeat": repeat}
        ok = [x for x in runs[tool] if x.get("ok")]
        if tool in skipped:
            row.update(status="not available", note=skipped[tool])
        elif not ok:
            row.update(status="failed", note=(runs[tool][-1].get("error") if runs[tool] else ""))
        else:
            warm = key in WARM_ROWS
            secs = [x["warm_s" if warm else "call_s"] for x in ok]
            cpus = [x["warm_cpu_s" if warm else "call_cpu_s"] for x in ok]
            med = statistics.median(secs)
            same = [x.get("same_ids_as_tiktoken") for x in ok]
            if warm:  # the warm call's ids are compared with the first call's in the worker
                same = [None if s_ is None else (s_ and x.get("warm_same_ids", False)) for s_, x in zip(same, ok)]
            row.update(
                status="ok", runs_ok=len(ok), seconds_median=med, seconds_min=min(secs), seconds_max=max(secs),
                mb_per_s_median=size / 1e6 / med,
                cpu_per_wall_median=statistics.median(c / s for c, s in zip(cpus, secs) if s > 0),
                process_wall_s_median=statistics.median(x["process_wall_s"] for x in ok),
                load_s_median=statistics.median(x["load_s"] for x in ok),
                load_s_max=max(x["load_s"] for x in ok),
                peak_rss_max=max(x["peak_rss"] for x in ok),
                ids=ok[0].get("ids"),
                ids_dtype=ok[0].get("ids_dtype"),
                same_ids_as_tiktoken=(None if tool == "tiktoken" or None in same else all(same)),
                first_diff_vs_tiktoken=min((x["first_diff_vs_tiktoken"] for x in ok
                                            if x.get("first_diff_vs_tiktoken") is not None), default=None),
                threads=1 if tool in ("tiktoken", "bpe_numba") else workers,
            )
            if warm:
                row["load_s_median"] = row["load_s_max"] = None  # same process as the first call's row
        rows.append(row)
    base = next((r["mb_per_s_median"] for r in rows if r["row"] == "tiktoken" and r["status"] == "ok"), None)
    for row in rows:
        row["speed_vs_tiktoken_1thread"] = (row["mb_per_s_median"] / base
                                            if base and row.get("status") == "ok" else None)
    return {"rows": rows, "runs": runs, "skipped": skipped, "mismatches": mismatches, "compared": "tiktoken" in refs}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == [WORKER_FLAG]:
        return worker_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="UTF-8 text file to encode")
    ap.add_argument("--repeat", type=int, default=3, help="fresh processes per row; the median is shown")
    ap.add_argument("--workers", type=int, default=None,
                    help="threads for tiktoken encode_batch and gigatoken, num_workers for encode_file "
                         "(default: all cores)")
    ap.add_argument("--json", dest="json_out", nargs="?", const="-", default=None, metavar="OUT",
                    help="write all figures as JSON to OUT; without OUT, to stdout (the table goes to stderr)")
    ap.add_argument("--tools", default=",".join(t for t in TOOLS if t != "gigatoken_file"),
                    help=f"any of {','.join(TOOLS)} (default: all but gigatoken_file)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per process before it is killed")
    a = ap.parse_args(argv)
    out = sys.stderr if a.json_out == "-" else sys.stdout

    def say(*args, **kw):
        print(*args, file=out, flush=True, **kw)

    try:
        import numpy  # noqa: F401
        import psutil  # noqa: F401
    except ImportError as e:
        print(f"bench_encode.py needs numpy and psutil ({e}); pip install -e '.[bench]'", file=sys.stderr)
        return 2
    if not os.path.isfile(a.input):
        print(f"no such file: {a.input} (make one with: python benchmarks/generate_corpus.py {a.input} "
              f"--size 10MB)", file=sys.stderr)
        return 2
    if a.repeat < 1:
        print("--repeat must be at least 1", file=sys.stderr)
        return 2
    asked = [t.strip() for t in a.tools.split(",") if t.strip()]
    bad = [t for t in asked if t not in TOOLS]
    if bad:
        print(f"unknown tool(s) {bad}; choose from {', '.join(TOOLS)}", file=sys.stderr)
        return 2
    tools = [t for t in TOOLS if t in asked]  # the references (tiktoken, bpe_numba encode) run first
    fixtures = fixture_dir()
    vocab_path, merges_path = model_paths(fixtures)
    absent = [p for p in (vocab_path, merges_path) if not os.path.isfile(p)]
    if absent:
        print(f"GPT-2 model file not found: {absent[0]}\nSet BPE_NUMBA_FIXTURES to the folder holding "
              f"gpt2_vocab.json and gpt2_merges.txt (the CS336 test fixtures).", file=sys.stderr)
        return 2
    workers = a.workers or os.cpu_count() or 1
    env = dict(os.environ)
    env["TIKTOKEN_CACHE_DIR"] = cache = tiktoken_cache_dir(fixtures)
    if not os.path.isdir(cache) and any(t.startswith("tiktoken") for t in tools):
        say(f"note: {cache} does not exist; tiktoken will try to download the gpt2 files")

    input_path = os.path.abspath(a.input)
    size = os.path.getsize(input_path)
    say(f"input: {a.input} ({size / 1e6:,.2f} MB), GPT-2 model from {fixtures}, special token {EOT}, "
        f"repeat {a.repeat}, workers {workers}")
    say(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")

    result = run_rows(input_path, tools, a.repeat, workers, vocab_path, merges_path, env, a.timeout, say)
    rows, runs, skipped, mismatches = result["rows"], result["runs"], result["skipped"], result["mismatches"]

    say()
    say(f"Results: median of {a.repeat} fresh process(es) per row; MB/s = {size / 1e6:,.2f} MB of input / "
        f"seconds of the encoding call alone;")
    say("load s = model loading, not in MB/s (tiktoken: get_encoding; bpe_numba: read GPT-2 files + build "
        "Tokenizer); peak = max sampled RSS of the process tree.")
    hdr = ["row", "MB/s", "s", "vs tiktoken 1 thread", "cpu/wall", "load s", "peak MB", "ids", "same ids"]
    table = []
    for row in rows:
        if row["status"] != "ok":
            table.append([row["label"], row["status"], "-", "-", "-", "-", "-", "-", "-"])
            continue
        if row["row"] == "tiktoken":
            same = "(reference)"
        elif row["same_ids_as_tiktoken"] is None:
            same = "unchecked"
        else:
            same = "yes" if row["same_ids_as_tiktoken"] else "MISMATCH"
        ratio = f"{row['speed_vs_tiktoken_1thread']:.2f}x" if row["speed_vs_tiktoken_1thread"] else "n/a"
        load = "(same process)" if row["load_s_median"] is None else f"{row['load_s_median']:.2f}"
        table.append([row["label"], f"{row['mb_per_s_median']:,.2f}", f"{row['seconds_median']:.2f}", ratio,
                      f"{row['cpu_per_wall_median']:.2f}", load, f"{row['peak_rss_max'] / 2**20:,.0f}",
                      f"{row['ids']:,}", same])
    widths = [max(len(str(r[i])) for r in [hdr] + table) for i in range(len(hdr))]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(hdr, widths)))
    say(line)
    say("-" * len(line))
    for r in table:
        say("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    say()
    if mismatches:
        say("!" * 72)
        say(f"IDS MISMATCH: {len(mismatches)} problem(s)")
        for m in mismatches:
            say(m)
        say("!" * 72)
    elif result["compared"]:
        say("ids: every run of every row equals tiktoken's ids.")
    else:
        say("ids: tiktoken did not run, so nothing was compared with it.")

    if a.json_out:
        doc = {
            "input": input_path, "input_bytes": size, "special_tokens": [EOT], "repeat": a.repeat,
            "workers": workers, "tools": tools, "fixtures": fixtures,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "notes": {
                "mb_per_s": "input bytes / 1e6 / seconds of the call alone (model loading excluded)",
                "peak_rss": "bytes; max over runs of the summed RSS of the process tree, sampled every ~10 ms",
                "cpu_per_wall": "CPU seconds of the process (all threads, plus reaped children) / wall seconds",
            },
            "rows": rows, "runs": runs, "skipped": skipped, "mismatches": mismatches,
        }
        if a.json_out == "-":
            json.dump(doc, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            with open(a.json_out, "w") as f:
                json.dump(doc, f, indent=2)
            say(f"figures written to {a.json_out}")
    failed = [r["label"] for r in rows if r["status"] == "failed"]
    return 1 if mismatches or failed else 0


if __name__ == "__main__":
    sys.exit(main())
