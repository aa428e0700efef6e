"""The prefetch intrinsic: a kernel that uses it compiles, computes what it computes without it, and (on
x86-64) really carries the prefetch instruction."""

import platform

import numpy as np
import pytest


@pytest.fixture(scope="module")
def gather():
    """A kernel that prefetches the entry it reads four steps later (compiled once for the module)."""
    from numba import njit

    from bpe_numba.intrinsics import prefetch

    @njit(nogil=True)
    def kernel(table, index):
        total = 0
        for i in range(index.shape[0]):
            if i + 4 < index.shape[0]:
                prefetch(table, index[i + 4])
            total += table[index[i]]
        return total

    return kernel


def test_prefetch_changes_nothing_but_timing(gather):
    rng = np.random.default_rng(0)
    table = rng.integers(0, 1 << 40, size=1 << 16)
    index = rng.integers(0, table.shape[0], size=10_000)
    assert gather(table, index) == int(table[index].sum())
    assert gather(table, index[:3]) == int(table[index[:3]].sum())  # no prefetch at all
    assert gather(table, index[:0]) == 0


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="checks x86-64 assembly")
def test_prefetch_is_in_the_machine_code(gather):
    table = np.arange(100, dtype=np.int64)
    gather(table, np.arange(10))
    assert "prefetch" in gather.inspect_asm(gather.signatures[0])
