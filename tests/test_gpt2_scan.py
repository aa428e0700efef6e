"""The Numba GPT-2 pre-tokenization scanner (``bpe_numba.gpt2_scan``) against the ``regex`` package.

The oracle is always ``regex.finditer(GPT2_PATTERN, ...)``: the class table for every code point, the split
of hypothesis strings from all of Unicode and from alphabets that attack each rule of the pattern, the
split of every fixture file, and the pre-token counts with a hash table that has to grow many times.
"""

from __future__ import annotations

import collections
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import regex
from hypothesis import example, given
from hypothesis import strategies as st

from bpe_numba import count_kernels as CK
from bpe_numba import gpt2_scan as G
from bpe_numba.pretokenize import GPT2_PATTERN, SpecialSplitter, add_to_table, flatten_table
from strategies import CONTRACTIONS, DIGITS, EMOJI, LETTERS, LINE_BREAKS, PUNCT, WHITESPACE

PATTERN = regex.compile(GPT2_PATTERN)
SPECIAL = "<|endoftext|>"


def regex_split(text: str) -> list[str]:
    return [m.group() for m in PATTERN.finditer(text)]


def all_code_points() -> tuple[np.ndarray, list[str]]:
    cps = np.concatenate([np.arange(0xD800), np.arange(0xE000, 0x110000)])
    return cps, list(cps.astype(np.uint32).tobytes().decode("utf-32-le"))


# --------------------------------------------------------------------------------------------------------
# The class table
# --------------------------------------------------------------------------------------------------------


def test_char_classes_equal_regex_for_every_code_point():
    """Bit 1 = \\p{L}, 2 = \\p{N}, 4 = \\s exactly as ``regex.match`` decides, one code point at a time; the
    pattern's 'other' class ``[^\\s\\p{L}\\p{N}]`` is exactly the code points with no bit; surrogates are 0."""
    table = G.char_classes()
    # The generator itself, not only what an earlier run may have cached on disk.
    assert np.array_equal(G.generate_char_classes(), table)
    assert table.dtype == np.uint8 and table.shape == (0x110000,)
    assert not table[0xD800:0xE000].any()
    cps, chars = all_code_points()
    got = table[cps]
    for bit, pattern in ((1, r"\p{L}"), (2, r"\p{N}"), (4, r"\s")):
        match = regex.compile(pattern).match
        want = np.fromiter(map(bool, map(match, chars)), dtype=bool, count=len(chars))
        bad = np.flatnonzero(want != ((got & bit) != 0))
        assert not len(bad), f"{pattern}: table differs at {[hex(c) for c in cps[bad[:10]]]}"
    match = regex.compile(r"[^\s\p{L}\p{N}]").match
    want = np.fromiter(map(bool, map(match, chars)), dtype=bool, count=len(chars))
    assert np.array_equal(want, got == 0)
    # The scanner treats the classes as disjoint kinds.
    assert set(np.unique(table).tolist()) <= {0, 1, 2, 4}
    # The scanner's ASCII kinds are compiled in from the fixed ASCII classes.
    assert np.array_equal(G.ascii_classes(), table[:128])


def test_generating_the_table_checks_the_fixed_ascii_classes(monkeypatch):
    fixed = G.ascii_classes()
    fixed[0x1F] = G.SPACE  # as if a regex counted U+001F as \s
    monkeypatch.setattr(G, "ascii_classes", lambda: fixed)
    with pytest.raises(RuntimeError, match="U\\+001F otherwise than bpe_numba.gpt2_scan assumes for ASCII"):
        G.generate_char_classes()


