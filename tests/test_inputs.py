"""Inputs as users have them: lists, directories, globs, compressed files, JSONL, Parquet and iterables.

The rule under test: every document is pre-tokenized on its own, so any input gives exactly the result of
the same documents written to one plain file with a special token (``SEP``) between them.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpe_numba import count_pretokens, load_counts, save_counts, train_bpe, train_bpe_from_counts
from reference import reference_pretoken_counts_text, reference_train_text
from strategies import corpora
from test_workers import generate_text

SEP = "<|doc|>"  # shares no character run with the specials below, so it joins documents and nothing else
SPECIALS = ["<|endoftext|>", "<|a|>", "<|a|><|b|>", "<|sp|> ", "\n\n"]


def make_documents(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    text = generate_text(seed, 40 * n, SPECIALS)
    cuts = sorted(rng.sample(range(1, len(text)), n - 1))
    docs = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
    docs[3] = ""  # an empty document
    docs[5] = "\u00e9" * 5000 + " x"  # one long word: no safe cut for a while
    return docs


@pytest.fixture(scope="module")
def docs():
    return make_documents(7, 60)


@pytest.fixture(scope="module")
def expected(docs):
    return reference_pretoken_counts_text(SEP.join(docs), SPECIALS + [SEP])


def _write_text(path, doc: str) -> None:
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(os.path.splitext(path)[1], open)
    if str(path).endswith(".zst"):
        zstandard = pytest.importorskip("zstandard")
        data = zstandard.ZstdCompressor().compress(doc.encode("utf-8"))
        with open(path, "wb") as f:
            f.write(data)
        return
    with opener(path, "wb") as f:
        f.write(doc.encode("utf-8"))


def _write_jsonl(path, docs, field: str = "text") -> None:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"id": i, field: d}).encode("utf-8") + b"\n")
            if i == 2:
                f.write(b"\n")  # a blank line is no document


def _write_parquet(path, docs, field: str = "text", row_group_size: int = 7) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"id": list(range(len(docs))), field: docs}), path, row_group_size=row_group_size)


@pytest.mark.parametrize("workers, chunk_size", [(1, None), (2, 64), (3, 1000)])
@pytest.mark.parametrize("form", ["list", "directory", "glob", ".gz", ".bz2", ".xz", ".zst", ".jsonl",
                                  ".jsonl.gz", ".parquet", "iterator", "mixed"])
def test_every_form_counts_like_one_joined_file(tmp_path, docs, expected, form, workers, chunk_size):
    if form in ("list", "directory", "glob") or form.startswith(".") and "jsonl" not in form and form != ".parquet":
        sub = tmp_path / "docs" / "nested"
        sub.mkdir(parents=True)
        suffix = form if form.startswith(".") else ".txt"
        paths = []
        for i, d in enumerate(docs):
            path = (sub if i % 2 else tmp_path / "docs") / f"{i:03d}.txt{suffix if suffix != '.txt' else ''}"
            _write_text(path, d)
            paths.append(str(path))
        (tmp_path / "docs" / ".hidden").write_text("never read")
        arg = {"list": paths, "glob": str(tmp_path / "docs" / "**" / "*.txt")}.get(form, str(tmp_path / "docs"))
    elif form in (".jsonl", ".jsonl.gz"):
        arg = str(tmp_path / f"docs{form}")
        _write_jsonl(arg, docs)
    elif form == ".parquet":
        arg = str(tmp_path / "docs.parquet")
        _write_parquet(arg, docs)
    elif form == "iterator":
        arg = (d for d in docs)
    else:  # a list mixing every kind, split across them
        (tmp_path / "a.txt").write_bytes(docs[0].encode("utf-8"))
        _write_text(str(tmp_path / "b.txt.gz"), docs[1])
        _write_jsonl(str(tmp_path / "c.jsonl"), docs[2:30])
        _write_parquet(str(tmp_path / "d.parquet"), docs[30:])
        arg = [tmp_path / "a.txt", str(tmp_path / "b.txt.gz"), str(tmp_path / "c.jsonl"), tmp_path / "d.parquet"]
    got = count_pretokens(arg, SPECIALS, num_workers=workers, chunk_size=chunk_size)
    assert got == expected


def test_training_equals_training_on_the_joined_file(tmp_path, docs):
    joined = tmp_path / "joined.txt"
    joined.write_bytes(SEP.join(docs).encode("utf-8"))
    _write_jsonl(tmp_path / "docs.jsonl.gz", docs)
    vocab, merges = train_bpe(joined, 600, SPECIALS + [SEP], progress=False)
    for arg in (tmp_path / "docs.jsonl.gz", iter(docs)):
        got_vocab, got_merges = train_bpe(arg, 599, SPECIALS, progress=False)
        assert got_merges == merges
        assert list(got_vocab.values()) == [v for v in vocab.values() if v != SEP.encode()]


def test_a_plain_file_in_a_list_or_directory_is_still_one_document(tmp_path, docs):
    text = "".join(docs)
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "all.txt").write_bytes(text.encode("utf-8"))
    expected = reference_pretoken_counts_text(text, SPECIALS)
    for arg in ([tmp_path / "one" / "all.txt"], tmp_path / "one", str(tmp_path / "one" / "*")):
        assert count_pretokens(arg, SPECIALS, num_workers=2, chunk_size=100) == expected


@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(case=corpora(max_words=60), cuts=st.lists(st.integers(0, 10**6), max_size=8),
       workers=st.sampled_from([1, 2]), form=st.sampled_from(["iterator", "jsonl", "files"]))
def test_any_split_into_documents_counts_like_the_joined_text(tmp_path_factory, case, cuts, workers, form):
    text, specials, vocab_size = case
    points = sorted({c % (len(text) + 1) for c in cuts})
    documents = [text[a:b] for a, b in zip([0] + points, points + [len(text)])]
    if form == "iterator":
        arg = iter(documents)
    else:
        tmp = tmp_path_factory.mktemp("split")
        if form == "jsonl":
            arg = tmp / "d.jsonl"
            _write_jsonl(arg, documents)
        else:
            arg = []
            for i, d in enumerate(documents):
                (tmp / f"{i:02d}.txt").write_bytes(d.encode("utf-8"))
                arg.append(tmp / f"{i:02d}.txt")
    expected = reference_pretoken_counts_text(SEP.join(documents), list(specials) + [SEP])
    assert count_pretokens(arg, specials, num_workers=workers, chunk_size=16) == expected


@given(case=corpora(max_words=60), cuts=st.lists(st.integers(0, 10**6), max_size=5))
def test_training_on_documents_equals_the_reference(case, cuts):
    text, specials, vocab_size = case
    points = sorted({c % (len(text) + 1) for c in cuts})
    documents = [text[a:b] for a, b in zip([0] + points, points + [len(text)])]
    ref_vocab, ref_merges = reference_train_text(SEP.join(documents), vocab_size + 1, list(specials) + [SEP])
    vocab, merges = train_bpe(iter(documents), vocab_size, specials, progress=False)
    assert merges == ref_merges


# ---------------------------------------------------------------------------------------------------------
# doc_cap and max_chars, as nanochat's tok_train.py applies them
# ---------------------------------------------------------------------------------------------------------

def nanochat_documents(documents, doc_cap, max_chars):
    total = 0
    for doc in documents:
        if doc_cap is not None:
            doc = doc[:doc_cap]
        total += len(doc)
        yield doc
        if max_chars is not None and total > max_chars:
            return


@pytest.mark.parametrize("doc_cap, max_chars", [(50, None), (None, 3000), (7, 200), (1, 0), (10**6, 10**9)])
@pytest.mark.parametrize("form", ["iterator", ".jsonl.gz", ".parquet", "files", ".gz"])
def test_doc_cap_and_max_chars(tmp_path, docs, form, doc_cap, max_chars):
    if form == "iterator":
        arg = iter(docs)
    elif form == ".jsonl.gz":
        arg = tmp_path / "d.jsonl.gz"
        _write_jsonl(arg, docs)
    elif form == ".parquet":
        arg = tmp_path / "d.parquet"
        _write_parquet(arg, docs)
    else:
        arg = []
        for i, d in enumerate(docs):
            path = tmp_path / f"{i:02d}.txt{'.gz' if form == '.gz' else ''}"
            _write_text(str(path), d)
            arg.append(path)
    kept = list(nanochat_documents(docs, doc_cap, max_chars))
    expected = reference_pretoken_counts_text(SEP.join(kept), SPECIALS + [SEP])
    assert count_pretokens(arg, SPECIALS, num_workers=2, doc_cap=doc_cap, max_chars=max_chars) == expected


def test_doc_cap_counts_characters_not_bytes(tmp_path):
    path = tmp_path / "one.txt"
    path.write_bytes(("h\u00e9llo w\U0001f600rld " * 1000).encode("utf-8"))
    got = count_pretokens(path, doc_cap=13)
    assert got == reference_pretoken_counts_text(("h\u00e9llo w\U0001f600rld " * 2)[:13])


# ---------------------------------------------------------------------------------------------------------
# Counts as an artifact
# ---------------------------------------------------------------------------------------------------------

def test_train_from_counts_equals_train(tmp_path, docs):
    _write_jsonl(tmp_path / "d.jsonl", docs)
    counts = count_pretokens(tmp_path / "d.jsonl", SPECIALS)
    expected = train_bpe(tmp_path / "d.jsonl", 700, SPECIALS, progress=False)
    assert train_bpe_from_counts(counts, 700, SPECIALS) == expected
    assert train_bpe_from_counts(counts, 700, SPECIALS, backend="python") == expected
    save_counts(tmp_path / "counts.bin", counts, SPECIALS)
    assert load_counts(tmp_path / "counts.bin") == counts
    assert train_bpe_from_counts(tmp_path / "counts.bin", 700) == expected  # the file's special tokens
    assert train_bpe_from_counts(str(tmp_path / "counts.bin"), 700, isolate=True) == expected


def test_counts_file_is_the_same_whatever_the_threads(tmp_path, docs):
    blobs = set()
    for workers, chunk in [(1, None), (3, 64)]:
        counts = count_pretokens(iter(docs), SPECIALS, num_workers=workers, chunk_size=chunk)
        save_counts(tmp_path / "c.bin", dict(reversed(list(counts.items()))) if workers == 3 else counts, SPECIALS)
        blobs.add((tmp_path / "c.bin").read_bytes())
    assert len(blobs) == 1
    assert sorted(os.listdir(tmp_path)) == ["c.bin"]


# ---------------------------------------------------------------------------------------------------------
# Executors
# ---------------------------------------------------------------------------------------------------------

def test_thread_pool_executor(tmp_path, docs, expected):
    from concurrent.futures import ThreadPoolExecutor

    paths = []
    for i, d in enumerate(docs):
        _write_text(str(tmp_path / f"{i:02d}.txt{'.gz' if i % 3 == 0 else ''}"), d)
        paths.append(str(tmp_path / f"{i:02d}.txt{'.gz' if i % 3 == 0 else ''}"))
    with ThreadPoolExecutor(3) as ex:
        assert count_pretokens(paths, SPECIALS, executor=ex, chunk_size=64) == expected
        local = train_bpe(paths, 500, SPECIALS, progress=False)
        assert train_bpe(paths, 500, SPECIALS, executor=ex, chunk_size=256, progress=False) == local
        with pytest.raises(ValueError, match="max_chars needs the documents read in order"):
            count_pretokens(paths, executor=ex, max_chars=10)
        with pytest.raises(ValueError, match="an iterable is read in this process"):
            count_pretokens(iter(docs), executor=ex)


@pytest.mark.parametrize("backend", ["auto", "kernels"])
def test_executor_counts_a_single_file_once(tmp_path, monkeypatch, docs, backend):
    """With an executor, a single plain file is counted by its workers only: the caller trains on their
    table and never reads the file again (it once did, counting it twice)."""
    from concurrent.futures import ThreadPoolExecutor

    from bpe_numba import corpus_count

    path = tmp_path / "one.txt"
    path.write_text("<|endoftext|>".join(docs), encoding="utf-8")
    local = train_bpe(path, 500, SPECIALS, progress=False)
    submitted = []

    class Counting(ThreadPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            submitted.append(fn)
            return super().submit(fn, *args, **kwargs)

    def no_local_count(*args, **kwargs):
        raise AssertionError("the file was counted again in the caller")

    monkeypatch.setattr(corpus_count, "count_file", no_local_count)
    with Counting(2) as ex:
        assert train_bpe(path, 500, SPECIALS, executor=ex, progress=False, backend=backend, isolate=False) == local
    assert submitted


@pytest.mark.slow
def test_dask_local_cluster_trains_a_directory_like_the_local_path(tmp_path, docs):
    """A real ``distributed.LocalCluster`` with two worker processes (daemonic: they count on threads)."""
    distributed = pytest.importorskip("distributed")
    for i, d in enumerate(docs):
        _write_text(str(tmp_path / f"{i:02d}.txt{'.gz' if i % 2 else ''}"), d * 20)
    _write_parquet(str(tmp_path / "more.parquet"), docs)
    local = train_bpe(tmp_path, 800, SPECIALS, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        assert train_bpe(tmp_path, 800, SPECIALS, executor=client, chunk_size=64 << 10, progress=False) == local
        counts = count_pretokens(tmp_path, SPECIALS, executor=client.get_executor(), chunk_size=32 << 10)
    assert counts == count_pretokens(tmp_path, SPECIALS)


# ---------------------------------------------------------------------------------------------------------
# The iterator path in bounded memory (the CS336 memory test's method)
# ---------------------------------------------------------------------------------------------------------

_MEMORY_SCRIPT = r"""
import json, random, resource, sys
import psutil
from bpe_numba import count_pretokens

