"""Pruning masks: which weights of a layer survive magnitude pruning.

Han, Pool, Tran & Dally, "Learning both Weights and Connections for Efficient Neural
Networks", NeurIPS 2015 (arXiv:1506.02626), the pruning stage of Deep Compression (Han, Mao
& Dally, ICLR 2016, §2): weights of small magnitude are removed. Two ways to say how many:
a fraction of the layer (:func:`magnitude_mask`) or a threshold of ``quality`` standard
deviations of the layer's weights (:func:`threshold_mask`, Han et al. 2015, §3.2 and the
Caffe code that goes with it). A mask is a boolean array: True keeps the weight.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["magnitude_mask", "threshold_mask"]


def _finite_values(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
        raise ValueError(f"values must be real numbers, got dtype {values.dtype}")
    if not np.isfinite(values).all():
        raise ValueError("values contain NaN or infinity")
    return values


def magnitude_mask(
    values: np.ndarray, sparsity: float, *, previous: np.ndarray | None = None
) -> np.ndarray:
    """Keep the ``n - round(sparsity * n)`` entries of largest ``|value|``.

    ``n`` is ``values.size`` and ``round`` is Python's (halves to even). Ties are broken by
    position: among equal magnitudes the entry with the lower flat (C-order) index is
    pruned first, so the kept count is exact and the result deterministic.

    ``previous`` is an existing mask of the same shape: its pruned entries stay pruned and
    count as the smallest, so the sparsity is measured over the whole array and pruning
    again to a higher target removes only further entries. If ``previous`` already prunes
    more than the target, the result is ``previous`` (pruning never revives a weight).

    Returns a boolean array of the shape of ``values``.
    """
    values = _finite_values(values)
    if isinstance(sparsity, bool) or not (0.0 <= float(sparsity) <= 1.0):
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity!r}")
    n = values.size
    n_pruned = round(float(sparsity) * n)
    magnitude = np.abs(values).ravel()
    if previous is None:
        order = np.argsort(magnitude, kind="stable")  # ascending; stable keeps index order
        keep = np.ones(n, dtype=bool)
    else:
        previous = np.asarray(previous)
        if previous.dtype != np.bool_ or previous.shape != values.shape:
            raise ValueError(
                f"previous must be a bool mask of shape {values.shape}, "
                f"got {previous.dtype} {previous.shape}"
            )
        keep = previous.ravel().copy()
        # Sort by (kept?, |value|): entries pruned before come first, i.e. count as smallest.
        order = np.lexsort((magnitude, keep))
    keep[order[:n_pruned]] = False
    return keep.reshape(values.shape)


def threshold_mask(values: np.ndarray, quality: float) -> np.ndarray:
    """Keep the entries with ``|w| > quality * std(values)`` (Han et al. 2015, §3.2).

    ``std`` is the population standard deviation (ddof 0) over all entries of ``values``,
    computed in float64; zeros of an already pruned layer are entries like any other.
    Returns a boolean array of the shape of ``values``.
    """
    values = _finite_values(values)
    if isinstance(quality, bool) or not (float(quality) >= 0 and math.isfinite(quality)):
        raise ValueError(f"quality must be a finite number >= 0, got {quality!r}")
    if values.size == 0:
        return np.ones(values.shape, dtype=bool)
    threshold = float(quality) * float(np.std(values, dtype=np.float64))
    return np.abs(values.astype(np.float64)) > threshold
