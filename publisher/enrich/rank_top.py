"""Top-k selection over dense rows of similarities, exact, without partitioning or sorting whole rows.

Both functions first bound each row from below by the k-th largest of an evenly strided sample of
SAMPLE_PER_K x k of its columns (a sample's k-th largest is at most the row's own), with the sample's
non-positive values replaced by distinct negative ones (only lower: the bound stays a bound; and no
runs of equal values, on which a partition is slow). Only the few entries at or above the bound (about
m / SAMPLE_PER_K per row of m) are then sorted. Rows too short to sample are handled exactly at once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Floats32 = NDArray[np.float32]
Ints = NDArray[np.int64]

SAMPLE_PER_K = 64  # sampled columns per wanted entry


def _bound(sims: Floats32, k: int) -> Floats32 | None:
    """Per row, a value that at least k of its entries reach; None when the rows are too short to sample."""
    m = sims.shape[1]
    step = m // (SAMPLE_PER_K * k)
    if step < 2:
        return None
    sample = sims[:, ::step]
    ramp = -np.arange(1, sample.shape[1] + 1, dtype=np.float32)
    sample = np.where(sample > 0, sample, ramp[None, :])
    bound: Floats32 = np.partition(sample, sample.shape[1] - k, axis=1)[:, sample.shape[1] - k]
    return bound


def _sorted_hits(sims: Floats32, flat: Ints) -> tuple[Ints, Ints, Floats32]:
    """(row, column, value) of the flat positions `flat`, by row, value descending, column ascending."""
    values = sims.ravel()[flat]
    row, col = np.divmod(flat, sims.shape[1])
    order = np.lexsort((col, -values, row))
    return row[order], col[order], values[order]


def kth_largest(sims: Floats32, k: int) -> Floats32:
    """Per row of `sims` (c x m, 1 <= k <= m), its k-th largest value, as np.partition gives it."""
    m = sims.shape[1]
    bound = _bound(sims, k)
    if bound is None:
        exact: Floats32 = np.partition(sims, m - k, axis=1)[:, m - k]
        return exact
    row, _, values = _sorted_hits(sims, np.flatnonzero(sims >= bound[:, None]))  # >= k per row
    per_row = np.bincount(row, minlength=sims.shape[0])
    kth: Floats32 = values[np.cumsum(per_row) - per_row + k - 1]
    return kth


def best(sims: Floats32, width: int) -> tuple[Ints, Ints]:
    """(row, column) of each row's `width` largest positive entries of `sims` (c x m), by row, then value
    descending, ties by column ascending."""
    if width <= 0 or sims.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    bound = _bound(sims, width)
    hit = sims > 0 if bound is None else (sims >= bound[:, None]) & (sims > 0)
    row, col, _ = _sorted_hits(sims, np.flatnonzero(hit))
    keep = np.arange(row.size) - np.searchsorted(row, row) < width
    return row[keep], col[keep]
