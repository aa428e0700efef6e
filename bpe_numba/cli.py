"""The ``bpe-numba`` command (also ``python -m bpe_numba``): train, count, encode, export, inspect, warmup.

Exit codes: 0 done; 2 bad input (a :class:`~bpe_numba.errors.BPEInputError` or an ``OSError``: one line on
stderr naming the culprit, no traceback); 130 interrupted (Ctrl-C); 141 standard output closed early (``|
head``), quietly, like other command-line tools; 1 with a traceback for anything else, which is a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from .errors import BPEInputError, BPEValueError
from .validation import GPT2_PATTERN, check_input_file, check_not_overwriting, check_output_dir

PROG = "bpe-numba"
DEMO_SPECIAL = "<|endoftext|>"
MAX_DEMO_MB = 100_000  # the generated corpus is written to the temporary folder first
DEMO_KEPT_BYTES = 256 << 20  # demo corpora up to this size are kept in the cache directory for later runs
DEMO_KEPT_FILES = 4  # ... the ones used most recently
DISPLAY_CHARS = 60  # a longest token is shown up to this many characters (a 20 MB run of "a" is one token)
EXIT_INPUT, EXIT_INTERRUPTED, EXIT_STDOUT_CLOSED = 2, 130, 141
EXPORT_FORMATS = ("hf", "tiktoken")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class UsageError(BPEValueError):
    """A bad argument found after parsing: reported in one line, exit code 2."""


class _StdoutClosed(Exception):
    """Whoever read standard output has gone (``bpe-numba ... | head -1``)."""


def _say(*parts) -> None:
    """``print`` to stdout, flushed, so that a closed pipe shows up here and not at interpreter exit."""
    try:
        print(*parts, flush=True)
    except BrokenPipeError:
        raise _StdoutClosed from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Exact CS336-semantics byte-level BPE: train, count, encode, export, "
                     "inspect, warmup.")
    sub = parser.add_subparsers(dest="command", metavar="{train,count,encode,export,inspect,warmup}", parser_class=_Parser)

    train = sub.add_parser(
        "train",
        help="train a tokenizer on text files (or on the embedded synthetic corpus)",
        description="Train on INPUT... (files, directories, glob patterns; .gz/.bz2/.xz/.zst, .jsonl and "
        ".parquet by their names), on pre-token counts (--counts), or with neither on a synthetic "
        "TinyStories-like corpus the package generates (no download; <|endoftext|> separates its stories and "
        "is its special token).",
    )
    train.add_argument("input", nargs="*", help="UTF-8 text, compressed, .jsonl or .parquet files, directories or "
                       "glob patterns (default: the embedded synthetic corpus)")
    train.add_argument("--counts", metavar="FILE", help="train from a counts file of `bpe-numba count` instead "
                       "(its special tokens unless --special-token is given)")
    train.add_argument("--vocab-size", type=_positive_int, default=10_000, help="default: 10000")
    train.add_argument("--special-token", action="append", default=None, metavar="T",
                       help="a special token (repeat for several; the order fixes their ids)")
    train.add_argument("--workers", type=_positive_int, default=None, help="pre-tokenization threads (default: all cores)")
    train.add_argument("--out", metavar="DIR", help="write vocab.json, merges.txt and bpe_numba.json here")
    train.add_argument("--demo-size-mb", type=_demo_size_mb, default=10.0,
                       help=f"size of the embedded corpus when no INPUT is given (default: 10, at most {MAX_DEMO_MB:,})")
    train.add_argument("--errors", choices=["strict", "replace"], default="strict",
                       help="invalid UTF-8: stop with its offset (strict) or read it as U+FFFD (replace)")
    _documents(train)
    _common(train)

    count = sub.add_parser("count", help="count the pre-tokens of text files into a counts file",
                           description="Count the distinct pre-tokens of INPUT... (as `train` reads them) into a "
                           "counts file, to train from later with `train --counts` (e.g. several vocab sizes).")
    count.add_argument("input", nargs="+", help="files, directories or glob patterns, as for `train`")
    count.add_argument("-o", "--output", required=True, metavar="COUNTS", help="where to write the counts")
    count.add_argument("--special-token", action="append", default=None, metavar="T",
                       help="a special token (repeat for several); recorded in the counts file")
    count.add_argument("--workers", type=_positive_int, default=None, help="threads (default: all cores)")
    count.add_argument("--errors", choices=["strict", "replace"], default="strict")
    _documents(count)
    count.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    count.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bars on stderr (default: when stderr is a terminal)")

    enc = sub.add_parser("encode", help="encode text files into a .npy of token ids",
                         description="Encode INPUT with the model in --model DIR into a .npy of ids "
                         "(uint16, or uint32 for vocabularies above 65,536). With --eot TOKEN, each INPUT is "
                         "a document and TOKEN's id follows each one, in the order given.")
    enc.add_argument("input", nargs="+", metavar="INPUT", help="UTF-8 text file (several with --eot)")
    enc.add_argument("--model", required=True, metavar="DIR", help="a directory written by `train --out`")
    enc.add_argument("-o", "--output", required=True, metavar="IDS.npy", help="where to write the ids")
    enc.add_argument("--workers", type=_positive_int, default=None, help="threads (default: all cores)")
    enc.add_argument("--errors", choices=["strict", "replace"], default="strict")
    enc.add_argument("--eot", metavar="TOKEN", help="a special token of the model to write after each document")
    _common(enc)

    exp = sub.add_parser("export", help="write a model for Hugging Face transformers or tiktoken",
                         description="--format hf: tokenizer.json and tokenizer_config.json into OUTPUT (a "
                         "directory) for transformers.AutoTokenizer.from_pretrained; --format tiktoken: a "
                         "tiktoken rank file OUTPUT (the report gives the pattern and special tokens that "
                         "tiktoken.Encoding takes besides).")
    exp.add_argument("model", metavar="MODEL", help="a directory written by `train --out`")
    exp.add_argument("output", metavar="OUTPUT", help="a directory (hf) or a file (tiktoken)")
    exp.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="hf or tiktoken")
    exp.add_argument("--eos-token", metavar="T", help="hf: the eos token (default: the first special token)")
    exp.add_argument("--bos-token", metavar="T", help="hf: the bos token (default: none)")
    exp.add_argument("--pad-token", metavar="T", help="hf: the pad token (default: none)")
    exp.add_argument("--force", action="store_true", help="overwrite files that exist")
    exp.add_argument("--json", action="store_true", help="print the report as JSON on stdout")

    ins = sub.add_parser("inspect", help="summarize a trained model",
                         description="Vocab size, special tokens, longest tokens, and bytes per token on a "
                         "sample (--sample FILE, or 1 MB of the embedded synthetic corpus).")
    ins.add_argument("model", metavar="DIR", help="a directory written by `train --out`")
    ins.add_argument("--sample", metavar="FILE", help="text to measure compression on")
    _common(ins)

    warm = sub.add_parser("warmup", help="compile the Numba kernels now, save the native bundle (images, CI caches)",
                          description="Compile (or load) every Numba kernel once, record them as ready and save "
                          "the native bundle, so later processes use the kernels at once instead of the Python "
                          "tier, without starting Numba.")
    warm.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    return parser


def _documents(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text-field", default="text", metavar="NAME",
                   help="the field of .jsonl records and the column of .parquet files that holds the text")
    p.add_argument("--doc-cap", type=_positive_int, default=None, metavar="N", help="keep each document's first N characters")
    p.add_argument("--max-chars", type=_positive_int, default=None, metavar="N",
                   help="stop after the document that takes the total past N characters")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--top", type=_positive_int, default=10, help="how many longest tokens to list (default: 10)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on stderr (default: when stderr is a terminal)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _demo_size_mb(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of MB")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not positive")
    if value > MAX_DEMO_MB:
        raise argparse.ArgumentTypeError(
            f"{text} MB is above the demo corpus's limit of {MAX_DEMO_MB:,} MB; train on a file (INPUT) instead"
        )
    return value


# ---------------------------------------------------------------------------------------------------------

def _peak_rss_mb() -> dict:
    """Peak resident memory of this process and of its largest child, in MiB.

    On Linux ``ru_maxrss`` of ``RUSAGE_SELF`` keeps the peak of the process that forked this one (it survives
    ``exec``): run from a 1.5 GB Python process, it says 1.5 GB. ``VmHWM`` of ``/proc/self/status`` is this
    process image's own peak. A child's figure can still include this process's size when it started."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    try:
        with open("/proc/self/status") as f:
            main = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return {"main": round(main / 2**20, 1), "largest_child": round(workers / 2**20, 1)}


