"""The benchmark suite: training and encoding, every tool side by side, in one run.

    python -m benchmarks                      # 1, 10, 100 MB x vocab 10000, 32000 (+ encoding 10 MB)
    python -m benchmarks --quick --out /tmp/bq   # smoke run: 1 MB, vocab 10000, one repeat
    python -m benchmarks --sizes 1,10,100,1000 --timeout 1800

Training: the deterministic synthetic corpus (``bpe_numba.synthetic.write_corpus(path, n, seed=0)``,
generated once into --data-dir and reused) at each size and vocab size, trained by bpe_numba, rustbpe,
gigatoken, HF tokenizers (each when installed) and the textbook pure-Python trainer
(``baseline_python.py``, small sizes only), each run a fresh process (``_run_one.py``, through
``bench_train.run_once``) with the peak memory of its process tree sampled from outside. Every tool's
merges are compared with bpe_numba's; the pure-Python trainer must give exactly bpe_numba's merges.

Encoding: the 10 MB file with GPT-2's vocabulary, tiktoken against bpe_numba (``bench_encode.run_rows``);
every run's ids must equal tiktoken's.

Writes results.csv, results.md, results.json, train_time.png and encode_throughput.png into --out.
Exit status: 0; 1 when an exactness check failed (the pure-Python trainer's merges differ from
bpe_numba's, ids differ from tiktoken's) or bpe_numba itself failed; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from . import bench_encode, bench_train

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SPECIALS = ["<|endoftext|>"]
SEED = 0
LARGE_MB = 100  # sizes from here on get --repeat-large runs

TRAIN_TOOLS = ("bpe_numba", "rustbpe", "gigatoken", "hf", "python_baseline")
TRAIN_LABELS = {"bpe_numba": "bpe_numba", "rustbpe": "rustbpe", "gigatoken": "gigatoken",
                "hf": "HF tokenizers", "python_baseline": "pure Python (textbook)"}
TRAIN_COLORS = {"bpe_numba": "tab:blue", "rustbpe": "tab:orange", "gigatoken": "tab:green", "hf": "tab:red",
                "python_baseline": "tab:purple"}  # the same colour for a tool in every panel
ENCODE_TOOLS = ("tiktoken", "tiktoken_batch", "bpe_numba", "bpe_numba_file")
CSV_FIELDS = ("task", "tool", "size_mb", "vocab_size", "runs", "wall_s", "call_s", "peak_mb", "merges",
              "first_diff", "shared_merges_pct", "mb_per_s", "ratio_vs_bpe_numba", "status", "note", "version",
              "machine")
VERSION_DISTS = ("bpe_numba", "numba", "numpy", "regex", "rustbpe", "tokenizers", "gigatoken", "tiktoken",
                 "psutil", "matplotlib")


# ---------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------

def parse_list(text: str, kind, what: str) -> list:
    example = "1,10,100" if what == "--sizes" else "10000,32000"
    try:
        out = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad list {text!r}; use e.g. {example}") from None
    if not out or any(x <= 0 for x in out):
        raise argparse.ArgumentTypeError(f"give positive numbers, e.g. {example}")
    return sorted(set(out))


def fmt_size(mb: float) -> str:
    """``1`` -> ``"1"``, ``0.5`` -> ``"0.5"``: sizes as they appear in file names, tables and the CSV."""
    return f"{mb:g}"


def fmt_elapsed(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


def fmt_duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def one_line(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dist_version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


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
    try:
        load = os.getloadavg()
    except (OSError, AttributeError):
        load = None
    info = {
        "cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram_gib,
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(), "git": git, "loadavg_start": load,
        "versions": {d: dist_version(d) for d in VERSION_DISTS},
    }
    ram = f", {ram_gib:.0f} GiB RAM" if ram_gib else ""
    info["short"] = f"{cpu}, {info['cores']} cores{ram}, {platform.system()}, Python {info['python']}"
    return info


def corpus_path(data_dir: str, size_mb: float) -> str:
    return os.path.join(data_dir, f"synthetic_seed{SEED}_{fmt_size(size_mb)}MB.txt")


def ensure_corpus(data_dir: str, size_mb: float, log) -> str:
    """The synthetic corpus of ``size_mb`` MB (10^6 bytes) in ``data_dir``, generated unless already there.
    write_corpus stops at the first story boundary at or after the size and writes atomically, so a file
    that exists with a size just above the asked one is complete."""
    path = corpus_path(data_dir, size_mb)
    n = int(round(size_mb * 1e6))
    if os.path.isfile(path) and n <= os.path.getsize(path) < n + 100_000:
        log(f"corpus {fmt_size(size_mb)} MB: reusing {path}")
        return path
    try:
        from bpe_numba.synthetic import write_corpus
    except ImportError:  # running from a checkout without installing
        sys.path.insert(0, REPO)
        from bpe_numba.synthetic import write_corpus
    os.makedirs(data_dir, exist_ok=True)
    t0 = time.perf_counter()
    write_corpus(path, n, seed=SEED, progress=False)
    log(f"corpus {fmt_size(size_mb)} MB: generated {path} in {time.perf_counter() - t0:.1f} s")
    return path


# ---------------------------------------------------------------------------------------------------------
# The suite
# ---------------------------------------------------------------------------------------------------------

class Suite:
    def __init__(self, a: argparse.Namespace, argv: list[str]):
        self.a = a
        self.argv = argv
        self.t0 = time.perf_counter()
        self.rows: list[dict] = []          # one per measurement (the CSV)
        self.raw: list[dict] = []           # every process's figures (results.json)
        self.notes: list[str] = []          # for results.md
        self.problems: list[str] = []       # failed exactness checks / bpe_numba failures -> exit 1
        self.missing: dict[str, str] = {}   # tool -> why it is not available
        self.machine = machine_info()
        self.encode_rows: list[dict] = []
        self.interrupted = False

    # ----- output -----
    def log(self, msg: str, end: str = "\n") -> None:
        print(f"[{fmt_elapsed(time.perf_counter() - self.t0):>5}] {msg}", end=end, flush=True)

    def cont(self, msg: str) -> None:  # completes a line started with log(..., end="")
        print(msg, flush=True)

    def repeat_for(self, size_mb: float) -> int:
        return self.a.repeat_large if size_mb >= LARGE_MB else self.a.repeat

    # ----- warm-up -----
    def warm_up(self, smallest: str) -> None:
        """Fill Numba's on-disk cache (the first run after a code change compiles the kernels, ~6 s), so
        that compilation is in no measurement. Reported, not measured."""
        t = time.perf_counter()
        what = "training and encoding" if self.a.encode_mb else "training"
        self.log(f"warm-up: bpe_numba {what} once (fills Numba's cache; not measured) ...", end="")
        res = bench_train.run_once("bpe_numba", smallest, 500, SPECIALS, None, self.a.workers, self.a.timeout)
        msg = "" if res.get("ok") else f" training FAILED: {one_line(res.get('error'))}"
        fixtures = bench_encode.fixture_dir()
        vocab_path, merges_path = bench_encode.model_paths(fixtures)
        if self.a.encode_mb and os.path.isfile(vocab_path) and os.path.isfile(merges_path):
            with tempfile.TemporaryDirectory(prefix="bench_suite_") as d:
                r2 = bench_encode.run_once("bpe_numba", smallest, os.path.join(d, "ids.npy"), 1, vocab_path,
                                           merges_path, dict(os.environ), self.a.timeout)
            if not r2.get("ok") and not r2.get("missing"):
                msg += f" encoding FAILED: {one_line(r2.get('error'))}"
        dt = time.perf_counter() - t
        self.cont(f" {dt:.1f} s{msg}")
        self.machine["warmup_s"] = dt

    # ----- training -----
    def train(self, files: dict[float, str]) -> None:
        a = self.a
        tools = a.tools
        timed_out: dict[tuple[str, int], float] = {}  # (tool, vocab) -> size that timed out
        for size in a.sizes:
            path = files[size]
            nbytes = os.path.getsize(path)
            n = self.repeat_for(size)
            for vocab in a.vocab_sizes:
                todo = []
                for t in tools:
                    if t in self.missing:
                        continue
                    if t == "python_baseline" and size > a.baseline_max_mb:
                        continue
                    if (t, vocab) in timed_out:
                        self.rows.append(self._train_row(t, size, vocab, status="skipped", note=(
                            f"timed out at {fmt_size(timed_out[t, vocab])} MB; larger sizes not run")))
                        continue
                    todo.append(t)
                runs: dict[str, list[dict]] = {t: [] for t in todo}
                failed: set[str] = set()
                tmp = tempfile.mkdtemp(prefix="bench_suite_")
                merges_path = {t: os.path.join(tmp, f"{t}.json") for t in todo}
                try:
                    for r in range(n):  # round-robin over the tools, so load drift hits all of them alike
                        for t in todo:
                            if t in failed or t in self.missing:
                                continue
                            self.log(f"train {fmt_size(size)} MB, vocab {vocab}: {t} run {r + 1}/{n} ...", end="")
                            res = bench_train.run_once(t, path, vocab, SPECIALS, merges_path[t] if r == 0 else None,
                                                       a.workers, a.timeout)
                            res.update(task="train", size_mb=size, vocab_size=vocab, repeat=r)
                            self.raw.append(_compact_run(res))
                            if res.get("missing"):
                                self.missing[t] = one_line(res.get("error")) or "not installed"
                                self.cont(f" not installed, skipped ({self.missing[t]})")
                                continue
                            if not res.get("ok"):
                                failed.add(t)
                                err = one_line(res.get("error"))
                                self.cont(f" FAILED after {res['wall_s']:.1f} s: {err}")
                                tail = res.get("traceback") or res.get("stderr_tail")
                                if tail:
                                    last = "\n".join(tail.strip().splitlines()[-12:])
                                    print("        " + last.replace("\n", "\n        "), flush=True)
                                if err.startswith("timeout"):
                                    timed_out[t, vocab] = size
                                runs[t].append(res)
                                continue
                            runs[t].append(res)
                            self.cont(f" wall {res['wall_s']:.2f} s (train {res['train_s']:.2f} s), "
                                      f"peak {res['peak_rss'] / 2**20:,.0f} MB, {res['merges']} merges")
                    self._train_summary(size, vocab, nbytes, runs, merges_path)
                finally:
                    for p in merges_path.values():
                        try:
                            os.unlink(p)
                        except OSError:
                            pass
                    os.rmdir(tmp)

    def _train_row(self, tool: str, size, vocab, **kw) -> dict:
        row = {"task": "train", "tool": tool, "size_mb": size, "vocab_size": vocab, "machine": self.machine["short"]}
        row.update(kw)
        return row

    def _train_summary(self, size, vocab, nbytes, runs, merges_path) -> None:
        ref = None
        if runs.get("bpe_numba") and all(x.get("ok") for x in runs["bpe_numba"]) \
                and os.path.exists(merges_path["bpe_numba"]):
            ref = bench_train.load_merges(merges_path["bpe_numba"])
        summary = {}
        out: list[dict] = []  # in tool order
        for t, rs in runs.items():
            ok = [x for x in rs if x.get("ok")]
            bad = [x for x in rs if not x.get("ok")]
            if bad:
                err = one_line(bad[0].get("error"))
                out.append(self._train_row(t, size, vocab, runs=len(ok),
                                           status="timeout" if err.startswith("timeout") else "error", note=err,
                                           wall_s=bad[0].get("wall_s"), peak_mb=bad[0].get("peak_rss", 0) / 2**20))
                if t == "bpe_numba":
                    self.problems.append(f"bpe_numba failed at {fmt_size(size)} MB, vocab {vocab}: {err}")
                elif t == "python_baseline":
                    self.notes.append(f"No exactness check at {fmt_size(size)} MB, vocab {vocab}: the pure-Python "
                                      f"trainer did not finish ({err}).")
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
            if t == "bpe_numba":
                s["first_diff"] = "reference"
            elif ref is not None and os.path.exists(merges_path[t]):
                c = bench_train.compare_merges(ref, bench_train.load_merges(merges_path[t]))
                s["first_diff"] = "identical" if c["identical_to_bpe_numba"] else c["first_diff"]
                s["shared_merges_pct"] = c["shared_merges_pct"]
                if t == "python_baseline":
                    where = f"{fmt_size(size)} MB, vocab {vocab}"
                    if c["identical_to_bpe_numba"]:
                        self.notes.append(f"Exactness check: the pure-Python trainer's {s['merges']} merges equal "
                                          f"bpe_numba's at {where}.")
                    else:
                        msg = (f"EXACTNESS CHECK FAILED at {where}: the pure-Python trainer's merges differ from "
                               f"bpe_numba's at merge #{c['first_diff']} (bpe_numba "
                               f"{c.get('first_diff_bpe_numba')}, pure Python {c.get('first_diff_tool')})")
                        self.problems.append(msg)
                        self.notes.append(msg)
            else:
                s["first_diff"] = ""
            summary[t] = s
            out.append(self._train_row(t, size, vocab, status="ok", note="", **s))
        base = summary.get("bpe_numba", {}).get("wall_s")
        for row in out:
            if row["status"] == "ok":
                row["ratio_vs_bpe_numba"] = row["wall_s"] / base if base else None
        self.rows.extend(out)

    # ----- encoding -----
    def encode(self, path: str) -> None:
        a = self.a
        fixtures = bench_encode.fixture_dir()
        vocab_path, merges_path = bench_encode.model_paths(fixtures)
        absent = [p for p in (vocab_path, merges_path) if not os.path.isfile(p)]
        if absent:
            note = (f"GPT-2 model file not found: {absent[0]} (set BPE_NUMBA_FIXTURES to the folder holding "
                    f"gpt2_vocab.json and gpt2_merges.txt)")
            self.log(f"encode: skipped, {note}")
            self.notes.append(f"Encoding skipped: {note}.")
            self.rows.append({"task": "encode", "tool": "all", "size_mb": a.encode_mb, "status": "skipped",
                              "note": note, "machine": self.machine["short"]})
            return
        env = dict(os.environ)
        env["TIKTOKEN_CACHE_DIR"] = cache = bench_encode.tiktoken_cache_dir(fixtures)
        if not os.path.isdir(cache):
            self.notes.append(f"{cache} does not exist: tiktoken had to download the gpt2 files.")
        workers = a.workers or os.cpu_count() or 1
        n = self.repeat_for(a.encode_mb)
        size = os.path.getsize(path)

        def before_run(t, r):
            self.log(f"encode {fmt_size(a.encode_mb)} MB: {t} run {r + 1}/{n} ...", end="")

        def say(msg=""):  # bench_encode's per-run lines complete the line before_run started
            text = msg.strip()
            if not text:
                return
            if text.split(" ", 1)[0].rstrip(":") in ENCODE_TOOLS:
                self.cont(" " + text.split(": ", 1)[-1])
            else:  # a traceback
                print("        " + text.replace("\n", "\n        "), flush=True)

        result = bench_encode.run_rows(os.path.abspath(path), list(a.encode_tools), n, workers, vocab_path,
                                       merges_path, env, a.timeout, say=say, before_run=before_run)
        for t, rs in result["runs"].items():
            for x in rs:
                x.update(task="encode", size_mb=a.encode_mb)
                self.raw.append(_compact_run(x))
        for m in result["mismatches"]:
            self.problems.append("IDS MISMATCH: " + m)
            self.notes.append("IDS MISMATCH: " + m.replace("\n", " / "))
        self.encode_rows = result["rows"]
        base = next((r["seconds_median"] for r in result["rows"]
                     if r["row"] == "bpe_numba_cold" and r["status"] == "ok"), None)
        vocab_n = None
        try:
            with open(vocab_path, encoding="utf-8") as f:
                vocab_n = len(json.load(f))
        except (OSError, ValueError):
            pass
        for r in result["rows"]:
            row = {"task": "encode", "tool": r["row"], "size_mb": a.encode_mb, "vocab_size": vocab_n,
                   "machine": self.machine["short"], "note": r["label"]}
            proc = "tiktoken" if r["tool"].startswith("tiktoken") else "bpe_numba"
            row["version"] = self.machine["versions"].get(proc) or ""
            if r["status"] != "ok":
                row.update(status="error" if r["status"] == "failed" else r["status"],
                           note=f"{r['label']}: {one_line(r.get('note'))}")
                if r["tool"].startswith("bpe_numba") and r["status"] == "failed":
                    self.problems.append(f"bpe_numba encoding failed ({r['label']}): {one_line(r.get('note'))}")
            else:
                if r["row"] == "tiktoken":
                    fd = "reference"
                elif r["same_ids_as_tiktoken"] is None:
                    fd = ""
                elif r["same_ids_as_tiktoken"]:
                    fd = "identical"
                else:
                    fd = r.get("first_diff_vs_tiktoken")
                row.update(status="ok", runs=r["runs_ok"], call_s=r["seconds_median"],
                           wall_s=None if r["row"] == "bpe_numba_warm" else r.get("process_wall_s_median"),
                           peak_mb=r["peak_rss_max"] / 2**20, first_diff=fd, mb_per_s=r["mb_per_s_median"],
                           ratio_vs_bpe_numba=r["seconds_median"] / base if base else None)
            self.rows.append(row)
        if result["compared"] and not result["mismatches"]:
            self.notes.append(f"Encoding check: every run's ids equal tiktoken's ({size / 1e6:,.1f} MB, "
                              f"{next((r['ids'] for r in result['rows'] if r.get('ids')), 0):,} ids).")

    # ----- the whole run -----
    def run(self) -> int:
        a = self.a
        m = self.machine
        self.log(f"bpe_numba benchmark suite: {_command(self.argv)}")
        self.log(f"machine: {m['short']}; load average {_fmt_load(m['loadavg_start'])}")
        train_sizes = a.sizes if a.tools else []
        need = sorted(set(train_sizes) | ({a.encode_mb} if a.encode_mb else set()))
        files = {s: ensure_corpus(a.data_dir, s, self.log) for s in need}
        try:
            if need:
                self.warm_up(files[need[0]])
            if train_sizes:
                self.train(files)
            if a.encode_mb:
                self.encode(files[a.encode_mb])
        except KeyboardInterrupt:
            self.interrupted = True
            print(flush=True)
            self.log("interrupted: writing what was measured so far")
        if "python_baseline" in a.tools and any(x > a.baseline_max_mb for x in train_sizes):
            self.notes.append(f"The pure-Python trainer runs only on sizes up to {fmt_size(a.baseline_max_mb)} MB "
                              "(--baseline-max-mb).")
        for t, why in self.missing.items():
            self.rows.append(self._train_row(t, "", "", status="not installed", note=why))
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
                w.writerow({k: _csv_value(k, r.get(k)) for k in CSV_FIELDS})
        md = render_markdown(self, total)
        with open(os.path.join(out, "results.md"), "w") as f:
            f.write(md)
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump({"command": _command(self.argv), "machine": self.machine,
                       "total_s": total, "rows": self.rows, "runs": self.raw, "notes": self.notes,
                       "problems": self.problems}, f, indent=1, default=str)
        plots = make_plots(self, out)
        for p in ("results.csv", "results.md", "results.json", *plots):
            self.log(f"wrote {os.path.join(out, p)}")


def _repeat_sentence(a) -> str:
    small = [x for x in a.sizes if x < LARGE_MB]
    large = [x for x in a.sizes if x >= LARGE_MB]
    if small and large and a.repeat != a.repeat_large:
        return (f"Median of {a.repeat} fresh process(es) per tool for sizes below {LARGE_MB} MB, "
                f"{a.repeat_large} from {LARGE_MB} MB on.")
    return f"Median of {a.repeat if small else a.repeat_large} fresh process(es) per tool and size."


def _command(argv: list[str]) -> str:
    return " ".join(["python -m benchmarks", shlex.join(argv)]).rstrip()


def _loadavg():
    try:
        return os.getloadavg()
    except (OSError, AttributeError):
        return None


def _fmt_load(load) -> str:
    return "n/a" if not load else ", ".join(f"{x:.2f}" for x in load) + " (1, 5, 15 min)"


def _compact_run(res: dict) -> dict:
    """One process's figures for results.json, without tracebacks, stderr or file paths."""
    keep = ("task", "tool", "size_mb", "vocab_size", "repeat", "ok", "error", "wall_s", "process_wall_s",
            "train_s", "call_s", "warm_s", "call_cpu_s", "load_s", "peak_rss", "merges", "version", "timings",
            "ids", "num_workers")
    out = {k: res[k] for k in keep if k in res}
    if "error" in out:
        out["error"] = one_line(out["error"], 500)
    return out


