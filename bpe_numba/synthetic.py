"""Deterministic TinyStories-like corpus generator.

Produces simple children's stories in the layout of the TinyStories training files: each story, then
``"\\n<|endoftext|>\\n"``; a story may start with a blank line, paragraphs are separated by single newlines.
It exists so that benchmarks and first experiments need no download. It is *not* TinyStories: the text
comes from about 200 sentence templates whose slots are filled from an English lexicon (~1,600 real words
and names, Zipf-weighted) plus a long generated tail (English-like syllable words with noun and adjective
suffixes, typos, rare names), so that the number of distinct words keeps growing with corpus size roughly
the way it does in real text (Heaps' law): about 3.7 K distinct pre-tokens in 1 MB, 8.5 K in 10 MB, 22 K in
100 MB. The tail is ordered shortest first and the slots that repeat a word through a story take only
short tail words, so the longest tokens a trainer makes are real words (`` understanding``,
`` disappointed``), as on TinyStories.

The word lists and templates are package data (``bpe_numba/data/words.json``), checked against a SHA-256
pinned here, so the corpus is the documented one or an error says why not.

Output is a pure function of ``(n_bytes, seed)``: the randomness is a counter-based generator
(SplitMix64 over numpy ``uint64`` arrays) with integer-only sampling, so the bytes do not depend on the
process, ``PYTHONHASHSEED``, the platform, or the numpy version. ``generate_text(n)`` is a prefix of
``generate_text(m)`` for ``n <= m`` (both cut the same endless story stream at a story boundary).

Only the standard library and numpy are used (no numba), so importing this module is cheap.

API: :func:`iter_documents`, :func:`generate_text`, :func:`write_corpus`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
from importlib import resources
from typing import Callable, Iterator

import numpy as np

from .errors import BPETypeError, BPEValueError

__all__ = ["SPECIAL_TOKEN", "DOC_SEPARATOR", "iter_documents", "generate_text", "write_corpus"]

SPECIAL_TOKEN = "<|endoftext|>"
#: What follows every story in the file (TinyStories layout).
DOC_SEPARATOR = "\n" + SPECIAL_TOKEN + "\n"

_STORIES_PER_BLOCK = 2048  # fixed: part of the definition of the stream (changing it changes the output)
_M64 = (1 << 64) - 1

# ---------------------------------------------------------------------------------------------------
# Randomness: counter-based SplitMix64, vectorized. Every draw is addressed by (seed, block, stream).
# ---------------------------------------------------------------------------------------------------
_GOLDEN = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB


def _mix64(x: int) -> int:
    x = (x + _GOLDEN) & _M64
    x = ((x ^ (x >> 30)) * _C1) & _M64
    x = ((x ^ (x >> 27)) * _C2) & _M64
    return x ^ (x >> 31)


def _key(*parts: int) -> int:
    h = 0x243F6A8885A308D3
    for p in parts:
        h = _mix64(h ^ (p & _M64))
    return h


def _u32(key: int, n: int) -> np.ndarray:
    """n uniform uint32 values (as uint64), a pure function of key."""
    with np.errstate(over="ignore"):
        z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(_GOLDEN) + np.uint64(key)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_C1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_C2)
        z = z ^ (z >> np.uint64(31))
    return z >> np.uint64(32)


class _Dist:
    """A discrete distribution with integer weights; sampling is exact integer arithmetic."""

    __slots__ = ("cum", "total")

    def __init__(self, weights):
        weights = list(weights)
        if not weights or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("bad weights")
        tot = sum(weights)
        if tot >= 1 << 31:  # rescale exactly (integers), keeping every outcome possible
            weights = [max(1, w * (1 << 30) // tot) if w else 0 for w in weights]
        cum = np.cumsum(np.asarray(weights, dtype=np.int64))
        if int(cum[-1]) >= 1 << 32:
            raise ValueError("weights too large")
        self.cum = cum.astype(np.uint64)
        self.total = int(cum[-1])

    def sample(self, u: np.ndarray) -> np.ndarray:
        r = (u * np.uint64(self.total)) >> np.uint64(32)
        return np.searchsorted(self.cum, r, side="right").astype(np.int64)


@functools.lru_cache(maxsize=None)
def _zipf(n: int, offset: int, half_exp: int = 2) -> tuple[int, ...]:
    """Zipf-like integer weights ~ 1/(rank + offset)**(half_exp/2), exact integer arithmetic only."""
    out = []
    for r in range(n):
        x = r + offset
        d = x ** (half_exp // 2)
        if half_exp % 2:
            d = d * math.isqrt(x * 10**12) // 10**6
        out.append(max(1, 10**24 // d))
    return tuple(out)


_TAIL_OFFSET = 150
_TAIL_HALF_EXP = 4


def _tailw(n: int) -> list[int]:
    """Weights for a generated tail: steeper than the head, so new words keep appearing (Heaps' law)."""
    return _zipf(n, _TAIL_OFFSET, _TAIL_HALF_EXP)


#: Story-level slots (the topic noun, adjective and verb, the names) repeat a word all through a story, so
#: a word drawn there is merged whole by any trainer: their generated tail keeps to words this short.
_STORY_TAIL_LEN = 8


def _story_tailw(words: list[str], max_len: int) -> list[int]:
    """Tail weights (:func:`_tailw`) over ``words`` (shortest first) that leave out words longer than
    ``max_len``."""
    n = sum(len(w) <= max_len for w in words)
    return [*_tailw(n), *[0] * (len(words) - n)]


def _mixture(parts: list[tuple[tuple[int, ...], int]], scale: int = 1 << 30) -> list[int]:
    """Concatenate weight lists, giving part i a total mass of share_i/1e6 of ``scale``."""
    out: list[int] = []
    for w, share_ppm in parts:
        tot = sum(w)
        mass = scale * share_ppm // 1_000_000
        out.extend(max(1, x * mass // tot) if x else 0 for x in w)  # a zero weight stays impossible
    return out


# ---------------------------------------------------------------------------------------------------
# The word lists and templates: package data, pinned by its SHA-256 (as tiktoken pins its rank files).
# ---------------------------------------------------------------------------------------------------
_DATA_FILE = "data/words.json"
_DATA_SHA256 = "fd50b837918dfc5c75feb530b50798a65096293263c03c5c4e116e8599c337da"


@functools.lru_cache(maxsize=1)
def _data() -> dict:
    """The lists of ``bpe_numba/data/words.json``, checked against :data:`_DATA_SHA256`."""
    raw = resources.files(__package__).joinpath(_DATA_FILE).read_bytes()
    return _checked_data(raw, _DATA_FILE)


def _checked_data(raw: bytes, name: str) -> dict:
    digest = hashlib.sha256(raw).hexdigest()
    if digest != _DATA_SHA256:
        raise RuntimeError(
            f"bpe_numba/{name} is damaged or was edited: its SHA-256 is {digest}, not the {_DATA_SHA256} "
            f"that bpe_numba.synthetic expects, so the demo corpus would not be the documented one; reinstall "
            f"bpe_numba (or, if you changed the word lists on purpose, update _DATA_SHA256)"
        )
    return json.loads(raw.decode("utf-8"))


def _words(name: str) -> list:
    return _data()[name]


@functools.lru_cache(maxsize=1)
def _doubling() -> frozenset[str]:
    """Verbs that double their last consonant (stop -> stopped, stopping)."""
    return frozenset(_words("doubling"))


def _plural(w: str) -> str:
    if w.endswith(("s", "x", "z", "ch", "sh")):
        return w + "es"
    if w.endswith("y") and len(w) > 1 and w[-2] not in "aeiou":
        return w[:-1] + "ies"
    return w + "s"


def _past(w: str) -> str:
    if w.endswith("e"):
        return w + "d"
    if w.endswith("y") and len(w) > 1 and w[-2] not in "aeiou":
        return w[:-1] + "ied"
    if w in _doubling():
        return w + w[-1] + "ed"
    return w + "ed"


def _ing(w: str) -> str:
    if w.endswith("ie"):
        return w[:-2] + "ying"
    if w.endswith("e") and not w.endswith(("ee", "ye", "oe")) and len(w) > 2:
        return w[:-1] + "ing"
    if w in _doubling():
        return w + w[-1] + "ing"
    return w + "ing"


def _article(w: str) -> str:
    lw = w.lower()
    vowel = lw[:1] in ("a", "e", "i", "o", "u")
    if lw.startswith(("uni", "use", "usu", "one", "eu", "uk")):
        vowel = False
    if lw.startswith(("hour", "honest")):
        vowel = True
    return ("an " if vowel else "a ") + w


def _adverb(a: str) -> str:
    if a.endswith("y") and len(a) > 2:
        return a[:-1] + "ily"
    if a.endswith("le"):
        return a[:-1] + "y"
    if a.endswith("ic"):
        return a + "ally"
    return a + "ly"


def _dedupe(words):
    return list(dict.fromkeys(words))  # insertion-ordered; never iterate a set (hash-seed dependent)


def _short_first(words) -> list[str]:
    """A generated tail, deduplicated, shortest words first (stable). The tail's Zipf weights then give the
    rare words that recur most the fewest letters, as in real text; otherwise a long made-up word drawn
    often enough becomes one of the longest tokens of every demo run."""
    return sorted(_dedupe(words), key=len)


def _split_pairs(items: list[str], rule: Callable[[str], str]) -> tuple[list[str], list[str]]:
    base, other = [], []
    for it in _dedupe(items):
        if ":" in it:
            b, o = it.split(":")
        else:
            b, o = it, rule(it)
        base.append(b)
        other.append(o)
    return base, other


class _Lexicon:
    """All strings live in one table; classes hold int index arrays into it, one per inflected form."""

    def __init__(self):
        self.strings: list[str] = []
        self.index: dict[str, int] = {}
        self.classes: dict[str, tuple[_Dist, dict[str, np.ndarray]]] = {}

    def sid(self, s: str) -> int:
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.strings)
            self.strings.append(s)
        return i

    def ids(self, items: list[str]) -> np.ndarray:
        index = self.index
        new = [x for x in dict.fromkeys(items) if x not in index]
        index.update(zip(new, range(len(self.strings), len(self.strings) + len(new))))
        self.strings.extend(new)
        return np.fromiter(map(index.__getitem__, items), dtype=np.int64, count=len(items))

    def add_class(self, name: str, forms: dict[str, list[str]], weights: list[int]) -> None:
        n = len(weights)
        assert all(len(v) == n for v in forms.values()), name
        arrays = {f: v if isinstance(v, np.ndarray) else self.ids(v) for f, v in forms.items()}
        self.classes[name] = (_Dist(weights), arrays)


def _tail_stems(n: int, key: int) -> list[str]:
    """n distinct English-like pseudo-word stems (1-3 syllables), deterministic."""
    O, V, C = _words("onsets") + [""] * 6, _words("nuclei"), _words("codas") + [""] * 10
    ons = _Dist(_zipf(len(O), 4))
    nuc = _Dist(_zipf(len(V), 3))
    cod = _Dist(_zipf(len(C), 5))
    nsyl = _Dist([30, 50, 20])
    m = n + n // 2 + 1000  # oversample, then dedupe
    k = 0
    out: dict[str, None] = {}
    while len(out) < n:
        k += 1
        syl = (nsyl.sample(_u32(_key(key, k, 0), m)) + 1).tolist()
        pieces = []
        for j in range(3):
            o = ons.sample(_u32(_key(key, k, 1, j), m)).tolist()
            v = nuc.sample(_u32(_key(key, k, 2, j), m)).tolist()
            c = cod.sample(_u32(_key(key, k, 3, j), m)).tolist()
            pieces.append((o, v, c))
        (o0, v0, c0), (o1, v1, c1), (o2, v2, c2) = pieces
        for i in range(m):
            ns = syl[i]
            if ns == 1:
                w = O[o0[i]] + V[v0[i]] + C[c0[i]]
            elif ns == 2:
                w = O[o0[i]] + V[v0[i]] + O[o1[i]] + V[v1[i]] + C[c1[i]]
            else:
                w = O[o0[i]] + V[v0[i]] + O[o1[i]] + V[v1[i]] + O[o2[i]] + V[v2[i]] + C[c2[i]]
            if 3 <= len(w) <= 11:
                out[w] = None
    return list(out)[:n]


def _typo(w: str, u: int) -> str:
    """A plausible misspelling of w chosen by the integer u."""
    if len(w) < 4:
        return w + w[-1]
    i = 1 + u % (len(w) - 2)
    kind = (u >> 8) % 4
    if kind == 0:
        return w[:i] + w[i + 1 :]  # drop a letter
    if kind == 1:
        return w[:i] + w[i] + w[i:]  # double a letter
    if kind == 2:
        return w[:i] + w[i + 1] + w[i] + w[i + 2 :]  # swap two letters
    return w[:i] + "aeiou"[(u >> 12) % 5] + w[i + 1 :]  # wrong vowel/letter


@functools.lru_cache(maxsize=1)
def _lexicon() -> _Lexicon:
    lex = _Lexicon()
    K = 0x5EED  # the lexicon is fixed; only the text's randomness depends on the seed
    n_tail = 40000
    stems = _tail_stems(n_tail * 3, _key(K, 1))
    real = {w for key in ("nouns", "adjectives", "verbs_transitive", "verbs_intransitive", "animals") for w in _words(key)}
    stems = [s for s in stems if s not in real]
    sv = _u32(_key(K, 2), len(stems)).tolist()

    # ----- nouns: core + tail (pseudo-words with noun suffixes, typos) -----
    n_sing, n_plur = _split_pairs(_words("nouns"), _plural)
    a_sing, a_plur = _split_pairs(_words("animals"), _plural)
    noun_suffixes = _words("noun_suffixes")
    t_noun = []
    for i in range(n_tail):
        if sv[i] % 100 < 85:
            t_noun.append(stems[i] + noun_suffixes[(sv[i] >> 8) % len(noun_suffixes)])
        else:
            t_noun.append(_typo(n_sing[sv[i] % 211 % len(n_sing)], sv[i] >> 7))
    known = set(n_sing) | set(a_sing)
    t_noun = _short_first(w for w in t_noun if w not in known)
    t_plur = [_plural(w) for w in t_noun]
    # A noun-like slot: common nouns (heavy head), animals, then the rare tail.
    all_sing = n_sing + a_sing + t_noun
    all_plur = n_plur + a_plur + t_plur
    w_noun = _mixture([(_zipf(len(n_sing), 8), 680_000), (_zipf(len(a_sing), 4), 250_000),
                       (_tailw(len(t_noun)), 70_000)])
    noun_forms = {"s": lex.ids(all_sing), "p": lex.ids(all_plur), "a": lex.ids([_article(w) for w in all_sing])}
    lex.add_class("N", noun_forms, w_noun)
    # The story's topic noun (TinyStories prompts force one random noun per story): flatter head.
    w_topic = _mixture([(_zipf(len(n_sing), 200), 650_000), (_zipf(len(a_sing), 30), 200_000),
                        (_story_tailw(t_noun, _STORY_TAIL_LEN), 150_000)])
    lex.add_class("TN", noun_forms, w_topic)
    an_a = [_article(w) for w in a_sing]
    lex.add_class("ANIMAL", {"s": a_sing, "p": a_plur, "a": an_a}, _zipf(len(a_sing), 3))
    p_sing, p_plur = _split_pairs(_words("people"), _plural)
    lex.add_class("PEOPLE", {"s": p_sing, "p": p_plur}, _zipf(len(p_sing), 3))

    # ----- adjectives (+ derived adverbs) -----
    adj = _dedupe(_words("adjectives"))
    adj_suffixes = _words("adjective_suffixes")
    t_adj = []
    for i in range(n_tail, 2 * n_tail):
        if sv[i] % 100 < 85:
            t_adj.append(stems[i] + adj_suffixes[(sv[i] >> 8) % len(adj_suffixes)])
        else:
            t_adj.append(_typo(adj[(sv[i] >> 5) % len(adj)], sv[i] >> 11))
    adj_set = set(adj)
    t_adj = _short_first(w for w in t_adj if w not in adj_set)
    all_adj = adj + t_adj
    w_adj = _mixture([(_zipf(len(adj), 6), 950_000), (_tailw(len(t_adj)), 50_000)])
    adj_forms = {"s": lex.ids(all_adj), "a": lex.ids([_article(w) for w in all_adj])}
    lex.add_class("ADJ", adj_forms, w_adj)
    w_tadj = _mixture([(_zipf(len(adj), 150), 850_000), (_story_tailw(t_adj, _STORY_TAIL_LEN), 150_000)])
    lex.add_class("TA", adj_forms, w_tadj)
    little = _dedupe(_words("little"))
    lex.add_class("LITTLE", {"a": [_article(w) for w in little]}, _zipf(len(little), 1))
    adv = _dedupe(_words("adverbs"))
    t_adv = _short_first(_adverb(w) for w in t_adj[: n_tail // 2])
    lex.add_class("ADV", {"s": adv + t_adv}, _mixture([(_zipf(len(adv), 3), 985_000),
                                                       (_tailw(len(t_adv)), 15_000)]))

    # ----- verbs: base / past / -ing -----
    def verbs(items, tail_from, tail_to):
        base, past = _split_pairs(items, _past)
        tb = [stems[i] for i in range(tail_from, min(tail_to, len(stems)))]
        base_set = set(base)
        tb = _short_first(w for w in tb if w not in base_set)
        b = base + tb
        forms = {"b": lex.ids(b), "d": lex.ids(past + [_past(w) for w in tb]), "g": lex.ids([_ing(w) for w in b])}
        return forms, len(base), tb

    def vweights(n_head, tail, share, head_offset):
        return _mixture([(_zipf(n_head, head_offset), 1_000_000 - share), (tail, share)])

    vt, nh, tb = verbs(_words("verbs_transitive"), 2 * n_tail, 2 * n_tail + n_tail // 2)
    lex.add_class("VT", vt, vweights(nh, _tailw(len(tb)), 25_000, 6))
    lex.add_class("TV", vt, vweights(nh, _story_tailw(tb, _STORY_TAIL_LEN - 1), 90_000, 150))  # + "ing"
    vi, nh, tb = verbs(_words("verbs_intransitive"), 2 * n_tail + n_tail // 2, 3 * n_tail - 2000)
    lex.add_class("VI", vi, vweights(nh, _tailw(len(tb)), 15_000, 4))

    # ----- names: protagonists by gender, plus rare generated names -----
    t_names = _short_first(s.capitalize() + ("a" if (sv[i] & 1) else "") for i, s in
                           enumerate(stems[3 * n_tail - 2000:]) if len(s) >= 3)
    for cls, names, tail in (("NAME0", _words("girl_names"), t_names[0::2]),
                             ("NAME1", _words("boy_names"), t_names[1::2])):
        lex.add_class(cls, {"s": names + tail},
                      _mixture([(_zipf(len(names), 1), 960_000), (_story_tailw(tail, _STORY_TAIL_LEN), 40_000)]))

    # ----- small closed classes -----
    for name, key, off in [("PLACE", "places", 3), ("FOOD", "food", 3), ("FEEL", "feelings", 2), ("FAM", "family", 2),
                           ("SAY", "say", 1), ("TIME", "time", 2), ("PP", "places_phrases", 6),
                           ("EXCL", "exclamations", 3), ("UTT", "utterances", 6), ("MORAL", "morals", 4),
                           ("AGE", "ages", 3), ("COUNT", "counts", 2), ("NUMW", "number_words", 3),
                           ("INT", "intensifiers", 1)]:
        items = _words(key)
        items = _dedupe(items) if name != "PP" else items  # PP repeats "" on purpose (no phrase)
        lex.add_class(name, {"s": items}, _zipf(len(items), off))
    colors = _dedupe(_words("colors"))
    lex.add_class("COLOR", {"s": colors, "a": [_article(c) for c in colors]}, _zipf(len(colors), 3))
    return lex


# ---------------------------------------------------------------------------------------------------
# Templates. {Slot} names: story-level (consistent within a story) or drawn independently per use.
#   Story-level: Name Name2 Pron pron Poss poss obj Kind TN TNS A_TN TA A_TA TV TVD TVG A_LITTLE
#   Independent: N NS A_N ADJ A_ADJ VT VTD VTG VI VID VIG ADV PLACE PP FEEL COLOR FAM SAY TIME EXCL UTT
#                MORAL AGE COUNT NUMW FOOD ANIMAL ANIMALS A_ANIMAL PEOPLE
# Weights: the number after "|" (default 10).
# ---------------------------------------------------------------------------------------------------
_SLOT_RE = re.compile(r"\{(\w+)\}")
# slot name -> (class, form) for independently drawn slots
_IID = {
    "N": ("N", "s"), "NS": ("N", "p"), "A_N": ("N", "a"), "ADJ": ("ADJ", "s"), "A_ADJ": ("ADJ", "a"),
    "VT": ("VT", "b"), "VTD": ("VT", "d"), "VTG": ("VT", "g"), "VI": ("VI", "b"), "VID": ("VI", "d"),
    "VIG": ("VI", "g"), "ADV": ("ADV", "s"), "INT": ("INT", "s"), "PLACE": ("PLACE", "s"), "PP": ("PP", "s"),
    "FEEL": ("FEEL", "s"), "COLOR": ("COLOR", "s"), "FAM": ("FAM", "s"), "SAY": ("SAY", "s"),
    "TIME": ("TIME", "s"), "EXCL": ("EXCL", "s"), "UTT": ("UTT", "s"), "MORAL": ("MORAL", "s"),
    "AGE": ("AGE", "s"), "COUNT": ("COUNT", "s"), "NUMW": ("NUMW", "s"), "FOOD": ("FOOD", "s"),
    "ANIMAL": ("ANIMAL", "s"), "ANIMALS": ("ANIMAL", "p"), "A_ANIMAL": ("ANIMAL", "a"),
    "PEOPLE": ("PEOPLE", "s"),
}
_STORY = ["Name", "Name2", "Pron", "pron", "Poss", "poss", "obj", "Kind", "TN", "TNS", "A_TN", "TA",
          "A_TA", "TV", "TVD", "TVG", "A_LITTLE", "A_COLOR"]
_SLOTS = list(_IID) + _STORY + ["SEP"]
_SLOT_CODE = {name: -(i + 1) for i, name in enumerate(_SLOTS)}


@functools.lru_cache(maxsize=1)
def _grammar():
    lex = _lexicon()
    groups = []
    for group in ("open", "body", "end"):
        codes_list, weights = [], []
        for text, w in _words(f"templates_{group}"):
            codes = []
            pieces = _SLOT_RE.split(text)
            for j, p in enumerate(pieces):
                if j % 2 == 0:
                    if p:
                        codes.append(lex.sid(p))
                else:
                    if p not in _SLOT_CODE:
                        raise ValueError(f"unknown slot {{{p}}} in template {text!r}")
                    codes.append(_SLOT_CODE[p])
            codes.append(_SLOT_CODE["SEP"])
            codes_list.append(codes)
            weights.append(w)
        groups.append((codes_list, _Dist(weights)))
    # one flat code table for all templates: group g template t -> global id
    flat, starts, lens, gbase = [], [], [], []
    for codes_list, _ in groups:
        gbase.append(len(starts))
        for c in codes_list:
            starts.append(len(flat))
            lens.append(len(c))
            flat.extend(c)
    fixed = {s: lex.sid(s) for s in ["", " ", "\n", "She", "He", "she", "he", "Her", "His", "her", "his",
                                     "him", "girl", "boy"]}
    return {
        "codes": np.asarray(flat, dtype=np.int64),
        "starts": np.asarray(starts, dtype=np.int64),
        "lens": np.asarray(lens, dtype=np.int64),
        "gbase": gbase,
        "gdist": [g[1] for g in groups],
        "fixed": fixed,
        "strings": np.asarray(lex.strings, dtype=object),
    }


def _block(seed: int, block: int) -> list[str]:
    """The stories of one block: a pure function of (seed, block)."""
    lex = _lexicon()
    g = _grammar()
    S = _STORIES_PER_BLOCK
    C = lex.classes
    fx = g["fixed"]
    ctr = iter(range(1, 1 << 20))

    def u(n: int) -> np.ndarray:
        return _u32(_key(seed, block, next(ctr)), n)

    def draw(cls: str, n: int) -> np.ndarray:
        return C[cls][0].sample(u(n))

    # ----- per-story state -----
    gender = (u(S) & np.uint64(1)).astype(np.int64)  # 0 girl, 1 boy
    name = np.where(gender == 0, C["NAME0"][1]["s"][draw("NAME0", S)], C["NAME1"][1]["s"][draw("NAME1", S)])
    g2 = (u(S) & np.uint64(1)).astype(np.int64)
    name2 = np.where(g2 == 0, C["NAME0"][1]["s"][draw("NAME0", S)], C["NAME1"][1]["s"][draw("NAME1", S)])
    same = name2 == name  # a friend with the protagonist's name: take the next common name instead
    name2 = np.where(same, np.where(g2 == 0, C["NAME0"][1]["s"][1], C["NAME1"][1]["s"][1]), name2)
    is_animal = u(S) < np.uint64(int(0.25 * (1 << 32)))
    kind = np.where(is_animal, C["ANIMAL"][1]["s"][draw("ANIMAL", S)],
                    np.where(gender == 0, fx["girl"], fx["boy"]))
    tn = draw("TN", S)
    ta = draw("TA", S)
    tv = draw("TV", S)
    little = draw("LITTLE", S)
    color = draw("COLOR", S)
    story_val = {
        "Name": name, "Name2": name2, "Kind": kind,
        "Pron": np.where(gender == 0, fx["She"], fx["He"]), "pron": np.where(gender == 0, fx["she"], fx["he"]),
        "Poss": np.where(gender == 0, fx["Her"], fx["His"]), "poss": np.where(gender == 0, fx["her"], fx["his"]),
        "obj": np.where(gender == 0, fx["her"], fx["him"]),
        "TN": C["TN"][1]["s"][tn], "TNS": C["TN"][1]["p"][tn], "A_TN": C["TN"][1]["a"][tn],
        "TA": C["TA"][1]["s"][ta], "A_TA": C["TA"][1]["a"][ta],
        "TV": C["TV"][1]["b"][tv], "TVD": C["TV"][1]["d"][tv], "TVG": C["TV"][1]["g"][tv],
        "A_LITTLE": C["LITTLE"][1]["a"][little],
        "A_COLOR": C["COLOR"][1]["a"][color],
    }

    # ----- sentences: OPEN, BODY..., END (or BODY) -----
    n_sent = (8 + (u(S) % np.uint64(8)) + (u(S) % np.uint64(8)) + (u(S) % np.uint64(7))).astype(np.int64)
    total = int(n_sent.sum())
    first = np.zeros(total, dtype=bool)
    ends = np.cumsum(n_sent)
    first[ends - n_sent] = True
    last = np.zeros(total, dtype=bool)
    last[ends - 1] = True
    end_kind = last & (u(total) < np.uint64(int(0.7 * (1 << 32))))
    gd = g["gdist"]
    gb = g["gbase"]
    tmpl = gd[1].sample(u(total)) + gb[1]
    tmpl = np.where(first, gd[0].sample(u(total)) + gb[0], tmpl)
    tmpl = np.where(end_kind & ~first, gd[2].sample(u(total)) + gb[2], tmpl)
    sent_story = np.repeat(np.arange(S, dtype=np.int64), n_sent)

    # ----- expand templates into one code array -----
    lens = g["lens"][tmpl]
    out_ends = np.cumsum(lens)
    n_codes = int(out_ends[-1])
    pos_in = np.arange(n_codes, dtype=np.int64) - np.repeat(out_ends - lens, lens)
    codes = g["codes"][np.repeat(g["starts"][tmpl], lens) + pos_in]
    code_story = np.repeat(sent_story, lens)

    # separators: paragraph break or space between sentences; nothing after the last one
    para = u(total) < np.uint64(int(0.2 * (1 << 32)))
    sep = np.where(last, fx[""], np.where(para, fx["\n"], fx[" "]))
    codes[out_ends - 1] = sep

    # fill slots: group the slot positions by slot code with one stable sort
    where_all = np.flatnonzero(codes < 0)
    order = np.argsort(codes[where_all], kind="stable")
    where_all = where_all[order]
    slot_codes, first_at, counts = np.unique(codes[where_all], return_index=True, return_counts=True)
    for sc, a0, cnt in zip(slot_codes.tolist(), first_at.tolist(), counts.tolist()):
        name_ = _SLOTS[-sc - 1]
        where = where_all[a0 : a0 + cnt]
        if name_ in story_val:
            codes[where] = story_val[name_][code_story[where]]
        else:
            cls, form = _IID[name_]
            codes[where] = C[cls][1][form][C[cls][0].sample(_u32(_key(seed, block, 1000 + (-sc)), cnt))]

    # ----- to strings -----
    strs = g["strings"][codes].tolist()
    story_ends = out_ends[ends - 1].tolist()
    curly = u(S) < np.uint64(int(0.15 * (1 << 32)))
    curly_apos = u(S) < np.uint64(int(0.03 * (1 << 32)))
    blank = u(S) < np.uint64(int(0.08 * (1 << 32)))
    docs = []
    a = 0
    for s in range(S):
        b = story_ends[s]
        doc = "".join(strs[a:b])
        a = b
        if curly[s]:
            parts = doc.split('"')
            doc = parts[0] + "".join(("\u201c" if i % 2 else "\u201d") + p for i, p in enumerate(parts[1:], 1))
        if curly_apos[s]:
            doc = doc.replace("'", "\u2019")
        if blank[s]:
            doc = "\n" + doc
        docs.append(doc)
    return docs


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise BPETypeError(f"seed must be an int, got {type(seed).__name__}")
    return int(seed) & _M64


def iter_documents(seed: int = 0) -> Iterator[str]:
    """Endless stream of stories (without the ``<|endoftext|>`` separator). Deterministic in ``seed``."""
    seed = _check_seed(seed)
    block = 0
    while True:
        yield from _block(seed, block)
        block += 1


def _iter_chunks(n_bytes: int, seed: int) -> Iterator[bytes]:
    """UTF-8 blocks of the corpus: whole stories, each followed by DOC_SEPARATOR, stopping at the first
    story boundary at or after n_bytes. The arguments are checked at once, not on the first block."""
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, (int, np.integer)) or n_bytes < 0:
        raise BPEValueError(f"n_bytes must be a non-negative int, got {n_bytes!r}")
    return _chunks(int(n_bytes), _check_seed(seed))


def _chunks(n_bytes: int, seed: int) -> Iterator[bytes]:
    done = 0
    block = 0
    while done < n_bytes:
        docs = _block(seed, block)
        block += 1
        data = "".join(d + DOC_SEPARATOR for d in docs).encode("utf-8")
        if done + len(data) <= n_bytes:
            done += len(data)
            yield data
            continue
        parts = []
        for d in docs:
            b = (d + DOC_SEPARATOR).encode("utf-8")
            parts.append(b)
            done += len(b)
            if done >= n_bytes:
                break
        yield b"".join(parts)


def generate_text(n_bytes: int, seed: int = 0) -> str:
    """About ``n_bytes`` of UTF-8 text (whole stories; at most one story more than ``n_bytes``)."""
    return b"".join(_iter_chunks(n_bytes, seed)).decode("utf-8")


def write_corpus(path, n_bytes: int, seed: int = 0, progress: bool = False) -> int:
    """Write ``generate_text(n_bytes, seed)`` to ``path``, streaming, atomically. Returns bytes written.

    The data goes to a temporary file in the same directory, which replaces ``path`` only when complete;
    on any error or KeyboardInterrupt the temporary file is removed and ``path`` is left untouched
    (:mod:`bpe_numba.atomic`).
    """
    from .atomic import atomic_file

    path = os.fspath(path)
    chunks = _iter_chunks(n_bytes, seed)  # checks the arguments before the file is created
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_bytes, unit="B", unit_scale=True, desc=os.path.basename(path))
    written = 0
    try:
        with atomic_file(path) as f:
            buf: list[bytes] = []
            size = 0
            for chunk in chunks:
                buf.append(chunk)
                size += len(chunk)
                if size >= 8 << 20:
                    f.write(b"".join(buf))
                    written += size
                    if bar is not None:
                        bar.update(min(size, bar.total - bar.n))
                    buf, size = [], 0
            if buf:
                f.write(b"".join(buf))
                written += size
        if bar is not None:
            bar.update(bar.total - bar.n)
    finally:
        if bar is not None:
            bar.close()
    return written