def _longest(vocab: dict[int, bytes], skip: set[int], top: int) -> list[dict]:
    """The ``top`` longest tokens, each decoded up to :data:`DISPLAY_CHARS` characters (``"truncated"``
    says when there is more; ``"bytes"`` is the whole token's length)."""
    ids = sorted((i for i in vocab if i not in skip), key=lambda i: (-len(vocab[i]), i))[:top]
    rows = []
    for i in ids:
        # Decode no more than the shown characters can need (4 bytes each), however long the token.
        text = vocab[i][: 4 * DISPLAY_CHARS + 4].decode("utf-8", errors="replace")
        truncated = len(vocab[i]) > 4 * DISPLAY_CHARS + 4 or len(text) > DISPLAY_CHARS
        rows.append({"id": i, "bytes": len(vocab[i]), "text": text[:DISPLAY_CHARS], "truncated": truncated})
    return rows


def _print_longest(rows: list[dict]) -> None:
    _say("longest tokens:")
    for r in rows:
        more = f"... (first {DISPLAY_CHARS} characters)" if r["truncated"] else ""
        _say(f"  {r['id']:>7}  {r['bytes']:>3,} bytes  {r['text']!r}{more}")


def _demo_key(n_bytes: int, seed: int) -> str:
    """Names a demo corpus: the generator (``synthetic.py``, whose word lists are pinned by a SHA-256 in it,
    read without importing it), the size and the seed."""
    generator = hashlib.sha256(Path(__file__).with_name("synthetic.py").read_bytes()).hexdigest()[:16]
    return f"demo-{generator}-{n_bytes}-{seed}"