def _csv_value(key: str, v):
    if v is None:
        return ""
    if key == "size_mb" and isinstance(v, (int, float)):
        return fmt_size(v)
    if isinstance(v, float):
        digits = {"peak_mb": 1, "mb_per_s": 2, "shared_merges_pct": 1}.get(key, 3)
        return round(v, digits)
    return v


# ---------------------------------------------------------------------------------------------------------
# results.md
# ---------------------------------------------------------------------------------------------------------

def _md_table(header: list[str], rows: list[list], align: str) -> list[str]:
    seps = {"l": "---", "r": "---:"}
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(seps[c] for c in align) + " |"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def render_markdown(s: Suite, total: float) -> str:
    a, m = s.a, s.machine
    v = m["versions"]
    pk = ", ".join(f"{d} {v[d]}" for d in VERSION_DISTS if v.get(d) and d not in ("psutil", "matplotlib"))
    if m.get("git"):
        pk = pk.replace(f"bpe_numba {v.get('bpe_numba')}", f"bpe_numba {v.get('bpe_numba')} (git {m['git']})")
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{_command(s.argv)}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, "
        + (f"{m['ram_gib']:.0f} GiB RAM, " if m.get("ram_gib") else "")
        + f"{m['os']}, Python {m['python']}; load average at start {_fmt_load(m['loadavg_start'])}, "
          f"at end {_fmt_load(m.get('loadavg_end'))}",
        "",
        f"Packages: {pk}",
        "",
        f"Run on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, total {fmt_duration(total)}"
        + (" (INTERRUPTED: partial results)" if s.interrupted else "") + ". Corpus: the synthetic "
        f"TinyStories-like text of `bpe_numba.synthetic` (seed {SEED}), special token `<|endoftext|>`.",
        "",
    ]
    train = [r for r in s.rows if r["task"] == "train" and r.get("size_mb") != ""]
    if train:
        lines += [
            "## Training",
            "",
            _repeat_sentence(a) + " **wall s**: the whole process, timed from outside (interpreter start, imports, "
            "reading, training); **train s**: the training call alone; **peak MB**: the largest sampled "
            "(~10 ms) RSS sum of the process tree; **vs bpe_numba**: wall time / bpe_numba's; **first "
            "differing merge**: 0-based index of the first merge that differs from bpe_numba's (the CS336 "
            "reference result); **shared**: the share of bpe_numba's merges the tool also made, in any order; "
            f"**merges**: every tool is asked for vocab − {256 + len(SPECIALS)} merges, but a corpus can run out of "
            "pairs first (the count at which that happens depends on the merge order; ≠ marks a count that "
            "differs from bpe_numba's).",
            "",
        ]
        for vocab in a.vocab_sizes:
            vrows = [r for r in train if r["vocab_size"] == vocab]
            if not vrows:
                continue
            lines += [f"### vocab {vocab:,}", ""]
            # compact summary: wall time per size
            sizes = [x for x in a.sizes if any(r["size_mb"] == x for r in vrows)]
            tools = [t for t in TRAIN_TOOLS if any(r["tool"] == t for r in vrows)]
            summ = []
            for t in tools:
                cells = [TRAIN_LABELS[t]]
                for size in sizes:
                    r = next((r for r in vrows if r["tool"] == t and r["size_mb"] == size), None)
                    if r is None:
                        cells.append("–")
                    elif r["status"] != "ok":
                        cells.append(r["status"])
                    else:
                        ratio = "" if t == "bpe_numba" or not r.get("ratio_vs_bpe_numba") \
                            else f" ({r['ratio_vs_bpe_numba']:.2f}x)"
                        cells.append(f"{r['wall_s']:.2f}{ratio}")
                summ.append(cells)
            lines += ["Wall seconds (× bpe_numba's):", ""]
            lines += _md_table(["tool"] + [f"{fmt_size(x)} MB" for x in sizes], summ, "l" + "r" * len(sizes))
            lines.append("")
            det = []
            for size in sizes:
                for t in tools:
                    r = next((r for r in vrows if r["tool"] == t and r["size_mb"] == size), None)
                    if r is None:
                        continue
                    if r["status"] != "ok":
                        det.append([f"{fmt_size(size)} MB", TRAIN_LABELS[t], r["status"], "–", "–", "–", "–",
                                    one_line(r.get("note"), 120), "–"])
                        continue
                    fd = r.get("first_diff")
                    fd = {"reference": "(reference)", "identical": "identical", "": "–", None: "–"}.get(fd, f"#{fd}")
                    name = TRAIN_LABELS[t] if t == "python_baseline" else f"{TRAIN_LABELS[t]} {r.get('version', '')}"
                    ref_merges = next((x["merges"] for x in vrows if x["tool"] == "bpe_numba"
                                       and x["size_mb"] == size and x["status"] == "ok"), None)
                    merges = f"{r['merges']:,}" + ("" if ref_merges in (None, r["merges"]) else " ≠")
                    ratio = r.get("ratio_vs_bpe_numba")
                    shared = r.get("shared_merges_pct")
                    det.append([f"{fmt_size(size)} MB", name.strip(), f"{r['wall_s']:.2f}", f"{r['call_s']:.2f}",
                                f"{r['peak_mb']:,.0f}", merges, "–" if ratio is None else f"{ratio:.2f}x", fd,
                                "–" if shared is None else f"{shared:.1f}%"])
            lines += _md_table(["corpus", "tool", "wall s", "train s", "peak MB", "merges", "vs bpe_numba",
                                "first differing merge", "shared"], det, "llrrrrrlr")
            lines.append("")
    if s.encode_rows:
        size = s.a.encode_mb
        lines += [
            "## Encoding",
            "",
            f"The {fmt_size(size)} MB corpus with GPT-2's vocabulary and `<|endoftext|>`, median of "
            f"{s.repeat_for(size)} fresh process(es) per row. **MB/s**: input bytes / 10^6 / seconds of the "
            "encoding call alone (model loading excluded; `encode_file` includes reading the file and writing "
            "the `.npy`); **vs tiktoken**: MB/s / tiktoken's single-thread MB/s; **cpu/wall**: CPU seconds "
            "per wall second of the call; **same ids**: every run's ids compared with tiktoken's.",
            "",
        ]
        base = next((r["mb_per_s_median"] for r in s.encode_rows if r["row"] == "tiktoken" and r["status"] == "ok"),
                    None)
        er = []
        for r in s.encode_rows:
            if r["status"] != "ok":
                er.append([r["label"], r["status"], "–", "–", "–", "–", one_line(r.get("note"), 120)])
                continue
            same = "(reference)" if r["row"] == "tiktoken" else (
                "unchecked" if r["same_ids_as_tiktoken"] is None else
                ("yes" if r["same_ids_as_tiktoken"] else f"NO (first at #{r.get('first_diff_vs_tiktoken')})"))
            er.append([r["label"], f"{r['mb_per_s_median']:,.2f}", f"{r['seconds_median']:.2f}",
                       f"{r['mb_per_s_median'] / base:.2f}x" if base else "–", f"{r['cpu_per_wall_median']:.2f}",
                       f"{r['peak_rss_max'] / 2**20:,.0f}", same])
        lines += _md_table(["row", "MB/s", "s", "vs tiktoken", "cpu/wall", "peak MB", "same ids"], er, "lrrrrrl")
        lines.append("")
    if s.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in s.notes] + [""]
    lines += [f"Warm-up before measuring (fills Numba's cache, not measured): {m.get('warmup_s', 0):.1f} s. "
              "MB in peak memory = 2^20 bytes; MB of corpus and MB/s = 10^6 bytes.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------------------

def make_plots(s: Suite, out: str) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        s.log("matplotlib is not installed: no plots (pip install matplotlib)")
        return []
    written = []
    train = [r for r in s.rows if r["task"] == "train" and r.get("status") == "ok"]
    vocabs = [v for v in s.a.vocab_sizes if any(r["vocab_size"] == v for r in train)]
    if vocabs:
        fig, axes = plt.subplots(1, len(vocabs), figsize=(5.2 * len(vocabs) + 0.6, 4.4), sharey=True,
                                 squeeze=False)
        for ax, vocab in zip(axes[0], vocabs):
            for t in TRAIN_TOOLS:
                pts = sorted((r["size_mb"], r["wall_s"]) for r in train if r["tool"] == t and r["vocab_size"] == vocab)
                if not pts:
                    continue
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", linewidth=2 if t == "bpe_numba" else 1.3, label=TRAIN_LABELS[t],
                        color=TRAIN_COLORS[t])
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"vocab {vocab:,}")
            ax.set_xlabel("corpus size (MB)")
            ax.grid(True, which="both", alpha=0.3)
            sizes = sorted({r["size_mb"] for r in train if r["vocab_size"] == vocab})
            ax.set_xticks(sizes)
            ax.set_xticklabels([fmt_size(x) for x in sizes])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            if len(sizes) == 1:
                ax.set_xlim(sizes[0] / 3, sizes[0] * 3)
        axes[0][0].set_ylabel("wall time (s, whole process)")
        axes[0][-1].legend(loc="best", fontsize=8)
        fig.suptitle(f"BPE training time — {s.machine['short']}", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "train_time.png"), dpi=110)
        plt.close(fig)
        written.append("train_time.png")
    enc = [r for r in s.encode_rows if r.get("status") == "ok"]
    if enc:
        fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(enc) + 1.4))
        labels = [r["label"] for r in enc][::-1]
        vals = [r["mb_per_s_median"] for r in enc][::-1]
        colors = ["tab:gray" if lab.startswith("tiktoken") else "tab:blue" for lab in labels]
        bars = ax.barh(labels, vals, color=colors)
        for b, val in zip(bars, vals):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {val:,.1f}", va="center", fontsize=8)
        ax.set_xlabel("MB/s (encoding call alone)")
        ax.set_xlim(0, max(vals) * 1.18)
        ax.set_title(f"Encoding {fmt_size(s.a.encode_mb)} MB with GPT-2's vocabulary\n{s.machine['short']}",
                     fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "encode_throughput.png"), dpi=110)
        plt.close(fig)
        written.append("encode_throughput.png")
    return written


