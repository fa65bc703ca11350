"""Duplicate rows of integer or float arrays, found by one 1-D sort instead of a row sort.

``np.unique(a, axis=0)`` sorts the rows as a structured dtype with a generic, field-by-field
comparison; on millions of rows (vertex positions, face corner ids, edges) that sort dominates
mesh inspection and export. :func:`unique_rows` gives the same results by packing each row into
one ``int64`` whose order is the rows' lexicographic order, then calling the 1-D ``np.unique``
(a plain integer sort, several times faster and with no per-row objects).

Packing: each column is shifted to start at 0 and appended in as many bits as its range needs;
when the next column would overflow 62 bits, the key so far is first replaced by its rank among
the distinct keys (one extra 1-D ``np.unique``), which keeps the order. Floats are mapped to
integers with the same order (``-0.0`` and ``0.0`` count as equal, as ``np.unique`` does); NaN is
not supported.
"""

from __future__ import annotations

import numpy as np

__all__ = ["row_keys", "unique_rows"]

_KEY_BITS = 62


def _ordered_ints(col: np.ndarray) -> np.ndarray:
    """``int64`` values with the same order and equalities as ``col`` (integer or float)."""
    if col.dtype.kind in "iub":
        return col.astype(np.int64, copy=False)
    if col.dtype.kind != "f":
        raise TypeError(f"unique_rows handles integer or float columns, not {col.dtype}")
    # IEEE bits read as signed ints are ordered for positive floats and reversed for negative
    # ones; flipping every bit but the sign of the negatives makes the whole map monotonic.
    # Adding 0.0 turns -0.0 into 0.0 so that the two compare equal, as floats do.
    if col.dtype.itemsize <= 4:
        bits = (col.astype(np.float32, copy=False) + np.float32(0.0)).view(np.int32).astype(np.int64)
        return np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    bits = (col.astype(np.float64, copy=False) + 0.0).view(np.int64)
    return np.where(bits < 0, bits ^ 0x7FFFFFFFFFFFFFFF, bits)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Rank of each value among the distinct values (0-based, order kept)."""
    return np.unique(values, return_inverse=True)[1].reshape(-1).astype(np.int64, copy=False)


def _shifted(col: np.ndarray) -> tuple[np.ndarray, int]:
    """``col`` moved to start at 0 (ranked when its range is too wide), and its bit width."""
    lo, hi = int(col.min()), int(col.max())
    if hi - lo >= 1 << _KEY_BITS:
        col = _ranks(col)
        lo, hi = 0, int(col.max())
    return col - lo, (hi - lo).bit_length()


def row_keys(a: np.ndarray) -> np.ndarray:
    """``N`` int64 keys, equal for equal rows of the ``N K`` array ``a`` and ordered as its rows.

    Rows compare lexicographically, column 0 first (the order ``np.unique(a, axis=0)`` sorts
    them in). Keys are non-negative and need not be contiguous.
    """
    a = np.asarray(a)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"row_keys needs an N x K array, got shape {a.shape}")
    if a.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    key, width = None, 0
    for j in range(a.shape[1]):
        col, bits = _shifted(_ordered_ints(a[:, j]))
        if key is None:
            key, width = col, bits
            continue
        if width + bits > _KEY_BITS:
            key = _ranks(key)
            width = int(key.max()).bit_length()
            if width + bits > _KEY_BITS:  # a wide column on top of many distinct prefixes
                col = _ranks(col)
                bits = int(col.max()).bit_length()
        key = (key << bits) | col
        width += bits
    return key


def unique_rows(
    a: np.ndarray, *, return_index: bool = False, return_inverse: bool = False, return_counts: bool = False
):
    """Same results as ``np.unique(a, axis=0, ...)`` for a 2-D integer or float array, faster.

    Returns the sorted distinct rows, then (as requested) the index of each one's first
    occurrence, the ``N`` inverse (a 1-D array) and the counts; a bare array when nothing
    else is requested, as ``np.unique`` does.
    """
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[0] == 0:
        return np.unique(a, axis=0, return_index=return_index, return_inverse=return_inverse, return_counts=return_counts)
    # With return_index, np.unique sorts stably, so the index is each row's first occurrence.
    res = np.unique(row_keys(a), return_index=return_index, return_inverse=True, return_counts=return_counts)
    inverse = res[2 if return_index else 1].reshape(-1)
    rows = np.empty((len(res[0]), a.shape[1]), dtype=a.dtype)
    rows[inverse] = a  # equal rows land on the same slot
    out = [rows]
    if return_index:
        out.append(res[1])
    if return_inverse:
        out.append(inverse)
    if return_counts:
        out.append(res[-1])
    return out[0] if len(out) == 1 else tuple(out)
