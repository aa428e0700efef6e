"""A trained tokenizer as transformers, tiktoken and a data pipeline load it (issue 16): save_pretrained and
AutoTokenizer, to_tiktoken, encode_batch, encode_documents, and the `export` / `encode --eot` commands.

The transformers tests skip when it is not installed (it is in the test extra, never a runtime dependency);
they were run against transformers 4.57 and 5.x.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bpe_numba import BPEInputError, InvalidUTF8Error, Tokenizer, train_bpe
from bpe_numba import id_stream
from bpe_numba.formats import hf_tokenizer_dict, misdecoded_special_tokens
from reference import reference_encode, reference_train_text
from strategies import EMOJI, LETTERS, corpora, fragments
from test_formats import known_to_peers

# One special token of each kind the acceptance names (ASCII, CJK, emoji), one with a space, and one with a
# character of GPT-2's alphabet that tokenizers still decodes right (中 is outside that alphabet).
SPECIALS = ["<|endoftext|>", "<|日本|>", "<|👍|>", "<|sp|> ", "<|é中|>"]
MISDECODED = "<|é|>"  # every character in GPT-2's alphabet, one not ASCII: tokenizers decodes it wrongly


def run(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "bpe_numba", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    from bpe_numba.synthetic import generate_text

    mixed = "日本語のテキスト 👍🏽 café ĳssel Ünïcödé 1234 <|日本|> <|sp|> <|é中|>\n" * 30
    path = tmp_path_factory.mktemp("exports") / "corpus.txt"
    path.write_text(generate_text(150_000, seed=5) + mixed, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tok(corpus_file):
    vocab, merges = train_bpe(corpus_file, 700, SPECIALS, num_workers=1, progress=False)
    return Tokenizer(vocab, merges, SPECIALS)


@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip("transformers", reason="transformers is not installed (pip install '.[test]')")


@pytest.fixture(scope="module")
def hf_dir(tok, tmp_path_factory):
    directory = tmp_path_factory.mktemp("hf") / "tokenizer"
    tok.save_pretrained(directory, pad_token="<|👍|>")
    return directory


@pytest.fixture(scope="module")
def auto_tok(transformers, hf_dir):
    return transformers.AutoTokenizer.from_pretrained(str(hf_dir))


texts = st.lists(st.one_of(fragments, st.sampled_from(SPECIALS), st.sampled_from(EMOJI)), max_size=30).map("".join)


# ---------------------------------------------------------------------------------------------------------
# save_pretrained and transformers.AutoTokenizer
# ---------------------------------------------------------------------------------------------------------

def test_save_pretrained_files(tok, hf_dir):
    assert sorted(p.name for p in hf_dir.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    config = json.loads((hf_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config == {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|👍|>",
        "additional_special_tokens": ["<|日本|>", "<|sp|> ", "<|é中|>"],
    }


def test_auto_tokenizer_loads_with_our_special_tokens(tok, auto_tok, transformers):
    ids = tok.special_ids
    assert (auto_tok.eos_token, auto_tok.eos_token_id) == ("<|endoftext|>", ids["<|endoftext|>"])
    assert (auto_tok.pad_token, auto_tok.pad_token_id) == ("<|👍|>", ids["<|👍|>"])
    assert auto_tok.bos_token is None
    assert sorted(auto_tok.all_special_ids) == sorted(ids.values())
    assert len(auto_tok) == len(tok.vocab)
    batch = auto_tok(["a b", "a"], padding=True)["input_ids"]
    assert batch == [tok.encode("a b"), tok.encode("a") + [ids["<|👍|>"]] * (len(tok.encode("a b")) - 1)]


@given(texts)
@example("Once upon a time<|endoftext|>日本語 <|日本|>👍<|👍|> <|sp|>  <|sp|> x <|é中|>é中 it's 42 .")
@example(" ' . , 's n't  \n\n \r\n")
def test_auto_tokenizer_ids_and_decode_equal_ours(tok, auto_tok, text):
    text = known_to_peers(text)
    ids = tok.encode(text)
    assert auto_tok(text)["input_ids"] == ids
    assert auto_tok.encode(text) == ids
    assert auto_tok.decode(ids) == tok.decode(ids) == text
    plain = [i for i in ids if i not in set(tok.special_ids.values())]
    assert auto_tok.decode(ids, skip_special_tokens=True) == tok.decode(plain)


@pytest.mark.parametrize("special", ["<|endoftext|>", "<|日本|>", "<|👍|>"], ids=["ascii", "cjk", "emoji"])
def test_auto_tokenizer_decodes_each_special_kind(tok, auto_tok, special):
    ids = tok.encode(f"a{special}b")
    assert tok.special_ids[special] in ids
    assert auto_tok.decode(ids) == tok.decode(ids) == f"a{special}b"
    assert auto_tok.convert_ids_to_tokens(tok.special_ids[special]) == special


@given(corpora(max_words=40))
def test_auto_tokenizer_on_hypothesis_models(transformers, corpus):
    text, specials, vocab_size = corpus
    text = known_to_peers(text)
    vocab, merges = reference_train_text(text, vocab_size, specials)
    tok = Tokenizer(vocab, merges, specials, backend="python")
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the misdecoded special tokens: checked elsewhere
        tok.save_pretrained(d)
        auto = transformers.AutoTokenizer.from_pretrained(d)
    ids = tok.encode(text)
    assert auto.encode(text) == ids == reference_encode(text, vocab, merges, specials)
    if not misdecoded_special_tokens(specials):
        assert auto.decode(ids) == text


def test_resaved_by_transformers_keeps_the_ids(tok, auto_tok, transformers, tmp_path):
    """transformers' save_pretrained (a Trainer's checkpoints) rewrites tokenizer.json keeping one token per
    id; the special tokens whose raw text differs from their GPT-2 alphabet form must keep their ids."""
    auto_tok.save_pretrained(tmp_path)
    again = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    text = "Once<|endoftext|> <|日本|>x<|👍|> <|sp|> y<|é中|>z"
    assert again.encode(text) == tok.encode(text)


def test_resaved_by_tokenizers_keeps_the_ids(tok, hf_dir, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    tokenizers.Tokenizer.from_file(str(hf_dir / "tokenizer.json")).save(str(tmp_path / "again.json"))
    again = tokenizers.Tokenizer.from_file(str(tmp_path / "again.json"))
    for special, i in tok.special_ids.items():
        assert again.token_to_id(special) == i and again.encode(f"a{special}b").ids == tok.encode(f"a{special}b")


def test_alphabet_form_stays_where_the_model_needs_it():
    """A special token whose bytes a merge makes (or uses) keeps its GPT-2 alphabet key in the model vocab."""
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"a ", 257: b"a b"}
    model = hf_tokenizer_dict(vocab, [(b"a", b" "), (b"a ", b"b")], ["a "])["model"]["vocab"]
    assert model["aĠ"] == model["a "] == 256 and model["aĠb"] == 257
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"<|sp|> "}
    model = hf_tokenizer_dict(vocab, [], ["<|sp|> "])["model"]["vocab"]
    assert model["<|sp|> "] == 256 and "<|sp|>Ġ" not in model


@pytest.mark.parametrize("specials", [["<|sp|> ", "<|sp|>Ġ"], ["<|sp|>Ġ", "<|sp|> "]])
def test_special_token_named_like_another_ones_alphabet_form(specials):
    """"<|sp|>Ġ" is how the alphabet writes the bytes of "<|sp|> "; with both special, each keeps its id, in
    either order."""
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"<|sp|> "}
    hf = tokenizers.Tokenizer.from_str(json.dumps(hf_tokenizer_dict(vocab, [], specials)))
    text = "a<|sp|> b<|sp|>Ġc"
    assert hf.encode(text).ids == reference_encode(text, vocab, [], specials)


@pytest.mark.parametrize("names, expected", [
    ({}, {"eos_token": "<|endoftext|>"}),
    ({"eos_token": None}, {}),
    ({"eos_token": "<|sp|> ", "bos_token": "<|日本|>", "pad_token": "<|sp|> "},
     {"eos_token": "<|sp|> ", "bos_token": "<|日本|>", "pad_token": "<|sp|> "}),
])
def test_save_pretrained_named_tokens(tok, tmp_path, names, expected):
    tok.save_pretrained(tmp_path, **names)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert {k: config[k] for k in ("eos_token", "bos_token", "pad_token") if k in config} == expected
    assert set(config.get("additional_special_tokens", [])) == set(SPECIALS) - set(expected.values())


def test_save_pretrained_named_tokens_with_transformers(tok, transformers, tmp_path):
    tok.save_pretrained(tmp_path, eos_token="<|sp|> ", bos_token="<|日本|>", pad_token="<|endoftext|>")
    auto = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert (auto.eos_token_id, auto.bos_token_id, auto.pad_token_id) == (
        tok.special_ids["<|sp|> "], tok.special_ids["<|日本|>"], tok.special_ids["<|endoftext|>"])
    assert auto.encode("a b") == tok.encode("a b")  # no bos or eos added around the ids


@pytest.mark.parametrize("names, fragment", [
    ({"eos_token": "<|nope|>"}, "eos_token='<|nope|>' is not a special token of this tokenizer"),
    ({"pad_token": "endoftext"}, "pad_token='endoftext' is not a special token"),
    ({"bos_token": 3}, "bos_token must be a str, one of the special tokens, not int"),
])
def test_save_pretrained_refuses_unknown_tokens(tok, tmp_path, names, fragment):
    with pytest.raises(BPEInputError, match=re.escape(fragment)):
        tok.save_pretrained(tmp_path / "out", **names)
    assert not (tmp_path / "out").exists()


def test_save_pretrained_without_special_tokens(tmp_path):
    tok = Tokenizer({i: bytes([i]) for i in range(256)}, [], backend="python")
    tok.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert "eos_token" not in config and "additional_special_tokens" not in config


def test_save_pretrained_warns_about_misdecoded_special_tokens(tok, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tok.save_pretrained(tmp_path / "fine")  # no warning for the specials that decode right
    bad = Tokenizer(tok.vocab, tok.merges, [*SPECIALS, MISDECODED])
    with pytest.warns(UserWarning, match=r"'<\|é\|>' wrongly .*#1392"):
        bad.save_pretrained(tmp_path / "warned")
    assert (tmp_path / "warned" / "tokenizer.json").is_file()


def test_misdecoded_special_tokens_are_exactly_those_tokenizers_decodes_wrongly():
    """Pins the upstream decode bug (tokenizers #1392, #1915, #1996) to the rule the warning uses: when a
    tokenizers release fixes it, this fails and the warning can go."""
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {i: bytes([i]) for i in range(256)}
    candidates = [f"<|{chr(c)}|>" for c in range(0x21, 0x250)]
    candidates += ["é a", "éa", "<|é中|>", "<|é|> ", "<|ÿĀ|>", "<|Ń|>", "<|ń|>", "<|\u00ad|>", "<|\u00a0|>", *LETTERS]
    candidates = [c for c in candidates if len(c.encode()) > 1 or c.isascii()]
    accepted, wrong = [], []
    for c in candidates:
        try:
            model = hf_tokenizer_dict(vocab, [], [c])
        except BPEInputError:  # a single alphabet character is how the vocab writes one byte: refused
            continue
        accepted.append(c)
        hf = tokenizers.Tokenizer.from_str(json.dumps(model))
        ids = hf.encode(f"a{c}b").ids
        assert ids == reference_encode(f"a{c}b", vocab, [], [c])
        if hf.decode(ids, skip_special_tokens=False) != f"a{c}b":
            wrong.append(c)
    assert len(wrong) > 150
    assert misdecoded_special_tokens(accepted) == wrong


# ---------------------------------------------------------------------------------------------------------
# tiktoken
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiktoken_enc(tok):
    pytest.importorskip("tiktoken")
    return tok.to_tiktoken()


def test_to_tiktoken_is_a_ready_encoding(tok, tiktoken_enc):
    tiktoken = pytest.importorskip("tiktoken")
    assert isinstance(tiktoken_enc, tiktoken.Encoding)
    assert tiktoken_enc.name == "bpe_numba" and tok.to_tiktoken(name="mine").name == "mine"
    assert tiktoken_enc._pat_str == tok.pattern
    assert tiktoken_enc._special_tokens == tok.special_ids
    assert tiktoken_enc.n_vocab == len(tok.vocab) and tiktoken_enc.eot_token == tok.special_ids["<|endoftext|>"]


@given(texts)
@example("Once upon a time<|endoftext|>日本語 <|日本|>👍<|👍|> <|sp|>  <|sp|> x <|é中|>é中 it's 42 .")
def test_to_tiktoken_encode_equals_ours(tok, tiktoken_enc, text):
    text = known_to_peers(text)
    ids = tok.encode(text)
    assert tiktoken_enc.encode(text, allowed_special="all") == ids
    assert tiktoken_enc.decode(ids) == tok.decode(ids)
    plain = "".join(part for part in text.split("<|"))  # no special token left
    assert tiktoken_enc.encode_ordinary(plain) == tok.encode(plain)


# ---------------------------------------------------------------------------------------------------------
# encode_batch and encode_documents
# ---------------------------------------------------------------------------------------------------------

@given(st.lists(texts, max_size=8))
def test_encode_batch_equals_encode(tok, batch):
    assert tok.encode_batch(batch) == [tok.encode(t) for t in batch]
    assert tok.encode_batch(iter(batch), num_threads=2) == [tok.encode(t) for t in batch]


def test_encode_batch_refuses_a_single_text(tok):
    with pytest.raises(TypeError, match="not a single str; use encode"):
        tok.encode_batch("one text")


def write_documents(directory: Path, docs: list[str]) -> list[Path]:
    paths = []
    for k, doc in enumerate(docs):
        path = directory / f"doc{k}.txt"
        path.write_bytes(doc.encode("utf-8"))
        paths.append(path)
    return paths


def expected_stream(tok, docs, eot="<|endoftext|>") -> list[int]:
    return [i for doc in docs for i in [*tok.encode(doc), tok.special_ids[eot]]]


@given(st.lists(texts, max_size=6))
def test_encode_documents_equals_encode_plus_eot(tok, docs):
    with tempfile.TemporaryDirectory() as d:
        paths = write_documents(Path(d), docs)
        n = tok.encode_documents(paths, Path(d) / "ids.npy", progress=False)
        ids = np.load(Path(d) / "ids.npy")
        assert ids.dtype == np.uint16 and n == len(ids)
        assert ids.tolist() == expected_stream(tok, docs)
        assert sorted(os.listdir(d)) == sorted([p.name for p in paths] + ["ids.npy"])


def test_encode_documents_large_documents_and_order(tok, corpus_file, tmp_path, monkeypatch):
    """Documents above WHOLE_DOCUMENT_BYTES go through encode_file; the stream keeps the input order."""
    monkeypatch.setattr(id_stream, "WHOLE_DOCUMENT_BYTES", 1000)
    monkeypatch.setattr(id_stream, "_COPY_IDS", 777)
    big = corpus_file.read_text(encoding="utf-8")[:50_000]
    docs = ["short one", big, "", "日本 <|日本|> end", big[:3000]]
    paths = write_documents(tmp_path, docs)
    n = tok.encode_documents(paths[::-1], tmp_path / "ids.npy", eot="<|sp|> ", progress=False, num_workers=1)
    ids = np.load(tmp_path / "ids.npy").tolist()
    assert n == len(ids) and ids == expected_stream(tok, docs[::-1], eot="<|sp|> ")
    assert sorted(os.listdir(tmp_path)) == sorted([p.name for p in paths] + ["ids.npy"])


def test_encode_documents_uint32_for_large_vocabularies(tmp_path):
    vocab = {i: bytes([i]) for i in range(256)} | {70_000: b"ab"}
    tok = Tokenizer(vocab, [(b"a", b"b")], ["<|endoftext|>"], backend="python")
    paths = write_documents(tmp_path, ["ab a", "b"])
    tok.encode_documents(paths, tmp_path / "ids.npy")
    ids = np.load(tmp_path / "ids.npy")
    assert ids.dtype == np.uint32 and ids.tolist() == [70_000, 32, 97, 70_001, 98, 70_001]


@pytest.mark.parametrize("errors", ["strict", "replace"])
def test_encode_documents_invalid_utf8(tok, tmp_path, errors):
    paths = write_documents(tmp_path, ["fine", "also fine"])
    (tmp_path / "bad.txt").write_bytes(b"ab\xffcd")
    paths.insert(1, tmp_path / "bad.txt")
    (tmp_path / "ids.npy").write_bytes(b"old")
    if errors == "strict":
        with pytest.raises(InvalidUTF8Error, match="bad.txt: invalid UTF-8 at byte offset 2") as info:
            tok.encode_documents(paths, tmp_path / "ids.npy", errors=errors)
        assert info.value.offset == 2
        assert (tmp_path / "ids.npy").read_bytes() == b"old"  # untouched, and no temporary file left
        assert sorted(os.listdir(tmp_path)) == sorted([p.name for p in paths] + ["ids.npy"])
    else:
        tok.encode_documents(paths, tmp_path / "ids.npy", errors=errors)
        docs = ["fine", "ab\ufffdcd", "also fine"]
        assert np.load(tmp_path / "ids.npy").tolist() == expected_stream(tok, docs)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda tok, p, out: tok.encode_documents(p[0], out), TypeError, "not a single PosixPath"),
    (lambda tok, p, out: tok.encode_documents(str(p[0]), out), TypeError, "wrap one document in a list"),
    (lambda tok, p, out: tok.encode_documents([*p, "missing.txt"], out), FileNotFoundError, "missing.txt: no such"),
    (lambda tok, p, out: tok.encode_documents(p, out, eot="<|nope|>"), ValueError, "not a special token"),
    (lambda tok, p, out: tok.encode_documents(p, out, eot=256), TypeError, "eot must be a str, one of the special tokens"),
    (lambda tok, p, out: tok.encode_documents(p, p[1]), ValueError, "is document 2 of 2"),
    (lambda tok, p, out: tok.encode_documents(p, out.parent), IsADirectoryError, "is a directory"),
    (lambda tok, p, out: tok.encode_documents(p, out.parent / "no" / "x.npy"), FileNotFoundError, "create it first"),
    (lambda tok, p, out: tok.encode_documents(p, out, errors="ignore"), ValueError, "errors"),
    (lambda tok, p, out: tok.encode_documents(p, out, num_workers=0), ValueError, "num_workers=0"),
])
def test_encode_documents_bad_arguments(tok, tmp_path, call, error, fragment):
    paths = write_documents(tmp_path, ["one", "two"])
    before = {p: p.read_bytes() for p in paths}
    with pytest.raises(error, match=re.escape(fragment)) as info:
        call(tok, paths, tmp_path / "ids.npy")
    assert isinstance(info.value, BPEInputError)
    assert {p: p.read_bytes() for p in paths} == before and not (tmp_path / "ids.npy").exists()


def test_encode_documents_needs_a_special_token(tmp_path):
    tok = Tokenizer({i: bytes([i]) for i in range(256)}, [], backend="python")
    with pytest.raises(BPEInputError, match="no special tokens"):
        tok.encode_documents(write_documents(tmp_path, ["a"]), tmp_path / "ids.npy")


# ---------------------------------------------------------------------------------------------------------
# The command line: export and encode --eot
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_dir(tok, tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_exports")
    tok.save(d / "model")
    (d / "empty").mkdir()
    return d


def test_cli_export_hf(tok, cli_dir, package_env, tmp_path):
    out = run(["export", "--format", "hf", cli_dir / "model", tmp_path / "hf", "--pad-token", "<|👍|>", "--json"],
              package_env, cli_dir)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["special_tokens"] == tok.special_ids and report["warnings"] == [] and out.stderr == ""
    tokenizers = pytest.importorskip("tokenizers")
    text = "Once<|endoftext|> <|日本|>x<|👍|> <|sp|> y<|é中|>z"
    assert tokenizers.Tokenizer.from_file(str(tmp_path / "hf" / "tokenizer.json")).encode(text).ids == tok.encode(text)
    config = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["eos_token"] == "<|endoftext|>" and config["pad_token"] == "<|👍|>"


def test_cli_export_hf_warns_in_one_line(tok, package_env, tmp_path):
    Tokenizer(tok.vocab, tok.merges, [MISDECODED, *SPECIALS]).save(tmp_path / "model")
    out = run(["export", "--format", "hf", "model", "hf"], package_env, tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bpe-numba export: warning: tokenizers decodes") and "<|é|>" in lines[0]
    assert json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text(encoding="utf-8"))["eos_token"] == MISDECODED


def test_cli_export_tiktoken(tok, cli_dir, package_env, tmp_path):
    tiktoken = pytest.importorskip("tiktoken")
    out = run(["export", "--format", "tiktoken", cli_dir / "model", tmp_path / "m.tiktoken", "--json"],
              package_env, cli_dir)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    from bpe_numba.formats import read_tiktoken_ranks

    enc = tiktoken.Encoding(name="m", pat_str=report["pattern"], special_tokens=report["special_tokens"],
                            mergeable_ranks=read_tiktoken_ranks(tmp_path / "m.tiktoken"))
    text = "Once<|endoftext|> <|日本|>x<|👍|> <|sp|> y<|é中|>z it's 42"
    assert enc.encode(text, allowed_special="all") == tok.encode(text)
    human = run(["export", "--format", "tiktoken", cli_dir / "model", tmp_path / "h.tiktoken"], package_env, cli_dir)
    assert human.returncode == 0 and "tiktoken.Encoding(" in human.stdout, human.stderr


def test_cli_export_force_overwrites(cli_dir, package_env, tmp_path):
    for fmt, target, existing in (("tiktoken", "m.tiktoken", "m.tiktoken"), ("hf", "hf", "hf/tokenizer_config.json")):
        (tmp_path / existing).parent.mkdir(exist_ok=True)
        (tmp_path / existing).write_text("old")
        args = ["export", "--format", fmt, cli_dir / "model", target]
        refused = run(args, package_env, tmp_path)
        assert refused.returncode == 2 and "exists; pass --force" in refused.stderr
        assert (tmp_path / existing).read_text() == "old"
        forced = run([*args, "--force"], package_env, tmp_path)
        assert forced.returncode == 0, forced.stderr
        assert (tmp_path / existing).read_text() != "old"


EXPORT_BAD = [
    (["export", "--format", "onnx", "model", "out"], "argument --format: invalid choice: 'onnx'"),
    (["export", "model", "out"], "the following arguments are required: --format"),
    (["export", "--format", "hf", "nomodel", "out"], "nomodel: not a directory"),
    (["export", "--format", "hf", "empty", "out"], "vocab.json: missing"),
    (["export", "--format", "tiktoken", "empty", "out.tiktoken"], "vocab.json: missing"),
    (["export", "--format", "hf", "model", "taken"], "taken/tokenizer.json: exists; pass --force"),
    (["export", "--format", "tiktoken", "model", "taken.tiktoken"], "taken.tiktoken: exists; pass --force"),
    (["export", "--format", "tiktoken", "model", "model/vocab.json", "--force"], "is the model's vocab.json"),
    (["export", "--format", "tiktoken", "model", "taken"], "taken: is a directory"),
    (["export", "--format", "hf", "model", "taken.tiktoken"], "taken.tiktoken: is a file"),
    (["export", "--format", "hf", "model", "out", "--eos-token", "<|nope|>"], "eos_token='<|nope|>' is not a special"),
    (["export", "--format", "tiktoken", "model", "out", "--pad-token", "<|endoftext|>"], "for --format hf only"),
    (["encode", "--model", "model", "a.txt", "b.txt", "-o", "x.npy"], "2 INPUT files: give --eot TOKEN"),
    (["encode", "--model", "model", "a.txt", "b.txt", "-o", "x.npy", "--eot", "<|nope|>"], "not a special token"),
    (["encode", "--model", "model", "a.txt", "b.txt", "-o", "b.txt", "--eot", "<|endoftext|>"], "is input 2 of 2"),
]


@pytest.mark.parametrize("args, message", EXPORT_BAD, ids=[" ".join(a) for a, _ in EXPORT_BAD])
def test_cli_bad_arguments_exit_2_with_one_line(cli_dir, package_env, args, message):
    (cli_dir / "taken").mkdir(exist_ok=True)
    (cli_dir / "taken" / "tokenizer.json").write_text("mine")
    (cli_dir / "taken.tiktoken").write_text("mine")
    for name in ("a.txt", "b.txt"):
        (cli_dir / name).write_text(f"document {name}")
    before = {p: p.read_bytes() for p in cli_dir.rglob("*") if p.is_file()}
    out = run(args, package_env, cli_dir)
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert {p: p.read_bytes() for p in cli_dir.rglob("*") if p.is_file()} == before
    assert not (cli_dir / "out").exists() and not (cli_dir / "x.npy").exists()


def test_cli_encode_eot(tok, cli_dir, package_env, tmp_path):
    docs = ["Once upon a time.", "日本 <|日本|> 👍", "", "last one\n"]
    paths = write_documents(tmp_path, docs)
    out = run(["encode", "--model", cli_dir / "model", *paths, "-o", tmp_path / "ids.npy", "--eot", "<|endoftext|>",
               "--json"], package_env, tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    ids = np.load(tmp_path / "ids.npy").tolist()
    assert ids == expected_stream(tok, docs) and report["tokens"] == len(ids)
    assert report["documents"] == 4 and report["eot_id"] == tok.special_ids["<|endoftext|>"]
    one = run(["encode", "--model", cli_dir / "model", paths[0], "-o", tmp_path / "one.npy", "--eot", "<|sp|> "],
              package_env, tmp_path)
    assert one.returncode == 0 and "1 documents" not in one.stdout and "each followed by" in one.stdout, one.stderr
    assert np.load(tmp_path / "one.npy").tolist() == expected_stream(tok, docs[:1], eot="<|sp|> ")