def test_char_classes_is_memoized_and_read_only():
    a = G.char_classes()
    assert G.char_classes() is a
    assert not a.flags.writeable


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache folder and no in-process memo."""
    monkeypatch.setenv("BPE_NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(G, "_memo", None)
    return tmp_path / "cache"


def _cache_file(folder):
    return folder / G._cache_name(G._table_identity())


def test_char_classes_cached_on_disk_atomically(fresh_cache, monkeypatch):
    table = G.char_classes()
    files = sorted(p.name for p in fresh_cache.iterdir())
    assert files == [_cache_file(fresh_cache).name], files  # no temp file left behind
    assert _cache_file(fresh_cache).stat().st_size < 64_000  # runs, compressed: not 1.1 MB

    # A second process (simulated: no memo) loads the file instead of generating.
    monkeypatch.setattr(G, "_memo", None)
    monkeypatch.setattr(G, "generate_char_classes", lambda: pytest.fail("regenerated despite the cache"))
    assert np.array_equal(G.char_classes(), table)


def test_class_table_name_follows_the_installed_regex(monkeypatch):
    """Another build of ``regex`` (another file size or time in its folder) gets another cache file."""
    before = G._table_identity()
    monkeypatch.setattr(G, "_regex_identity", lambda: "regex: some other build")
    assert G._table_identity() != before and G._cache_name(G._table_identity()) != G._cache_name(before)


def _damage(path: Path, how: str) -> None:
    """Truncate the file, replace it with junk, or write a well-formed table with a wrong class."""
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif how == "junk":
        path.write_bytes(b"not an npz file")
    else:  # well-formed, wrong: 'A' is no longer a letter; the file's own checksum is kept as it was
        with np.load(path, allow_pickle=False) as z:
            parts = {k: z[k] for k in z.files}
        wrong = G._from_runs(parts["starts"], parts["values"]).copy()
        wrong[ord("A")] = 0
        parts["starts"], parts["values"] = G._to_runs(wrong)
        with open(path, "wb") as f:
            np.savez_compressed(f, **parts)


@pytest.mark.parametrize("how", ["truncated", "junk", "well-formed-but-wrong"])
def test_char_classes_rebuilds_a_damaged_cache(fresh_cache, monkeypatch, how):
    want = G.generate_char_classes()
    G.char_classes()
    path = _cache_file(fresh_cache)
    _damage(path, how)
    assert G._load(path, G._table_identity()) is None  # never trusted
    monkeypatch.setattr(G, "_memo", None)
    assert np.array_equal(G.char_classes(), want)
    assert G._load(path, G._table_identity()) is not None  # rewritten


def test_char_classes_unwritable_cache_falls_back_to_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # Works as root too (permission bits would not stop root): the cache folder cannot be created.
    monkeypatch.setenv("BPE_NUMBA_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(G, "_memo", None)
    table = G.char_classes()
    assert np.array_equal(table, G.generate_char_classes())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_cache_dir_respects_xdg(monkeypatch, tmp_path):
    from bpe_numba.tiers import cache_dir

    monkeypatch.delenv("BPE_NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "bpe_numba"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "bpe_numba"
    monkeypatch.setenv("BPE_NUMBA_CACHE_DIR", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"


# --------------------------------------------------------------------------------------------------------
# Differential tests: split_text == regex
# --------------------------------------------------------------------------------------------------------

# Every code point regex's \s matches, the ones str.isspace() adds (\x1c-\x1f: not \s for regex), and
# look-alikes that are neither (Mongolian vowel separator, zero-width space, BOM, word joiner).
ALL_WHITESPACE = sorted(
    {c for c in map(chr, range(0x3001)) if c.isspace() or regex.match(r"\s", c)}
    | set(WHITESPACE)
    | {"\u180e", "\u200b", "\ufeff", "\u2060"}
)
APOSTROPHES = ["'", "\u2019", "\u2018", "\u02bc", "\uff07", "`", "\u00b4"]
COMBINING = ["\u0301", "\u0308", "\u20dd", "\u093f", "\u094d", "\u0e31", "\ufe0f", "\U000e0100"]
CASED_CONTRACTIONS = CONTRACTIONS + [
    "'s", "'S", "'ll", "'LL", "'lL", "'Ll", "''s", "'''ll", "'v", "'r", "'l",
    "'ve", "'VE", "'re", "'d", "'m", "'t", "'x",
]


def _regex_newer_letters() -> list[str]:
    """Letters and numbers for ``regex`` (newer Unicode) that ``unicodedata`` does not know yet."""
    table = G.char_classes()
    out = []
    for cp in np.flatnonzero(table & 3)[::7].tolist():
        if unicodedata.category(chr(cp))[0] not in "LN":
            out.append(chr(cp))
    return out or ["a"]


NEWER = _regex_newer_letters()

alphabet_chars = st.one_of(
    st.sampled_from(ALL_WHITESPACE),
    st.sampled_from(APOSTROPHES),
    st.sampled_from(COMBINING),
    st.sampled_from(LETTERS),
    st.sampled_from(DIGITS),
    st.sampled_from(PUNCT),
    st.sampled_from("sdmtlvreSDMTLVRE"),
    st.sampled_from(NEWER),
    st.characters(exclude_categories=("Cs",)),
)

pieces = st.one_of(
    alphabet_chars,
    st.sampled_from(CASED_CONTRACTIONS),
    st.sampled_from(EMOJI),
    st.sampled_from(LINE_BREAKS + ["\r", "\r\n", "\n\r", " \r", "\r "]),
    st.sampled_from([" " * 3, "\t ", " \t", "\u3000 ", " \u3000", "\xa0 ", " \x85", "\x1c ", " \x1f"]),
)

# Long runs of one class, to stress maximal munch and the whitespace backtracking.
run_alphabets = [
    "".join(ALL_WHITESPACE),
    " ",
    " \n",
    LETTERS,
    DIGITS,
    PUNCT + "'",
    "".join(COMBINING),
    "".join(NEWER[:50]),
]
runs = st.sampled_from(run_alphabets).flatmap(lambda a: st.text(alphabet=a, min_size=1, max_size=40))


def check_split(text: str) -> None:
    want = regex_split(text)
    got = G.split_text(text)
    assert got == want, f"{text!r}: kernel {got!r} != regex {want!r}"


@given(st.text(st.characters(exclude_categories=("Cs",))))
@example("Hi,  it's 42!")
@example("   x")
@example("a\n\n b")
@example("\x1c\x1d ab")
@example("'l")
@example("x'llo 'vex 're're")
@example("  's")
@example("\u3000\u3000a")
@example(" \u3000!")
@example("\r\n\r\n")
def test_split_matches_regex_any_unicode(text):
    """Strings drawn from every general category (surrogates excluded: not valid UTF-8)."""
    check_split(text)


@given(st.lists(pieces, max_size=60).map("".join))
def test_split_matches_regex_weighted_alphabets(text):
    """Whitespace of every kind, apostrophes of every kind, contractions in both cases, combining marks,
    ZWJ emoji, CR/LF, digits of other scripts, letters newer than ``unicodedata``."""
    check_split(text)


@given(st.lists(st.one_of(runs, pieces), max_size=12).map("".join))
@example(" " * 40 + "word")
@example("\n" * 30 + "!!")
@example("x" + " \t" * 20)
@example("12345" + "\u0661" * 10 + "abc" + "\u0301" * 5)
def test_split_matches_regex_long_runs(text):
    """Long runs of each class: whitespace runs before letters, punctuation, numbers and at the end."""
    check_split(text)


def test_split_matches_regex_contractions_in_every_context():
    """Every contraction form (and near miss), in both cases, after and before each kind of neighbour."""
    tails = ("s", "S", "ll", "LL", "ve", "re", "Re", "t", "")
    forms = sorted(set(CASED_CONTRACTIONS) | {a + b for a in APOSTROPHES for b in tails})
    around = ["", " ", "  ", "a", "S", "7", "!", "'", "\n", "\u3000", "\u0301", "ll", "e"]
    for form in forms:
        for before in around:
            for after in around:
                check_split(before + form + after)


def test_split_matches_regex_on_every_code_point_in_context():
    """Every code point once, as `` {c}a``: each one's UTF-8 is decoded and classed right, whether it glues
    to the space before it (letters, numbers, others) or not (whitespace: then the run backtracks)."""
    _, chars = all_code_points()
    text = " " + "a ".join(chars) + "a"
    got = G.split_text(text)
    want = PATTERN.findall(text)  # the same as finditer's groups (no capture groups), and faster
    if got != want:
        bad = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        pytest.fail(f"first difference at pre-token {bad}: kernel {got[bad:bad + 3]!r}, regex {want[bad:bad + 3]!r}")
    assert len(got) == len(want)


FIXTURES = [
    "corpus.en",
    "german.txt",
    "address.txt",
    "tinystories_sample.txt",
    "gpt2_merges.txt",
    "gpt2_vocab.json",
    "train-bpe-reference-merges.txt",
    "train-bpe-reference-vocab.json",
]


@pytest.mark.parametrize("name", FIXTURES)
def test_split_and_count_match_regex_on_fixture(cs336_dir, name):
    path = cs336_dir / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    assert G.split_text(text) == regex_split(text)
    # Counting, split at the special token as the trainer does.
    bounds, _ = SpecialSplitter([SPECIAL]).split(raw)
    want = collections.Counter()
    for seg in text.split(SPECIAL):
        want.update(t.encode("utf-8") for t in regex_split(seg))
    assert count_dict(raw, bounds) == want


# --------------------------------------------------------------------------------------------------------
# The kernels' own contract
# --------------------------------------------------------------------------------------------------------


def test_gpt2_split_appends_and_restarts_at_start():
    raw = "ab  cd's\u3000 x".encode("utf-8")
    arr = np.frombuffer(raw, dtype=np.uint8)
    classes = G.char_classes()
    out = np.full(3 + len(raw), -7, dtype=np.int64)
    for start in range(len(raw) + 1):
        for end in range(start, len(raw) + 1):
            try:
                seg = raw[start:end].decode("utf-8")
            except UnicodeDecodeError:
                continue
            n = G.gpt2_split(arr, start, end, classes, out, 3)
            ends, pos = [], start
            for tok in regex_split(seg):
                pos += len(tok.encode("utf-8"))
                ends.append(pos)
            assert out[3:n].tolist() == ends, (start, end)
    # Exactly end - start entries of room is enough (one-byte pre-tokens everywhere).
    tight = np.empty(4, dtype=np.int64)
    assert G.gpt2_split(np.frombuffer(b"!a 1", dtype=np.uint8), 0, 4, classes, tight, 0) == 3
    assert G.gpt2_split(np.frombuffer(b"a\n\n!", dtype=np.uint8), 0, 4, classes, tight, 0) == 4
    with pytest.raises(ValueError):
        G.gpt2_split(arr, 0, len(raw), classes, np.empty(len(raw) - 1, dtype=np.int64), 0)
    with pytest.raises(ValueError):
        G.gpt2_split(arr, 0, len(raw) + 1, classes, np.empty(len(raw) + 1, dtype=np.int64), 0)


def test_gpt2_split_stays_in_bounds_on_invalid_utf8():
    """Invalid UTF-8 is the caller's to reject, but the kernel must not read or write out of bounds."""
    classes = G.char_classes()
    for raw in (b"\xff", b"a\xe2\x82", b"\xf4\x90\x80\x80x", b"\x80\x80 a", b"\xed\xa0\x80", b"\xf7\xbf\xbf\xbf"):
        out = np.empty(len(raw), dtype=np.int64)
        n = G.gpt2_split(np.frombuffer(raw, dtype=np.uint8), 0, len(raw), classes, out, 0)
        ends = out[:n].tolist()
        assert ends == sorted(set(ends)) and ends[-1] == len(raw)


