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


def brute_force_lloyd(values, centroids, max_iter):
    """Textbook Lloyd: full (n, k) distance matrix, empty cluster keeps its centroid."""
    centroids = centroids.copy()
    previous = None
    for _ in range(max_iter):
        labels = np.abs(values[:, None] - centroids[None, :]).argmin(axis=1)  # (n,)
        if previous is not None and np.array_equal(labels, previous):
            break
        previous = labels
        new_centroids = centroids.copy()
        for j in range(centroids.size):
            members = values[labels == j]
            if members.size:
                new_centroids[j] = members.mean()
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


# Cases where no cluster goes empty: there sklearn's Lloyd is the same algorithm. (With
# linear init and k >= 32 on normal data, tail clusters start empty; sklearn relocates them
# to far points, whereas Deep Compression's rule here keeps their centroid.)
@pytest.mark.parametrize(
    "init, k",
    [
        ("linear", 4),
        ("linear", 8),
        ("linear", 16),
        ("density", 32),
        ("density", 64),
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