workers = int(sys.argv[1])
rng = random.Random(0)
words = "the cat sat on a mat , dog ran far away home Once upon time there was girl named Lily . she liked".split()
base = [" ".join(rng.choice(words) for _ in range(rng.randint(50, 400))) for _ in range(500)]

def documents(rounds):
    for _ in range(rounds):
        yield from base

one = count_pretokens(documents(1), ["<|endoftext|>"], num_workers=workers)
count_pretokens(documents(3), ["<|endoftext|>"], num_workers=workers)  # threads and buffers as they will be
info = psutil.Process().memory_info()
stack = resource.getrlimit(resource.RLIMIT_STACK)[0]
stacks = 0 if workers == 1 else workers * ((stack if 0 < stack < 1 << 30 else 32 << 20) + (1 << 16))
limit = info.vms + stacks + 4_000_000  # thread stacks are address space reserved, not memory used
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
try:
    try:
        bytearray(200_000_000)
        enforced = False
    except MemoryError:
        enforced = True
    got = count_pretokens(documents(80), ["<|endoftext|>"], num_workers=workers)
finally:
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
print(json.dumps({"enforced": enforced, "equal": got == {k: 80 * v for k, v in one.items()},
                  "bytes_read": 80 * sum(len(d) + 1 for d in base)}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is only dependable on Linux")
@pytest.mark.parametrize("workers", [1, 2])
def test_iterator_counts_under_a_4mb_memory_allowance(package_env, workers):
    """40 MB of documents from a generator, counted (in this thread, or by two threads through their
    queue) with an address-space limit of what is mapped plus 4 MB (plus, with threads, the address space
    their stacks reserve: the C library may or may not have kept the stacks of earlier threads to reuse).
    A 256 KiB block and numpy's temporaries over it are new mappings (above malloc's mmap threshold): with
    1 MB to spare, whether they fit depended on what the allocator had kept (it failed once in a fresh
    virtualenv). (The CS336 test's limit, resident memory plus 1 MB, allows no new mapping at all here.)"""
    pytest.importorskip("psutil")
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(workers)], capture_output=True,
                         text=True, env=package_env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["enforced"], "the limit did not hold back a 200 MB allocation: the test proves nothing"
    assert result["equal"] and result["bytes_read"] > 30_000_000, result


# ---------------------------------------------------------------------------------------------------------
# Bad input: one clear error each, nothing half-written
# ---------------------------------------------------------------------------------------------------------

def test_missing_file_in_a_list(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match=r"missing\.txt: no such file; to train on a list of texts"):
        count_pretokens([tmp_path / "a.txt", tmp_path / "missing.txt"])
    with pytest.raises(TypeError, match=r"input\[1\] is int"):
        train_bpe([tmp_path / "a.txt", 3], 300)


def test_glob_matching_nothing_and_empty_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the glob pattern '.*\*\.jsonl' matches no file"):
        train_bpe(str(tmp_path / "*.jsonl"), 300)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="the directory holds no files"):
        count_pretokens(tmp_path / "empty")


