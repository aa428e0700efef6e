"""Pre-tokenization engines and chunking against the plain regex over the whole text, on inputs large
enough to grow the scanner's table several times and cut into many chunks; custom patterns."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpe_numba import count_pretokens
from bpe_numba.chunking import find_safe_cut, find_special_cut
from bpe_numba.pretokenize import SpecialSplitter
from reference import reference_pretoken_counts_text, split_on_specials
from strategies import SPECIAL_CANDIDATES

SPECIALS = ["<|endoftext|>", "<|end of text|>"]


def _many_distinct_units(seed: int) -> str:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz\u00e9\u00df\u0436"
    seps = [" ", "  ", "\n", " \n", "\t", "\u00a0", "\r\n", ", ", ". ", "'s ", " 42 "]
    parts = []
    for i in range(60_000):  # ~50 000 distinct units: the table starts with room for 8 192
        parts.append("".join(rng.choice(letters) for _ in range(rng.randint(1, 9))))
        parts.append(rng.choice(seps))
        if i % 997 == 0:
            parts.append(rng.choice(SPECIALS))
    return "".join(parts)


@pytest.mark.parametrize("engine", ["numba", "regex"])
@pytest.mark.parametrize("workers, chunk_size", [(1, None), (2, 4096)])
def test_counting_equals_regex_over_whole_text(tmp_path, workers, chunk_size, engine):
    text = _many_distinct_units(1)
    path = tmp_path / "units.txt"
    path.write_bytes(text.encode("utf-8"))
    got = count_pretokens(path, SPECIALS, num_workers=workers, chunk_size=chunk_size, engine=engine)
    assert got == reference_pretoken_counts_text(text, SPECIALS)


@pytest.mark.parametrize("workers, chunk_size", [(1, None), (1, 64), (2, 300)])
def test_custom_pattern_counts_and_chunks_only_at_special_tokens(tmp_path, workers, chunk_size):
    """A pattern whose matches cross whitespace: chunks may only be cut where a special token starts."""
    import regex

    pattern = r"\w+ \w+|\s+|\W"
    specials = ["<|e|>", "<|e|><|f|>"]
    text = "alpha beta gamma<|e|>delta epsilon<|e|><|f|> zeta eta theta " * 40 + "<|e|>end word"
    path = tmp_path / "custom.txt"
    path.write_bytes(text.encode("utf-8"))
    expected: dict[bytes, int] = {}
    for seg in regex.split("<\\|e\\|><\\|f\\|>|<\\|e\\|>", text):
        for m in regex.finditer(pattern, seg):
            expected[m.group().encode()] = expected.get(m.group().encode(), 0) + 1
    got = count_pretokens(path, specials, num_workers=workers, chunk_size=chunk_size, pattern=pattern)
    assert got == expected
    with pytest.raises(ValueError, match="engine='numba' implements only the GPT-2 pattern"):
        count_pretokens(path, specials, pattern=pattern, engine="numba")
    with pytest.raises(ValueError, match="does not compile"):
        count_pretokens(path, specials, pattern="(")
    with pytest.raises(ValueError, match="engine='fast'"):
        count_pretokens(path, specials, engine="fast")


@pytest.mark.parametrize(
    "data, lo, hi, specials, expected",
    [
        (b"ab<s>cd<s>", 1, 10, [b"<s>"], 2),
        (b"ab<s>cd<s>", 3, 10, [b"<s>"], 7),
        (b"aaa", 1, 3, [b"aa"], -1),  # the occurrence at 1 is crossed by the one at 0
        (b"x<a><b>", 0, 7, [b"<a>", b"<a><b>", b"<b>"], 1),  # <b> at 4 is inside <a><b>
        (b"x<a><b>", 2, 7, [b"<a>", b"<a><b>", b"<b>"], -1),
    ],
)
def test_find_special_cut(data, lo, hi, specials, expected):
    assert find_special_cut(data, lo, hi, specials) == expected


@pytest.mark.parametrize(
    "data, lo, hi, specials, expected",
    [
        (b"ab cd", 0, 5, [], 2),  # 'b' then ' '
        (b"a\n\nb", 0, 4, [], 1),  # only the first whitespace after a printable byte
        (b"\xc3\xa9 x", 0, 4, [], -1),  # the byte before is not ASCII: not provably safe
        (b"<end of> x", 0, 10, [b"<end of>"], 8),  # never inside a special token
        (b"x y", 2, 3, [], -1),  # the window [lo, hi) excludes the only cut
    ],
)
def test_find_safe_cut(data, lo, hi, specials, expected):
    assert find_safe_cut(data, lo, hi, specials) == expected


@given(
    st.lists(st.sampled_from(SPECIAL_CANDIDATES), unique=True, min_size=1, max_size=5),
    st.lists(st.sampled_from(SPECIAL_CANDIDATES + ["a", "b", "<", "|", ">", " ", "é", "<|", "|>"]), max_size=40),
)
def test_special_splitter_is_leftmost_longest(specials, pieces):
    import regex

    text = "".join(pieces)
    data = text.encode("utf-8")
    bounds, which = SpecialSplitter(specials).split(data)
    assert [data[a:b].decode() for a, b in bounds.tolist()] == split_on_specials(text, specials)
    ordered = sorted(specials, key=len, reverse=True)
    matched = [m.group() for m in regex.finditer("|".join(regex.escape(t) for t in ordered), text)]
    assert [specials[i] for i in which.tolist()[:-1]] == matched and which[-1] == -1


def test_fifo_input_is_refused_not_waited_on(tmp_path):
    """A FIFO (or any non-regular file) cannot be cut into chunks: a clear error naming it, no hang."""
    import os

    from bpe_numba import BPEInputError

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(BPEInputError, match=r"pipe: is a FIFO"):
        count_pretokens(fifo, num_workers=2)


@pytest.mark.parametrize("change", ["truncate", "rewrite"])
def test_file_changed_while_read_is_an_error(tmp_path, monkeypatch, change):
    """A file truncated (or rewritten) while its chunks are read: an error naming it, not a silent count of
    part of it."""
    import os

    from bpe_numba import chunking, errors

    path = tmp_path / "c.txt"
    path.write_bytes(b"hello world, this is text. " * 20_000)
    real_read = chunking.ChunkReader.read_range
    calls = []

    def read(self, lo, hi):
        calls.append(lo)
        if len(calls) == 2:
            if change == "truncate":
                os.truncate(path, 1000)
            else:
                data = path.read_bytes()
                path.write_bytes(data.replace(b"hello", b"HELLO"))
                os.utime(path, ns=(0, 10**18))  # another modification time, same size
        return real_read(self, lo, hi)

    monkeypatch.setattr(chunking.ChunkReader, "read_range", read)
    with pytest.raises(errors.FileChangedError, match=r"c\.txt: the file changed while it was read"):
        count_pretokens(path, num_workers=1, chunk_size=4096)


@given(st.dictionaries(st.binary(min_size=1, max_size=300), st.integers(1, (1 << 63) - 1), max_size=120),
       st.integers(1, 4), st.sampled_from([4, 1 << 12]))
def test_flattening_on_threads_gives_every_entry_once(entries, workers, slots):
    """The table flattened by slot ranges on threads, and turned into a dict from there, holds exactly what
    one thread gives: every entry once with its count (keys ending in NUL bytes, and of 256 bytes or more,
    included)."""
    from bpe_numba.pretokenize import flatten_table, table_to_dict

    table = _table_of(entries, slots)
    assert table_to_dict(table, workers) == entries
    for min_len in (1, 2):
        flat, o, c = flatten_table(table, min_len, workers)
        raw, o = flat.tobytes(), o.tolist()
        got = [(raw[o[j] : o[j + 1]], n) for j, n in enumerate(c.tolist())]
        assert len(got) == len(c) and o[-1] == len(raw)
        assert sorted(got) == sorted((k, n) for k, n in entries.items() if len(k) >= min_len)


_PICKLED_COUNTS = [1, 255, 256, 65535, 65536, (1 << 31) - 1, 1 << 31, (1 << 32) + 5, (1 << 63) - 1]


@pytest.mark.parametrize("feed_step", [None, 1, 7])
def test_the_dict_holds_every_key_width_and_count_width(monkeypatch, feed_step):
    """Every count width the pickle writes (BININT1, BININT2, BININT, LONG1, at each edge) and every key
    width (SHORT_BINBYTES up to 255 bytes, BINBYTES from 256 on, longer than a peek of the feed and than the
    unpickler's 128 KiB prefetch, keys ending in NUL) comes back exactly, from one table on one and on three
    threads and from tables summed on threads; with peeks of 1 or 7 bytes every record is cut between them."""
    from bpe_numba import pretokenize as P

    if feed_step is not None:
        monkeypatch.setattr(P, "_FEED_STEP", feed_step)
    keys = [b"a", b"\0", b"ab\0", b"x" * 7, b"y" * 8, b"z" * 255, b"w" * 256, b"v" * 40_000 + b"\0",
            bytes(range(256)) * 600]
    entries = {k: _PICKLED_COUNTS[i % len(_PICKLED_COUNTS)] for i, k in enumerate(keys)}
    entries.update({bytes([i, j]): 1 + i * j for i in range(1, 40) for j in range(1, 40)})
    assert P.table_to_dict(_table_of(entries), 1) == entries
    assert P.table_to_dict(_table_of(entries), 3) == entries
    half = dict(list(entries.items())[::2])
    rest = {k: n for k, n in entries.items() if k not in half}
    for extra in ([], [_table_of({b"a": 4})]):  # two tables (not merged: pickle_two), three (merged)
        split = P.merge_tables([_table_of(half), _table_of(rest), *extra], 2 + len(extra))
        assert P.table_to_dict(split, 2 + len(extra)) == {**entries, b"a": entries[b"a"] + 4 * len(extra)}


def test_pickled_entries_never_write_past_their_array():
    """An array too small for the entries raises before a kernel writes past it, at any size."""
    import numpy as np

    from bpe_numba import count_kernels as K

    table = _table_of({b"abc": 1, b"y" * 300: 70_000, b"q": (1 << 40)})
    other = _table_of({b"abc": 2, b"zz": 3})
    n = table.slots.shape[0] // 2
    everything = K.key_ranges(1)[0]
    extra = np.zeros(n, dtype=np.int64)
    ranges = np.stack(K.key_ranges(3))
    progress = np.zeros(1, dtype=np.int64)
    writers = {
        "pickle_entries": lambda out: K.pickle_entries(table, 0, n, everything, extra, out, 1000),
        "pickle_two": lambda out: K.pickle_two(table, other, ranges, extra, out, progress, np.empty(8, np.int64),
                                               1000),
    }
    for name, write in writers.items():
        need = write(np.empty(1000, dtype=np.uint8))
        for size in range(need):
            out = np.zeros(size + 64, dtype=np.uint8)
            with pytest.raises(ValueError, match="out too small"):
                write(out[:size])
            assert not out[size:].any(), name


@given(st.lists(st.dictionaries(st.binary(min_size=1, max_size=20), st.integers(1, 1 << 61), max_size=200),
                min_size=2, max_size=2),
       st.sampled_from([4, 1 << 10]))
def test_two_tables_read_as_a_dict_are_summed_and_left_as_they_were(parts, slots):
    """Two threads' tables made into a dict without merging them (pickle_two): every key once with its
    sum, whichever table is larger and whatever their sizes; the tables are not written, so the SplitTable
    can still be flattened or counted afterwards."""
    import numpy as np

    from bpe_numba import pretokenize as P

    tables = [_table_of(parts[0], slots), _table_of(parts[1])]
    before = [[a.copy() for a in t] for t in tables]
    expected = dict(parts[0])
    for k, n in parts[1].items():
        expected[k] = expected.get(k, 0) + n
    split = P.merge_tables(tables, 2)
    assert P.table_to_dict(split, 2) == expected
    assert all(np.array_equal(a, b) for t, was in zip(split.tables, before) for a, b in zip(t, was))
    assert not split.merged
    assert P.distinct(split) == len(expected)
    assert P.table_to_dict(split, 2) == expected  # now merged: read range by range


def _table_of(entries: dict, slots: int = 4, arena: int = 16):
    import numpy as np

    from bpe_numba import count_kernels as K
    from bpe_numba.pretokenize import add_to_table

    keys = list(entries)
    blob = np.frombuffer(b"".join(keys) or b"\0", dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(k) for k in keys], dtype=np.int64)]).astype(np.int64)
    counts = np.array([entries[k] for k in keys], dtype=np.int64)
    return add_to_table(K.new_table(slots, arena), blob, offsets, counts)


@given(st.lists(st.dictionaries(st.binary(min_size=1, max_size=40), st.integers(1, 1 << 40), max_size=80),
                min_size=1, max_size=4),
       st.integers(1, 4), st.data())
def test_tables_merged_on_threads_hold_the_sums(parts, workers, data):
    """The threads' tables are summed range by range of keys, each thread into its own table (growing it
    from 4 slots and a 16-byte arena while the others read it), by whichever reader comes first: read as a
    dict (merged on one thread fewer than the tables, so a thread may take several), flattened or counted,
    in any order, the result holds the sum of the tables."""
    from bpe_numba.pretokenize import SplitTable, distinct, flatten_table, merge_tables, table_to_dict

    keys = sorted({k for p in parts for k in p})
    if keys:  # keys shared by every table: each table holds the others' entries in its range
        shared = data.draw(st.lists(st.sampled_from(keys), max_size=10))
        parts = [{**p, **{k: 7 for k in shared}} for p in parts]
    expected: dict[bytes, int] = {}
    for p in parts:
        for k, n in p.items():
            expected[k] = expected.get(k, 0) + n
    merged = merge_tables([_table_of(p) for p in parts], workers)
    assert isinstance(merged, SplitTable) == (workers > 1 and len(parts) > 1)

    def flattened(min_len, w):
        flat, o, c = flatten_table(merged, min_len, w)
        raw, o = flat.tobytes(), o.tolist()
        assert len(o) == len(c) + 1 and o[-1] == len(raw)
        return sorted((raw[o[j] : o[j + 1]], n) for j, n in enumerate(c.tolist()))

    readers = [
        lambda: distinct(merged) == len(expected),
        lambda: table_to_dict(merged, workers) == expected,
        lambda: table_to_dict(merged, 1) == expected,
        lambda: flattened(2, workers) == sorted((k, n) for k, n in expected.items() if len(k) >= 2),
        lambda: flattened(1, 1) == sorted(expected.items()),
    ]
    for i in data.draw(st.permutations(range(len(readers)))):
        assert readers[i](), i


@given(st.sets(st.binary(min_size=1, max_size=12), max_size=60), st.integers(1, 8), st.data())
def test_key_slots_hold_every_entry_of_the_range(entries, parts, data):
    """Every entry whose key is in a range lies in the slots ``key_slots`` gives for it, runs that wrap
    past the last slot included (tables of 4 to 256 slots, at most half full)."""
    import numpy as np

    from bpe_numba import count_kernels as K

    table = _table_of({k: 1 for k in entries}, data.draw(st.sampled_from([4, 16, 256])))
    n = table.slots.shape[0] // 2
    keys = table.slots[0::2]
    for r in K.key_ranges(parts):
        out = np.empty(4, dtype=np.int64)
        K.key_slots(table, r, out)
        a, b, c, d = out.tolist()
        assert 0 <= a <= b <= n and 0 <= c <= d <= a
        held = set(range(a, b)) | set(range(c, d))
        wanted = np.flatnonzero((keys != 0) & (keys >= r[0]) & (keys <= r[1])).tolist()
        assert set(wanted) <= held


def _reader(split, name: str):
    """The reader ``name`` of a SplitTable (its first reader merges it), on one worker per table."""
    from bpe_numba import pretokenize as P

    w = len(split.tables)
    return {"dict": lambda: P.table_to_dict(split, w), "flatten": lambda: P.flatten_table(split, 1, w),
            "distinct": lambda: P.distinct(split)}[name]


@pytest.mark.parametrize("reader, n_tables", [("dict", 3), ("dict", 2), ("flatten", 2), ("distinct", 2)])
def test_the_calling_thread_waits_without_spinning(monkeypatch, reader, n_tables):
    """While the threads merge a SplitTable (or pickle two tables without merging them), the calling thread
    sleeps in a wait (or builds the dict), it does not poll: its CPU time stays far below the threads'
    wall time."""
    import time

    from bpe_numba import count_kernels as K
    from bpe_numba import pretokenize as P

    tables = [_table_of({b"a": 1, b"bb": 2, bytes([i]) * 9: 3}) for i in range(1, n_tables + 1)]
    merge, two = P._merge_into, K.pickle_two

    def slow_merge(dst, src, keys):
        time.sleep(0.05)
        return merge(dst, src, keys)

    def slow_two(*args):
        time.sleep(0.05 * P._RANGES_PER_TABLE)
        return two(*args)

    monkeypatch.setattr(P, "_merge_into", slow_merge)
    monkeypatch.setattr(K, "pickle_two", slow_two)
    split = P.merge_tables(tables, n_tables)
    read = _reader(split, reader)
    cpu, wall = time.thread_time(), time.perf_counter()
    assert read()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    assert wall >= 0.05 * P._RANGES_PER_TABLE
    assert cpu < 0.25 * wall, (cpu, wall)


@pytest.mark.parametrize("reader, threads", [("dict", 2), ("flatten", 3), ("distinct", 3)])
def test_the_dict_builder_counts_as_a_merging_thread(monkeypatch, reader, threads):
    """Three tables: while the calling thread builds the dict, two threads merge (one takes two tables'
    ranges); while it only waits (flattening, counting), three do."""
    from bpe_numba import pretokenize as P
    from bpe_numba import threads as T

    tables = [_table_of({b"a": i, b"bb": 2, bytes([i]) * 9: 3}) for i in range(1, 4)]
    started = []
    run = T.run_threads

    def counted(worker, n, **kw):
        started.append(n)
        return run(worker, n, **kw)

    monkeypatch.setattr(T, "run_threads", counted)
    split = P.merge_tables(tables, 3)
    got = _reader(split, reader)()
    assert started == [threads]
    assert P.table_to_dict(split, 3) == {b"a": 6, b"bb": 6, **{bytes([i]) * 9: 3 for i in range(1, 4)}}
    if reader == "distinct":
        assert got == 5


@pytest.mark.parametrize("reader", ["dict", "flatten", "distinct"])
def test_a_failing_merge_thread_raises_in_the_caller(monkeypatch, reader):
    import sys
    import threading

    from bpe_numba import pretokenize as P

    tables = [_table_of({b"a": 1, b"bb": 2, bytes([i]) * 9: 3}) for i in range(1, 4)]
    merge = P._merge_into

    def fails_in_the_third_thread(dst, src, keys):
        if dst is tables[2]:
            raise MemoryError("planted")
        return merge(dst, src, keys)

    monkeypatch.setattr(P, "_merge_into", fails_in_the_third_thread)
    split = P.merge_tables(tables, 3)
    before = sys.getswitchinterval()
    read = _reader(split, reader)
    with pytest.raises(MemoryError, match="planted"):
        read()
    assert not [t for t in threading.enumerate() if t.name.startswith("bpe_numba-")]
    assert sys.getswitchinterval() == before
    monkeypatch.setattr(P, "_merge_into", merge)
    with pytest.raises(RuntimeError, match="half merged"):  # not summed twice
        read()
    with P._quick_gil_handoff():
        with P._quick_gil_handoff():
            assert sys.getswitchinterval() == pytest.approx(P._HANDOFF)
        assert sys.getswitchinterval() == pytest.approx(P._HANDOFF)
    assert sys.getswitchinterval() == before


def test_a_failing_pickling_thread_raises_in_the_caller(monkeypatch):
    """Two tables read as a dict: when the thread that pickles them fails, the caller gets its error (not a
    dict of what was published), no thread is left and the switch interval is restored; the tables were
    not written, so reading them again gives the sums."""
    import sys
    import threading

    from bpe_numba import count_kernels as K
    from bpe_numba import pretokenize as P

    tables = [_table_of({b"a": 1, b"bb": 2, bytes([i]) * 9: 3}) for i in range(1, 3)]
    two = K.pickle_two

    def fails(*args):
        two(*args)
        raise MemoryError("planted")

    monkeypatch.setattr(K, "pickle_two", fails)
    split = P.merge_tables(tables, 2)
    before = sys.getswitchinterval()
    with pytest.raises(MemoryError, match="planted"):
        P.table_to_dict(split, 2)
    assert not [t for t in threading.enumerate() if t.name.startswith("bpe_numba-")]
    assert sys.getswitchinterval() == before
    monkeypatch.setattr(K, "pickle_two", two)
    assert P.table_to_dict(split, 2) == {b"a": 2, b"bb": 4, b"\x01" * 9: 3, b"\x02" * 9: 3}


@given(st.integers(0, 5 << 20), st.integers(4096, 1 << 20), st.integers(1, 4))
def test_chunk_ranges_cover_the_file_and_cut_only_the_last_chunks(size, chunk_size, workers):
    from bpe_numba.chunking import _TAIL_PIECE_MIN, chunk_ranges

    ranges = chunk_ranges(size, chunk_size, workers)
    assert ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    uniform = chunk_ranges(size, chunk_size)
    assert uniform == [(k * chunk_size, min((k + 1) * chunk_size, size)) for k in range(len(uniform))]
    if ranges != uniform:
        kept = len(uniform) - workers
        assert workers > 1 and len(uniform) >= 4 * workers and ranges[:kept] == uniform[:kept]
        assert all(hi - lo >= _TAIL_PIECE_MIN for lo, hi in ranges[kept:])
        assert workers < len(ranges) - kept <= 4 * workers
    elif workers > 1 and len(uniform) >= 4 * workers:
        assert size - uniform[-workers][0] < (workers + 1) * _TAIL_PIECE_MIN  # too little to cut


_SAMPLE = "".join(f"w{i} x{i % 7}y,  {SPECIALS[i % 2] if i % 97 == 0 else ''}\n" for i in range(1500)).encode()


@given(st.lists(st.integers(1, 3000), min_size=1, max_size=12), st.sampled_from([[], SPECIALS]))
def test_chunks_of_any_adjacent_ranges_cover_the_file_once(tmp_path_factory, steps, specials):
    """``read_range`` over adjacent nominal ranges of any sizes gives chunks that join into the file."""
    from bpe_numba.chunking import ChunkReader, SpecialTokens

    text = _SAMPLE
    path = tmp_path_factory.mktemp("ranges") / "t.txt"
    path.write_bytes(text)
    cuts = [0]
    for step in steps:
        cuts.append(min(cuts[-1] + step, len(text)))
    cuts.append(len(text))
    pieces = []
    with ChunkReader(str(path), len(text), 4096, SpecialTokens(specials), True) as reader:
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            data, start = reader.read_range(lo, hi)
            if data.shape[0]:
                assert start == sum(len(p) for p in pieces)
                pieces.append(data.tobytes())
    assert b"".join(pieces) == text


@pytest.mark.parametrize("engine", ["numba", "regex"])
def test_counts_with_the_last_chunks_cut_smaller(tmp_path, engine):
    """Two threads on a file whose last chunks are cut in pieces count what one thread and the regex count."""
    from bpe_numba.chunking import chunk_ranges

    text = _many_distinct_units(4) * 6
    raw = text.encode("utf-8")
    path = tmp_path / "big.txt"
    path.write_bytes(raw)
    chunk = 256 << 10
    assert chunk_ranges(len(raw), chunk, 2) != chunk_ranges(len(raw), chunk)  # the pieces are there
    two = count_pretokens(path, SPECIALS, num_workers=2, chunk_size=chunk, engine=engine)
    assert two == count_pretokens(path, SPECIALS, num_workers=1, chunk_size=chunk, engine=engine)
    assert two == reference_pretoken_counts_text(text, SPECIALS)