def _sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _kept_demo(folder: Path, key: str) -> Path | None:
    """The kept corpus ``key`` if the SHA-256 recorded beside it at generation still matches its bytes."""
    path = folder / f"{key}.txt"
    try:
        if (folder / f"{key}.sha256").read_text(encoding="ascii") != _sha256(path):
            return None
        os.utime(path)  # most recently used: kept longest
    except (OSError, ValueError):
        return None
    return path


def _prune_demos(folder: Path) -> None:
    """Keep the :data:`DEMO_KEPT_FILES` most recently used demo corpora; an OS error leaves the rest."""
    with contextlib.suppress(OSError):
        kept = sorted(folder.glob("demo-*.txt"), key=lambda p: p.stat().st_mtime, reverse=True)
        for path in kept[DEMO_KEPT_FILES:]:
            path.unlink()
            path.with_suffix(".sha256").unlink(missing_ok=True)


@contextlib.contextmanager
def _demo_corpus(size_mb: float, progress: bool):
    """Yield ``(path, seconds, generated)`` for the synthetic corpus of ``size_mb`` MB (seed 0).

    Generating 10 MB takes 1.2-1.3 s, so a corpus up to :data:`DEMO_KEPT_BYTES` is generated once into
    bpe_numba's cache directory (:func:`bpe_numba.tiers.cache_dir`), atomically, with the SHA-256 of its
    bytes beside it, and later runs use it after checking that hash (about 0.01 s for 10 MB): a truncated,
    corrupt or foreign file is generated again. A larger corpus, or one whose cache directory is not
    writable, is generated into the temporary folder and deleted after the run.
    """
    from .atomic import atomic_write_bytes
    from .tiers import cache_dir

    n_bytes = int(size_mb * 1_000_000)
    folder, key = cache_dir(), _demo_key(n_bytes, 0)
    t = time.perf_counter()
    path = fresh = None
    if n_bytes <= DEMO_KEPT_BYTES:
        path = _kept_demo(folder, key)
        fresh = path is None
        if fresh:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                path = _generate_demo(folder / f"{key}.txt", n_bytes, size_mb, progress)
                atomic_write_bytes(folder / f"{key}.sha256", _sha256(path).encode("ascii"))
                _prune_demos(folder)
            except OSError:  # not writable: generated into the temporary folder instead
                path = None
    if path is not None:
        yield path, time.perf_counter() - t, fresh
        return
    with tempfile.TemporaryDirectory(prefix="bpe_numba_demo_") as tmp:
        path = _generate_demo(Path(tmp) / "synthetic_stories.txt", n_bytes, size_mb, progress)
        yield path, time.perf_counter() - t, True