def count_dict(data: bytes, bounds=None, *, slots: int = 1 << 12, arena: int = 1 << 16, budget: int = 1 << 20,
               block: int = 4096) -> collections.Counter:
    """Count with the kernel from a table of ``slots`` slots and an ``arena`` of bytes (both grown on
    demand), calling it with a byte ``budget`` and a scanner block of ``block`` ends."""
    arr = np.frombuffer(data, dtype=np.uint8)  # read-only, as the package passes text to every kernel
    if bounds is None:
        bounds = np.array([[0, len(arr)]], dtype=np.int64)
    table = CK.new_table(slots, arena)
    buf = np.empty(block, dtype=np.int64)
    resume = np.zeros(4, dtype=np.int64)
    calls = 0
    while True:
        calls += 1
        status = CK.count_gpt2(arr, np.asarray(bounds, dtype=np.int64), G.char_classes(), table, buf, resume, budget)
        if status == CK.DONE:
            break
        if status == CK.GROW:
            table = CK.grow_table(table)
    blob, offsets, counts = flatten_table(table, 1)
    raw, o = blob.tobytes(), offsets.tolist()
    out = collections.Counter()
    for j, c in enumerate(counts.tolist()):
        key = raw[o[j] : o[j + 1]]
        assert key not in out, f"{key!r} listed twice"
        assert c > 0
        out[key] = c
    assert len(out) == table.state[CK.N_DISTINCT]
    count_dict.calls = calls
    return out


