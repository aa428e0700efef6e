"""Run bpe_numba calls in a fresh interpreter with a timeout.

A call that starts a worker pool and then fails can hang (a pool that is never torn down); in-process that
would freeze the whole test session. Here it fails one test, names the call, and the process group
(the interpreter and its workers, all started by us) is killed.

Outcomes are JSON-friendly dicts: ``{"ok": True, "merges": [...], "vocab": {...}}`` or ``{"ok": True,
"counts": {...}}`` (bytes as latin-1 strings), or ``{"ok": False, "type": ..., "mro": [...], "message":
..., "path": ..., "offset": ...}``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


def _b(x: bytes) -> str:
    return x.decode("latin-1")


def _run_one(call: dict) -> dict:
    import bpe_numba

    fn = getattr(bpe_numba, call["fn"])
    try:
        result = fn(*call.get("args", []), **call.get("kwargs", {}))
    except BaseException as e:  # noqa: BLE001 - reported to the parent as data
        return {
            "ok": False,
            "type": type(e).__name__,
            "mro": [c.__name__ for c in type(e).__mro__],
            "message": str(e),
            "path": os.fspath(e.path) if getattr(e, "path", None) is not None else None,
            "offset": getattr(e, "offset", None),
        }
    if call["fn"] == "count_pretokens":
        return {"ok": True, "counts": {_b(k): v for k, v in result.items()}}
    vocab, merges = result
    return {"ok": True, "vocab": {str(k): _b(v) for k, v in vocab.items()}, "merges": [[_b(a), _b(b)] for a, b in merges]}


def run_isolated(calls: list[dict], env: dict, timeout: float = 60.0) -> list[dict]:
    import pytest

    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(json.dumps(calls), timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        done = out.count("\n")
        pytest.fail(
            f"bpe_numba hung: call {calls[done]!r} did not return within {timeout:.0f} s "
            f"({done} earlier call(s) returned)\nstderr:\n{err[-3000:]}"
        )
    if proc.returncode != 0:
        pytest.fail(f"isolated runner exited with {proc.returncode}\nstderr:\n{err[-3000:]}")
    return [json.loads(line) for line in out.splitlines()]


def main() -> None:
    calls = json.loads(sys.stdin.read())
    for call in calls:
        print(json.dumps(_run_one(call)), flush=True)


if __name__ == "__main__":
    main()