@pytest.mark.parametrize("line, message", [
    (b'{"text": "ok"', r"bad\.jsonl:3: not valid JSON"),
    (b'{"body": "no text"}', r"bad\.jsonl:3: the record has no field 'text' \(its fields are 'body'\)"),
    (b'["a list"]', r"bad\.jsonl:3: the record has no field 'text' \(it is a JSON list\)"),
    (b'{"text": 42}', r"bad\.jsonl:3: field 'text' is a JSON int, not a string"),
    (b'{"text": "\\ud800"}', r"bad\.jsonl:3: lone surrogate"),
])
def test_bad_jsonl_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "fine"}\n\n' + line + b"\n")
    with pytest.raises(ValueError, match=message):
        count_pretokens(path)
    with pytest.raises(ValueError, match=message):
        train_bpe([path], 300, max_chars=10**6)


def test_invalid_utf8_in_compressed_and_record_inputs(tmp_path):
    from bpe_numba import InvalidUTF8Error

    _write_text(str(tmp_path / "a.txt.gz"), "")
    with gzip.open(tmp_path / "a.txt.gz", "wb") as f:
        f.write(b"hello world " * 1000 + b"\xff bad")
    with pytest.raises(InvalidUTF8Error, match="in the decompressed text") as info:
        count_pretokens(tmp_path / "a.txt.gz")
    assert (info.value.path, info.value.offset) == (str(tmp_path / "a.txt.gz"), 12_000)
    assert count_pretokens(tmp_path / "a.txt.gz", errors="replace")[b" \xef\xbf\xbd"] == 1
    (tmp_path / "b.jsonl").write_bytes(b'{"text": "x"}\n{"text": "\xff"}\n')
    with pytest.raises(InvalidUTF8Error, match="line 2"):
        count_pretokens(tmp_path / "b.jsonl")