def _generate_demo(path: Path, n_bytes: int, size_mb: float, progress: bool) -> Path:
    from .synthetic import write_corpus

    free = shutil.disk_usage(path.parent).free
    if n_bytes + (n_bytes >> 4) > free:
        raise UsageError(
            f"--demo-size-mb {size_mb:g}: the corpus would not fit in {path.parent} ({free / 1e6:,.0f} MB free); "
            f"give a smaller size, or point TMPDIR (or BPE_NUMBA_CACHE_DIR, for corpora up to "
            f"{DEMO_KEPT_BYTES / 1e6:,.0f} MB) elsewhere"
        )
    write_corpus(path, n_bytes, seed=0, progress=progress)
    return path


def cmd_train(args) -> dict:
    from . import train_bpe

    specials = args.special_token
    if args.out is not None:
        check_output_dir(args.out, "--out")  # before generating a demo corpus, too
    if args.counts is not None and args.input:
        raise UsageError("give INPUT files or --counts, not both")
    with contextlib.ExitStack() as stack:
        generated = None
        if not args.input and args.counts is None:
            path, generated, fresh = stack.enter_context(_demo_corpus(args.demo_size_mb, bool(args.progress)))
            if specials is None:
                specials = [DEMO_SPECIAL]
            if not args.json:
                how = f"generated in {generated:.1f} s" if fresh else "generated by an earlier run"
                _say(f"no INPUT: {os.path.getsize(path) / 1e6:.1f} MB of synthetic stories, the embedded default "
                     f"({how})")
        else:
            path = args.input[0] if len(args.input) == 1 else args.input
        timings: dict = {}
        start = time.perf_counter()
        if args.counts is not None:
            from . import train_bpe_from_counts
            from .counts_file import counts_metadata

            specials = specials if specials is not None else counts_metadata(args.counts)["special_tokens"]
            vocab, merges = train_bpe_from_counts(args.counts, args.vocab_size, specials, progress=args.progress,
                                                  timings=timings, out_dir=args.out)
            path = args.counts
        else:
            vocab, merges = train_bpe(path, args.vocab_size, specials or [], num_workers=args.workers,
                                      progress=args.progress, errors=args.errors, timings=timings, out_dir=args.out,
                                      text_field=args.text_field, doc_cap=args.doc_cap, max_chars=args.max_chars)
        total = time.perf_counter() - start
        size = _input_bytes(path)
    n_special = len(specials or [])
    report = {
        "input": (args.input if len(args.input) > 1 else args.input[0]) if args.input else args.counts
        if args.counts else f"<embedded synthetic corpus, {args.demo_size_mb:g} MB>",
        "bytes": size,
        "vocab_size": len(vocab),
        "merges": len(merges),
        "requested_vocab_size": args.vocab_size,
        "special_tokens": specials or [],
        "unique_pretokens": timings["unique_pretokens"],
        "seconds": {k: round(timings.get(k, 0.0), 3) for k in ("startup", "pretokenize", "intern", "merges", "write")}
        | {"total": round(total, 3)},
        "peak_rss_mb": _peak_rss_mb(),
        "out": os.path.abspath(args.out) if args.out else None,
        "longest_tokens": _longest(vocab, set(range(256, 256 + n_special)), args.top),
    }
    if generated is not None:
        report["seconds"]["generate_corpus"] = round(generated, 3)
    if not args.json:
        s = report["seconds"]
        _say(f"trained {report['vocab_size']:,} tokens ({report['merges']:,} merges) on {size / 1e6:,.1f} MB "
             f"in {total:.2f} s ({size / 1e6 / max(total, 1e-9):,.1f} MB/s; the first run in an environment "
             f"includes about 15 s of one-off Numba compilation)")
        if len(vocab) < args.vocab_size:
            _say(f"  the corpus ran out of pairs before vocab size {args.vocab_size:,}")
        where = "helper process and Numba" if timings.get("isolated") else "Numba"
        _say(f"  start-up ({where}) {s['startup']:.2f} s, pre-tokenize {s['pretokenize']:.2f} s ({report['unique_pretokens']:,} unique pre-tokens), "
             f"intern {s['intern']:.2f} s, merges {s['merges']:.2f} s, write {s['write']:.2f} s")
        rss = report["peak_rss_mb"]
        _say(f"  peak RSS: main {rss['main']:,.0f} MB, largest child process {rss['largest_child']:,.0f} MB")
        _print_longest(report["longest_tokens"])
        if args.out:
            _say(f"model written to {report['out']} (vocab.json, merges.txt, bpe_numba.json)")
        else:
            _say("model not saved: pass --out DIR to write vocab.json and merges.txt")
    return report


