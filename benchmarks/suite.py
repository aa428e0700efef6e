"""The benchmark suite: training, pre-tokenization, encoding and cold start, every tool side by side.

    python -m benchmarks                          # everything (about 20-25 minutes on 2 cores)
    python -m benchmarks --quick --out /tmp/bq    # smoke run (1.5-2 minutes): slices, one repeat, no scale files
    python -m benchmarks --only train-real,count  # some parts only

Parts (``--only``), in the order of every output:

* ``train-real``: real text (``corpora.py``: ``prose_en.txt`` 52.4 MB, ``multilingual.txt`` 12.3 MB) at vocab
  10K (and 32K for ``prose_en``), trained by bpe_numba, gigatoken, rustbpe and HF tokenizers; then
  ``prose_en.txt`` repeated to 1 and 2 GB (``--scale-gb``) at vocab 10K by bpe_numba and gigatoken (rustbpe
  and HF too with ``--slow-peers``). Each run a fresh process (``_run_one.py`` through
  ``bench_train.run_once``), peak memory of its process tree sampled from outside, merges compared with
  bpe_numba's.
* ``count``: ``count_pretokens`` on both corpora with 1 and 2 workers, warm, in one process
  (``bench_count.py``).
* ``encode-real``: both corpora with GPT-2's vocabulary: tiktoken, gigatoken and bpe_numba
  (``bench_encode.run_rows``), every run's ids checked against tiktoken's; then ``encode_file`` on
  ``prose_en.txt`` repeated to 1 GB (``--encode-scale-gb``) against gigatoken's ``encode_files``.
* ``cold``: the first run on an empty Numba cache, then warm runs (``bench_cold.py``).
* ``train-synthetic``: the synthetic corpus of ``bpe_numba.synthetic`` at ``--sizes`` x ``--vocab-sizes``,
  also with the textbook pure-Python trainer (``baseline_python.py``, small sizes), whose merges must
  equal bpe_numba's.
* ``encode-synthetic``: the ``--encode-mb`` synthetic file, as ``encode-real``.

Writes results.csv, results.md, results.json, train_real.png, train_time.png and encode_throughput.png
into --out. Exit status: 0; 1 when an exactness check failed (merges of the pure-Python trainer, ids,
counts) or bpe_numba itself failed; 2 for bad arguments; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from . import bench_cold, bench_count, bench_encode, bench_train, corpora
from ._run_one import dist_version
from .report import (TRAIN_LABELS, TRAIN_TOOLS, VERSION_DISTS, csv_value, fmt_duration, fmt_load, fmt_size,
                     make_plots, one_line, render_markdown)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SPECIALS = ["<|endoftext|>"]
SEED = 0
LARGE_MB = 100  # sizes from here on get --repeat-large runs

PARTS = ("train-real", "count", "encode-real", "cold", "train-synthetic", "encode-synthetic")
REAL_TRAIN = (("prose_en", 10000), ("prose_en", 32000), ("multilingual", 10000))  # (corpus, vocab)
SCALE_VOCAB = 10000
SCALE_TOOLS = ("bpe_numba", "gigatoken")  # on the scale files; rustbpe and HF with --slow-peers
QUICK_SLICE_MB = {"prose_en": 2, "multilingual": 1}  # --quick: the first MB of each real corpus
COUNT_WORKERS = (1, 2)
ENCODE_TOOLS = ("tiktoken", "tiktoken_batch", "gigatoken", "bpe_numba", "bpe_numba_file")
ENCODE_REAL_TOOLS = ("tiktoken", "gigatoken", "bpe_numba", "bpe_numba_file")  # of --encode-tools
ENCODE_SCALE_TOOLS = ("gigatoken_file", "bpe_numba_file")
CSV_FIELDS = ("task", "corpus", "tool", "variant", "size_mb", "vocab_size", "workers", "runs", "wall_s", "call_s",
              "peak_mb", "merges", "first_diff", "shared_merges_pct", "mb_per_s", "speedup", "ratio_vs_bpe_numba",
              "counting_s", "counting_speedup", "rest_ms", "status", "note", "version", "machine")


# ---------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------

def parse_list(text: str, kind, what: str) -> list:
    example = {"--sizes": "1,10,100", "--scale-gb": "1,2"}.get(what, "10000,32000")
    try:
        out = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad list {text!r}; use e.g. {example}") from None
    if any(x < 0 for x in out) or (what != "--scale-gb" and (not out or 0 in out)):
        raise argparse.ArgumentTypeError(f"give positive numbers, e.g. {example}")
    return sorted(set(x for x in out if x > 0))


def fmt_elapsed(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


def machine_info() -> dict:
    """CPU model, cores, RAM, OS, Python, package versions, the repository's commit, the load average."""
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if not cpu and sys.platform == "darwin":
        try:
            cpu = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    cpu = cpu or platform.processor() or platform.machine()
    try:
        import psutil

        ram_gib = psutil.virtual_memory().total / 2**30
    except ImportError:
        ram_gib = None
    try:
        git = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        git = None
    info = {
        "cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram_gib,
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(), "executable": sys.executable, "git": git, "loadavg_start": _loadavg(),
        "versions": {d: dist_version(d) for d in VERSION_DISTS},
    }
    ram = f", {ram_gib:.0f} GiB RAM" if ram_gib else ""
    info["short"] = f"{cpu}, {info['cores']} cores{ram}, {platform.system()}, Python {info['python']}"
    return info


def _loadavg():
    try:
        return os.getloadavg()
    except (OSError, AttributeError):
        return None


def corpus_path(data_dir: str, size_mb: float) -> str:
    return os.path.join(data_dir, f"synthetic_seed{SEED}_{fmt_size(size_mb)}MB.txt")


