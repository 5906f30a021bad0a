"""kmeans_1d against a brute-force NumPy Lloyd and against scikit-learn."""

import numpy as np
import pytest
from sklearn.cluster import KMeans

from netshrink.primitives.kmeans import kmeans_1d


def reference_init(values, k, init, seed=0):
    """Initial centroids computed independently of the module under test."""
    if init == "linear":
        return np.linspace(values.min(), values.max(), k)
    if init == "density":
        return np.quantile(values, (np.arange(k) + 0.5) / k)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(np.unique(values), size=k, replace=False))


def brute_force_lloyd(values, centroids, max_iter, relocate=True):
    """Textbook Lloyd: full (n, k) distance matrix, argmin assignment, means.

    Empty clusters (``relocate``): the m distinct values farthest from their own centroid
    (ties: smaller value first) leave their clusters and become the m empty clusters'
    centroids. Without ``relocate`` an empty cluster keeps its centroid.
    """
    centroids = centroids.copy()
    previous = None
    for _ in range(max_iter):
        labels = np.abs(values[:, None] - centroids[None, :]).argmin(axis=1)  # (n,)
        if previous is not None and np.array_equal(labels, previous):
            break
        previous = labels
        empty = np.flatnonzero(np.bincount(labels, minlength=centroids.size) == 0)
        staying = np.ones(values.size, dtype=bool)
        if relocate and empty.size:
            distinct = np.unique(values)
            owner = np.abs(distinct[:, None] - centroids[None, :]).argmin(axis=1)
            distance = np.abs(distinct - centroids[owner])
            far = distinct[np.lexsort((distinct, -distance))[: empty.size]]
            staying = ~np.isin(values, far)
        new_centroids = centroids.copy()
        for j in range(centroids.size):
            members = values[(labels == j) & staying]
            if members.size:
                new_centroids[j] = members.mean()
        if relocate and empty.size:
            new_centroids[empty] = far
            new_centroids.sort()
        moved = np.abs(new_centroids - centroids).max()
        centroids = new_centroids
        if moved == 0:
            break
    labels = np.abs(values[:, None] - centroids[None, :]).argmin(axis=1)
    return centroids, labels


def mixture(rng, n):
    """Laplace-ish weights plus a few outliers: uneven clusters, some empty at init."""
    return np.concatenate([rng.laplace(0, 0.05, n - 20), rng.normal(0, 1, 20)])