# ---------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=lambda x: parse_list(x, float, "--sizes"), default=None,
                    help="training corpus sizes in MB (10^6 bytes), comma-separated (default 1,10,100)")
    ap.add_argument("--vocab-sizes", type=lambda x: parse_list(x, int, "--vocab-sizes"), default=None,
                    help="vocabulary sizes, comma-separated (default 10000,32000)")
    ap.add_argument("--tools", default=",".join(TRAIN_TOOLS),
                    help=f"training tools, any of {','.join(TRAIN_TOOLS)}; empty for none (default: all)")
    ap.add_argument("--baseline-max-mb", type=float, default=1.0,
                    help="run the pure-Python trainer only on sizes up to this (default 1)")
    ap.add_argument("--repeat", type=int, default=None,
                    help=f"fresh processes per measurement for sizes below {LARGE_MB} MB, median shown (default 3)")
    ap.add_argument("--repeat-large", type=int, default=None,
                    help=f"the same for sizes of {LARGE_MB} MB and more (default 1)")
    ap.add_argument("--encode-mb", type=float, default=None,
                    help="size of the corpus to encode in MB; 0 skips encoding (default 10)")
    ap.add_argument("--encode-tools", default=",".join(ENCODE_TOOLS),
                    help=f"encoding rows, any of {','.join(ENCODE_TOOLS)} (default: all)")
    ap.add_argument("--workers", type=int, default=None,
                    help="bpe_numba's num_workers, tiktoken's encode_batch threads (default: all cores)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per process before it is killed "
                    "(default 900); the tool then gets a 'timeout' row and is not run on larger sizes")
    ap.add_argument("--data-dir", default=os.path.join(HERE, "data"),
                    help="where the synthetic corpora are generated and reused (default benchmarks/data)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="output folder (default benchmarks/results)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: --sizes 1 --vocab-sizes 10000 --repeat 1 (explicit options still win)")
    return ap


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = build_parser()
    a = ap.parse_args(argv)
    q = a.quick
    a.sizes = a.sizes or ([1.0] if q else [1.0, 10.0, 100.0])
    a.vocab_sizes = a.vocab_sizes or ([10000] if q else [10000, 32000])
    a.repeat = a.repeat if a.repeat is not None else (1 if q else 3)
    a.repeat_large = a.repeat_large if a.repeat_large is not None else 1
    a.encode_mb = a.encode_mb if a.encode_mb is not None else 10.0
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
    if not a.encode_tools:
        a.encode_mb = 0
    if a.repeat < 1 or a.repeat_large < 1:
        ap.error("--repeat and --repeat-large must be at least 1")
    if a.encode_mb < 0:
        ap.error("--encode-mb must be 0 (no encoding) or positive")
    if a.workers is not None and a.workers < 1:
        ap.error("--workers must be at least 1")
    if a.timeout is not None and a.timeout <= 0:
        ap.error("--timeout must be positive")
    for name in ("vocab_sizes",):
        low = [x for x in getattr(a, name) if x < 256 + len(SPECIALS)]
        if low:
            ap.error(f"vocab sizes must be at least {256 + len(SPECIALS)}: {low}")
    a.data_dir = os.path.abspath(a.data_dir)
    a.out = os.path.abspath(a.out)
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
