"""cluster_weights, decode and compression_rate against NumPy references and the paper."""

import numpy as np
import pytest

from netshrink.primitives.kmeans import kmeans_1d
from netshrink.quantize import SharedLayer, cluster_weights, compression_rate, decode


def pruned_weights(rng, shape, density=0.4):
    weights = rng.normal(0, 0.1, shape).astype(np.float32)
    return np.where(rng.random(shape) < density, weights, np.float32(0))


@pytest.mark.parametrize("bits", [1, 3, 5])
def test_codes_and_codebook_are_kmeans_of_the_nonzero_weights(bits):
    weights = pruned_weights(np.random.default_rng(bits), (16, 8, 3, 3))
    layer = cluster_weights(weights, bits)
    nonzero = weights != 0
    k = 2**bits - 1
    assert layer.bits == bits
    assert layer.codebook.dtype == np.float32 and layer.codebook.shape == (k,)
    assert layer.codes.dtype == np.uint16 and layer.codes.shape == weights.shape
    # Zeros are code 0, and only zeros are.
    np.testing.assert_array_equal(layer.codes == 0, ~nonzero)
    # Same clustering as k-means of the nonzero weights in float64, codebook rounded.
    reference = kmeans_1d(weights[nonzero].astype(np.float64), k)
    np.testing.assert_array_equal(layer.codebook, reference.centroids.astype(np.float32))
    np.testing.assert_array_equal(layer.codes[nonzero], reference.labels.astype(np.uint16) + 1)
    assert layer.inertia == pytest.approx(reference.inertia, rel=1e-12)
    # Independently of kmeans_1d: each centroid is the mean of its members and each nonzero
    # weight sits with its nearest centroid (a converged Lloyd).
    values = weights[nonzero].astype(np.float64)
    codes = layer.codes[nonzero].astype(np.int64)
    for s in range(1, k + 1):
        assert layer.codebook[s - 1] == pytest.approx(values[codes == s].mean(), rel=1e-6)
    distances = np.abs(values[:, None] - layer.codebook[None, :].astype(np.float64))
    chosen = distances[np.arange(values.size), codes - 1]
    np.testing.assert_allclose(chosen, distances.min(axis=1), rtol=0, atol=1e-7)


def test_decode_maps_code_zero_to_zero_and_s_to_codebook_s_minus_one():
    codebook = np.array([-0.5, 0.25, 2.0], dtype=np.float32)
    codes = np.array([[0, 1, 2], [3, 0, 3]], dtype=np.uint16)
    expected = np.array([[0.0, -0.5, 0.25], [2.0, 0.0, 2.0]], dtype=np.float32)
    got = decode(codebook, codes)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_codebook_shrinks_to_the_distinct_nonzero_values():
    weights = np.array([[0.5, 0.0, -0.25], [0.5, 0.125, -0.0]], dtype=np.float32)
    layer = cluster_weights(weights, 8)
    np.testing.assert_array_equal(layer.codebook, [-0.25, 0.125, 0.5])
    np.testing.assert_array_equal(decode(layer.codebook, layer.codes), weights)
    assert layer.inertia == 0.0 and layer.bits == 8


def test_all_zero_layer_gets_an_empty_codebook():
    layer = cluster_weights(np.zeros((3, 4), np.float32), 4)
    assert layer.codebook.shape == (0,)
    assert not layer.codes.any()
    np.testing.assert_array_equal(decode(layer.codebook, layer.codes), np.zeros((3, 4)))


def test_sixteen_bit_codes_fit():
    weights = np.random.default_rng(0).normal(size=70_000).astype(np.float32)
    layer = cluster_weights(weights, 16, max_iter=3)
    assert layer.codebook.size == 2**16 - 1
    assert int(layer.codes.max()) <= 2**16 - 1 and layer.codes.min() >= 1


@pytest.mark.parametrize("bits", [0, 17])
def test_bits_out_of_range_raise(bits):
    with pytest.raises(ValueError, match="bits"):
        cluster_weights(np.ones(4, np.float32), bits)


def test_shared_layer_rejects_codes_beyond_its_codebook():
    with pytest.raises(ValueError, match="beyond the codebook"):
        SharedLayer(2, np.zeros(3, np.float32), np.array([4], np.uint16), 0.0)
    with pytest.raises(ValueError, match="at most 3"):
        SharedLayer(2, np.zeros(4, np.float32), np.array([1], np.uint16), 0.0)


def test_compression_rate_matches_the_papers_example():
    # Han et al. 2016, §3: a 4x4 weight matrix shared among 4 clusters of 32-bit floats.
    assert compression_rate(16, 4) == pytest.approx(16 * 32 / (16 * 2 + 4 * 32))
    assert compression_rate(16, 4) == pytest.approx(3.2)
    # AlexNet-sized fc layer, 5-bit codes: 32 clusters, almost 32 / 5.
    n = 4096 * 4096
    assert compression_rate(n, 32) == pytest.approx(n * 32 / (n * 5 + 32 * 32))
    assert compression_rate(1000, 16, bits_float=16) == pytest.approx(16000 / (4000 + 256))
    with pytest.raises(ValueError):
        compression_rate(0, 4)
