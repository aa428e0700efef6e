"""The native bundle (bpe_numba.native): kernels run from their machine code without Numba give what the
reference and Numba's dispatchers give; arguments that fit no bundled overload go to Numba; a bundle that
is damaged, for another CPU, or turned off is not used; and a process that trains and encodes from it never
imports Numba."""

from __future__ import annotations

import contextlib
import hashlib
import json
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpe_numba import count_pretokens, jit, native, train_bpe
from bpe_numba.tokenizer import Tokenizer
from reference import reference_pretoken_counts_text, reference_train_text
from strategies import corpora

pytestmark = pytest.mark.skipif(not native.enabled(), reason="the native bundle is off here (BPE_NUMBA_NATIVE=0, "
                                                             "NUMBA_DISABLE_JIT, or not Linux)")


@pytest.fixture(scope="module")
def bundle():
    """The bundle conftest's warm-up saved (every kernel of the training and encoding paths)."""
    path = native.bundle_path()
    assert path.is_file(), f"the warm-up saved no native bundle at {path}"
    return path


@contextlib.contextmanager
def native_kernels():
    """This process's kernels run from the bundle: every module global that is a kernel's dispatcher becomes
    the kernel's LazyKernel, holding its native overloads. Yields the names of the kernels called natively."""
    kernels = {id(k.dispatcher): k for k in jit._kernels if k.dispatcher is not None}
    saved = [(k, k.native) for k in kernels.values()]
    swapped = []
    calls: list[str] = []
    original = native.NativeOverload.call

    def counting(self, flat):
        calls.append(self.name)
        return original(self, flat)

    try:
        for kernel in kernels.values():
            kernel.native = native.overloads(kernel.name)
        for name, module in list(sys.modules.items()):
            if name.startswith("bpe_numba.") and module is not None:
                for key, value in list(vars(module).items()):
                    if id(value) in kernels:
                        swapped.append((module, key, value))
                        setattr(module, key, kernels[id(value)])
        native.NativeOverload.call = counting
        yield calls
    finally:
        native.NativeOverload.call = original
        for module, key, value in swapped:
            setattr(module, key, value)
        for kernel, value in saved:
            kernel.native = value


def test_the_bundle_holds_the_training_and_encoding_kernels(bundle):
    names = set(native._read(bundle)["kernels"])
    for name in ["count_kernels.count_gpt2", "count_kernels.merge_into", "count_kernels.key_slots",
                 "count_kernels.flatten",
                 "count_kernels.table_bytes", "text_kernels.utf8_first_invalid", "text_kernels.split_specials",
                 "merge_kernels.build_state", "merge_kernels.run_merges", "merge_kernels.rehash",
                 "encode_kernels.encode_gpt2", "list_kernels.fill_list"]:
        assert f"bpe_numba.{name}" in names
    entries = native._read(bundle)["kernels"]
    assert all(e["nogil"] for e in entries["bpe_numba.count_kernels.count_gpt2"])
    assert not any(e["nogil"] for e in entries["bpe_numba.list_kernels.fill_list"])  # it calls the C API
    # ctypes releases the GIL around a call unless the prototype is a PYFUNCTYPE one.
    import ctypes

    holds_gil = {name: {bool(o._fn._flags_ & ctypes._FUNCFLAG_PYTHONAPI) for o in native.overloads(name)}
                 for name in ("bpe_numba.count_kernels.count_gpt2", "bpe_numba.list_kernels.fill_list")}
    assert holds_gil == {"bpe_numba.count_kernels.count_gpt2": {False}, "bpe_numba.list_kernels.fill_list": {True}}


@given(case=corpora(), workers=st.sampled_from([1, 2]), chunk_size=st.sampled_from([None, 16]))
def test_training_and_counting_from_the_bundle_equal_the_reference(bundle, tmp_path_factory, case, workers,
                                                                    chunk_size):
    text, specials, vocab_size = case
    path = tmp_path_factory.mktemp("native") / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    expected = reference_train_text(text, vocab_size, specials)
    with native_kernels() as calls:
        got = train_bpe(path, vocab_size, specials, progress=False, backend="kernels", isolate=False,
                        num_workers=workers, chunk_size=chunk_size)
        counts = count_pretokens(path, specials, num_workers=workers, chunk_size=chunk_size)
    assert got == expected
    assert counts == reference_pretoken_counts_text(text, specials)
    assert "bpe_numba.text_kernels.utf8_first_invalid" in calls
    if text:
        assert "bpe_numba.count_kernels.count_gpt2" in calls
    if expected[1]:
        assert "bpe_numba.merge_kernels.run_merges" in calls


@given(case=corpora())
def test_encoding_from_the_bundle_equals_numba(bundle, case):
    text, specials, vocab_size = case
    vocab, merges = reference_train_text(text + " the cat sat on the mat", vocab_size, specials)
    tokenizer = Tokenizer(vocab, merges, specials, backend="kernels")
    expected = tokenizer.encode(text)
    with native_kernels() as calls:
        assert tokenizer.encode(text) == expected
    assert any(name.startswith("bpe_numba.encode_kernels.") for name in calls) or not text


