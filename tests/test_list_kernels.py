"""The id list that ``Tokenizer.encode`` returns is built by a kernel through CPython's C API
(:mod:`bpe_numba.list_kernels`): it must equal ``ids.tolist()`` and leave every reference count exact."""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpe_numba.list_kernels import IntObjects

N = 70_000  # more than 65 536, so that uint16 wrap-arounds would show


@pytest.fixture(scope="module")
def ints():
    return IntObjects(N)


@given(st.lists(st.integers(0, N - 1), max_size=300), st.sampled_from([np.int32, np.int64]))
def test_equals_tolist(ints, values, dtype):
    ids = np.array(values, dtype=dtype)
    out = ints.ids_to_list(ids)
    assert type(out) is list
    assert out == values
    assert all(type(x) is int for x in out)


def test_reference_counts_are_exact(ints):
    rng = np.random.default_rng(7)
    ids = rng.integers(0, N, 200_000).astype(np.int32)
    watched = [300, 1234, 65_536, N - 1]  # not CPython's shared small ints, whose counts others move too
    objs = [ints.objects[k] for k in watched]
    gc.collect()
    before = [sys.getrefcount(o) for o in objs]
    none_before = sys.getrefcount(None)
    out = ints.ids_to_list(ids)
    expected = [int((ids == k).sum()) for k in watched]
    after = [sys.getrefcount(o) for o in objs]
    assert [a - b for a, b in zip(after, before)] == expected
    assert abs(sys.getrefcount(None) - none_before) < 100  # every None placeholder was released
    del out
    gc.collect()
    assert [sys.getrefcount(o) for o in objs] == before


def test_the_list_outlives_the_objects_holder():
    ids = np.array([40_000, 40_001, 40_000], dtype=np.int32)
    holder = IntObjects(50_000)
    out = holder.ids_to_list(ids)
    del holder
    gc.collect()
    assert out == [40_000, 40_001, 40_000]
    assert out[0] is out[2]


@pytest.mark.parametrize("bad", [-1, N, 2**31 - 1])
def test_an_id_out_of_range_is_an_error_naming_it(ints, bad):
    with pytest.raises(ValueError, match=rf"id {bad} at position 2 is outside 0\.\.{N - 1}"):
        ints.ids_to_list(np.array([1, 2, bad, 3], dtype=np.int64))


def test_a_pickled_copy_takes_addresses_of_its_own_objects():
    import pickle

    copy = pickle.loads(pickle.dumps(IntObjects(1000)))
    assert copy.addrs.tolist() == [id(x) for x in copy.objects]
    assert copy.ids_to_list(np.array([999, 3], dtype=np.int32)) == [999, 3]
