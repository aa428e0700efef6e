"""The import rule stated in ``bpe_numba/__init__.py``: what a caller's process imports to check arguments
and hand the work on loads neither numpy nor Numba (a helper process or the plain-Python tier does the
work), and nothing imports in a cycle."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

LIGHT = ["bpe_numba", "bpe_numba.__main__", "bpe_numba.cli", "bpe_numba.trainer", "bpe_numba.validation",
         "bpe_numba.errors", "bpe_numba.atomic", "bpe_numba.progress", "bpe_numba.processes",
         "bpe_numba.threads", "bpe_numba.tiers", "bpe_numba.sources", "bpe_numba.counts_file",
         "bpe_numba.numba_cache", "bpe_numba.jit", "bpe_numba.native", "bpe_numba.formats", "bpe_numba.formats.gpt2",
         "bpe_numba.formats.hf",
         "bpe_numba.formats.pickle", "bpe_numba.formats.tiktoken"]
REGEX_ALLOWED = {"bpe_numba.python_bpe"}

PROBE = """
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    for m in [k for k in sys.modules if k.split(".")[0] in ("bpe_numba", "numpy", "numba", "regex")]:
        del sys.modules[m]
    importlib.import_module(name)
    out[name] = sorted(k for k in ("numpy", "numba", "regex") if k in sys.modules)
print(json.dumps(out))
"""


def test_light_modules_load_neither_numpy_nor_numba(package_env):
    names = LIGHT + sorted(REGEX_ALLOWED)
    proc = subprocess.run([sys.executable, "-c", PROBE, *names], capture_output=True, text=True,
                          env=package_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    bad = {name: heavy for name, heavy in loaded.items()
           if heavy and not (name in REGEX_ALLOWED and heavy == ["regex"])}
    assert not bad, f"these modules import heavy packages at import time: {bad}"


@pytest.mark.parametrize("name", ["bpe_numba.tokenizer", "bpe_numba.train_job", "bpe_numba.pretokenize",
                                  "bpe_numba.merge_loop", "bpe_numba.corpus_count", "bpe_numba.distributed",
                                  "bpe_numba.id_stream", "bpe_numba.documents", "bpe_numba.synthetic"])
def test_every_module_imports_alone(package_env, name):
    """Each module imports on its own in a fresh interpreter (an import cycle would fail here)."""
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True,
                          env=package_env, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_no_module_imports_numba(package_env):
    """Numba is imported by ``bpe_numba.jit.start_numba`` when a kernel needs it, never by importing a module
    (the kernel modules included): a process that runs its kernels from the native bundle never loads it."""
    code = ("import importlib, pkgutil, sys, bpe_numba; "
            "names = [m.name for m in pkgutil.walk_packages(bpe_numba.__path__, 'bpe_numba.') if not m.name.endswith('__main__')]; "
            "[importlib.import_module(n) for n in names]; "
            "print(len(names), 'bpe_numba.count_kernels' in names, 'numba' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=package_env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    n, has_kernels, numba_loaded = proc.stdout.split()
    assert int(n) > 30 and has_kernels == "True"
    assert numba_loaded == "False"
