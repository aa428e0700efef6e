"""What the suite writes: ``results.md`` (``render_markdown``), the CSV cell format (``csv_value``) and the
plots (``make_plots``). Every table names its corpus; real text comes first, the synthetic corpus second.
"""

from __future__ import annotations

import datetime
import os

TRAIN_TOOLS = ("bpe_numba", "rustbpe", "gigatoken", "hf", "python_baseline")
TRAIN_LABELS = {"bpe_numba": "bpe_numba", "rustbpe": "rustbpe", "gigatoken": "gigatoken",
                "hf": "HF tokenizers", "python_baseline": "pure Python (textbook)"}
TRAIN_COLORS = {"bpe_numba": "tab:blue", "rustbpe": "tab:orange", "gigatoken": "tab:green", "hf": "tab:red",
                "python_baseline": "tab:purple"}  # the same colour for a tool in every panel
VERSION_DISTS = ("bpe_numba", "numba", "numpy", "regex", "rustbpe", "tokenizers", "gigatoken", "tiktoken",
                 "psutil", "matplotlib")


def fmt_size(mb: float) -> str:
    """``1`` -> ``"1"``, ``0.5`` -> ``"0.5"``: sizes as they appear in file names, tables and the CSV."""
    return f"{mb:g}"


def fmt_duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def one_line(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fmt_load(load) -> str:
    return "n/a" if not load else ", ".join(f"{x:.2f}" for x in load) + " (1, 5, 15 min)"


def csv_value(key: str, v):
    if v is None:
        return ""
    if key == "size_mb" and isinstance(v, (int, float)):
        return f"{v:.4g}"
    if isinstance(v, float):
        digits = {"peak_mb": 1, "mb_per_s": 2, "shared_merges_pct": 1}.get(key, 3)
        return round(v, digits)
    return v


def _md_table(header: list[str], rows: list[list], align: str) -> list[str]:
    seps = {"l": "---", "r": "---:"}
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(seps[c] for c in align) + " |"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return out


def _ratio(r: dict) -> str:
    x = r.get("ratio_vs_bpe_numba")
    return "–" if x is None else f"{x:.2f}x"


# ---------------------------------------------------------------------------------------------------------
# results.md
# ---------------------------------------------------------------------------------------------------------

TRAIN_COLUMNS = ("**wall s**: the whole process, timed from outside (interpreter start, imports, reading, "
                 "training); **train s**: the training call alone; **peak MB**: the largest sampled (~10 ms) RSS "
                 "sum of the process tree; **vs bpe_numba**: wall time / bpe_numba's (above 1 = slower); **first "
                 "differing merge**: 0-based index of the first merge that differs from bpe_numba's (the CS336 "
                 "reference result); **shared**: the share of bpe_numba's merges the tool also made, in any order; "
                 "**merges**: every tool is asked for vocab − 257 merges, but a corpus can run out of pairs first "
                 "(≠ marks a count that differs from bpe_numba's).")


def _train_detail(rows: list[dict], with_vocab: bool) -> list[str]:
    det = []
    for r in rows:
        lead = [r["corpus"]] + ([f"{r['vocab_size']:,}"] if with_vocab else [])
        t = r["tool"]
        if r["status"] != "ok":
            det.append(lead + [TRAIN_LABELS[t], r["status"], "–", "–", "–", "–", one_line(r.get("note"), 120), "–"])
            continue
        fd = r.get("first_diff")
        fd = {"reference": "(reference)", "identical": "identical", "": "–", None: "–"}.get(fd, f"#{fd}")
        name = TRAIN_LABELS[t] if t == "python_baseline" else f"{TRAIN_LABELS[t]} {r.get('version', '')}".strip()
        ref_merges = next((x["merges"] for x in rows if x["tool"] == "bpe_numba" and x["corpus"] == r["corpus"]
                           and x["vocab_size"] == r["vocab_size"] and x["status"] == "ok"), None)
        merges = f"{r['merges']:,}" + ("" if ref_merges in (None, r["merges"]) else " ≠")
        shared = r.get("shared_merges_pct")
        det.append(lead + [name, f"{r['wall_s']:.2f}", f"{r['call_s']:.2f}", f"{r['peak_mb']:,.0f}", merges,
                           _ratio(r), fd, "–" if shared is None else f"{shared:.1f}%"])
    head = ["corpus"] + (["vocab"] if with_vocab else []) + ["tool", "wall s", "train s", "peak MB", "merges",
                                                               "vs bpe_numba", "first differing merge", "shared"]
    return _md_table(head, det, "l" + ("r" if with_vocab else "") + "lrrrrrlr")


def _cell(r: dict | None) -> str:
    if r is None:
        return "–"
    if r["status"] != "ok":
        return r["status"]
    ratio = "" if r["tool"] == "bpe_numba" or r.get("ratio_vs_bpe_numba") is None else f" ({_ratio(r)})"
    return f"{r['wall_s']:.2f}{ratio}"


def _train_real(s, rows: list[dict]) -> list[str]:
    cases = list(dict.fromkeys((r["corpus"], r["vocab_size"]) for r in rows))
    tools = [t for t in TRAIN_TOOLS if any(r["tool"] == t for r in rows)]
    summ = []
    for corpus, vocab in cases:
        cells = [corpus, f"{vocab:,}"]
        for t in tools:
            cells.append(_cell(next((r for r in rows if r["corpus"] == corpus and r["vocab_size"] == vocab
                                     and r["tool"] == t), None)))
        summ.append(cells)
    lines = [
        "## Training on real text",
        "",
        f"{s.corpora_sentence()} {s.repeat_sentence_real()} {TRAIN_COLUMNS}",
        "",
        "Wall seconds of the whole process (× bpe_numba's):",
        "",
    ]
    lines += _md_table(["corpus", "vocab"] + [TRAIN_LABELS[t] for t in tools], summ, "lr" + "r" * len(tools))
    lines += ["", *_train_detail(rows, with_vocab=True), ""]
    return lines


def _train_synthetic(s, rows: list[dict]) -> list[str]:
    a = s.a
    lines = [
        "## Training on the synthetic corpus",
        "",
        f"The synthetic TinyStories-like text of `bpe_numba.synthetic` (seed {s.seed}), special token "
        f"`<|endoftext|>`, at each size. {s.repeat_sentence_synthetic()} {TRAIN_COLUMNS}",
        "",
    ]
    for vocab in a.vocab_sizes:
        vrows = [r for r in rows if r["vocab_size"] == vocab]
        if not vrows:
            continue
        sizes = [x for x in a.sizes if any(r["size_mb"] == x for r in vrows)]
        tools = [t for t in TRAIN_TOOLS if any(r["tool"] == t for r in vrows)]
        summ = [[TRAIN_LABELS[t]] + [_cell(next((r for r in vrows if r["tool"] == t and r["size_mb"] == size), None))
                                     for size in sizes] for t in tools]
        lines += [f"### vocab {vocab:,}", "", "Wall seconds (× bpe_numba's):", ""]
        lines += _md_table(["tool"] + [f"synthetic {fmt_size(x)} MB" for x in sizes], summ, "l" + "r" * len(sizes))
        lines += ["", *_train_detail(vrows, with_vocab=False), ""]
    return lines


def _count(s, rows: list[dict]) -> list[str]:
    out = []
    for corpus in dict.fromkeys(r["corpus"] for r in rows):
        rs = [r for r in rows if r["corpus"] == corpus]
        if rs[0]["status"] != "ok":
            out.append([corpus] + [rs[0]["status"]] + ["–"] * 9 + [one_line(rs[0].get("note"), 120)])
            continue
        by_w = {r["workers"]: r for r in rs}
        w1, w2 = by_w.get(1), by_w.get(2)
        out.append([corpus, f"{rs[0]['size_mb']:,.1f}", f"{rs[0]['distinct']:,}",
                    f"{w1['call_s']:.3f}" if w1 else "–", f"{w1['mb_per_s']:,.1f}" if w1 else "–",
                    f"{w2['call_s']:.3f}" if w2 else "–", f"{w2['mb_per_s']:,.1f}" if w2 else "–",
                    f"{w2['speedup']:.2f}x" if w1 and w2 else "–",
                    f"{w2['counting_speedup']:.2f}x" if w1 and w2 and w2.get("counting_speedup") else "–",
                    " / ".join(f"{r['rest_ms']:.1f}" if r and r.get("rest_ms") is not None else "–" for r in (w1, w2)),
                    f"{rs[0]['peak_mb']:,.0f}", "yes" if rs[0]["same_counts"] else "NO"])
    lines = [
        "## Pre-tokenization: `count_pretokens`",
        "",
        f"`count_pretokens(FILE, [\"<|endoftext|>\"], num_workers=w)`, the whole call, warm: one fresh process per "
        f"corpus imports bpe_numba and makes the call once per `w` untimed (kernels loaded, file in the page "
        f"cache), then times it {s.a.count_repeat} times per `w`, round-robin (`time.perf_counter`); the median is "
        "shown. **MB/s**: 10^6 bytes per second; **2 vs 1**: the 1-worker time / the 2-worker time; **counting 2 vs "
        "1**: the same for the counting alone, from the first chunk the threads start to the last one they finish; "
        "**rest ms**: the rest of the call (planning and starting the threads; summing their tables and building "
        "the `dict`), with 1 / 2 workers; **peak MB**: the process tree over the whole process; **same counts**: "
        "every call gave the same counts.",
        "",
    ]
    lines += _md_table(["corpus", "MB", "distinct pre-tokens", "1 worker s", "MB/s", "2 workers s", "MB/s",
                        "2 vs 1", "counting 2 vs 1", "rest ms", "peak MB", "same counts"], out, "lrrrrrrrrrrl")
    return lines + [""]


def _same_ids(r: dict) -> str:
    if r["row"] == "tiktoken":
        return "(reference)"
    if r.get("same_ids_as_tiktoken") is None:
        return "unchecked"
    return "yes" if r["same_ids_as_tiktoken"] else f"NO (first at #{r.get('first_diff_vs_tiktoken')})"


def _encode_table(rows: list[dict]) -> list[str]:
    base = next((r["mb_per_s_median"] for r in rows if r["row"] == "tiktoken" and r["status"] == "ok"), None)
    er = []
    for r in rows:
        if r["status"] != "ok":
            er.append([r["label"], r["status"], "–", "–", "–", "–", one_line(r.get("note"), 120)])
            continue
        er.append([r["label"], f"{r['mb_per_s_median']:,.2f}", f"{r['seconds_median']:.2f}",
                   f"{r['mb_per_s_median'] / base:.2f}x" if base else "–", f"{r['cpu_per_wall_median']:.2f}",
                   f"{r['peak_rss_max'] / 2**20:,.0f}", _same_ids(r)])
    return _md_table(["row", "MB/s", "s", "vs tiktoken", "cpu/wall", "peak MB", "same ids"], er, "lrrrrrl")


ENCODE_COLUMNS = ("**MB/s**: input bytes / 10^6 / seconds of the encoding call alone (model loading excluded; "
                  "`encode_file` and `encode_files` include reading the file, `encode_file` also writing the "
                  "`.npy`); **vs tiktoken**: MB/s / tiktoken's single-thread MB/s; **cpu/wall**: CPU seconds per "
                  "wall second of the call; **peak MB**: the process tree, including the text and the ids; **same "
                  "ids**: every run's ids compared with tiktoken's.")


def _encode_real(s) -> list[str]:
    lines = [
        "## Encoding real text",
        "",
        f"GPT-2's vocabulary and merges (CS336 fixtures) with `<|endoftext|>`; {s.corpora_sentence(lower=True)} "
        f"Median of {s.a.repeat} fresh process(es) per row. {ENCODE_COLUMNS} gigatoken's tokenizer is built from "
        "the same files (an HF `tokenizers` BPE model handed to `gigatoken.Tokenizer`); its `encode` runs on one "
        "thread, so the text is given to `encode_batch` as one document, which it cuts and encodes on all its "
        "threads.",
        "",
    ]
    for corpus, result in s.encode_results:
        lines += [f"### {corpus}", "", *_encode_table(result["rows"]), ""]
    if s.scale_encode_rows:
        corpus = s.scale_encode_rows[0]["corpus"]
        lines += [f"### {corpus}: `encode_file` against gigatoken", "",
                  f"{s.repeat_large_sentence()} Both read the file themselves and use {s.workers} threads; "
                  f"**vs gigatoken**: MB/s / gigatoken's. Ids checked {s.scale_check}.", ""]
        giga = next((r["mb_per_s"] for r in s.scale_encode_rows if r["tool"] == "gigatoken_file"
                     and r["status"] == "ok"), None)
        er = []
        for r in s.scale_encode_rows:
            if r["status"] != "ok":
                er.append([r["variant"], r["status"], "–", "–", "–", "–", one_line(r.get("note"), 120)])
                continue
            er.append([r["variant"], f"{r['mb_per_s']:,.1f}", f"{r['call_s']:.2f}",
                       f"{r['mb_per_s'] / giga:.2f}x" if giga else "–", f"{r['peak_mb']:,.0f}",
                       f"{r['ids']:,}", r["ids_check"]])
        lines += _md_table(["row", "MB/s", "s", "vs gigatoken", "peak MB", "ids", "same ids"], er, "lrrrrrl")
        lines.append("")
    return lines


def _cold(s, rows: list[dict]) -> list[str]:
    out = []
    for case in dict.fromkeys(r["variant"] for r in rows):
        rs = {r["cache"]: r for r in rows if r["variant"] == case}
        empty, warm = rs.get("empty"), rs.get("warm")
        lead = [f"`{case}`", (empty or warm)["corpus"]]
        if empty is None or empty["status"] != "ok":
            bad = empty or warm
            out.append(lead + [bad["status"], "–", "–", "–", one_line(bad.get("note"), 120)])
            continue
        ok = warm is not None and warm["status"] == "ok"
        out.append(lead + [f"{empty['wall_s']:.2f}", f"{warm['wall_s']:.2f}" if ok else warm["status"],
                    warm["note"] if ok else "–", f"{max(empty['peak_mb'], warm['peak_mb'] if ok else 0):,.0f}",
                    empty.get("left_note") or "none"])
    lines = [
        "## Cold start",
        "",
        "Whole process (`sys.executable`), timed from outside. **empty cache**: one fresh process with "
        "`NUMBA_CACHE_DIR`, `BPE_NUMBA_CACHE_DIR` and `XDG_CACHE_HOME` pointed at a new empty folder (nothing "
        f"compiled yet); **warm cache**: then {s.a.cold_repeat} fresh processes on the cache it (and what it "
        "started) filled, median (and range); **left running**: processes the empty-cache run left behind, and for how long (they are waited "
        "for before the warm runs).",
        "",
    ]
    lines += _md_table(["run", "corpus", "empty cache s", "warm cache s", "warm range", "peak MB", "left running"],
                       out, "llrrrrl")
    return lines + [""]


def render_markdown(s, total: float) -> str:
    m = s.machine
    v = m["versions"]
    pk = ", ".join(f"{d} {v[d]}" for d in VERSION_DISTS if v.get(d) and d not in ("psutil", "matplotlib"))
    if m.get("git"):
        pk = pk.replace(f"bpe_numba {v.get('bpe_numba')}", f"bpe_numba {v.get('bpe_numba')} (git {m['git']})")
    lines = [
        "# Benchmark results",
        "",
        f"Command: `{s.command()}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, "
        + (f"{m['ram_gib']:.0f} GiB RAM, " if m.get("ram_gib") else "")
        + f"{m['os']}, Python {m['python']}; load average at start {fmt_load(m['loadavg_start'])}, "
          f"at end {fmt_load(m.get('loadavg_end'))}",
        "",
        f"Packages: {pk}",
        "",
        f"Run on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, total {fmt_duration(total)}"
        + (" (INTERRUPTED: partial results)" if s.interrupted else "") + f". Parts: {', '.join(s.parts_run)}.",
        "",
    ]
    rows = s.rows
    train_real = [r for r in rows if r["task"] == "train" and r.get("real")]
    if train_real:
        lines += _train_real(s, train_real)
    count = [r for r in rows if r["task"] == "count"]
    if count:
        lines += _count(s, count)
    if s.encode_results or s.scale_encode_rows:
        lines += _encode_real(s)
    cold = [r for r in rows if r["task"] == "cold"]
    if cold:
        lines += _cold(s, cold)
    train_syn = [r for r in rows if r["task"] == "train" and not r.get("real") and r.get("vocab_size") != ""]
    if train_syn:
        lines += _train_synthetic(s, train_syn)
    if s.encode_synthetic:
        corpus, result = s.encode_synthetic
        lines += ["## Encoding the synthetic corpus", "",
                  f"{corpus}, GPT-2's vocabulary and `<|endoftext|>`, median of {result['repeat']} fresh "
                  f"process(es) per row. {ENCODE_COLUMNS}", "", *_encode_table(result["rows"]), ""]
    if s.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in s.notes] + [""]
    if "warmup_s" in m:
        lines += [f"Warm-up before measuring (`python -m bpe_numba warmup`, one training, one encoding; not measured): {m['warmup_s']:.1f} s.", ""]
    lines += ["MB in peak memory = 2^20 bytes; MB of corpus and MB/s = 10^6 bytes.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------------------

def make_plots(s, out: str) -> list[str]:
    """train_real.png, train_time.png (synthetic) and encode_throughput.png, for what was measured."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        s.log("matplotlib is not installed: no plots (pip install matplotlib)")
        return []
    written = []
    for name, fn in (("train_real.png", _plot_train_real), ("train_time.png", _plot_train_synthetic),
                     ("encode_throughput.png", _plot_encode)):
        fig = fn(s, plt)
        if fig is not None:
            fig.savefig(os.path.join(out, name), dpi=110)
            plt.close(fig)
            written.append(name)
    return written


def _log_axis(axis) -> None:
    """Log scale with ticks at 1, 2, 5 x 10^k labelled as plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _plot_train_real(s, plt):
    rows = [r for r in s.rows if r["task"] == "train" and r.get("real") and r["status"] == "ok"]
    if not rows:
        return None
    cases = list(dict.fromkeys((r["corpus"], r["vocab_size"]) for r in rows))
    tools = [t for t in TRAIN_TOOLS if any(r["tool"] == t for r in rows)]
    fig, ax = plt.subplots(figsize=(9.5, 0.3 * len(cases) * len(tools) + 1.6))
    h = 0.8 / len(tools)
    for j, t in enumerate(tools):
        ys, xs = [], []
        for i, (corpus, vocab) in enumerate(cases):
            r = next((r for r in rows if r["corpus"] == corpus and r["vocab_size"] == vocab and r["tool"] == t), None)
            if r is not None:
                ys.append(i + (j - (len(tools) - 1) / 2) * h)
                xs.append(r["wall_s"])
        bars = ax.barh(ys, xs, height=h, color=TRAIN_COLORS[t], label=TRAIN_LABELS[t])
        for b, x in zip(bars, xs):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {x:.1f}", va="center", fontsize=7)
    ax.set_yticks(range(len(cases)))
    ax.set_yticklabels([f"{c}\nvocab {v:,}" for c, v in cases], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    _log_axis(ax.xaxis)
    ax.set_xlim(right=max(r["wall_s"] for r in rows) * 1.5)
    ax.set_xlabel("wall time (s, whole process, log scale)")
    ax.grid(True, axis="x", which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_title(f"BPE training on real text — {s.machine['short']}", fontsize=9)
    fig.tight_layout()
    return fig


def _plot_train_synthetic(s, plt):
    from matplotlib.ticker import NullFormatter

    train = [r for r in s.rows if r["task"] == "train" and not r.get("real") and r.get("status") == "ok"]
    vocabs = [v for v in s.a.vocab_sizes if any(r["vocab_size"] == v for r in train)]
    if not vocabs:
        return None
    fig, axes = plt.subplots(1, len(vocabs), figsize=(5.2 * len(vocabs) + 0.6, 4.4), sharey=True, squeeze=False)
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
        ax.set_xlabel("synthetic corpus size (MB)")
        ax.grid(True, which="both", alpha=0.3)
        sizes = sorted({r["size_mb"] for r in train if r["vocab_size"] == vocab})
        ax.set_xticks(sizes)
        ax.set_xticklabels([fmt_size(x) for x in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        _log_axis(ax.yaxis)
        if len(sizes) == 1:
            ax.set_xlim(sizes[0] / 3, sizes[0] * 3)
    axes[0][0].set_ylabel("wall time (s, whole process)")
    axes[0][-1].legend(loc="best", fontsize=8)
    fig.suptitle(f"BPE training time, synthetic corpus — {s.machine['short']}", fontsize=9)
    fig.tight_layout()
    return fig


def _encode_color(label: str) -> str:
    return "tab:gray" if label.startswith("tiktoken") else "tab:green" if label.startswith("gigatoken") else "tab:blue"


def _plot_encode(s, plt):
    panels = [(c, [(r["label"], r["mb_per_s_median"]) for r in res["rows"] if r["status"] == "ok"])
              for c, res in s.encode_results]
    panels.append((s.scale_encode_rows[0]["corpus"] if s.scale_encode_rows else "",
                   [(r["variant"], r["mb_per_s"]) for r in s.scale_encode_rows if r["status"] == "ok"]))
    if s.encode_synthetic:
        c, res = s.encode_synthetic
        panels.append((c, [(r["label"], r["mb_per_s_median"]) for r in res["rows"] if r["status"] == "ok"]))
    panels = [(c, bars) for c, bars in panels if bars]
    if not panels:
        return None
    n = sum(len(b) for _c, b in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(8.5, 0.42 * n + 1.0 * len(panels) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": [len(b) for _c, b in panels]})
    for ax, (corpus, bars) in zip(axes[:, 0], panels):
        labels = [lab for lab, _v in bars][::-1]
        vals = [v for _lab, v in bars][::-1]
        drawn = ax.barh(labels, vals, color=[_encode_color(lab) for lab in labels])
        for b, val in zip(drawn, vals):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {val:,.1f}", va="center", fontsize=7)
        ax.set_xlim(0, max(vals) * 1.18)
        ax.set_title(corpus, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(True, axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("MB/s (encoding call alone)")
    fig.suptitle(f"Encoding with GPT-2's vocabulary — {s.machine['short']}", fontsize=9)
    fig.tight_layout()
    return fig