@pytest.mark.parametrize("init", ["linear", "density", "random"])
@pytest.mark.parametrize("k", [2, 5, 16, 32])
def test_matches_brute_force_lloyd(init, k):
    rng = np.random.default_rng(k)
    values = mixture(rng, 3000)
    result = kmeans_1d(values, k, init=init, max_iter=100, seed=3)
    centroids, labels = brute_force_lloyd(values, reference_init(values, k, init, seed=3), 100)
    np.testing.assert_allclose(result.centroids, centroids, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(result.labels, labels)


# With tol=0 sklearn's Lloyd is the same algorithm, including the relocation of empty
# clusters to far points (linear init at k >= 32 on normal data starts with empty tails).
@pytest.mark.parametrize(
    "init, k",
    [
        ("linear", 4),
        ("linear", 16),
        ("linear", 32),
        ("linear", 64),
        ("density", 32),
        ("density", 128),
    ],
)
def test_inertia_no_worse_than_sklearn(init, k):
    values = np.random.default_rng(0).normal(size=20_000)
    ours = kmeans_1d(values, k, init=init, max_iter=300)
    assert len(np.unique(ours.labels)) == k
    init = reference_init(values, k, init)
    theirs = KMeans(
        n_clusters=k, init=init.reshape(-1, 1), n_init=1, algorithm="lloyd", tol=0, max_iter=300
    ).fit(values.reshape(-1, 1))
    assert ours.inertia <= theirs.inertia_ * (1 + 1e-9)


def pruned_bimodal(rng, n):
    """Weights left by magnitude pruning: two lobes with a gap around zero, a few outliers."""
    w = rng.normal(0, 0.1, 3 * n)
    return np.concatenate([w[np.abs(w) > 0.08][: n - 10], rng.normal(0, 1.5, 10)])


def heavy_duplicates(rng, n):
    """Few distinct values, each repeated: relocation must move all copies of a value."""
    return np.concatenate([rng.integers(-40, 41, n - 5) / 40.0, [-9.0, -9.0, 7.0, 7.0, 7.0]])


@pytest.mark.parametrize("data", [mixture, pruned_bimodal, heavy_duplicates])
@pytest.mark.parametrize("k", [16, 32, 48])
def test_relocation_matches_brute_force(data, k):
    values = data(np.random.default_rng(10 + k), 2000)
    start = reference_init(values, k, "linear")
    _, kept_labels = brute_force_lloyd(values, start, 500, relocate=False)
    # The test is only meaningful if keeping empty centroids really leaves clusters empty.
    assert len(np.unique(kept_labels)) < k
    result = kmeans_1d(values, k, init="linear", max_iter=500)
    centroids, labels = brute_force_lloyd(values, start, 500)
    np.testing.assert_allclose(result.centroids, centroids, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(result.labels, labels)
    assert np.array_equal(np.unique(result.labels), np.arange(k))


@pytest.mark.parametrize("data", [mixture, pruned_bimodal, heavy_duplicates])
@pytest.mark.parametrize("init", ["linear", "density", "random"])
@pytest.mark.parametrize("k", [32, 64])
def test_no_empty_cluster_at_convergence(data, init, k):
    values = data(np.random.default_rng(k), 3000)
    result = kmeans_1d(values, k, init=init, max_iter=10_000)
    assert result.iterations < 10_000  # converged
    assert np.array_equal(np.unique(result.labels), np.arange(k))
    # A fixed point of Lloyd: each centroid is its cluster's mean, each value is with its
    # nearest centroid.
    means = np.bincount(result.labels, weights=values) / np.bincount(result.labels)
    np.testing.assert_allclose(result.centroids, means, rtol=0, atol=1e-12)
    distances = np.abs(values[:, None] - result.centroids[None, :])  # (n, k)
    np.testing.assert_array_equal(
        distances[np.arange(values.size), result.labels], distances.min(axis=1)
    )


@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_result_is_self_consistent(init):
    values = np.random.default_rng(1).standard_t(3, size=5000)
    result = kmeans_1d(values, 16, init=init)
    assert result.centroids.dtype == np.float64 and result.centroids.shape == (16,)
    assert result.labels.dtype == np.uint8 and result.labels.shape == values.shape
    assert np.all(np.diff(result.centroids) >= 0)
    residuals = values - result.centroids[result.labels]
    assert result.inertia == pytest.approx(np.sum(residuals**2), rel=1e-12)
    for j in np.unique(result.labels):
        assert result.centroids[j] == pytest.approx(values[result.labels == j].mean(), abs=1e-12)
    # Each value sits with its nearest centroid.
    nearest = np.abs(values[:, None] - result.centroids[None, :]).min(axis=1)
    np.testing.assert_allclose(np.abs(residuals), nearest, rtol=0, atol=1e-15)


def test_labels_widen_for_large_k():
    values = np.random.default_rng(2).normal(size=2000)
    assert kmeans_1d(values, 300).labels.dtype == np.uint16


def test_k1_is_the_mean():
    values = np.random.default_rng(3).normal(size=1000)
    result = kmeans_1d(values, 1)
    assert result.centroids[0] == pytest.approx(values.mean(), abs=1e-14)
    assert not result.labels.any()
    assert result.inertia == pytest.approx(np.sum((values - values.mean()) ** 2))


@pytest.mark.parametrize("k", [4, 5, 10])
def test_k_at_least_distinct_values_is_exact(k):
    values = np.array([0.5, -1.0, 0.5, 2.0, 3.25, -1.0, 2.0, 3.25])
    result = kmeans_1d(values, k)
    np.testing.assert_array_equal(result.centroids, [-1.0, 0.5, 2.0, 3.25])
    np.testing.assert_array_equal(result.centroids[result.labels], values)
    assert result.inertia == 0.0


def test_constant_input():
    result = kmeans_1d(np.full(50, 0.7), 8)
    np.testing.assert_array_equal(result.centroids, [0.7])
    assert not result.labels.any() and result.inertia == 0.0


def test_accepts_any_shape_and_float32():
    values = np.random.default_rng(4).normal(size=(8, 3, 5, 5)).astype(np.float32)
    result = kmeans_1d(values, 8)
    assert result.labels.shape == (values.size,)
    flat = values.ravel().astype(np.float64)
    assert result.inertia == pytest.approx(np.sum((flat - result.centroids[result.labels]) ** 2))


@pytest.mark.parametrize(
    "values, k, kwargs, message",
    [
        (np.ones(3), 2, {"init": "kmeans++"}, "unknown init"),
        (np.ones(3), 0, {}, "k must be"),
        (np.ones(3), 2.5, {}, "k must be"),
        (np.array([]), 2, {}, "empty"),
        (np.array([1.0, np.nan]), 2, {}, "non-finite"),
        (np.array([1.0, np.inf]), 2, {}, "non-finite"),
        (np.ones(3), 2, {"max_iter": 0}, "max_iter"),
        (np.ones(3), 2, {"tol": -1.0}, "tol"),
    ],
)
def test_bad_arguments_raise(values, k, kwargs, message):
    with pytest.raises(ValueError, match=message):
        kmeans_1d(values, k, **kwargs)