def ensure_corpus(data_dir: str, size_mb: float, log) -> str:
    """The synthetic corpus of ``size_mb`` MB (10^6 bytes) in ``data_dir``, generated unless already there.
    write_corpus stops at the first story boundary at or after the size and writes atomically, so a file
    that exists with a size just above the asked one is complete."""
    path = corpus_path(data_dir, size_mb)
    n = int(round(size_mb * 1e6))
    if os.path.isfile(path) and n <= os.path.getsize(path) < n + 100_000:
        return path
    try:
        from bpe_numba.synthetic import write_corpus
    except ImportError:  # running from a checkout without installing
        sys.path.insert(0, REPO)
        from bpe_numba.synthetic import write_corpus
    os.makedirs(data_dir, exist_ok=True)
    t0 = time.perf_counter()
    write_corpus(path, n, seed=SEED, progress=False)
    log(f"corpus: generated {path} in {time.perf_counter() - t0:.1f} s")
    return path


def _compact_run(res: dict) -> dict:
    """One process's figures for results.json, without tracebacks, stderr or file paths."""
    keep = ("task", "corpus", "tool", "size_mb", "vocab_size", "repeat", "ok", "error", "wall_s", "process_wall_s",
            "train_s", "call_s", "warm_s", "call_cpu_s", "load_s", "peak_rss", "merges", "version", "timings",
            "ids", "num_workers", "num_threads")
    out = {k: res[k] for k in keep if k in res}
    if "error" in out:
        out["error"] = one_line(out["error"], 500)
    return out


# ---------------------------------------------------------------------------------------------------------
# The suite
# ---------------------------------------------------------------------------------------------------------