def _input_bytes(path) -> int:
    """Bytes of the input files (compressed sizes for compressed files)."""
    from .sources import resolve_input

    return os.path.getsize(path) if isinstance(path, (str, Path)) and os.path.isfile(path) else resolve_input(path).size


def cmd_count(args) -> dict:
    from .corpus_count import count_here
    from .counts_file import write_counts
    from .pretokenize import flatten_table
    from .sources import resolve_input
    from .validation import check_special_tokens, resolve_progress, resolve_workers

    corpus = resolve_input(args.input if len(args.input) > 1 else args.input[0], text_field=args.text_field,
                           doc_cap=args.doc_cap, max_chars=args.max_chars)
    check_not_overwriting(args.output, {"an input file": s.path for s in corpus.sources})
    check_output_dir(os.path.dirname(os.path.abspath(args.output)), "--output's folder")
    specials = check_special_tokens(args.special_token or [])
    start = time.perf_counter()
    table = count_here(corpus, specials, None, num_workers=args.workers, chunk_size=None, errors=args.errors,
                       progress=resolve_progress(args.progress), pattern=GPT2_PATTERN, engine="numba")
    blob, offsets, counts = flatten_table(table, 1, resolve_workers(args.workers))
    write_counts(args.output, (blob, offsets, counts), specials)
    took = time.perf_counter() - start
    report = {
        "input": args.input,
        "output": os.path.abspath(args.output),
        "bytes": corpus.size,
        "unique_pretokens": int(len(counts)),
        "pretokens": int(counts.sum()),
        "special_tokens": specials,
        "seconds": round(took, 3),
        "output_bytes": os.path.getsize(args.output),
    }
    if not args.json:
        _say(f"{report['pretokens']:,} pre-tokens ({report['unique_pretokens']:,} distinct) from "
             f"{corpus.size / 1e6:,.1f} MB in {took:.2f} s -> {args.output} ({report['output_bytes'] / 1e6:,.1f} MB)")
    return report


def cmd_warmup(args) -> dict:
    from .tiers import warmup

    report = warmup()
    if not args.json:
        state = "ready" if report["ready"] else "NOT recorded as ready (Numba could not write its cache)"
        native = f"; native bundle {report['native']}" if report["native"] else "; no native bundle"
        print(f"{report['kernels']} kernels compiled or loaded in {report['seconds']:.1f} s: {state}{native}")
    return report


def _model_files(directory: str) -> tuple[Path, Path]:
    """``vocab.json`` and ``merges.txt`` of the model directory ``directory``."""
    from .formats import MERGES_FILE, VOCAB_FILE

    d = Path(directory)
    if not d.is_dir():
        raise UsageError(f"{directory}: not a directory; pass the --out directory of `{PROG} train`")
    for name in (VOCAB_FILE, MERGES_FILE):
        if not (d / name).is_file():
            raise UsageError(f"{d / name}: missing; a model directory holds {VOCAB_FILE} and {MERGES_FILE}")
    return d / VOCAB_FILE, d / MERGES_FILE


def _load_tokenizer(directory: str):
    from . import Tokenizer

    return Tokenizer.from_files(*_model_files(directory))


def _model_file_names(model: str) -> dict[str, Path]:
    from .formats import META_FILE, MERGES_FILE, VOCAB_FILE

    return {f"the model's {name}": Path(model) / name for name in (VOCAB_FILE, MERGES_FILE, META_FILE)}