def _overload(bundle, name: str, readonly_first: bool = False):
    """The kernel's first bundled overload (the one for a read-only first array, if asked)."""
    found = [o for o in native.overloads(name) if not readonly_first or o.specs[0][3]]
    assert found, f"no such overload of {name} in the bundle"
    return found[0]


def test_arguments_must_fit_an_overload_exactly(bundle):
    check = _overload(bundle, "bpe_numba.text_kernels.utf8_first_invalid", readonly_first=True)  # -> int64
    data = np.frombuffer(b"ab\xffc", dtype=np.uint8)
    assert check.call(check.match((data,))) == 2
    assert check.call(check.match((np.array([97, 0xC3], dtype=np.uint8),))) == 1  # writable is fine
    for bad in [(data[::2],), (data.astype(np.int8),), (data.reshape(2, 2),), (b"ab\xffc",), (data, data), ()]:
        assert check.match(bad) is None, bad


def test_scalars_are_checked_like_numbas_types(bundle):
    from bpe_numba import count_kernels

    flatten = _overload(bundle, "bpe_numba.count_kernels.flatten")  # (table, int64, int64, int64, 5 arrays)
    table = count_kernels.new_table()
    keys = count_kernels.key_ranges(1)[0]
    arrays = [keys, np.zeros(8, np.uint8), np.zeros(2, np.int64), np.zeros(1, np.int64), np.zeros(515, np.int64)]
    assert flatten.match((table, 1, 0, 4, *arrays)) is not None
    assert flatten.match((table, np.int64(1), 0, 4, *arrays)) is not None
    for bad in [(table, 1.0, 0, 4), (table, True, 0, 4), (table, 1 << 63, 0, 4), (table[:3], 1, 0, 4)]:
        assert flatten.match((*bad, *arrays)) is None, bad[1:]
    assert flatten.match((table, 1, 0, 4, keys.astype(np.int64), *arrays[1:])) is None  # keys are uint64
    readonly = np.zeros(8, np.uint8)
    readonly.flags.writeable = False
    assert flatten.match((table, 1, 0, 4, keys, readonly, *arrays[2:])) is None  # flatten writes the blob


def test_a_kernel_raises_what_numba_raises(bundle):
    from bpe_numba import count_kernels

    flatten = _overload(bundle, "bpe_numba.count_kernels.flatten")
    args = (count_kernels.new_table(), 1, 0, 4, count_kernels.key_ranges(1)[0], np.zeros(8, np.uint8),
            np.zeros(2, np.int64), np.zeros(1, np.int64), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="flatten: scratch needs 515 entries") as from_numba:
        count_kernels.flatten(*args)
    with pytest.raises(ValueError) as from_bundle:
        flatten.call(flatten.match(args))
    assert str(from_bundle.value) == str(from_numba.value)


SCRIPT = r"""
import json, sys
from bpe_numba import Tokenizer, count_pretokens, train_bpe

path = sys.argv[1]
vocab, merges = train_bpe(path, 400, ["<|endoftext|>"], progress=False, backend="kernels", isolate=False)
counts = count_pretokens(path, ["<|endoftext|>"], num_workers=2)
ids = Tokenizer(vocab, merges, ["<|endoftext|>"], backend="kernels").encode(open(path, encoding="utf-8").read())
print(json.dumps({"merges": [[a.hex(), b.hex()] for a, b in merges], "distinct": len(counts), "ids": len(ids),
                  "numba": "numba" in sys.modules}))
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    line = "The cat {} sat on the mat{}, didn't it? \u00e9t\u00e9 <|endoftext|>\n"
    text = "".join(line.format(i % 7, i % 3) for i in range(800))
    path = tmp_path_factory.mktemp("native_corpus") / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    vocab, merges = reference_train_text(text, 400, ["<|endoftext|>"])
    return path, [[a.hex(), b.hex()] for a, b in merges]


def _run(package_env, cache_dir, corpus_path, **env) -> dict:
    run_env = dict(package_env, BPE_NUMBA_CACHE_DIR=str(cache_dir), **env)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(corpus_path)], env=run_env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _cache_with(tmp_path, bundle, edit=None):
    """A cache directory holding a copy of the bundle, changed by ``edit(bytes) -> bytes``."""
    cache = tmp_path / "cache"
    cache.mkdir()
    data = bundle.read_bytes()
    (cache / bundle.name).write_bytes(edit(data) if edit else data)
    return cache


def _resigned(change):
    """An edit that changes the bundle's content and signs it again (a well-formed bundle)."""
    def edit(data: bytes) -> bytes:
        head = len(native._MAGIC) + 32
        content = change(pickle.loads(data[head:]))
        payload = pickle.dumps(content)
        return native._MAGIC + hashlib.sha256(payload).digest() + payload
    return edit


