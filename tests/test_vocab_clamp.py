"""A ``vocab_size`` beyond what the corpus can give: the merge state is sized by the merges the corpus can
make (each merge removes a pair position), so any ``vocab_size`` trains to exhaustion and allocates only
what the corpus needs, on both tiers."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from bpe_numba import train_bpe
from reference import build_vocab, incremental_merges_from_counts, reference_pretoken_counts

SPECIALS = ["<|endoftext|>"]


@pytest.fixture(scope="module")
def exhausted(cs336_dir):
    """Every merge corpus.en can give (about 8,200), by the reference."""
    return incremental_merges_from_counts(reference_pretoken_counts(cs336_dir / "corpus.en", SPECIALS), 10**7)


@pytest.mark.parametrize("vocab_size", [10**8, 10**9, 2**31 + 5, 2**63 + 1, 10**30])
def test_huge_vocab_size_on_the_kernels(cs336_dir, exhausted, vocab_size):
    tracemalloc.start()  # numpy reports its allocations to tracemalloc (untouched pages included)
    try:
        vocab, merges = train_bpe(cs336_dir / "corpus.en", vocab_size, SPECIALS, progress=False,
                                  backend="kernels", isolate=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert merges == exhausted
    assert vocab == build_vocab(exhausted, SPECIALS)
    # 130 KB of text: a few MB of state. Sized by vocab_size, 10**8 alone asked for more than 1 GB.
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB allocated for a 130 KB corpus"


@pytest.mark.parametrize("vocab_size", [10**9, 10**30])
def test_huge_vocab_size_on_the_python_tier(cs336_dir, exhausted, vocab_size):
    vocab, merges = train_bpe(cs336_dir / "corpus.en", vocab_size, SPECIALS, progress=False, backend="python")
    assert merges == exhausted
    assert vocab == build_vocab(exhausted, SPECIALS)


def test_huge_vocab_size_from_the_command_line(cs336_dir, package_env, tmp_path):
    """Through the helper process (the CLI's default path): exit 0, every merge, the shortfall said."""
    proc = subprocess.run(
        [sys.executable, "-m", "bpe_numba", "train", str(cs336_dir / "corpus.en"), "--vocab-size", str(10**30),
         "--special-token", SPECIALS[0], "--json"],
        capture_output=True, text=True, env=package_env, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["merges"] > 8000 and report["vocab_size"] == 257 + report["merges"]
    assert report["requested_vocab_size"] == 10**30


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)")
def test_one_giant_pretoken_trains_within_a_gigabyte(tmp_path, package_env):
    """20 MB of "a" is one pre-token of 20 M bytes: its 31 merges touch every position. The whole process
    (Numba included) stays under 1 GB of resident memory: sizing the pair hash table by occurrences (two new
    pairs per merged occurrence) asked for 1.5 GB at the first merge, where two pairs form."""
    path = tmp_path / "a.txt"
    path.write_bytes(b"a" * 20_000_000)
    # The peak is VmHWM, this process image's own: ru_maxrss would keep the peak of the process that forked it
    # (pytest, 1.5 GB late in the suite), since it survives exec.
    script = (
        "import sys, json\n"
        "from bpe_numba import train_bpe\n"
        "vocab, merges = train_bpe(sys.argv[1], 1000, progress=False, backend='kernels', isolate=False)\n"
        "peak = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "print(json.dumps({'merges': len(merges), 'last': sorted(set((merges[-1][0] + merges[-1][1]).decode())),"
        " 'peak': peak}))\n"
    )
    # Compiling takes memory of its own: make sure the kernels are in Numba's cache first (another test may
    # have damaged it), so that the measured process only loads them.
    warm = subprocess.run([sys.executable, "-c", "import bpe_numba; bpe_numba.warmup()"], capture_output=True,
                          text=True, env=package_env, timeout=600)
    assert warm.returncode == 0, warm.stderr
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                          env=package_env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["merges"] == 31 and out["last"] == ["a"]
    assert out["peak"] < 1 << 30, f"peak resident memory {out['peak'] / 2**20:.0f} MiB"
