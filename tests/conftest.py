"""Shared fixtures: where the CS336 fixtures live, the hypothesis profile, and a cached reference run.

Environment variables:
- ``BPE_NUMBA_FIXTURES``: folder holding the CS336 fixtures (``corpus.en``, ``train-bpe-reference-*``).
  Defaults to ``<repo>/../shared/cs336``; tests needing it are skipped when neither exists.
- ``BPE_NUMBA_EXAMPLES``: hypothesis examples per property test (default 100; CI can raise it).
- ``BPE_NUMBA_TEST_TIMEOUT``: seconds before a hung test dumps its stacks and ends the session (300).
- ``BPE_NUMBA_MIN_CHUNK_SIZE`` is set to 1 here (see below).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = Path(__file__).resolve().parent

# Let `pytest` (not only `python -m pytest`) find an uninstalled checkout; an installed package wins.
if importlib.util.find_spec("bpe_numba") is None:
    sys.path.insert(0, str(REPO_ROOT))
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

# Numba is imported once for the session, so train_bpe's default (isolate=None) trains in this process, as it
# does in any process that already uses Numba. test_helper.py covers the helper process and that choice.
import numba  # noqa: E402,F401

# Tests cut files into chunks of a few bytes, so that every cut decision is taken many times; users get an
# error below 4096 bytes (test_bad_input.py::test_chunk_size_minimum checks it with the real value).
os.environ["BPE_NUMBA_MIN_CHUNK_SIZE"] = "1"

settings.register_profile(
    "bpe_numba",
    max_examples=int(os.environ.get("BPE_NUMBA_EXAMPLES", "100")),
    deadline=None,
    # Each example writes a file under tmp_path and trains on it; that is the point, not a slow generator.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("bpe_numba")


def _fixtures_dir() -> Path:
    env = os.environ.get("BPE_NUMBA_FIXTURES")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "cs336"


@pytest.fixture(scope="session", autouse=True)
def _kernels_compiled():
    """Compile (or load) the kernels once up front, so that ``backend="auto"`` takes them in every test, as
    in any process that uses Numba once they are compiled (test_python_tier.py tests the Python tier)."""
    from bpe_numba import warmup

    warmup()


@pytest.fixture(scope="session")
def cs336_dir() -> Path:
    path = _fixtures_dir()
    needed = ["corpus.en", "train-bpe-reference-merges.txt", "train-bpe-reference-vocab.json"]
    missing = [name for name in needed if not (path / name).is_file()]
    if missing:
        pytest.skip(
            f"CS336 fixtures not found at {path} (missing {', '.join(missing)}); set BPE_NUMBA_FIXTURES to a "
            f"folder holding the CS336 assignment-1 test fixtures, or place them at ../shared/cs336"
        )
    return path


@pytest.fixture(scope="session")
def cs336_reference(cs336_dir):
    """The oracle's (vocab, merges) on corpus.en at vocab 500 (takes a few seconds; computed once)."""
    from reference import reference_train

    return reference_train(cs336_dir / "corpus.en", 500, ["<|endoftext|>"])


@pytest.fixture(scope="session")
def package_env() -> dict:
    """Environment for subprocesses so they import this checkout even when it is not installed."""
    env = dict(os.environ)
    spec = importlib.util.find_spec("bpe_numba")
    if spec is not None and spec.origin is not None:
        root = str(Path(spec.origin).resolve().parent.parent)
    else:
        root = str(REPO_ROOT)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@pytest.fixture(autouse=True)
def _hang_watchdog():
    """A hung test dumps every thread's stack and ends the session instead of blocking CI forever.

    ``BPE_NUMBA_TEST_TIMEOUT`` seconds per test (default 300; 0 disables). Calls that are expected to risk a
    hang run in a subprocess instead (see ``isolated.py``), so this is the last line of defence.
    """
    import faulthandler

    timeout = float(os.environ.get("BPE_NUMBA_TEST_TIMEOUT", "300"))
    if timeout > 0:
        faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        yield
    finally:
        if timeout > 0:
            faulthandler.cancel_dump_traceback_later()
