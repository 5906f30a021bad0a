"""Pruning masks, checked against a plain sort over (|value|, index) and the std formula."""

import statistics

import numpy as np
import pytest

from netshrink.primitives.masks import magnitude_mask, threshold_mask


def reference_magnitude_mask(values, sparsity, previous=None):
    """Sort (was pruned?, |v|, flat index) ascending in Python and prune the first k."""
    flat = [float(v) for v in np.asarray(values).ravel()]
    kept_before = [True] * len(flat) if previous is None else list(np.asarray(previous).ravel())
    k = round(sparsity * len(flat))
    order = sorted(range(len(flat)), key=lambda i: (kept_before[i], abs(flat[i]), i))
    keep = list(kept_before)
    for i in order[:k]:
        keep[i] = False
    return np.array(keep, dtype=bool).reshape(np.shape(values))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.55, 0.9, 0.999, 1.0])
def test_magnitude_mask_matches_sort_reference_with_ties(seed, sparsity):
    rng = np.random.default_rng(seed)
    shape = [(7,), (5, 6), (3, 2, 4, 3)][seed % 3]
    # Small integers: many equal magnitudes (and +-v pairs), so the tie-break matters.
    values = rng.integers(-3, 4, size=shape).astype(np.float32)
    got = magnitude_mask(values, sparsity)
    assert got.dtype == np.bool_ and got.shape == values.shape
    np.testing.assert_array_equal(got, reference_magnitude_mask(values, sparsity))
    assert got.sum() == values.size - round(sparsity * values.size)


def test_magnitude_mask_keeps_the_largest():
    values = np.array([[0.1, -5.0, 2.0], [-0.3, 0.0, 4.0]])
    np.testing.assert_array_equal(
        magnitude_mask(values, 0.5), [[False, True, True], [False, False, True]]
    )


@pytest.mark.parametrize("seed", range(4))
def test_magnitude_mask_with_previous_mask_counts_pruned_as_smallest(seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(10, 12))
    previous = rng.random((10, 12)) > 0.3  # some large weights were pruned before
    for sparsity in (0.2, 0.5, 0.8):
        got = magnitude_mask(values, sparsity, previous=previous)
        np.testing.assert_array_equal(got, reference_magnitude_mask(values, sparsity, previous))
        assert not (got & ~previous).any()  # nothing revived
        assert got.sum() == min(previous.sum(), values.size - round(sparsity * values.size))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("quality", [0.0, 0.5, 1.0, 2.5])
def test_threshold_mask_matches_std_formula(seed, quality):
    rng = np.random.default_rng(seed)
    values = rng.normal(scale=0.1, size=(4, 3, 5)).astype(np.float32)
    values[0, 0, :2] = 0.0  # zeros count in the std and are always pruned
    std = statistics.pstdev(float(v) for v in values.ravel())
    expected = np.array([abs(float(v)) > quality * std for v in values.ravel()])
    got = threshold_mask(values, quality)
    assert got.shape == values.shape
    np.testing.assert_array_equal(got.ravel(), expected)


@pytest.mark.parametrize("sparsity", [-0.1, 1.5, float("nan"), True])
def test_magnitude_mask_rejects_bad_sparsity(sparsity):
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_mask(np.ones(4), sparsity)


@pytest.mark.parametrize("quality", [-1.0, float("inf"), float("nan")])
def test_threshold_mask_rejects_bad_quality(quality):
    with pytest.raises(ValueError, match="quality"):
        threshold_mask(np.ones(4), quality)


def test_masks_reject_non_finite_values_and_bad_previous():
    with pytest.raises(ValueError, match="NaN"):
        magnitude_mask(np.array([1.0, np.nan]), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        threshold_mask(np.array([1.0, np.inf]), 0.5)
    with pytest.raises(ValueError, match="previous"):
        magnitude_mask(np.ones((2, 2)), 0.5, previous=np.ones(4, dtype=bool))
