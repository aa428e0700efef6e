"""The training helper process (``isolate``) and the lean Numba start of bpe_numba's own processes.

The result must not depend on where training runs; errors must cross the process boundary as the same
exception; the caller's process must never be changed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import pytest

from bpe_numba import InvalidUTF8Error, train_bpe
from bpe_numba.processes import map_chunks, run_in_helper
from helper_targets import (
    Unpicklable,
    modules_after_training,
    numba_start_state,
    raise_unpicklable,
    train_in_pool_worker,
)

def _text() -> str:
    rng = random.Random(5)
    pieces = ["Once", " upon", " a", " time", ",", " cat's", " \u00e9t\u00e9s", " \U0001f44d\U0001f3fd", "!\r\n",
              " they'll", "  \u0661\u0662", " 42", "\n\n", "<|endoftext|>", "<|endoftext|><|endoftext|>"]
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 8))) for _ in range(300)]
    return "".join(rng.choice(pieces) if rng.random() < 0.3 else " " + rng.choice(words) for _ in range(6000))


TEXT = _text()


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8", newline="")
    return path


@pytest.mark.parametrize("workers, chunk_size", [(1, None), (2, 64)])
def test_isolated_equals_in_process(text_file, workers, chunk_size):
    results = []
    for isolate in (True, False):
        timings: dict = {}
        results.append(train_bpe(text_file, 400, ["<|endoftext|>"], num_workers=workers, chunk_size=chunk_size,
                                 isolate=isolate, timings=timings))
        assert timings["isolated"] is isolate
        assert timings["startup"] >= 0 and timings["unique_pretokens"] > 0
    assert results[0] == results[1]
    assert len(results[0][1]) == 400 - 257


def test_isolated_cs336_fixture_exact(cs336_dir, cs336_reference):
    assert train_bpe(cs336_dir / "corpus.en", 500, ["<|endoftext|>"], isolate=True) == cs336_reference


def test_isolated_writes_model(text_file, tmp_path):
    from bpe_numba import Tokenizer

    vocab, merges = train_bpe(text_file, 300, ["<|endoftext|>"], isolate=True, out_dir=tmp_path / "model")
    tok = Tokenizer.from_files(tmp_path / "model" / "vocab.json", tmp_path / "model" / "merges.txt")
    assert tok.vocab == vocab and tok.merges == merges


def test_invalid_utf8_crosses_as_itself(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"hello world " * 100 + b"\xff oops")
    with pytest.raises(InvalidUTF8Error) as isolated:
        train_bpe(path, 300, isolate=True)
    with pytest.raises(InvalidUTF8Error) as in_process:
        train_bpe(path, 300, isolate=False)
    assert (isolated.value.path, isolated.value.offset) == (in_process.value.path, in_process.value.offset) == (
        str(path), 1200)
    assert str(isolated.value) == str(in_process.value)
    assert "helper process" in "".join(getattr(isolated.value, "__notes__", []))


def test_unpicklable_exception_becomes_runtime_error_with_traceback():
    with pytest.raises(RuntimeError, match=r"(?s)helper process failed.*Unpicklable.*cannot cross"):
        run_in_helper(raise_unpicklable)
    assert issubclass(Unpicklable, Exception)


def test_helper_death_is_reported_with_exit_code():
    with pytest.raises(RuntimeError, match=r"helper process died \(exit code 3\)"):
        run_in_helper(os._exit, 3)


def test_bad_isolate_argument(text_file):
    with pytest.raises(TypeError, match="isolate must be True, False or None"):
        train_bpe(text_file, 300, isolate="yes")


def test_helper_and_workers_start_numba_lean(tmp_path):
    state = run_in_helper(numba_start_state)
    assert state == {"imported_before": False, "scipy_blocked": True, "cffi_blocked": True, "extensions_skipped": True}
    lean = dict(state, imported_before=None)  # a worker that takes both tasks has Numba at the second
    for worker_state in map_chunks(numba_start_state, range(2), workers=2, ordered=True):
        assert dict(worker_state, imported_before=None) == lean
    # ... and never the caller's process.
    assert sys.modules.get("scipy", "absent") is not None
    assert sys.modules.get("cffi", "absent") is not None


def test_pool_worker_trains_in_process(text_file):
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        n_merges, isolated = pool.apply(train_in_pool_worker, (str(text_file),))
    assert (n_merges, isolated) == (300 - 257, False)


SCRIPT = textwrap.dedent("""
    import json, sys
    from bpe_numba import train_bpe
    first, second = {}, {}
    result = train_bpe(sys.argv[1], 300, ["<|endoftext|>"], timings=first, backend="kernels")
    numba_after_first = "numba" in sys.modules
    import numba
    assert train_bpe(sys.argv[1], 300, ["<|endoftext|>"], timings=second, backend="kernels") == result
    print(json.dumps([first["isolated"], numba_after_first, second["isolated"]]))
