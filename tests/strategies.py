"""Hypothesis strategies for corpora that attack pre-tokenization, special tokens and tie-breaks."""

from __future__ import annotations

from hypothesis import strategies as st

# Letters of several scripts; Devanagari brings combining marks (\p{M}: neither letter nor digit).
LETTERS = (
    "abcdexyzABCDEXYZ"
    "\u00e1\u00e9\u00df\u00f1\u00f8\u0153\u00c9"  # Latin-1 / extended
    "\u0414\u0434\u0436\u0416\u0437\u042f"  # Cyrillic
    "\u03bb\u03a9\u03c0"  # Greek
    "\u05d0\u05d1\u05d2"  # Hebrew
    "\u0639\u0631\u0628\u064a"  # Arabic
    "\u0939\u093f\u0928\u094d\u0926\u0940"  # Devanagari (with vowel signs / virama)
    "\u4e2d\u6587\u65e5\u672c\u8a9e"  # CJK
    "\ud55c\uad6d\uc5b4"  # Hangul
    "\u3072\u3089\u304c\u306a\u30ab\u30bf"  # Hiragana / Katakana
)
DIGITS = (
    "0123456789"
    "\u0660\u0661\u0662\u0663\u0669"  # Arabic-Indic
    "\u0966\u0967\u0968\u096f"  # Devanagari
    "\uff10\uff11\uff12\uff19"  # fullwidth
    "\u00b2\u00bd\u216b"  # other numbers: superscript two, one half, roman numeral twelve
)
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
PUNCT = (
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    "\u2019\u2018\u201c\u201d\u2026\u2014\u2013\u00a1\u00bf\u00ab\u00bb\u00b7\u00a9"
    "\u0301\u200d\ufeff\u00ad\u200b"  # combining acute, ZWJ, BOM, soft hyphen, zero-width space (not \s)
)
CONTRACTIONS = [
    "'s", "'d", "'m", "'t", "'ll", "'ve", "'re",
    "'S", "'D", "'M", "'T", "'LL", "'VE", "'Re",
    "\u2019s", "\u2019ll", "\u2019re", "n't", "N'T", "'", "''s", " 's", "'ss",
]
EMOJI = [
    "\U0001f600", "\U0001f44d", "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\U0001f3f3\ufe0f\u200d\U0001f308", "\u2764\ufe0f", "\U0001f1eb\U0001f1f7", "\U0001f469\U0001f3ff\u200d\U0001f4bb",
    "\U0001f9d1\U0001f3fb\u200d\U0001f91d\u200d\U0001f9d1\U0001f3ff", "\u2728", "\U0001f916",
]
LINE_BREAKS = ["\r\n", "\r", "\n", " ", "  ", "\r\n\r\n", " \r\n", "\n\n\n"]

# Overlapping and prefix-sharing special tokens, ones with or ending in a space, one of pure whitespace,
# one a single byte.
SPECIAL_CANDIDATES = [
    "<|endoftext|>",
    "<|a|>",
    "<|a|><|b|>",
    "<|b|>",
    "ab",
    "abc",
    "<|end of text|>",
    "<|sp|> ",
    "\n\n",
    "<|caf\u00e9|>",
    "x",  # a one-byte special: its bytes equal vocab[120] too
]

fragments = st.one_of(
    st.text(alphabet=LETTERS, min_size=1, max_size=6),
    st.text(alphabet=LETTERS, min_size=1, max_size=6).map(lambda s: " " + s),
    st.text(alphabet=DIGITS, min_size=1, max_size=4),
    st.text(alphabet=WHITESPACE, min_size=1, max_size=3),
    st.text(alphabet=PUNCT, min_size=1, max_size=3),
    st.sampled_from(CONTRACTIONS),
    st.sampled_from(EMOJI),
    st.sampled_from(LINE_BREAKS),
    st.sampled_from(SPECIAL_CANDIDATES),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=3),
)


@st.composite
def corpora(draw, max_words: int = 80):
    """(text, special_tokens, vocab_size): a text built from a small pool of fragments, so pairs repeat
    and counts differ, with specials (in random order) that may or may not occur in it."""
    specials = draw(st.lists(st.sampled_from(SPECIAL_CANDIDATES), unique=True, max_size=4))
    pool = draw(st.lists(fragments, min_size=1, max_size=12))
    picks = draw(st.lists(st.integers(0, len(pool) - 1), max_size=max_words))
    text = "".join(pool[i] for i in picks)
    vocab_size = 256 + len(specials) + draw(st.integers(0, 80))
    return text, specials, vocab_size