@st.composite
def segmented(draw):
    """(data, bounds, segment texts): segments of text with junk between them (special tokens, stray
    bytes of other segments) that the bounds exclude."""
    words = st.sampled_from(["the", " cat", " sat", "aaaaaaaaab", "aaaaaaaaac"])  # repeats; 8+ bytes
    seg = st.lists(st.one_of(pieces, runs, words), max_size=40).map("".join)
    texts = draw(st.lists(seg, min_size=1, max_size=6))
    gap = st.sampled_from([b"", b"<|endoftext|>", b"x", b" "])
    gaps = draw(st.lists(gap, min_size=len(texts) + 1, max_size=len(texts) + 1))
    data = bytearray(gaps[0])
    bounds = []
    for t, gap in zip(texts, gaps[1:]):
        start = len(data)
        data += t.encode("utf-8")
        bounds.append((start, len(data)))
        data += gap
    return bytes(data), np.array(bounds, dtype=np.int64).reshape(-1, 2), texts


@given(segmented(), st.sampled_from([(4, 16, 1 << 20, 4096), (4096, 1 << 16, 1 << 20, 4096), (4, 16, 1, 8),
                                     (16, 64, 7, 8)]))
def test_count_matches_counter_of_regex_pretokens(case, sizes):
    """Counts over several segments equal ``Counter`` of the regex pre-tokens of each segment, with the table
    starting tiny (4 slots and a 16-byte arena: both grow many times) or at its default size, and with tiny
    byte budgets and scanner blocks (the kernel pauses and resumes mid-segment)."""
    data, bounds, texts = case
    want = collections.Counter()
    for t in texts:
        want.update(tok.encode("utf-8") for tok in regex_split(t))
    slots, arena, budget, block = sizes
    assert count_dict(data, bounds, slots=slots, arena=arena, budget=budget, block=block) == want


