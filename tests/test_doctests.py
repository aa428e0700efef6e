"""The examples in the package's docstrings run as tests (on the installed package, like every test here)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import bpe_numba

MODULES = sorted(m.name for m in pkgutil.walk_packages(bpe_numba.__path__, "bpe_numba.") if m.name != "bpe_numba.__main__")


def test_modules_found():
    assert {"bpe_numba.trainer", "bpe_numba.chunking", "bpe_numba.formats.gpt2"} <= set(MODULES)


@pytest.mark.parametrize("name", ["bpe_numba", *MODULES])
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"