def test_a_fresh_process_trains_counts_and_encodes_without_numba(bundle, tmp_path, package_env, corpus):
    path, expected = corpus
    out = _run(package_env, _cache_with(tmp_path, bundle), path)
    assert out["merges"] == expected
    assert out["numba"] is False


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "garbage"])
def test_a_damaged_bundle_is_replaced_and_numba_runs_meanwhile(bundle, tmp_path, package_env, corpus, damage):
    path, expected = corpus
    edit = {"truncated": lambda d: d[: len(d) // 2],
            "flipped byte": lambda d: d[:-100] + bytes([d[-100] ^ 1]) + d[-99:],
            "garbage": lambda d: b"\0" * 1000}[damage]
    cache = _cache_with(tmp_path, bundle, edit)
    out = _run(package_env, cache, path)
    assert out["merges"] == expected
    assert out["numba"] is True
    # The training that needed Numba saved a sound bundle again, for the next process.
    assert native._read(cache / bundle.name)["kernels"]
    assert _run(package_env, cache, path)["numba"] is False


def test_a_bundle_for_another_cpu_is_not_used(bundle, tmp_path, package_env, corpus):
    path, expected = corpus
    cache = _cache_with(tmp_path, bundle, _resigned(lambda c: dict(c, cpu="another-cpu")))
    out = _run(package_env, cache, path)
    assert out["merges"] == expected and out["numba"] is True
    assert native._read(cache / bundle.name)["cpu"] != "another-cpu"  # replaced by one for this CPU


def test_turned_off_the_kernels_run_through_numba(bundle, tmp_path, package_env, corpus):
    path, expected = corpus
    cache = _cache_with(tmp_path, bundle)
    out = _run(package_env, cache, path, BPE_NUMBA_NATIVE="0")
    assert out["merges"] == expected and out["numba"] is True


def test_saving_adds_what_the_bundle_lacks(bundle, tmp_path):
    target = tmp_path / bundle.name
    shutil.copy(bundle, target)
    name = "bpe_numba.merge_kernels.run_merges"

    def without_run_merges(content):
        dropped = {e["object"] for e in content["kernels"][name]}
        kept = [i for i in range(len(content["objects"])) if i not in dropped]
        renumber = {old: new for new, old in enumerate(kept)}
        kernels = {k: [dict(e, object=renumber[e["object"]]) for e in v]
                   for k, v in content["kernels"].items() if k != name}
        return dict(content, objects=[content["objects"][i] for i in kept], kernels=kernels)

    _resigned_write(target, without_run_merges)
    assert name not in native._read(target)["kernels"]
    assert native._save(target) == target
    assert name in native._read(target)["kernels"]
    before = target.stat().st_mtime_ns
    assert native._save(target) == target and target.stat().st_mtime_ns == before  # nothing new: not rewritten


def _resigned_write(path, change):
    path.write_bytes(_resigned(change)(path.read_bytes()))


def test_a_bundle_that_does_not_link_never_lands_and_is_not_tried_again(tmp_path, monkeypatch):
    target = tmp_path / "native-test.bin"
    monkeypatch.setattr(native, "_links_in_fresh_process", lambda path: False)
    assert native._save(target) is None
    assert not target.exists() and target.with_suffix(".failed").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["native-test.failed"]  # no temporary file left
    monkeypatch.setattr(native, "_links_in_fresh_process", lambda path: pytest.fail("tried again"))
    assert native._save(target) is None


def test_the_warmup_tries_again_after_a_bundle_that_did_not_link(tmp_path, monkeypatch):
    monkeypatch.setenv("BPE_NUMBA_CACHE_DIR", str(tmp_path))
    path = native.bundle_path()
    path.with_suffix(".failed").write_text("an earlier check failed\n")
    monkeypatch.setattr(native, "_loaded", {})
    assert native.save_bundle() is None and not path.exists()
    assert native.save_bundle(retry=True) == path and path.is_file()
    assert not path.with_suffix(".failed").exists()


def test_auto_takes_the_kernels_from_256_kib_when_the_bundle_is_there(bundle, tmp_path, package_env):
    """With no Numba to start, the kernels beat the Python tier from about 256 KiB (python_bpe's notes);
    without the bundle, from 1 MiB."""
    from bpe_numba import tiers

    cache = _cache_with(tmp_path, bundle)
    index = tmp_path / "k.nbi"  # the kernels are ready (a readiness marker whose listed file is unchanged)
    index.write_bytes(b"index")
    tiers._write_marker({"files": {str(index): tiers._stamp(str(index))}}, cache / tiers._marker_path().name)
    code = ("from bpe_numba import tiers; "
            "print(*(tiers.choose_backend('auto', n) for n in (200_000, 300_000, 2_000_000)))")
    run = dict(package_env, BPE_NUMBA_CACHE_DIR=str(cache))
    with_bundle = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run, timeout=120)
    assert with_bundle.stdout.split() == ["python", "kernels", "kernels"], with_bundle.stderr
    (cache / bundle.name).unlink()
    without = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run, timeout=120)
    assert without.stdout.split() == ["python", "python", "kernels"], without.stderr