def cmd_encode(args) -> dict:
    inputs = args.input
    if len(inputs) > 1 and args.eot is None:
        raise UsageError(f"{len(inputs)} INPUT files: give --eot TOKEN, the special token to write after each "
                         f"document, or encode one file at a time")
    named_inputs = {"the input file" if len(inputs) == 1 else f"input {k + 1} of {len(inputs)}": p
                    for k, p in enumerate(inputs)}
    check_not_overwriting(args.output, named_inputs | _model_file_names(args.model))
    tok = _load_tokenizer(args.model)
    start = time.perf_counter()
    if args.eot is None:
        n = tok.encode_file(inputs[0], args.output, num_workers=args.workers, progress=args.progress,
                            errors=args.errors)
    else:
        n = tok.encode_documents(inputs, args.output, eot=args.eot, progress=args.progress, errors=args.errors,
                                 num_workers=args.workers)
    took = time.perf_counter() - start
    size = sum(os.path.getsize(p) for p in inputs)
    report = {
        "input": inputs[0] if len(inputs) == 1 else inputs,
        "output": os.path.abspath(args.output),
        "bytes": size,
        "tokens": n,
        "bytes_per_token": round(size / n, 4) if n else None,
        "seconds": round(took, 3),
        "mb_per_s": round(size / 1e6 / max(took, 1e-9), 2),
        "dtype": "uint16" if max(tok.vocab) < 1 << 16 else "uint32",
        "peak_rss_mb": _peak_rss_mb(),
    }
    if args.eot is not None:
        report |= {"documents": len(inputs), "eot": args.eot, "eot_id": tok.special_ids[args.eot]}
    if not args.json:
        bpt = f"{size / n:.2f}" if n else "n/a"
        docs = ""
        if args.eot is not None:
            docs = f" in {len(inputs):,} document{'s' if len(inputs) > 1 else ''}, each followed by {args.eot!r},"
        _say(f"{n:,} tokens from {size / 1e6:,.1f} MB{docs} ({bpt} bytes/token) in {took:.2f} s "
             f"({report['mb_per_s']:,.1f} MB/s) -> {args.output} ({report['dtype']})")
    return report