""")


def test_default_isolates_only_while_numba_is_not_imported(text_file, package_env):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(text_file)], env=package_env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    # The first call runs in a helper and leaves Numba out of this process; once Numba is imported here,
    # training runs in-process.
    assert json.loads(out.stdout) == [True, False, False]


def test_helper_progress_bars_are_drawn_by_the_caller(text_file, monkeypatch):
    """The helper's bars reach the caller's ``sys.stderr`` (a notebook's, say), not the helper's own fd 2."""
    import io

    sink = io.StringIO()
    monkeypatch.setattr(sys, "stderr", sink)
    train_bpe(text_file, 400, ["<|endoftext|>"], isolate=True, progress=True)
    out = sink.getvalue()
    assert "pre-tokenize" in out and f"/{400 - 257} " in out


def test_helper_progress_updates_reach_their_totals(text_file, monkeypatch):
    import bpe_numba.processes as processes

    bars = []

    class Recorder:
        def __init__(self, **kwargs):
            self.kwargs, self.n, self.closed = kwargs, 0, False
            bars.append(self)

        def update(self, n=1):
            self.n += n

        def close(self):
            self.closed = True

    monkeypatch.setattr(processes, "progress_bar", lambda show, **kwargs: Recorder(**kwargs))
    train_bpe(text_file, 400, ["<|endoftext|>"], isolate=True, progress=True)
    assert [(b.kwargs["desc"], b.n, b.kwargs["total"], b.closed) for b in bars] == [
        ("pre-tokenize", text_file.stat().st_size, text_file.stat().st_size, True),
        ("merges", 400 - 257, 400 - 257, True),
    ]


def test_helper_interrupted_alone_raises_keyboard_interrupt():
    """A SIGINT that reaches only the helper (not the caller) still ends the call as an interrupt."""
    import signal

    # A background job of a non-interactive shell (some CI scripts) inherits SIGINT ignored, and so would
    # the helper: handle it here as in a terminal, so that the helper starts with Python's handler.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_in_helper(signal.raise_signal, signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)


FORK_SCRIPT = textwrap.dedent("""
    import json, signal, sys, threading
    sys.path.insert(0, sys.argv[1])
    from bpe_numba.processes import helper_start_method, run_in_helper
    from helper_targets import helper_state

    def mine(signum, frame):
        print("the caller's handler ran in the helper", flush=True)

    signal.signal(signal.SIGTERM, mine)
    signal.signal(signal.SIGINT, mine)
    report = {"alone": helper_start_method(), "state": run_in_helper(helper_state)}
    import gc
    report["caller_frozen_after"] = gc.get_freeze_count() > 0
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    report["with_a_thread"] = helper_start_method()
    stop.set()
    thread.join()
    import numba
    report["after_numba"] = helper_start_method()
    print(json.dumps(report))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the helper is forked on Linux only")
def test_helper_is_forked_only_from_a_single_threaded_process_without_numba(package_env):
    """A forked helper starts from the caller's state: it must not run the caller's signal handlers, and it
    is only forked where that is safe (one thread, no Numba yet)."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", FORK_SCRIPT, here], env=package_env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "alone": "fork",
        "state": {"SIGINT": "_interrupt_once", "SIGTERM": "SIG_DFL", "comm": "bpe-numba-train", "frozen": True},
        "caller_frozen_after": False,
        "with_a_thread": "spawn",
        "after_numba": "spawn",
    }


def test_training_in_the_helper_imports_neither_numpy_ma_nor_numba_arrayobj(text_file):
    """0.04-0.05 s each per process: no kernel of the training allocates an array (whose environment is in
    ``numba.np.arrayobj``), and exact arrays are typed without the masked-array probe."""
    assert run_in_helper(modules_after_training, str(text_file)) == {"numpy.ma": False, "numba.np.arrayobj": False}


TYPEOF_SCRIPT = textwrap.dedent("""
    import numpy as np
    from numba.core.typing import typeof
    from numba.core.errors import NumbaTypeError, NumbaValueError
    numbas = typeof.typeof_impl.dispatch(np.ndarray)
    from bpe_numba.processes import _type_arrays_without_masked_probe
    _type_arrays_without_masked_probe()  # what the lean start does in bpe_numba's own processes
    assert typeof.typeof_impl.dispatch(np.ndarray) is not numbas, "nothing was registered"
    base = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    readonly = np.frombuffer(b"abcdefgh", dtype=np.uint8)
    records = np.zeros(3, dtype=[("a", np.int32), ("b", np.float64)])
    for arr in [base, base.T, base[:, ::2], base[0, 0, 0:1], np.ones((), dtype=np.float32), readonly, records,
                np.zeros(5, dtype=bool), np.zeros(2, dtype="M8[s]"), np.array(["ab"], dtype="S2"),
                np.zeros(2, dtype=object)]:
        want = numbas(arr, typeof.Purpose.argument)
        got = typeof.typeof(arr, typeof.Purpose.argument)
        assert got == want, (arr.dtype, arr.shape, got, want)
    for bad in (np.ma.masked_array([1, 2]), np.zeros(2, dtype=[("a", object)])):
        try:
            typeof.typeof(bad, typeof.Purpose.argument)
        except (NumbaTypeError, NumbaValueError, ValueError, TypeError):
            pass
        else:
            raise AssertionError(f"{type(bad).__name__} of {bad.dtype} was typed")
    print("ok")
""")


def test_lean_typing_of_arrays_equals_numbas(package_env):
    """Exact arrays typed without the masked-array probe get Numba's own types; masked arrays and dtypes
    Numba refuses are still refused."""
    out = subprocess.run([sys.executable, "-c", TYPEOF_SCRIPT], env=package_env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


FORK_FAILS_SCRIPT = textwrap.dedent("""
    import errno, json, os, sys
    sys.path.insert(0, sys.argv[1])
    from bpe_numba.processes import helper_start_method, run_in_helper
    from helper_targets import helper_state

    def no_fork():
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    os.fork = no_fork  # as for a caller too large to fork
    print(json.dumps([helper_start_method(), run_in_helper(helper_state)]))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the helper is forked on Linux only")
def test_a_helper_that_cannot_be_forked_is_spawned(package_env):
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", FORK_FAILS_SCRIPT, here], env=package_env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    method, state = json.loads(out.stdout)
    assert method == "fork"  # it was tried ...
    assert state["comm"] != "bpe-numba-train" and not state["frozen"]  # ... and a spawned helper ran
