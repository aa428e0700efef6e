"""The intrinsics: a kernel that prefetches compiles, computes what it computes without it, and (on x86-64)
really carries the prefetch instruction; the release store and the acquire load move the value they are
given and are atomic, with those orderings, in the IR."""

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


def test_release_store_and_acquire_load_move_the_value_atomically():
    from numba import njit

    from bpe_numba.intrinsics import load_acquire, store_release

    @njit(nogil=True)
    def publish(arr, i, v):
        store_release(arr, i, v)
        return load_acquire(arr, i)

    a = np.zeros(4, dtype=np.int64)
    assert publish(a, 2, 7) == 7 and a.tolist() == [0, 0, 7, 0]
    assert publish(a, 0, -(1 << 62)) == -(1 << 62) and a.tolist() == [-(1 << 62), 0, 7, 0]
    ir = publish.inspect_llvm(publish.signatures[0])
    assert "store atomic i64" in ir and " release, align 8" in ir
    assert "load atomic i64" in ir and " acquire, align 8" in ir
