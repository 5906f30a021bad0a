"""Exact 1-D k-means (Lloyd's algorithm) for weight sharing.

Deep Compression's trained quantization (Han, Mao, Dally 2016, §3.1) clusters the weights
of each layer with k-means and stores one codebook index per weight. Zeros of a pruned
layer are not a cluster: the caller removes them before calling :func:`kmeans_1d`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["KMeansResult", "kmeans_1d"]

_INITS = ("linear", "density", "random")


@dataclass(frozen=True)
class KMeansResult:
    """Outcome of :func:`kmeans_1d`.

    ``centroids`` is float64 of shape (k,) sorted ascending (the codebook); ``labels`` has
    the shape of the flattened input and holds each value's codebook index in the smallest
    unsigned dtype that fits k; ``inertia`` is the sum of squared distances of the values
    to their centroids.
    """

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    iterations: int


def kmeans_1d(
    values: np.ndarray,
    k: int,
    *,
    init: str = "linear",
    max_iter: int = 100,
    tol: float = 0.0,
    seed: int = 0,
) -> KMeansResult:
    """Cluster scalar values into k centroids minimizing the within-cluster squared error.

    Objective (Han et al. 2016, §3.1, eq. 2)::

        argmin_C  sum_j sum_{w in c_j} (w - c_j)^2

    Algorithm: Lloyd's iterations (Lloyd 1982), done exactly but cheaply because in 1-D
    every cluster is a contiguous run of the sorted values. The values are sorted once,
    with prefix sums; each iteration finds the cluster boundaries as the midpoints between
    consecutive (sorted) centroids by ``np.searchsorted`` — O(k log n) — and sets every
    centroid to its cluster's mean from the prefix sums. A cluster left empty keeps its
    previous centroid (it is not relocated, unlike scikit-learn, so with many clusters
    over a long-tailed range a linear init can end with empty clusters). Centroids stay
    sorted: a cluster's mean lies between the midpoints that bound it. Iteration stops
    when the assignments no longer change, when no centroid moves more than ``tol``, or
    after ``max_iter`` updates. A value exactly on a midpoint goes to the lower cluster
    (as ``argmin`` over distances would).

    Initialization: ``"linear"`` spaces k centroids evenly between min and max (best in
    Han et al.'s comparison); ``"density"`` puts them at the quantiles (i + 0.5) / k, i.e.
    evenly in the CDF; ``"random"`` samples k distinct values with ``seed``.
    If k is at least the number of distinct values, each distinct value is its own
    centroid and the inertia is 0.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if init not in _INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {_INITS}")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if values.size == 0:
        raise ValueError("kmeans_1d needs at least one value, got an empty array")
    if not np.isfinite(values).all():
        raise ValueError("kmeans_1d got non-finite values (NaN or inf)")

    label_dtype = np.min_scalar_type(k - 1)
    sorted_values = np.sort(values)
    is_new = np.empty(sorted_values.size, dtype=bool)
    is_new[0] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=is_new[1:])
    distinct = sorted_values[is_new]
    if k >= distinct.size:
        labels = np.searchsorted(distinct, values).astype(label_dtype)
        return KMeansResult(distinct, labels, 0.0, 0)

    if init == "linear":
        centroids = np.linspace(sorted_values[0], sorted_values[-1], k)
    elif init == "density":
        centroids = np.quantile(sorted_values, (np.arange(k) + 0.5) / k)
    else:
        rng = np.random.default_rng(seed)
        centroids = np.sort(rng.choice(distinct, size=k, replace=False))

    # Prefix sums of the values shifted by their mean, so that differences of large partial
    # sums lose little precision. prefix[i] = sum of the first i sorted values.
    shift = sorted_values.mean()
    prefix = np.concatenate(([0.0], np.cumsum(sorted_values - shift)))

    bounds = None
    iterations = 0
    for _ in range(max_iter):
        midpoints = 0.5 * (centroids[:-1] + centroids[1:])
        # ends[j] = number of values <= midpoint j: cluster j is sorted_values[ends[j-1]:ends[j]].
        ends = np.searchsorted(sorted_values, midpoints, side="right")
        if bounds is not None and np.array_equal(ends, bounds):
            break  # assignments unchanged: centroids are already their cluster means
        bounds = ends
        starts = np.concatenate(([0], ends))
        stops = np.concatenate((ends, [sorted_values.size]))
        counts = stops - starts
        sums = prefix[stops] - prefix[starts]
        nonempty = counts > 0
        new_centroids = centroids.copy()  # an empty cluster keeps its centroid
        new_centroids[nonempty] = shift + sums[nonempty] / counts[nonempty]
        movement = np.abs(new_centroids - centroids).max()
        centroids = new_centroids
        iterations += 1
        if movement <= tol:
            break

    midpoints = 0.5 * (centroids[:-1] + centroids[1:])
    labels = np.searchsorted(midpoints, values, side="left").astype(label_dtype)
    residuals = values - centroids[labels]
    return KMeansResult(centroids, labels, float(residuals @ residuals), iterations)
