"""The checks of the public CS336 assignment-1 tests (``test_train_bpe.py``, ``test_tokenizer.py``), run
through their adapter ``run_train_bpe = train_bpe``, ``get_tokenizer = Tokenizer``, in this fresh process.

Usage: ``python cs336_first_run.py FIXTURES_DIR WORK_DIR``; prints one JSON object: ``{"failures": [...],
"seconds": {...}}``. ``test_first_run.py`` runs it with empty Numba and bpe_numba caches, as on a new
machine (and runs their encode_iterable memory check, ``test_tokenizer._MEMORY_SCRIPT``, in another such
process). The fixtures the public tests use but ``../shared/cs336`` lacks (a 5 MB TinyStories sample,
the special-token newline files) are replaced by generated text of the same kind.
"""

from __future__ import annotations

import json
import os
import sys
import time

FIXTURES, WORK = sys.argv[1], sys.argv[2]
EOT = "<|endoftext|>"
failures: list[str] = []
seconds: dict[str, float] = {}


def check(name: str, ok: bool) -> None:
    if not ok:
        failures.append(name)


# ---- training (test_train_bpe.py) ------------------------------------------------------------------------
start = time.perf_counter()
from bpe_numba import train_bpe as run_train_bpe  # noqa: E402

timings: dict = {}
vocab, merges = run_train_bpe(os.path.join(FIXTURES, "corpus.en"), 500, [EOT], timings=timings)
seconds["train_corpus_en"] = time.perf_counter() - start
seconds["train_backend_" + timings["backend"]] = 1
check("speed: corpus.en to 500 under 1.5 s", seconds["train_corpus_en"] < 1.5)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import (  # noqa: E402
    incremental_merges_from_counts,
    read_gpt2_merges,
    read_gpt2_vocab,
    reference_pretoken_counts,
)

check("merges equal the reference merges", merges == read_gpt2_merges(os.path.join(FIXTURES, "train-bpe-reference-merges.txt")))
ref_vocab = {i: b for b, i in read_gpt2_vocab(os.path.join(FIXTURES, "train-bpe-reference-vocab.json")).items()}
check("vocab ids equal the reference's", set(vocab) == set(ref_vocab))
check("vocab tokens equal the reference's", set(vocab.values()) == set(ref_vocab.values()))

from bpe_numba.synthetic import write_corpus  # noqa: E402

sample_5m = os.path.join(WORK, "stories_5M.txt")
write_corpus(sample_5m, 5_000_000, seed=3)
start = time.perf_counter()
vocab, merges = run_train_bpe(sample_5m, 1000, [EOT])
seconds["train_5MB_to_1000"] = time.perf_counter() - start
check("special token never merged", all(b"<|" not in t for t in vocab.values() if t != EOT.encode()))
check("5 MB at vocab 1000 equals the oracle",
      merges == incremental_merges_from_counts(reference_pretoken_counts(sample_5m, [EOT]), 1000 - 257))

# ---- encoding (test_tokenizer.py) ------------------------------------------------------------------------
import tiktoken  # noqa: E402

from bpe_numba import Tokenizer as get_tokenizer  # noqa: E402

gpt2_vocab = {i: b for b, i in read_gpt2_vocab(os.path.join(FIXTURES, "gpt2_vocab.json")).items()}
gpt2_merges = read_gpt2_merges(os.path.join(FIXTURES, "gpt2_merges.txt"))
reference = tiktoken.get_encoding("gpt2")


def tokenizer(specials=None):
    vocab = dict(gpt2_vocab)
    for t in specials or []:  # as the public tests' loader does: missing specials appended first
        if t.encode() not in set(vocab.values()):
            vocab[len(vocab)] = t.encode()
    return get_tokenizer(vocab, gpt2_merges, specials)


start = time.perf_counter()
plain, with_eot = tokenizer(), tokenizer([EOT])
seconds["tokenizer_construction"] = time.perf_counter() - start
seconds["tokenizer_backend_" + plain.backend] = 1


def same_as_tiktoken(name: str, text: str, tok, allowed=()) -> None:
    ids = tok.encode(text)
    check(f"{name}: ids equal tiktoken's", ids == reference.encode(text, allowed_special=set(allowed)))
    check(f"{name}: round trip", tok.decode(ids) == text)


for name, text in [("empty", ""), ("single character", "s"), ("single unicode character", "\U0001f643"),
                   ("unicode string", "H\u00e9ll\u00f2 h\u00f4w are \u00fc? \U0001f643")]:
    same_as_tiktoken(name, text, plain)
check("empty decodes to no tokens", [plain.decode([i]) for i in plain.encode("")] == [])
check("ascii tokens", [with_eot.decode([i]) for i in with_eot.encode("Hello, how are you?")]
      == ["Hello", ",", " how", " are", " you", "?"])
text = f"H\u00e9ll\u00f2 h\u00f4w {EOT}{EOT} are \u00fc? \U0001f643{EOT}"
same_as_tiktoken("unicode with special tokens", text, with_eot, [EOT])
check("three special tokens kept", [with_eot.decode([i]) for i in with_eot.encode(text)].count(EOT) == 3)
overlapping = tokenizer([EOT, EOT + EOT])
text = f"Hello, how {EOT}{EOT} are you?{EOT}"
pieces = [overlapping.decode([i]) for i in overlapping.encode(text)]
check("overlapping specials: the double one wins", pieces.count(EOT) == 1 and pieces.count(EOT + EOT) == 1)
check("overlapping specials: round trip", overlapping.decode(overlapping.encode(text)) == text)
for name in ("address.txt", "german.txt"):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        same_as_tiktoken(name, f.read(), plain)
with open(os.path.join(FIXTURES, "tinystories_sample.txt"), encoding="utf-8") as f:
    stories = f.read()
same_as_tiktoken("tinystories_sample.txt", stories, with_eot, [EOT])
for name, text in [("special token, trailing newlines", f"Hello{EOT}\n\n\n" + f"world{EOT}\n\n"),
                   ("special token, double newline then text", f"a story.\n\n{EOT}\n\nNext one\n\n{EOT}x")]:
    same_as_tiktoken(name, text, with_eot, [EOT])
with open(os.path.join(FIXTURES, "tinystories_sample.txt"), encoding="utf-8") as f:
    streamed = list(with_eot.encode_iterable(f))
check("encode_iterable equals tiktoken", streamed == reference.encode(stories, allowed_special={EOT}))
check("encode_iterable round trip", with_eot.decode(streamed) == stories)

print(json.dumps({"failures": failures, "seconds": {k: round(v, 3) for k, v in seconds.items()}}))
