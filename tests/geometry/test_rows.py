"""unique_rows / row_keys: the same answers as np.unique(axis=0) on every column type they take."""

from __future__ import annotations

import numpy as np
import pytest

from shapegen.geometry.rows import row_keys, unique_rows

rng = np.random.default_rng(0)

CASES = {
    "small ints": rng.integers(0, 5, (1000, 3)),
    "negative ints": rng.integers(-3, 3, (1000, 2)),
    # Ranges too wide to pack: ranked first, column by column.
    "full-range int64": rng.integers(-(2**62), 2**62, (500, 3)),
    "wide repeated rows": np.concatenate([rng.integers(-(2**40), 2**40, (300, 3))] * 3),
    "many columns": rng.integers(0, 4, (2000, 7)),
    "one column": rng.integers(0, 3, (100, 1)),
    "uint32": rng.integers(0, 2**31, (1000, 3)).astype(np.uint32),
    "float32 with repeats": rng.normal(size=(300, 3)).astype(np.float32)[rng.integers(0, 300, 1000)],
    "float64 with repeats": (rng.normal(size=(300, 3)) * 1e6)[rng.integers(0, 300, 1000)],
    "signed zeros and infinities": np.array([[0.0, -0.0], [-0.0, 0.0], [1.0, -1.0], [-1.0, 1.0], [-np.inf, 2.0], [np.inf, -2.0]]),
}


@pytest.mark.parametrize("name", CASES)
def test_unique_rows_matches_numpy(name):
    a = CASES[name]
    ref = np.unique(a, axis=0, return_index=True, return_inverse=True, return_counts=True)
    got = unique_rows(a, return_index=True, return_inverse=True, return_counts=True)
    assert len(got) == 4
    for r, g in zip(ref, got):
        np.testing.assert_array_equal(g, r.reshape(g.shape))
    np.testing.assert_array_equal(unique_rows(a), ref[0])
    _, inverse = unique_rows(a, return_inverse=True)
    np.testing.assert_array_equal(inverse, ref[2].reshape(-1))


@pytest.mark.parametrize("name", CASES)
def test_row_keys_order_is_the_row_order(name):
    a = CASES[name]
    keys = row_keys(a)
    assert keys.dtype == np.int64 and keys.shape == (len(a),) and (keys >= 0).all()
    # Sorting by key sorts the rows lexicographically, and equal keys are exactly equal rows.
    order = np.argsort(keys, kind="stable")
    np.testing.assert_array_equal(order, np.lexsort(a.T[::-1]))
    same_key = keys[:, None] == keys[None, :]
    same_row = (a[:, None, :] == a[None, :, :]).all(-1)
    np.testing.assert_array_equal(same_key, same_row)


def test_empty_input():
    empty = np.zeros((0, 3), dtype=np.int64)
    assert unique_rows(empty).shape == (0, 3)
    assert row_keys(empty).shape == (0,)