def test_corrupt_gzip_names_file_and_offset(tmp_path):
    data = gzip.compress(generate_text(3, 20_000, []).encode("utf-8"))
    broken = bytearray(data)
    broken[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    (tmp_path / "broken.txt.gz").write_bytes(bytes(broken))
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(b'{"text": "a b c"}\n' * 5000)[:-100])
    for name in ("broken.txt.gz", "cut.jsonl.gz"):
        with pytest.raises(ValueError, match=rf"{name}: corrupt or truncated gzip data .* after [\d,]+ bytes of "
                                             rf"decompressed data, with the compressed file read up to byte") as info:
            count_pretokens([tmp_path / name])
        assert info.value.path == str(tmp_path / name) and info.value.offset >= 0


def test_bad_counts_files(tmp_path):
    from bpe_numba.counts_file import FORMAT_VERSION

    path = tmp_path / "c.bin"
    save_counts(path, {b"ab": 3, b"abc": 1}, ["<s>"])
    good = path.read_bytes()
    path.write_bytes(good[:8] + (FORMAT_VERSION + 1).to_bytes(4, "little") + good[12:])
    with pytest.raises(ValueError, match=rf"counts file format version {FORMAT_VERSION + 1}, but this bpe_numba reads"):
        load_counts(path)
    path.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(ValueError, match="the checksum does not match"):
        train_bpe_from_counts(path, 300)
    path.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a bpe_numba counts file"):
        load_counts(path)
    with pytest.raises(TypeError, match="counts key 'ab' is str"):
        save_counts(tmp_path / "d.bin", {"ab": 1})
    with pytest.raises(ValueError, match="counts must be positive"):
        train_bpe_from_counts({b"ab": 0}, 300)
    assert sorted(os.listdir(tmp_path)) == ["c.bin"]