def cmd_export(args) -> dict:
    import warnings

    from . import formats

    vocab_path, merges_path = _model_files(args.model)
    if args.format == "hf":
        if os.path.exists(args.output) and not os.path.isdir(args.output):
            raise UsageError(f"{args.output}: is a file; --format hf writes a directory (tokenizer.json and "
                             f"tokenizer_config.json): give a directory path")
        outputs = [Path(args.output) / name for name in formats.HF_FILES]
    else:
        if os.path.isdir(args.output):
            raise UsageError(f"{args.output}: is a directory; --format tiktoken writes one file: give its path")
        outputs = [Path(args.output)]
        named = [f"--{name.replace('_', '-')}" for name in ("eos_token", "bos_token", "pad_token")
                 if getattr(args, name) is not None]
        if named:
            raise UsageError(f"{', '.join(named)}: for --format hf only; a tiktoken file has no eos/bos/pad tokens")
    for out in outputs:
        check_not_overwriting(out, _model_file_names(args.model))
        if out.exists() and not args.force:
            raise UsageError(f"{out}: exists; pass --force to overwrite it, or choose another output")
    vocab, merges, specials, pattern = formats.load_model(vocab_path, merges_path)
    report = {"model": os.path.abspath(args.model), "format": args.format, "output": os.path.abspath(args.output),
              "files": [str(p) for p in outputs], "special_tokens": {}, "pattern": pattern, "warnings": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.format == "hf":
            eos = formats.FIRST_SPECIAL if args.eos_token is None else args.eos_token
            formats.save_hf_pretrained(args.output, vocab, merges, specials, pattern, eos_token=eos,
                                       bos_token=args.bos_token, pad_token=args.pad_token)
            report["special_tokens"] = formats.special_token_ids(vocab, specials)
        else:
            report["special_tokens"] = formats.export_tiktoken(args.output, vocab, specials, merges=merges)
    report["warnings"] = [str(w.message) for w in caught]
    for message in report["warnings"]:
        print(f"{PROG} export: warning: {message}", file=sys.stderr)
    if not args.json:
        _say(f"wrote {', '.join(report['files'])}")
        if args.format == "hf":
            _say(f"load it with transformers.AutoTokenizer.from_pretrained({report['output']!r})")
        else:
            _say(f"load it with tiktoken.Encoding(name=..., pat_str=PATTERN, mergeable_ranks="
                 f"tiktoken.load.load_tiktoken_bpe({report['output']!r}), special_tokens={report['special_tokens']!r})")
            _say(f"PATTERN = {pattern!r}")
    return report


def cmd_inspect(args) -> dict:
    tok = _load_tokenizer(args.model)
    if args.sample:
        sample_name = args.sample
        with open(check_input_file(args.sample), "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
    else:
        from .synthetic import generate_text

        sample_name = "<embedded synthetic corpus, 1 MB>"
        text = generate_text(1_000_000, seed=1)
    ids = tok.encode_to_array(text)
    n_bytes = len(text.encode("utf-8"))
    special_ids = set(tok.special_ids.values())
    report = {
        "model": os.path.abspath(args.model),
        "vocab_size": len(tok.vocab),
        "merges": len(tok.merges),
        "special_tokens": {t: i for t, i in tok.special_ids.items()},
        "sample": sample_name,
        "sample_bytes": n_bytes,
        "sample_tokens": int(len(ids)),
        "bytes_per_token": round(n_bytes / len(ids), 4) if len(ids) else None,
        "longest_tokens": _longest(tok.vocab, special_ids, args.top),
    }
    if not args.json:
        _say(f"{report['model']}: {report['vocab_size']:,} tokens, {report['merges']:,} merges")
        specials = ", ".join(f"{t!r}={i}" for t, i in report["special_tokens"].items()) or "none"
        _say(f"special tokens: {specials}")
        bpt = f"{report['bytes_per_token']:.3f}" if len(ids) else "n/a"
        _say(f"sample {sample_name}: {n_bytes:,} bytes -> {len(ids):,} tokens ({bpt} bytes/token)")
        _print_longest(report["longest_tokens"])
    return report


def entry() -> int:
    """The ``bpe-numba`` command and ``python -m bpe_numba``: :func:`main` in a process of its own."""
    return main(own_process=True)


def main(argv: list[str] | None = None, *, own_process: bool = False) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    ``own_process``: this process runs nothing but this command, so ``encode`` and ``inspect``, which load
    the kernels here, may start Numba lean (see :func:`bpe_numba.processes.lean_numba_start`), and a second
    Ctrl-C while it winds down is ignored; ``train`` hands its job to the helper process either way.
    """
    try:
        code = _run(argv, own_process)
    except KeyboardInterrupt:
        return _interrupted(own_process)
    except Exception as exc:
        if own_process and _interrupt_in_chain(exc):
            # Ctrl-C inside a C extension's import (Numba's) surfaces as the ImportError it caused.
            return _interrupted(own_process)
        raise
    if own_process:
        # The work is done and its output written: a Ctrl-C while the interpreter shuts down (when Python
        # has put back the default handler, so the process would die by the signal) is ignored.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


def _interrupted(own_process: bool) -> int:
    print(f"{PROG}: interrupted", file=sys.stderr)
    if not own_process:
        return EXIT_INTERRUPTED
    # This process is the command's own and its clean-up is done: leave at once. A normal exit would
    # be turned into death by SIGINT (exit status -2, not 130) when the interrupt landed inside code a C
    # extension runs on import (Numba's), which leaves Python's "unhandled KeyboardInterrupt" flag set;
    # and a second Ctrl-C during the interpreter's shutdown would print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(EXIT_INTERRUPTED)


def _interrupt_in_chain(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _run(argv: list[str] | None, own_process: bool) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    run = {"train": cmd_train, "count": cmd_count, "encode": cmd_encode, "export": cmd_export, "inspect": cmd_inspect,
           "warmup": cmd_warmup}[args.command]
    try:
        if own_process and args.command in ("count", "encode", "inspect", "warmup"):
            from .jit import on_numba_start
            from .processes import lean_numba_start

            on_numba_start(lean_numba_start)  # if the kernels need Numba here (no native bundle)
        report = run(args)
        if args.json:
            _say(json.dumps(report, indent=2, ensure_ascii=False))
    except _StdoutClosed:
        _discard_stdout()
        return EXIT_STDOUT_CLOSED
    except (BPEInputError, OSError) as exc:  # bad input or a failing disk: anything else is a bug (traceback)
        print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    return 0


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, BPEInputError) and exc.strerror:
        message = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror  # no "[Errno 28]"
    else:
        message = str(exc)
    return " ".join(message.split()) or type(exc).__name__


def _discard_stdout() -> None:
    """Point file descriptor 1 at the null device, so that the interpreter's final flush of what is still
    buffered does not report the closed pipe once more."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # no real stdout (embedded, captured)
        pass
