"""Numba's on-disk cache heals (bpe_numba.numba_cache): a truncated, garbage or foreign cache file of a kernel
is deleted and the kernel compiled again, in the helper process and in the caller's own; with no writable
cache location the kernels compile in memory with one warning; the user's own Numba functions keep Numba's
behaviour; and the tiers marker never calls a damaged cache ready."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reference import build_vocab, read_gpt2_merges, reference_encode

SPECIALS = ["<|endoftext|>"]
SCRIPT = r"""
import json, sys
from bpe_numba import Tokenizer, train_bpe

corpus, where = sys.argv[1], sys.argv[2]
vocab, merges = train_bpe(corpus, 500, ["<|endoftext|>"], progress=False, backend="kernels", isolate=where == "helper")
text = open(corpus, encoding="utf-8").read()[:20000]
ids = Tokenizer(vocab, merges, ["<|endoftext|>"], backend="kernels").encode(text)
print(json.dumps({"merges": [[a.hex(), b.hex()] for a, b in merges], "ids": ids}))
"""


@pytest.fixture(scope="module")
def compiled_cache(tmp_path_factory, package_env) -> Path:
    """A ``NUMBA_CACHE_DIR`` holding every kernel: the files this session loaded them from, copied where Numba
    looks for them under that variable."""
    from bpe_numba import merge_kernels  # compiled or loaded by conftest's warm-up

    root = tmp_path_factory.mktemp("numba_cache")
    where = subprocess.run(
        [sys.executable, "-c", "from bpe_numba import merge_kernels as K; print(K.run_merges._cache.cache_path)"],
        capture_output=True, text=True, env=dict(package_env, NUMBA_CACHE_DIR=str(root)), check=True,
    ).stdout.strip()
    source = Path(merge_kernels.run_merges._cache.cache_path)
    for path in source.iterdir():
        if path.suffix in (".nbi", ".nbc"):
            shutil.copy2(path, Path(where) / path.name)
    return root


@pytest.fixture(scope="module")
def expected(cs336_dir):
    merges = read_gpt2_merges(cs336_dir / "train-bpe-reference-merges.txt")
    text = (cs336_dir / "corpus.en").read_text(encoding="utf-8")[:20000]
    return merges, reference_encode(text, build_vocab(merges, SPECIALS), merges, SPECIALS)


def _env(package_env: dict, tmp_path: Path, compiled_cache: Path) -> dict:
    numba_dir = tmp_path / "numba"
    shutil.copytree(compiled_cache, numba_dir)
    return dict(package_env, NUMBA_CACHE_DIR=str(numba_dir), BPE_NUMBA_CACHE_DIR=str(tmp_path / "bpe_numba"))


def _files(env: dict, kernel: str, suffix: str) -> list[Path]:
    """The kernel's index (``.nbi``) or the data files of its entries for the current sources (``.nbc``), in
    the copied cache (the cache also holds files of earlier versions, which nothing reads)."""
    import importlib

    module, name = kernel.split(".")
    dispatcher = getattr(importlib.import_module(f"bpe_numba.{module}"), name)  # loaded by conftest's warm-up
    cache, codegen = dispatcher._cache, dispatcher.targetctx.codegen()
    index = cache._cache_file._load_index()
    current = [cache._index_key(sig, codegen) for sig in dispatcher.signatures]
    names = ([os.path.basename(cache._cache_file._index_path)] if suffix == ".nbi"
             else sorted(index[key] for key in current if key in index))
    found = [path for n in names for path in Path(env["NUMBA_CACHE_DIR"]).glob(f"*/{n}")]
    assert found, f"no {suffix} file of {kernel} in the copied cache"
    return found


def _run(cs336_dir: Path, env: dict, where: str) -> tuple[dict, str]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(cs336_dir / "corpus.en"), where], capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    return json.loads(out.stdout), out.stderr


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(os.path.getsize(path)))


@pytest.mark.slow
@pytest.mark.parametrize(
    "kernel, damage, where",
    [
        pytest.param("merge_kernels.run_merges", "index truncated", "caller", id="index-truncated"),
        pytest.param("merge_kernels.run_merges", "data truncated", "helper", id="data-truncated-helper"),
        pytest.param("merge_kernels.run_merges", "data of another kernel", "caller", id="data-of-another-kernel"),
        pytest.param("count_kernels.count_gpt2", "data garbage", "helper", id="data-garbage-helper"),
        pytest.param("encode_kernels.encode_gpt2", "data truncated", "caller", id="tokenizer-data-truncated"),
    ],
)
def test_damaged_cache_file_is_replaced(cs336_dir, compiled_cache, expected, tmp_path, package_env, kernel, damage,
                                        where):
    env = _env(package_env, tmp_path, compiled_cache)
    if damage == "index truncated":
        _truncate(_files(env, kernel, ".nbi")[0])
    elif damage == "data truncated":
        _truncate(_files(env, kernel, ".nbc")[0])
    elif damage == "data garbage":
        _garbage(_files(env, kernel, ".nbc")[0])
    else:  # a well-formed data file of another function (its own arguments), as a swapped or stale file is
        shutil.copy(_files(env, "merge_kernels.build_state", ".nbc")[0], _files(env, kernel, ".nbc")[0])
    merges, ids = expected

    result, stderr = _run(cs336_dir, env, where)
    assert [(bytes.fromhex(a), bytes.fromhex(b)) for a, b in result["merges"]] == merges
    assert result["ids"] == ids
    assert "NumbaCacheWarning" in stderr and kernel in stderr, stderr[-3000:]

    # Healed: the kernel was saved anew, and the next process loads it without a word.
    result, stderr = _run(cs336_dir, env, where)
    assert [(bytes.fromhex(a), bytes.fromhex(b)) for a, b in result["merges"]] == merges
    assert result["ids"] == ids
    assert "NumbaCacheWarning" not in stderr, stderr[-3000:]


def test_the_marker_never_calls_a_damaged_cache_ready(compiled_cache, tmp_path, package_env):
    env = _env(package_env, tmp_path, compiled_cache)
    ready = [sys.executable, "-c", "from bpe_numba.tiers import kernels_ready; print(kernels_ready())"]
    warmup = [sys.executable, "-m", "bpe_numba", "warmup", "--json"]

    def run(cmd):
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout

    assert json.loads(run(warmup))["ready"] is True
    assert run(ready).split() == ["True"]
    _truncate(_files(env, "merge_kernels.run_merges", ".nbc")[0])
    assert run(ready).split() == ["False"]
    assert json.loads(run(warmup))["ready"] is True  # loading healed it, and the marker lists the new files
    assert run(ready).split() == ["True"]


@pytest.mark.slow
def test_no_writable_cache_location_compiles_in_memory(cs336_dir, expected, tmp_path, package_env):
    """No ``NUMBA_CACHE_DIR``, no writable ``__pycache__`` beside the package, no user cache directory: one
    warning, then the kernels compile in memory and train exactly (Numba alone raises RuntimeError)."""
    import bpe_numba

    root = tmp_path / "site"
    shutil.copytree(Path(bpe_numba.__file__).parent, root / "bpe_numba", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "bpe_numba" / "__pycache__").write_text("a file where Numba wants a directory")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    env = {k: v for k, v in package_env.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(root), XDG_CACHE_HOME=str(blocker / "xdg"), BPE_NUMBA_CACHE_DIR=str(blocker / "bpe"))
    code = ("import sys; from bpe_numba import train_bpe; "
            "print(train_bpe(sys.argv[1], 500, ['<|endoftext|>'], progress=False, backend='kernels')[1] == "
            "eval(sys.argv[2]))")
    out = subprocess.run([sys.executable, "-c", code, str(cs336_dir / "corpus.en"), repr(expected[0])],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["True"]
    assert out.stderr.count("NumbaCacheWarning") == 1 and "no writable directory" in out.stderr, out.stderr[-3000:]
    assert "Traceback" not in out.stderr


def test_user_functions_keep_numbas_behaviour(tmp_path, package_env):
    """A damaged cache of the user's own function raises as it does without bpe_numba (only bpe_numba's
    kernels are healed)."""
    (tmp_path / "user_mod.py").write_text("from numba import njit\n\n@njit(cache=True)\ndef f(x):\n    return x + 1\n")
    env = dict(package_env, PYTHONPATH=f"{tmp_path}{os.pathsep}{package_env['PYTHONPATH']}",
               NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    call = "import user_mod; print(user_mod.f(1))"
    with_ours = ("from bpe_numba import jit, merge_kernels, numba_cache; jit.start_numba(); "
                 "assert numba_cache._state['installed']; " + call)
    first = subprocess.run([sys.executable, "-c", call], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.stdout.split() == ["2"], first.stderr
    (index,) = Path(env["NUMBA_CACHE_DIR"]).glob("*/user_mod.f-*.nbi")
    _truncate(index)
    plain = subprocess.run([sys.executable, "-c", call], capture_output=True, text=True, env=env, cwd=tmp_path)
    ours = subprocess.run([sys.executable, "-c", with_ours], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert plain.returncode != 0 and ours.returncode != 0, (plain.stderr[-2000:], ours.stderr[-2000:])
    assert plain.stderr.strip().splitlines()[-1] == ours.stderr.strip().splitlines()[-1]
    assert "NumbaCacheWarning" not in ours.stderr


def test_kernel_sources_digest_follows_the_kernel_modules(tmp_path, monkeypatch):
    """The digest in every kernel's cache key changes with any module that imports Numba (a kernel is
    compiled with the helpers, tables and intrinsics of the others), and only with those."""
    from bpe_numba import numba_cache

    files = {"kernels.py": "from numba import njit\n", "helpers.py": "import numba\nTABLE = 1\n",
             "lazy.py": "from .jit import njit\n\nTABLE = 1\n", "other.py": "import os  # not from numba\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(numba_cache, "_PACKAGE_DIR", tmp_path)
    monkeypatch.setattr(numba_cache, "_digest", {})

    def digest_after(name: str, text: str) -> str:
        (tmp_path / name).write_text(text)
        numba_cache._digest.clear()
        return numba_cache.kernel_sources_digest()

    first = numba_cache.kernel_sources_digest()
    assert digest_after("other.py", "import os  # edited\n") == first
    second = digest_after("helpers.py", "import numba\nTABLE = 2\n")
    assert second != first
    assert digest_after("lazy.py", "from .jit import njit\n\nTABLE = 2\n") != second


def test_cache_keys_of_kernels_hold_the_digest_and_users_keys_do_not():
    from numba import njit
    from numba.core.caching import FunctionCache

    from bpe_numba import numba_cache, text_kernels

    kernel = text_kernels.utf8_first_invalid  # loaded by conftest's warm-up
    codegen = kernel.targetctx.codegen()
    sig = kernel.signatures[0]
    assert numba_cache._state["installed"]
    assert kernel._cache._index_key(sig, codegen)[-1] == numba_cache.kernel_sources_digest()

    @njit
    def user_function(x):
        return x + 1

    key = FunctionCache(user_function.py_func)._index_key(sig, codegen)
    assert numba_cache.kernel_sources_digest() not in key and len(key) == 3