@given(segmented(), st.sampled_from([(4, 16, 1 << 20, 4096), (4, 16, 1, 8), (16, 64, 300, 8), (4096, 1 << 16, 700, 64)]),
       st.integers(0, 3))
def test_count_two_streams_on_long_segments(case, sizes, pad):
    """Segments of 2 KB or more are scanned as two halves at once, cut near the middle: counts still equal
    the regex's over each whole segment, with the table growing, the budget pausing and tiny blocks making
    the kernel stop and resume in either half (and in a half that has finished)."""
    from bpe_numba.count_kernels import TWO_STREAMS_FROM

    data, bounds, texts = case
    sep = [" ", "\n", "  ", "x "][pad]
    long_texts = []
    for t in texts:
        piece = t + sep if t else "a" + sep
        long_texts.append(piece * (TWO_STREAMS_FROM // len(piece.encode("utf-8")) + 2))
    raw = "<|endoftext|>".join(long_texts).encode("utf-8")
    bounds, _ = SpecialSplitter([SPECIAL]).split(raw)
    want = collections.Counter()
    for t in long_texts:
        want.update(tok.encode("utf-8") for tok in regex_split(t))
    slots, arena, budget, block = sizes
    assert count_dict(raw, bounds, slots=slots, arena=arena, budget=budget, block=block) == want


def test_count_grows_many_times_and_handles_long_and_nul_tokens():
    words = [f"w{i:05d}" for i in range(3000)]  # 3000 distinct letter+number pairs
    longs = ["a" * 9 + chr(97 + i % 26) * (i % 5 + 1) for i in range(200)]  # share their first 8 bytes
    nuls = ["\x00", "\x00\x00", "\x00" * 7, "\x00" * 8, "\x00" * 9, "\x07" + "\x00" * 7, "\x01" * 8]
    text = " ".join(words + longs + words[::-1]) + "".join(f"{n}a" for n in nuls) + "end"
    raw = text.encode("utf-8")
    want = collections.Counter(t.encode("utf-8") for t in regex_split(text))
    for slots, arena in ((4, 16), (1 << 16, 1 << 20)):
        assert count_dict(raw, slots=slots, arena=arena) == want
    assert count_dict(raw, slots=4, arena=16, budget=64, block=8) == want
    assert count_dict.calls > 100  # it really paused (the budget is checked between scanner blocks) and grew


def test_count_kernel_checks_bytes_of_long_pretokens_on_equal_keys():
    """A pre-token of 8+ bytes whose key equals a stored one's (a collision, planted here: the stored
    entry's bytes are another pre-token's) is a new entry, not a count for the stored one."""
    table = CK.new_table(8, 64)
    blob = np.frombuffer(b"bbbbbbbbbb", dtype=np.uint8)
    table = add_to_table(table, blob, np.array([0, 10]), np.array([5]))
    slot = int(np.flatnonzero(table.slots[0::2])[0])
    other = np.frombuffer(b"cccccccccc", dtype=np.uint8)
    table.slots[2 * slot] = CK._long_key(other, 0, 10)  # "bbbbbbbbbb" now has the key of "cccccccccc"
    buf = np.empty(64, dtype=np.int64)
    resume = np.zeros(4, dtype=np.int64)
    bounds = np.array([[0, 10]], dtype=np.int64)
    assert CK.count_gpt2(other, bounds, G.char_classes(), table, buf, resume, 1 << 20) == CK.DONE
    blob2, offsets, counts = flatten_table(table, 1)
    raw, o = blob2.tobytes(), offsets.tolist()
    got = {raw[o[j] : o[j + 1]]: c for j, c in enumerate(counts.tolist())}
    assert got == {b"bbbbbbbbbb": 5, b"cccccccccc": 1}


def test_short_keys_are_bijective_and_decode():
    """Keys of pre-tokens under 8 bytes are the bytes themselves (with the length): distinct bytes, distinct
    keys, and the table gives back exactly the bytes, NUL bytes included."""
    tokens = [b"\x00", b"\x00\x00", b"a", b"a\x00", b"\x00a", b"abcdefg", b"\xff" * 7, b"\xc3\xa9"]
    blob = np.frombuffer(b"".join(tokens), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in tokens])]).astype(np.int64)
    keys = {int(CK._short_key(blob, offsets[j], len(t))) for j, t in enumerate(tokens)}
    assert len(keys) == len(tokens) and 0 not in keys
    table = add_to_table(CK.new_table(4, 16), blob, offsets, np.arange(1, len(tokens) + 1, dtype=np.int64))
    out, o, c = flatten_table(table, 1)
    raw = out.tobytes()
    got = {raw[o[j] : o[j + 1]]: int(c[j]) for j in range(len(c))}
    assert got == {t: j + 1 for j, t in enumerate(tokens)}
    long_enough = flatten_table(table, 2)[2].tolist()
    assert sorted(long_enough) == sorted(got[t] for t in tokens if len(t) >= 2)