class Suite:
    def __init__(self, a: argparse.Namespace, argv: list[str]):
        self.a = a
        self.argv = argv
        self.seed = SEED
        self.t0 = time.perf_counter()
        self.rows: list[dict] = []          # one per measurement (the CSV)
        self.raw: list[dict] = []           # every process's figures (results.json)
        self.notes: list[str] = []          # for results.md
        self.problems: list[str] = []       # failed exactness checks / bpe_numba failures -> exit 1
        self.missing: dict[str, str] = {}   # tool -> why it is not available
        self.machine = machine_info()
        self.workers = a.workers or os.cpu_count() or 1
        self.parts_run: list[str] = []
        self.interrupted = False
        self.encode_results: list[tuple[str, dict]] = []  # (corpus, bench_encode.run_rows result), real text
        self.encode_synthetic: tuple[str, dict] | None = None
        self.scale_encode_rows: list[dict] = []
        self.scale_check = ""
        self._scratch: str | None = None    # slices and scale files; removed at the end of the run
        self._real: dict[str, tuple[str, str]] | None = None  # name -> (path, label)
        self._scale: dict[float, tuple[str, dict]] = {}       # GB -> (path, write_scaled layout), while kept
        self.scaled: list[float] = []                         # the GB sizes built in this run
        self._tiktoken_prose: str | None = None              # tiktoken's ids of prose_en.txt (.npy)
        self._warmed: set[str] = set()

    # ----- output -----
    def log(self, msg: str, end: str = "\n") -> None:
        print(f"[{fmt_elapsed(time.perf_counter() - self.t0):>5}] {msg}", end=end, flush=True)

    def cont(self, msg: str) -> None:  # completes a line started with log(..., end="")
        print(msg, flush=True)

    def command(self) -> str:
        return " ".join(["python -m benchmarks", shlex.join(self.argv)]).rstrip()

    def repeat_for(self, size_mb: float) -> int:
        return self.a.repeat_large if size_mb >= LARGE_MB else self.a.repeat

    def repeat_sentence_synthetic(self) -> str:
        a = self.a
        small = [x for x in a.sizes if x < LARGE_MB]
        large = [x for x in a.sizes if x >= LARGE_MB]
        if small and large and a.repeat != a.repeat_large:
            return (f"Median of {a.repeat} fresh process(es) per tool for sizes below {LARGE_MB} MB, "
                    f"{a.repeat_large} from {LARGE_MB} MB on.")
        return f"Median of {a.repeat if small else a.repeat_large} fresh process(es) per tool and size."

    def repeat_sentence_real(self) -> str:
        text = f"Median of {self.a.repeat} fresh process(es) per tool on the corpora"
        if self.scaled:
            text += f", {self.a.repeat_large} on the repeated files"
        return text + "."

    def repeat_large_sentence(self) -> str:
        return f"Median of {self.a.repeat_large} fresh process(es) per row."

    def corpora_sentence(self, lower: bool = False) -> str:
        src = self.a.corpora
        text = (f"The corpora are `prose_en.txt` (English technical prose) and `multilingual.txt` (Spanish, "
                f"Russian, Polish, Italian) from `{src}`, made by `corpora/build.py` of the shared folder, "
                "documents separated by `<|endoftext|>`, the special token")
        if self.a.quick:
            text += " (--quick: only their first MB, cut at a document or line boundary)"
        if self.scaled:
            text += ("; \"× N GB\" is `prose_en.txt` repeated to N GB (whole copies joined by `<|endoftext|>`, "
                     "the last one cut at a document boundary), built for the run and deleted after it")
        text += ". Every input file was read once before its timed runs, so the page cache is warm."
        return text[0].lower() + text[1:] if lower else text

    # ----- inputs -----
    def scratch(self) -> str:
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="bpe_numba_bench_", dir=self.a.scale_dir)
        return self._scratch

    def real(self) -> dict[str, tuple[str, str]]:
        """``{name: (path, label)}`` of the real corpora (slices with --quick), or {} with a note why not."""
        if self._real is not None:
            return self._real
        files, why = corpora.ensure_corpora(self.a.corpora, self.log)
        if not files:
            self.log(f"real-text rows skipped: {why}")
            self.notes.append(f"Real-text rows skipped: {why}.")
            self._real = {}
            return self._real
        self._real = {}
        for name, path in files.items():
            if self.a.quick:
                dst = os.path.join(self.scratch(), f"{name}_first{QUICK_SLICE_MB[name]}MB.txt")
                n = corpora.write_slice(path, QUICK_SLICE_MB[name] * 10**6, dst)
                label = f"{name}.txt, first {n / 1e6:.1f} MB"
                path = dst
            else:
                label = f"{name}.txt"
            self._real[name] = (path, label)
        return self._real

    def scale_file(self, gb: float) -> tuple[str, dict] | None:
        """``prose_en.txt`` repeated to ``gb`` GB in the scratch folder (built once), or None."""
        if gb in self._scale:
            return self._scale[gb]
        real = self.real()
        if "prose_en" not in real:
            return None
        need = int(gb * 10**9)
        free = shutil.disk_usage(self.scratch()).free
        if free < need + (2 << 30):
            self.notes.append(f"prose_en.txt × {fmt_size(gb)} GB not built: {free / 1e9:.1f} GB free in "
                              f"{self.scratch()} (--scale-dir), {need / 1e9 + 2:.1f} GB needed.")
            return None
        path = os.path.join(self.scratch(), f"prose_en_x{fmt_size(gb)}GB.txt")
        t = time.perf_counter()
        self.log(f"building {path} ...", end="")
        layout = corpora.write_scaled(real["prose_en"][0], need, path)
        self.cont(f" {layout['copies']} whole copies + {layout['partial_bytes'] / 1e6:.1f} MB, "
                  f"{time.perf_counter() - t:.1f} s")
        self._scale[gb] = (path, layout)
        self.scaled.append(gb)
        return self._scale[gb]

    def drop_scale(self, keep: set[float]) -> None:
        for gb in [g for g in self._scale if g not in keep]:
            os.unlink(self._scale.pop(gb)[0])

    def warm(self, path: str) -> None:
        """Read the file once before its timed runs (the page cache then holds it)."""
        if path not in self._warmed:
            corpora.warm_page_cache(path)
            self._warmed.add(path)

    # ----- warm-up -----
    def warm_up(self, parts: list[str]) -> None:
        """Compile or load every kernel once (``python -m bpe_numba warmup``, which also marks them ready, so
        no run falls back to the Python tier or starts a background compile), then run one bpe_numba
        training and encoding: compilation is in no measurement but the cold-start ones. Reported, not
        measured."""
        t = time.perf_counter()
        encode = any(p.startswith("encode") for p in parts)
        small = ensure_corpus(self.a.data_dir, 1.0, self.log)
        self.log(f"warm-up: python -m bpe_numba warmup, then bpe_numba training{' and encoding' if encode else ''} "
                 "once (not measured) ...", end="")
        res = bench_train.run_measured([sys.executable, "-m", "bpe_numba", "warmup"], "warmup", None, self.a.timeout)
        msg = "" if res.get("ok") else f" (python -m bpe_numba warmup failed: {one_line(res.get('error'), 120)})"
        res = bench_train.run_once("bpe_numba", small, 500, SPECIALS, None, self.a.workers, self.a.timeout)
        msg += "" if res.get("ok") else f" training FAILED: {one_line(res.get('error'))}"
        vocab_path, merges_path = bench_encode.model_paths(bench_encode.fixture_dir())
        if encode and os.path.isfile(vocab_path) and os.path.isfile(merges_path):
            with tempfile.TemporaryDirectory(prefix="bench_suite_") as d:
                r2 = bench_encode.run_once("bpe_numba", small, os.path.join(d, "ids.npy"), 1, vocab_path,
                                           merges_path, dict(os.environ), self.a.timeout)
            if not r2.get("ok") and not r2.get("missing"):
                msg += f" encoding FAILED: {one_line(r2.get('error'))}"
        dt = time.perf_counter() - t
        self.cont(f" {dt:.1f} s{msg}")
        self.machine["warmup_s"] = dt

    # ----- training -----
    def train_case(self, corpus: str, path: str, vocab: int, tools: list[str], repeat: int, *, size_mb: float,
                   real: bool, timed_out: dict) -> None:
        """Every tool on one file at one vocab size, ``repeat`` fresh processes each, round-robin; appends
        the rows. ``timed_out`` (tool -> corpus) holds the tools that timed out in this series: they are
        not run again."""
        a = self.a
        nbytes = os.path.getsize(path)
        base = {"corpus": corpus, "size_mb": size_mb, "vocab_size": vocab, "real": real}
        todo = []
        for t in tools:
            if t in self.missing:
                continue
            if t in timed_out:
                self.rows.append(self._train_row(t, **base, status="skipped",
                                                 note=f"timed out on {timed_out[t]}; larger files not run"))
                continue
            todo.append(t)
        self.warm(path)
        runs: dict[str, list[dict]] = {t: [] for t in todo}
        failed: set[str] = set()
        with tempfile.TemporaryDirectory(prefix="bench_suite_") as tmp:
            merges_path = {t: os.path.join(tmp, f"{t}.json") for t in todo}
            for r in range(repeat):  # round-robin over the tools, so load drift hits all of them alike
                for t in todo:
                    if t in failed or t in self.missing:
                        continue
                    self.log(f"train {corpus}, vocab {vocab}: {t} run {r + 1}/{repeat} ...", end="")
                    res = bench_train.run_once(t, path, vocab, SPECIALS, merges_path[t] if r == 0 else None,
                                               a.workers, a.timeout)
                    res.update(task="train", corpus=corpus, size_mb=size_mb, vocab_size=vocab, repeat=r)
                    self.raw.append(_compact_run(res))
                    if res.get("missing"):
                        self.missing[t] = one_line(res.get("error")) or "not installed"
                        self.cont(f" not installed, skipped ({self.missing[t]})")
                        continue
                    runs[t].append(res)
                    if not res.get("ok"):
                        failed.add(t)
                        err = one_line(res.get("error"))
                        self.cont(f" FAILED after {res['wall_s']:.1f} s: {err}")
                        tail = res.get("traceback") or res.get("stderr_tail")
                        if tail:
                            last = "\n".join(tail.strip().splitlines()[-12:])
                            print("        " + last.replace("\n", "\n        "), flush=True)
                        if err.startswith("timeout"):
                            timed_out[t] = corpus
                        continue
                    self.cont(f" wall {res['wall_s']:.2f} s (train {res['train_s']:.2f} s), "
                              f"peak {res['peak_rss'] / 2**20:,.0f} MB, {res['merges']} merges"
                              + bench_train.steal_note(res))
            self._train_summary(base, nbytes, runs, merges_path)

    def _train_row(self, tool: str, **kw) -> dict:
        row = {"task": "train", "tool": tool, "machine": self.machine["short"]}
        row.update(kw)
        return row

    def _train_summary(self, base: dict, nbytes: int, runs: dict, merges_path: dict) -> None:
        where = f"{base['corpus']}, vocab {base['vocab_size']}"
        ref = None
        if runs.get("bpe_numba") and all(x.get("ok") for x in runs["bpe_numba"]) \
                and os.path.exists(merges_path["bpe_numba"]):
            ref = bench_train.load_merges(merges_path["bpe_numba"])
        out: list[dict] = []  # in tool order
        for t, rs in runs.items():
            ok = [x for x in rs if x.get("ok")]
            bad = [x for x in rs if not x.get("ok")]
            if bad:
                err = one_line(bad[0].get("error"))
                out.append(self._train_row(t, **base, runs=len(ok), wall_s=bad[0].get("wall_s"),
                                           status="timeout" if err.startswith("timeout") else "error", note=err,
                                           peak_mb=bad[0].get("peak_rss", 0) / 2**20))
                if t == "bpe_numba":
                    self.problems.append(f"bpe_numba failed on {where}: {err}")
                elif t == "python_baseline":
                    self.notes.append(f"No exactness check on {where}: the pure-Python trainer did not finish ({err}).")
                continue
            if not ok:
                continue
            s = {
                "wall_s": statistics.median(x["wall_s"] for x in ok),
                "call_s": statistics.median(x["train_s"] for x in ok),
                "peak_mb": max(x["peak_rss"] for x in ok) / 2**20,
                "merges": ok[0]["merges"], "runs": len(ok), "version": ok[0].get("version", ""),
            }
            s["mb_per_s"] = nbytes / 1e6 / s["call_s"] if s["call_s"] > 0 else None
            s["first_diff"] = "reference" if t == "bpe_numba" else ""
            if t != "bpe_numba" and ref is not None and os.path.exists(merges_path[t]):
                c = bench_train.compare_merges(ref, bench_train.load_merges(merges_path[t]))
                s["first_diff"] = "identical" if c["identical_to_bpe_numba"] else c["first_diff"]
                s["shared_merges_pct"] = c["shared_merges_pct"]
                if t == "python_baseline":
                    if c["identical_to_bpe_numba"]:
                        self.notes.append(f"Exactness check: the pure-Python trainer's {s['merges']} merges equal "
                                          f"bpe_numba's on {where}.")
                    else:
                        msg = (f"EXACTNESS CHECK FAILED on {where}: the pure-Python trainer's merges differ from "
                               f"bpe_numba's at merge #{c['first_diff']} (bpe_numba "
                               f"{c.get('first_diff_bpe_numba')}, pure Python {c.get('first_diff_tool')})")
                        self.problems.append(msg)
                        self.notes.append(msg)
            out.append(self._train_row(t, **base, status="ok", note="", **s))
        wall = next((r["wall_s"] for r in out if r["tool"] == "bpe_numba" and r["status"] == "ok"), None)
        for row in out:
            if row["status"] == "ok":
                row["ratio_vs_bpe_numba"] = row["wall_s"] / wall if wall else None
        self.rows.extend(out)

    def part_train_real(self) -> None:
        real = self.real()
        if not real:
            return
        tools = [t for t in self.a.tools if t != "python_baseline"]
        timed_out: dict[str, str] = {}
        for name, vocab in REAL_TRAIN:
            if self.a.quick and vocab != SCALE_VOCAB:
                continue
            path, label = real[name]
            self.train_case(label, path, vocab, tools, self.a.repeat, size_mb=os.path.getsize(path) / 1e6, real=True,
                            timed_out={})
        slow = ("rustbpe", "hf") if self.a.slow_peers else ()
        scale_tools = [t for t in tools if t in SCALE_TOOLS + slow]
        keep = set(self.a.encode_scale_gb) if "encode-real" in self.a.only else set()
        for gb in self.a.scale_gb:
            made = self.scale_file(gb)
            if made is None:
                continue
            self.train_case(f"prose_en.txt × {fmt_size(gb)} GB", made[0], SCALE_VOCAB, scale_tools,
                            self.a.repeat_large, size_mb=os.path.getsize(made[0]) / 1e6, real=True,
                            timed_out=timed_out)
            self.drop_scale(keep)
        if self.a.scale_gb and not self.a.slow_peers:
            self.notes.append("rustbpe and HF tokenizers are not run on the repeated files (they take minutes "
                              "there); --slow-peers adds them.")

    def part_train_synthetic(self) -> None:
        files = {s: ensure_corpus(self.a.data_dir, s, self.log) for s in self.a.sizes}
        timed_out: dict[int, dict[str, str]] = {v: {} for v in self.a.vocab_sizes}
        for size in self.a.sizes:
            tools = [t for t in self.a.tools if t != "python_baseline" or size <= self.a.baseline_max_mb]
            for vocab in self.a.vocab_sizes:
                self.train_case(f"synthetic {fmt_size(size)} MB", files[size], vocab, tools,
                                self.repeat_for(size), size_mb=size, real=False, timed_out=timed_out[vocab])
        if "python_baseline" in self.a.tools and any(x > self.a.baseline_max_mb for x in self.a.sizes):
            self.notes.append(f"The pure-Python trainer runs only on sizes up to {fmt_size(self.a.baseline_max_mb)} "
                              "MB (--baseline-max-mb).")

    # ----- pre-tokenization -----
    def part_count(self) -> None:
        for name, (path, label) in self.real().items():
            self.warm(path)
            self.log(f"count_pretokens {label}: num_workers {' and '.join(map(str, COUNT_WORKERS))}, "
                     f"{self.a.count_repeat} timed calls each, one process ...", end="")
            res = bench_count.run_file(path, list(COUNT_WORKERS), self.a.count_repeat, self.a.timeout)
            res.update(task="count", corpus=label)
            self.raw.append({k: res[k] for k in ("task", "corpus", "ok", "error", "seconds", "counting_seconds",
                                                  "distinct", "pretokens", "same_counts", "wall_s", "peak_rss")
                             if k in res})
            base = {"task": "count", "corpus": label, "tool": "bpe_numba", "size_mb": os.path.getsize(path) / 1e6,
                    "machine": self.machine["short"], "version": self.machine["versions"].get("bpe_numba")}
            if not res.get("ok"):
                err = one_line(res.get("error"))
                self.cont(f" FAILED: {err}")
                self.problems.append(f"count_pretokens failed on {label}: {err}")
                self.rows.append(dict(base, status="error", note=err))
                continue
            self.cont(" " + ", ".join(f"{r['workers']} worker(s) {r['mb_per_s']:,.1f} MB/s" for r in res["rows"])
                      + f", peak {res['peak_rss'] / 2**20:,.0f} MB")
            if not res["same_counts"]:
                self.problems.append(f"count_pretokens on {label}: the counts differ between worker counts")
            for r in res["rows"]:
                self.rows.append(dict(base, variant=f"num_workers={r['workers']}", workers=r["workers"],
                                      runs=r["runs"], call_s=r["seconds_median"], mb_per_s=r["mb_per_s"],
                                      speedup=r["speedup"], counting_s=r.get("counting_median"),
                                      counting_speedup=r.get("counting_speedup"),
                                      rest_ms=r["rest_median"] * 1e3 if "rest_median" in r else None,
                                      wall_s=res["wall_s"], peak_mb=res["peak_rss"] / 2**20,
                                      distinct=res["distinct"], same_counts=res["same_counts"], status="ok",
                                      note=f"{res['distinct']:,} distinct pre-tokens"))

    # ----- encoding -----
    def _model(self) -> tuple[str, str, dict] | None:
        """``(vocab_path, merges_path, env)`` for the encoding runs, or None (noted) without the GPT-2 files."""
        fixtures = bench_encode.fixture_dir()
        vocab_path, merges_path = bench_encode.model_paths(fixtures)
        absent = [p for p in (vocab_path, merges_path) if not os.path.isfile(p)]
        if absent:
            note = (f"GPT-2 model file not found: {absent[0]} (set BPE_NUMBA_FIXTURES to the folder holding "
                    f"gpt2_vocab.json and gpt2_merges.txt)")
            self.log(f"encode: skipped, {note}")
            if f"Encoding skipped: {note}." not in self.notes:
                self.notes.append(f"Encoding skipped: {note}.")
            return None
        env = dict(os.environ)
        env["TIKTOKEN_CACHE_DIR"] = cache = bench_encode.tiktoken_cache_dir(fixtures)
        if not os.path.isdir(cache):
            self.notes.append(f"{cache} does not exist: tiktoken had to download the gpt2 files.")
        return vocab_path, merges_path, env

    def encode_case(self, corpus: str, path: str, tools: list[str], repeat: int,
                    keep_reference: str | None = None) -> dict | None:
        """The encoding rows of one file; appends CSV rows and returns run_rows' result."""
        model = self._model()
        if model is None:
            return None
        vocab_path, merges_path, env = model
        self.warm(path)

        def before_run(t, r):
            self.log(f"encode {corpus}: {t} run {r + 1}/{repeat} ...", end="")

        def say(msg=""):  # bench_encode's per-run lines complete the line before_run started
            text = msg.strip()
            if not text:
                return
            if text.split(" ", 1)[0].rstrip(":") in bench_encode.TOOLS:
                self.cont(" " + text.split(": ", 1)[-1])
            else:  # a traceback
                print("        " + text.replace("\n", "\n        "), flush=True)

        result = bench_encode.run_rows(os.path.abspath(path), tools, repeat, self.workers,
                                       vocab_path, merges_path, env, self.a.timeout, say=say, before_run=before_run,
                                       keep_reference=keep_reference)
        result["repeat"] = repeat
        size = os.path.getsize(path) / 1e6
        for t, rs in result["runs"].items():
            for x in rs:
                x.update(task="encode", corpus=corpus, size_mb=size)
                self.raw.append(_compact_run(x))
        for m in result["mismatches"]:
            self.problems.append(f"IDS MISMATCH ({corpus}): {m}")
            self.notes.append(f"IDS MISMATCH ({corpus}): " + m.replace("\n", " / "))
        base = next((r["seconds_median"] for r in result["rows"]
                     if r["row"] == "bpe_numba_cold" and r["status"] == "ok"), None)
        for r in result["rows"]:
            row = {"task": "encode", "corpus": corpus, "tool": r["row"], "variant": r["label"], "size_mb": size,
                   "vocab_size": 50257, "workers": r.get("threads"), "machine": self.machine["short"],
                   "version": self.machine["versions"].get(r["tool"].split("_")[0]) or ""}
            if r["status"] != "ok":
                row.update(status="error" if r["status"] == "failed" else r["status"], note=one_line(r.get("note")))
                if r["tool"].startswith("bpe_numba") and r["status"] == "failed":
                    self.problems.append(f"bpe_numba encoding failed ({corpus}, {r['label']}): {row['note']}")
            else:
                fd = ("reference" if r["row"] == "tiktoken" else "" if r["same_ids_as_tiktoken"] is None
                      else "identical" if r["same_ids_as_tiktoken"] else r.get("first_diff_vs_tiktoken"))
                row.update(status="ok", runs=r["runs_ok"], call_s=r["seconds_median"],
                           wall_s=None if r["row"] in bench_encode.WARM_ROWS else r.get("process_wall_s_median"),
                           peak_mb=r["peak_rss_max"] / 2**20, first_diff=fd, mb_per_s=r["mb_per_s_median"],
                           speedup=r.get("speed_vs_tiktoken_1thread"),
                           ratio_vs_bpe_numba=r["seconds_median"] / base if base else None, note="")
            self.rows.append(row)
        if result["compared"] and not result["mismatches"]:
            ids = next((r["ids"] for r in result["rows"] if r.get("ids")), 0)
            self.notes.append(f"Encoding check ({corpus}): every run's ids equal tiktoken's ({ids:,} ids).")
        return result

    def part_encode_real(self) -> None:
        real = self.real()
        for name, (path, label) in real.items():
            keep = os.path.join(self.scratch(), "prose_en.tiktoken.npy") if name == "prose_en" else None
            result = self.encode_case(label, path, [t for t in self.a.encode_tools if t in ENCODE_REAL_TOOLS],
                                      self.a.repeat, keep_reference=keep)
            if result is None:
                return
            self.encode_results.append((label, result))
            if keep and os.path.exists(keep):
                self._tiktoken_prose = keep
        for gb in self.a.encode_scale_gb:
            made = self.scale_file(gb)
            if made is not None:
                self.encode_scale(gb, *made)
            self.drop_scale(set())

    def encode_scale(self, gb: float, path: str, layout: dict) -> None:
        """``encode_file`` against gigatoken's ``encode_files`` on ``prose_en.txt`` × ``gb`` GB, ids checked
        against tiktoken's ids of ``prose_en.txt`` (the file is whole copies of it, special tokens are hard
        boundaries), or, without those, against each other."""
        import numpy as np

        model = self._model()
        if model is None:
            return
        vocab_path, merges_path, env = model
        with open(vocab_path, encoding="utf-8") as f:
            eot_id = json.load(f)[SPECIALS[0]]
        corpus = f"prose_en.txt × {fmt_size(gb)} GB"
        size = os.path.getsize(path) / 1e6
        n = self.a.repeat_large
        ref = np.load(self._tiktoken_prose) if self._tiktoken_prose else None
        self.scale_check = ("in full against tiktoken's ids of prose_en.txt from the rows above, repeated as the "
                            "file repeats it (special tokens are hard boundaries)") if ref is not None else \
            "against each other (tiktoken's ids of prose_en.txt were not available)"
        self.warm(path)
        runs: dict[str, list[dict]] = {t: [] for t in ENCODE_SCALE_TOOLS}
        with tempfile.TemporaryDirectory(prefix="bench_suite_", dir=self.scratch()) as tmp:
            first: dict[str, str] = {}
            for r in range(n):
                for t in ENCODE_SCALE_TOOLS:
                    if t in self.missing:
                        continue
                    self.log(f"encode {corpus}: {t} run {r + 1}/{n} ...", end="")
                    ids_path = os.path.join(tmp, f"{t}.{r}.npy")
                    res = bench_encode.run_once(t, path, ids_path, self.workers, vocab_path, merges_path, env,
                                                self.a.timeout)
                    res.update(task="encode", corpus=corpus, size_mb=size, repeat=r)
                    self.raw.append(_compact_run(res))
                    if res.get("missing"):
                        self.missing[t] = one_line(res.get("error"))
                        self.cont(f" not available ({self.missing[t]})")
                        continue
                    runs[t].append(res)
                    if not res.get("ok"):
                        self.cont(f" FAILED: {one_line(res.get('error'))}")
                        continue
                    ids = np.load(ids_path, mmap_mode="r")
                    res["ids"] = len(ids)
                    if ref is not None:
                        res["first_diff"] = corpora.check_scaled_ids(ids, ref, layout, eot_id)
                    elif first:
                        res["first_diff"] = bench_encode.first_difference(ids, np.load(next(iter(first.values())),
                                                                                       mmap_mode="r"))
                    if t == "bpe_numba_file" and res.get("returned_count") != len(ids):
                        self.problems.append(f"{corpus}: encode_file returned {res.get('returned_count')!r} but "
                                             f"its .npy holds {len(ids):,} ids")
                    del ids
                    first.setdefault(t, ids_path)
                    if ids_path not in first.values():
                        os.unlink(ids_path)
                    bad = res.get("first_diff") is not None
                    if bad:
                        self.problems.append(f"IDS MISMATCH ({corpus}): {t} run {r + 1} differs at id "
                                             f"#{res['first_diff']:,} ({self.scale_check})")
                    self.cont(f" {size / res['call_s']:,.1f} MB/s (call {res['call_s']:.2f} s), peak "
                              f"{res['peak_rss'] / 2**20:,.0f} MB" + bench_train.steal_note(res)
                              + ("  IDS MISMATCH" if bad else ""))
            del ref
        labels = {"gigatoken_file": f"gigatoken encode_files(FILE), {self.workers} threads",
                  "bpe_numba_file": f"bpe_numba encode_file, num_workers={self.workers}"}
        bpe = [x["call_s"] for x in runs["bpe_numba_file"] if x.get("ok")]
        for t, rs in runs.items():
            ok = [x for x in rs if x.get("ok")]
            row = {"task": "encode", "corpus": corpus, "tool": t, "variant": labels[t], "size_mb": size,
                   "vocab_size": 50257, "workers": self.workers, "machine": self.machine["short"],
                   "version": self.machine["versions"].get(t.split("_")[0]) or ""}
            if not ok:
                if rs:
                    row.update(status="error", note=one_line(rs[-1].get("error")))
                    if t == "bpe_numba_file":
                        self.problems.append(f"bpe_numba encode_file failed on {corpus}: {row['note']}")
                self.scale_encode_rows.append(row)
                continue
            checked = [x for x in ok if "first_diff" in x]
            call = statistics.median(x["call_s"] for x in ok)
            row.update(status="ok", runs=len(ok), call_s=call, mb_per_s=size / call,
                       wall_s=statistics.median(x["process_wall_s"] for x in ok),
                       peak_mb=max(x["peak_rss"] for x in ok) / 2**20, ids=ok[0]["ids"],
                       ratio_vs_bpe_numba=call / statistics.median(bpe) if bpe else None,
                       first_diff=("identical" if checked and all(x["first_diff"] is None for x in checked) else
                                   min((x["first_diff"] for x in checked if x["first_diff"] is not None),
                                       default="")),
                       note="")
            row["ids_check"] = {"identical": "yes", "": "unchecked"}.get(row["first_diff"],
                                                                        f"NO (first at #{row['first_diff']})")
            self.scale_encode_rows.append(row)
        self.rows.extend(self.scale_encode_rows)

    def part_encode_synthetic(self) -> None:
        path = ensure_corpus(self.a.data_dir, self.a.encode_mb, self.log)
        corpus = f"synthetic {fmt_size(self.a.encode_mb)} MB"
        result = self.encode_case(corpus, path, self.a.encode_tools, self.repeat_for(self.a.encode_mb))
        if result is not None:
            self.encode_synthetic = (corpus, result)

    # ----- cold start -----
    def part_cold(self) -> None:
        for case in bench_cold.CASES[:1] if self.a.quick else bench_cold.CASES:  # each case waits for a compile
            try:
                _argv, label, what = bench_cold.case_command(case)
            except FileNotFoundError as e:
                self.log(f"cold start {case}: skipped, {e}")
                self.notes.append(f"Cold start `{case}` skipped: {e}.")
                continue
            res = bench_cold.run_case(case, self.a.cold_repeat, self.a.timeout,
                                      say=lambda msg: self.log(f"cold start: {msg}"))
            self.raw.append({"task": "cold", **{k: v for k, v in res.items() if k != "command"}})
            base = {"task": "cold", "corpus": what,
                    "tool": "bpe_numba", "variant": label, "machine": self.machine["short"],
                    "version": self.machine["versions"].get("bpe_numba")}
            cold = res.get("cold", {})
            if not cold.get("ok"):
                err = one_line(res.get("error"))
                self.rows.append(dict(base, cache="empty", status="error", note=err))
                self.problems.append(f"cold start {label} failed: {err}")
                continue
            left = bench_cold.lingered(cold)
            if left:
                self.notes.append(f"Cold start `{label}`, empty cache: {left}.")
            for text in res.get("lingered", [])[1 if left else 0 :]:
                self.notes.append(f"Cold start `{label}`, a warm run: {text}.")
            self.rows.append(dict(base, cache="empty", status="ok", runs=1, wall_s=cold["wall_s"],
                                  peak_mb=cold["peak_rss"] / 2**20, left_note=left.split(":")[0],
                                  note="empty cache"))
            if not res["ok"]:
                err = one_line(res.get("error"))
                self.rows.append(dict(base, cache="warm", status="error", note=err))
                self.problems.append(f"cold start {label} failed: {err}")
                continue
            self.rows.append(dict(base, cache="warm", status="ok", runs=res["runs"], wall_s=res["warm_median_s"],
                                  peak_mb=max(x["peak_rss"] for x in res["warm"]) / 2**20,
                                  note=f"{res['warm_min_s']:.2f}-{res['warm_max_s']:.2f}"))

    # ----- the whole run -----
    def run(self) -> int:
        a = self.a
        m = self.machine
        self.log(f"bpe_numba benchmark suite: {self.command()}")
        self.log(f"machine: {m['short']}; load average {fmt_load(m['loadavg_start'])}")
        steps = {"train-real": self.part_train_real, "count": self.part_count, "encode-real": self.part_encode_real,
                 "cold": self.part_cold, "train-synthetic": self.part_train_synthetic,
                 "encode-synthetic": self.part_encode_synthetic}
        try:
            if any(p != "cold" for p in a.only):
                self.warm_up(a.only)
            for part in a.only:
                self.log(f"--- {part} ---")
                steps[part]()
                self.parts_run.append(part)
        except KeyboardInterrupt:
            self.interrupted = True
            print(flush=True)
            self.log("interrupted: writing what was measured so far")
        finally:
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
        for t, why in self.missing.items():
            self.rows.append({"task": "train" if t in TRAIN_TOOLS else "encode", "tool": t, "status": "not installed",
                              "note": why, "machine": m["short"]})
            self.notes.append(f"{TRAIN_LABELS.get(t, t)} is not installed: skipped ({why}).")
        total = time.perf_counter() - self.t0
        self.machine["loadavg_end"] = _loadavg()
        self.write(total)
        self.log(f"total: {fmt_duration(total)}")
        for p in self.problems:
            print("!! " + p, file=sys.stderr)
        return 130 if self.interrupted else (1 if self.problems else 0)

    def write(self, total: float) -> None:
        out = self.a.out
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "results.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
            w.writeheader()
            for r in self.rows:
                w.writerow({k: csv_value(k, r.get(k)) for k in CSV_FIELDS})
        with open(os.path.join(out, "results.md"), "w") as f:
            f.write(render_markdown(self, total))
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump({"command": self.command(), "machine": self.machine, "total_s": total, "parts": self.parts_run,
                       "rows": self.rows, "runs": self.raw, "notes": self.notes, "problems": self.problems},
                      f, indent=1, default=str)
        plots = make_plots(self, out)
        for p in ("results.csv", "results.md", "results.json", *plots):
            self.log(f"wrote {os.path.join(out, p)}")


