"""Train one BPE tokenizer with one tool, in this (fresh) process. Used by bench_train.py.

    python benchmarks/_run_one.py TOOL FILE VOCAB [SPECIAL ...] [--result OUT.json] [--merges-out M.json]
                                  [--workers N]

TOOL is one of: bpe_numba, rustbpe, hf, gigatoken, python_baseline (``baseline_python.py``, the
textbook pure-Python trainer). Every tool is set up to do the same work as
``bpe_numba.train_bpe(FILE, VOCAB, SPECIALS)``: GPT-2 pre-tokenization, no pre-token or merge across a
special token, and exactly ``VOCAB - 256 - len(SPECIALS)`` merges (each tool's vocab_size convention is
translated; see README.md). Prints one JSON line (and writes it to --result): the in-process time of the
training call, the number of merges, the tool's version, and for --merges-out the merges as [hex, hex] pairs.

Exit status: 0 on success, 3 when the tool is not installed, 1 on any other error.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import time
import traceback

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
TOOLS = ("bpe_numba", "rustbpe", "hf", "gigatoken", "python_baseline")
EXIT_MISSING = 3


class ToolMissing(Exception):
    pass


def report_outcome(res: dict, measure) -> int:
    """``res.update(measure(), ok=True)``; a missing tool or any error is recorded in ``res`` instead.
    Returns the exit status: 0, :data:`EXIT_MISSING`, or 1. (Shared with ``bench_encode.py``'s runner.)"""
    try:
        res.update(measure(), ok=True)
        return 0
    except ToolMissing as e:
        res.update(ok=False, missing=True, error=str(e))
        return EXIT_MISSING
    except BaseException as e:  # report, then fail
        res.update(ok=False, missing=False, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        return 1


def _missing(e: ImportError, top: str) -> bool:
    """True when the package itself is absent (not when importing it fails for another reason)."""
    return isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] == top


def require_tool(top: str):
    """Import a peer's package, or raise ToolMissing when it is not installed (a broken install raises)."""
    try:
        return importlib.import_module(top)
    except ImportError as e:
        if _missing(e, top):
            raise ToolMissing(f"{top}: {e}") from e
        raise


def iter_documents(path: str, specials: list[str], block_size: int = 16 << 20):
    """Stream the file's documents: the text between special-token occurrences (leftmost, longest
    first, as in bpe_numba). Never holds more than one block plus one document in memory."""
    import re

    if not specials:
        with open(path, "rb") as f:  # no special tokens: one document (what bpe_numba sees too)
            yield f.read().decode("utf-8")
        return
    alts = sorted({s.encode("utf-8") for s in specials}, key=len, reverse=True)
    splitter = re.compile(b"|".join(re.escape(a) for a in alts))
    longest = max(len(a) for a in alts)
    carry = b""
    with open(path, "rb") as f:
        while True:
            block = f.read(block_size)
            data = carry + block
            # Accept a match only if the longest special token starting there would fit in the data we
            # have (or at end of file), so a token cut by the block boundary is matched as a whole.
            limit = len(data) if not block else len(data) - longest
            pos = 0
            for m in splitter.finditer(data):
                if m.start() > limit:
                    break
                if m.start() > pos:
                    yield data[pos : m.start()].decode("utf-8")
                pos = m.end()
            carry = data[pos:]
            if not block:
                break
    if carry:
        yield carry.decode("utf-8")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def merges_from_ranks(ranks: list[tuple[bytes, int]]) -> list[tuple[bytes, bytes] | None]:
    """Recover (left, right) merges from tiktoken-style mergeable ranks: the token of rank r is split by
    running BPE on its bytes with the merges of rank < r (the usual tiktoken->HF conversion). None where
    that does not give exactly two parts."""
    rank_of = {tok: r for tok, r in ranks}
    out: list[tuple[bytes, bytes] | None] = []
    for tok, r in sorted(ranks, key=lambda x: x[1]):
        if len(tok) == 1 and r < 256:
            continue
        parts = [tok[i : i + 1] for i in range(len(tok))]
        while len(parts) > 2:
            best = None
            for i in range(len(parts) - 1):
                rr = rank_of.get(parts[i] + parts[i + 1])
                if rr is not None and rr < r and (best is None or rr < best[0]):
                    best = (rr, i)
            if best is None:
                break
            i = best[1]
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        out.append((parts[0], parts[1]) if len(parts) == 2 else None)
    return out


def run_bpe_numba(path, vocab_size, specials, workers):
    try:
        import bpe_numba
    except ModuleNotFoundError as e:
        if not _missing(e, "bpe_numba"):
            raise
        # not installed: use the checkout this script belongs to
        sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        try:
            import bpe_numba
        except ModuleNotFoundError as e2:
            if _missing(e2, "bpe_numba"):
                raise ToolMissing(f"bpe_numba: {e2}") from e2
            raise
    train_bpe = bpe_numba.train_bpe
    extra = {"module": os.path.dirname(bpe_numba.__file__)}
    timings: dict = {}
    kwargs: dict = {"num_workers": workers} if workers else {}
    if "timings" in inspect.signature(train_bpe).parameters:
        kwargs["timings"] = timings  # per-phase times, if this version of train_bpe reports them
    t0 = time.perf_counter()
    vocab, merges = train_bpe(path, vocab_size, specials, **kwargs)
    dt = time.perf_counter() - t0
    if timings:
        extra["timings"] = {k: v for k, v in timings.items() if isinstance(v, (int, float, str))}
    return dt, list(merges), {"vocab_len": len(vocab), **extra}


def run_rustbpe(path, vocab_size, specials, workers):
    rustbpe = require_tool("rustbpe")
    tok = rustbpe.Tokenizer()
    # rustbpe's vocab_size counts the 256 byte tokens but knows nothing of special tokens, so it does
    # vocab_size - 256 merges; ask for len(specials) fewer to match bpe_numba's merge count.
    t0 = time.perf_counter()
    tok.train_from_iterator(iter_documents(path, specials), vocab_size - len(specials), pattern=GPT2_PATTERN)
    dt = time.perf_counter() - t0
    merges = merges_from_ranks(tok.get_mergeable_ranks())
    return dt, merges, {"vocab_len": tok.vocab_size, "rustbpe_vocab_size_arg": vocab_size - len(specials)}


def run_hf(path, vocab_size, specials, workers):
    require_tool("tokenizers")
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(GPT2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    # HF's vocab_size counts the initial alphabet (all 256 bytes here) and the special tokens, like
    # bpe_numba. min_frequency=0: merge down to count 1 like the reference.
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=0,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    t0 = time.perf_counter()
    tok.train_from_iterator(iter_documents(path, specials), trainer=trainer)
    dt = time.perf_counter() - t0
    model = json.loads(tok.to_str())["model"]
    u2b = {c: b for b, c in bytes_to_unicode().items()}

    def dec(s: str) -> bytes:
        return bytes(u2b[c] for c in s)

    merges = []
    for m in model["merges"]:
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        merges.append((dec(a), dec(b)))
    return dt, merges, {"vocab_len": tok.get_vocab_size()}


def run_gigatoken(path, vocab_size, specials, workers):
    import pathlib

    gigatoken = require_tool("gigatoken")
    # gigatoken's vocab_size counts the 256 bytes and the special tokens (like bpe_numba); it splits the
    # input on the special tokens itself. It prints progress lines to stdout: keep them off our stdout.
    t0 = time.perf_counter()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        vocab, merges = gigatoken.train_bpe(pathlib.Path(path), vocab_size, list(specials))
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    dt = time.perf_counter() - t0
    return dt, list(merges), {"vocab_len": len(vocab), "tie_breaking": "huggingface (default)"}


def run_python_baseline(path, vocab_size, specials, workers):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import baseline_python

    t0 = time.perf_counter()
    vocab, merges = baseline_python.train(path, vocab_size, specials)
    dt = time.perf_counter() - t0
    return dt, merges, {"vocab_len": len(vocab)}


RUNNERS = {"bpe_numba": run_bpe_numba, "rustbpe": run_rustbpe, "hf": run_hf, "gigatoken": run_gigatoken,
           "python_baseline": run_python_baseline}
# the distribution whose version a tool's result reports
DISTRIBUTIONS = {"bpe_numba": "bpe_numba", "rustbpe": "rustbpe", "hf": "tokenizers", "gigatoken": "gigatoken",
                 "python_baseline": "regex"}


def dist_version(dist: str) -> str | None:
    """The installed version of a distribution, or None."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def tool_version(tool: str) -> str:
    """``"0.23.3"``-style version of the package behind a tool (for python_baseline: the interpreter's
    version and the ``regex`` package's)."""
    dist = DISTRIBUTIONS[tool]
    v = dist_version(dist) or getattr(sys.modules.get(dist), "__version__", "?")
    if tool == "python_baseline":
        import platform

        return f"Python {platform.python_version()}, regex {v}"
    return v


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tool", choices=TOOLS)
    ap.add_argument("file")
    ap.add_argument("vocab_size", type=int)
    ap.add_argument("specials", nargs="*")
    ap.add_argument("--result", help="write the JSON result here as well")
    ap.add_argument("--merges-out", help="write the merges here as a JSON list of [hex, hex]")
    ap.add_argument("--workers", type=int, default=None, help="num_workers for bpe_numba (default: its own)")
    a = ap.parse_args(argv)
    res = {"tool": a.tool, "file": a.file, "vocab_size": a.vocab_size, "specials": a.specials}

    def measure() -> dict:
        dt, merges, extra = RUNNERS[a.tool](a.file, a.vocab_size, a.specials, a.workers)
        if a.merges_out:
            with open(a.merges_out, "w") as f:
                json.dump([[m[0].hex(), m[1].hex()] if m is not None else None for m in merges], f)
        return dict(train_s=dt, merges=len(merges), version=tool_version(a.tool), **extra)

    code = report_outcome(res, measure)
    line = json.dumps(res)
    if a.result:
        with open(a.result, "w") as f:
            f.write(line)
    print(line, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