def test_missing_column_and_nulls_in_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"content": ["a", None]}), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"t\.parquet: no column 'text' \(its columns: content\)"):
        count_pretokens(tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"t\.parquet: row 1 has no value \(null\) in column 'content'"):
        count_pretokens(tmp_path / "t.parquet", text_field="content")


# ---------------------------------------------------------------------------------------------------------
# Command line: count, train --counts, several inputs
# ---------------------------------------------------------------------------------------------------------

def test_cli_count_then_train_from_counts(tmp_path, docs, capsys):
    from bpe_numba import cli

    (tmp_path / "in").mkdir()
    _write_jsonl(tmp_path / "in" / "a.jsonl.gz", docs[:30])
    _write_parquet(tmp_path / "in" / "b.parquet", docs[30:])
    inputs = [str(tmp_path / "in" / "a.jsonl.gz"), str(tmp_path / "in" / "*.parquet")]
    specials = ["--special-token", "<|endoftext|>", "--special-token", "<|a|>"]
    assert cli.main(["count", *inputs, "-o", str(tmp_path / "c.bin"), *specials, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["unique_pretokens"] == len(load_counts(tmp_path / "c.bin"))
    assert cli.main(["train", "--counts", str(tmp_path / "c.bin"), "--vocab-size", "500", "--out",
                     str(tmp_path / "from_counts"), "--json"]) == 0
    assert cli.main(["train", *inputs, *specials, "--vocab-size", "500", "--out", str(tmp_path / "direct"),
                     "--json"]) == 0
    capsys.readouterr()
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "from_counts" / name).read_bytes() == (tmp_path / "direct" / name).read_bytes()
    expected = train_bpe([tmp_path / "in" / "a.jsonl.gz", tmp_path / "in" / "b.parquet"], 500,
                         ["<|endoftext|>", "<|a|>"], progress=False)
    assert train_bpe_from_counts(tmp_path / "c.bin", 500) == expected


def test_cli_count_leaves_nothing_on_bad_input(tmp_path, capsys):
    from bpe_numba import cli

    (tmp_path / "bad.jsonl").write_bytes(b'{"text": "ok"}\n' * 1000 + b"{oops\n")
    assert cli.main(["count", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "c.bin")]) == 2
    assert "bad.jsonl:1001: not valid JSON" in capsys.readouterr().err
    assert cli.main(["train", "--counts", str(tmp_path / "c.bin"), str(tmp_path / "bad.jsonl")]) == 2
    assert "not both" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["bad.jsonl"]


def test_invalid_utf8_in_parquet(tmp_path):
    from bpe_numba import InvalidUTF8Error

    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    docs = [b"good text", b"bad \xff text here", b"more"]
    pq.write_table(pa.table({"text": pa.array(docs, pa.binary()).cast(pa.string(), safe=False)}), tmp_path / "t.parquet")
    with pytest.raises(InvalidUTF8Error, match=r"row 1, column 'text'") as info:
        count_pretokens(tmp_path / "t.parquet")
    assert info.value.offset == 4
    expected = reference_pretoken_counts_text(SEP.join(d.decode("utf-8", "replace") for d in docs), [SEP])
    assert count_pretokens(tmp_path / "t.parquet", errors="replace") == expected
