"""Codebooks and codes of weight sharing: the pure maths, NumPy in and out.

Deep Compression (Han, Mao, Dally 2016, §3): the weights of a layer are clustered with 1-D
k-means; each weight is stored as a ``bits``-bit code and the layer carries one float32
codebook. The code alphabet, which the ``.nsz`` format relies on::

    code 0         the exact zero: pruned weights (and the filler zeros of sparse storage)
    code s >= 1    codebook[s - 1], for s = 1 .. K, with K <= 2**bits - 1

Zeros take no part in the clustering: a pruned weight stays exactly zero whatever the
centroids become.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from netshrink.primitives.kmeans import kmeans_1d

__all__ = ["SharedLayer", "cluster_weights", "compression_rate", "decode"]


@dataclass(frozen=True)
class SharedLayer:
    """One weight-shared layer as plain data.

    ``codebook`` is float32 of shape (K,), K <= 2**bits - 1; ``codes`` is uint16 with the
    weight's shape, 0 for an exact zero and s for ``codebook[s - 1]``; ``inertia`` is the
    k-means squared error sum_w (w - centroid(w))^2 over the nonzero float weights when
    the layer was clustered (NaN when unknown, e.g. after ``load_state_dict``).
    """

    bits: int
    codebook: np.ndarray
    codes: np.ndarray
    inertia: float

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 16:
            raise ValueError(f"bits must be in 1..16, got {self.bits}")
        if self.codebook.ndim != 1 or self.codebook.size > (1 << self.bits) - 1:
            raise ValueError(
                f"a {self.bits}-bit codebook holds at most {(1 << self.bits) - 1} entries, "
                f"got shape {self.codebook.shape}"
            )
        if self.codes.size and int(self.codes.max()) > self.codebook.size:
            raise ValueError(
                f"code {int(self.codes.max())} is beyond the codebook of {self.codebook.size}"
            )


def cluster_weights(
    weights: np.ndarray,
    bits: int,
    *,
    init: str = "linear",
    max_iter: int = 1000,
    seed: int = 0,
) -> SharedLayer:
    """Share the weights of one layer: k-means on its nonzero weights (Han et al. §3.1).

    K = 2**bits - 1 centroids (code 0 is reserved for zero), or the number of distinct
    nonzero weights when that is smaller (then the codebook is those values and the layer
    is represented exactly). Clustering runs in float64 by
    :func:`~netshrink.primitives.kmeans.kmeans_1d`; the codebook is then rounded to float32.
    A layer whose weights are all zero gets an empty codebook.
    """
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    weights = np.asarray(weights)
    flat = weights.astype(np.float64).ravel()
    nonzero = flat != 0  # -0.0 is a zero too
    codes = np.zeros(flat.shape, dtype=np.uint16)
    if not nonzero.any():
        return SharedLayer(bits, np.zeros(0, np.float32), codes.reshape(weights.shape), 0.0)
    result = kmeans_1d(flat[nonzero], (1 << bits) - 1, init=init, max_iter=max_iter, seed=seed)
    codes[nonzero] = result.labels.astype(np.uint16) + 1
    return SharedLayer(
        bits,
        result.centroids.astype(np.float32),
        codes.reshape(weights.shape),
        result.inertia,
    )


def decode(codebook: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The float32 weights that ``codes`` stand for: 0 for code 0, ``codebook[s - 1]`` else."""
    table = np.concatenate(([0.0], np.asarray(codebook, dtype=np.float32))).astype(np.float32)
    return table[np.asarray(codes, dtype=np.int64)]


def compression_rate(n: int, k: int, *, bits_float: int = 32) -> float:
    """Compression of weight sharing alone (Han et al. 2016, §3, eq. 1)::

        r = n * b / (n * log2(k) + k * b)

    for n weights of b bits each, shared among k clusters: every weight becomes a log2(k)-bit
    index and the codebook costs k * b bits. The paper's example: 16 weights, 4 clusters,
    32-bit floats give 16 * 32 / (16 * 2 + 4 * 32) = 3.2.
    """
    if n < 1 or k < 1 or bits_float < 1:
        raise ValueError(f"n, k and bits_float must be positive, got {n}, {k}, {bits_float}")
    return n * bits_float / (n * math.log2(k) + k * bits_float)