# ---------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(PARTS), help=f"parts to run, any of {','.join(PARTS)} (default: all)")
    ap.add_argument("--corpora", default=corpora.default_dir(),
                    help="folder of prose_en.txt and multilingual.txt, built there by the shared corpora/build.py "
                         f"when missing (default {corpora.default_dir()})")
    ap.add_argument("--scale-gb", type=lambda x: parse_list(x, float, "--scale-gb"), default=None,
                    help="train-real: prose_en.txt repeated to these sizes in GB (10^9 bytes); 0 for none (default 1,2)")
    ap.add_argument("--encode-scale-gb", type=lambda x: parse_list(x, float, "--scale-gb"), default=None,
                    help="encode-real: encode_file against gigatoken on prose_en.txt repeated to these sizes in GB; "
                         "0 for none (default 1)")
    ap.add_argument("--scale-dir", default=None,
                    help="where the repeated files are built, then deleted (default: the system's temp folder)")
    ap.add_argument("--slow-peers", action="store_true", help="run rustbpe and HF tokenizers on the repeated files too")
    ap.add_argument("--count-repeat", type=int, default=5, help="count: timed calls per worker count (default 5)")
    ap.add_argument("--cold-repeat", type=int, default=None, help="cold: warm runs per case (default 7)")
    ap.add_argument("--sizes", type=lambda x: parse_list(x, float, "--sizes"), default=None,
                    help="train-synthetic: corpus sizes in MB (10^6 bytes), comma-separated (default 1,10,100)")
    ap.add_argument("--vocab-sizes", type=lambda x: parse_list(x, int, "--vocab-sizes"), default=None,
                    help="train-synthetic: vocabulary sizes, comma-separated (default 10000,32000)")
    ap.add_argument("--tools", default=",".join(TRAIN_TOOLS),
                    help=f"training tools, any of {','.join(TRAIN_TOOLS)} (default: all; python_baseline only "
                         "on the synthetic corpus)")
    ap.add_argument("--baseline-max-mb", type=float, default=1.0,
                    help="run the pure-Python trainer only on sizes up to this (default 1)")
    ap.add_argument("--repeat", type=int, default=None,
                    help=f"fresh processes per measurement on the real corpora and on synthetic sizes below {LARGE_MB} "
                         "MB, median shown (default 3)")
    ap.add_argument("--repeat-large", type=int, default=None,
                    help=f"the same for the repeated files and synthetic sizes of {LARGE_MB} MB and more (default 1)")
    ap.add_argument("--encode-mb", type=float, default=None,
                    help="encode-synthetic: size of the synthetic corpus to encode in MB (default 10)")
    ap.add_argument("--encode-tools", default=None,
                    help=f"encoding rows, any of {','.join(ENCODE_TOOLS)} (default: all; --quick: all but "
                         "tiktoken_batch; tiktoken_batch never on real text)")
    ap.add_argument("--workers", type=int, default=None,
                    help="bpe_numba's num_workers in training and encode_file, the encoders' threads "
                         "(default: all cores)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per process before it is killed "
                    "(default 900); the tool then gets a 'timeout' row and is not run on larger files")
    ap.add_argument("--data-dir", default=os.path.join(HERE, "data"),
                    help="where the synthetic corpora are generated and reused (default benchmarks/data)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="output folder (default benchmarks/results)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: the first 1-2 MB of the real corpora at vocab 10000, no repeated files, --sizes 1 "
                         "--vocab-sizes 10000 --encode-mb 1 --repeat 1 --cold-repeat 1, the cold start of "
                         "train_bpe(corpus.en) only (explicit options still win)")
    return ap


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = build_parser()
    a = ap.parse_args(argv)
    q = a.quick
    a.sizes = a.sizes or ([1.0] if q else [1.0, 10.0, 100.0])
    a.vocab_sizes = a.vocab_sizes or ([10000] if q else [10000, 32000])
    a.scale_gb = a.scale_gb if a.scale_gb is not None else ([] if q else [1.0, 2.0])
    a.encode_scale_gb = a.encode_scale_gb if a.encode_scale_gb is not None else ([] if q else [1.0])
    a.repeat = a.repeat if a.repeat is not None else (1 if q else 3)
    a.repeat_large = a.repeat_large if a.repeat_large is not None else 1
    a.cold_repeat = a.cold_repeat if a.cold_repeat is not None else (1 if q else 7)
    a.encode_mb = a.encode_mb if a.encode_mb is not None else (1.0 if q else 10.0)
    a.encode_tools = a.encode_tools or ",".join(t for t in ENCODE_TOOLS if not (q and t == "tiktoken_batch"))
    only = [p.strip() for p in a.only.split(",") if p.strip()]
    bad = [p for p in only if p not in PARTS]
    if bad or not only:
        ap.error(f"unknown part(s) {bad} in --only; choose from {', '.join(PARTS)}")
    a.only = [p for p in PARTS if p in only]
    tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TRAIN_TOOLS]
    if bad:
        ap.error(f"unknown training tool(s) {bad}; choose from {', '.join(TRAIN_TOOLS)}")
    a.tools = [t for t in TRAIN_TOOLS if t in tools]
    etools = [t.strip() for t in a.encode_tools.split(",") if t.strip()]
    bad = [t for t in etools if t not in ENCODE_TOOLS]
    if bad:
        ap.error(f"unknown encoding row(s) {bad}; choose from {', '.join(ENCODE_TOOLS)}")
    a.encode_tools = [t for t in ENCODE_TOOLS if t in etools]
    if min(a.repeat, a.repeat_large, a.count_repeat, a.cold_repeat) < 1:
        ap.error("--repeat, --repeat-large, --count-repeat and --cold-repeat must be at least 1")
    if a.encode_mb <= 0:
        ap.error("--encode-mb must be positive (leave encode-synthetic out of --only to skip it)")
    if a.workers is not None and a.workers < 1:
        ap.error("--workers must be at least 1")
    if a.timeout is not None and a.timeout <= 0:
        ap.error("--timeout must be positive")
    low = [x for x in a.vocab_sizes if x < 256 + len(SPECIALS)]
    if low:
        ap.error(f"vocab sizes must be at least {256 + len(SPECIALS)}: {low}")
    a.data_dir = os.path.abspath(a.data_dir)
    a.out = os.path.abspath(a.out)
    a.corpora = os.path.abspath(os.path.expanduser(a.corpora))
    if a.scale_dir is not None:
        a.scale_dir = os.path.abspath(a.scale_dir)
        if not os.path.isdir(a.scale_dir):
            ap.error(f"--scale-dir {a.scale_dir} is not a folder")
    return a


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    a = parse_args(argv)
    try:
        import psutil  # noqa: F401
    except ImportError:
        print("the benchmark suite needs psutil: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    return Suite(a, argv).run()
