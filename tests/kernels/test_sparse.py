"""The sparse codebook kernels against float64 NumPy references and PyTorch's conv2d."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from netshrink.kernels import sparse as sk


def _weight(rng, rows, cols, density, distinct=15):
    """A pruned, weight-shared matrix: ``distinct`` values, ``density`` of them kept."""
    codebook = rng.standard_normal(distinct).astype(np.float32)
    values = codebook[rng.integers(0, distinct, (rows, cols))]
    return np.where(rng.random((rows, cols)) < density, values, 0).astype(np.float32)


def _close(got, want, scale):
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(scale, 1.0))


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_linear_matches_float64(shared, batch, threads):
    rng = np.random.default_rng(batch)
    weight = _weight(rng, 37, 301, 0.2, distinct=15 if shared else 10_000)
    rows = sk.sparse_rows(weight)
    assert (rows.codebook is not None) == shared
    assert rows.nnz == np.count_nonzero(weight)
    x = rng.standard_normal((batch, 301)).astype(np.float32)
    bias = rng.standard_normal(37).astype(np.float32)
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        got = sk.sparse_linear(x, rows, bias, relu=True)
    finally:
        numba.set_num_threads(previous)
    want = np.maximum(x.astype(np.float64) @ weight.T.astype(np.float64) + bias, 0)
    assert got.shape == (batch, 37) and got.dtype == np.float32
    _close(got, want, np.abs(want).max())


def test_rows_round_trip_and_bytes():
    rng = np.random.default_rng(0)
    weight = _weight(rng, 20, 70_000, 0.01)  # columns beyond 16 bits
    rows = sk.sparse_rows(weight)
    assert rows.cols.dtype == np.int32 and rows.codes.dtype == np.uint8
    np.testing.assert_array_equal(sk.to_dense(rows), weight)
    small = sk.sparse_rows(weight[:, :1000])
    assert small.cols.dtype == np.uint16
    nnz = small.nnz
    assert small.nbytes == 8 * 21 + 2 * nnz + nnz + 4 * small.codebook.size
    assert small.density == pytest.approx(nnz / 20_000)


@pytest.mark.parametrize(
    "chans, out_chans, kernel, stride, padding, groups, size",
    [
        (8, 16, (1, 1), (1, 1), (0, 0), 1, (9, 7)),  # the sparse-dense GEMM path
        (8, 16, (1, 1), (2, 2), (0, 0), 1, (9, 7)),  # strided 1x1
        (6, 12, (3, 3), (1, 1), (1, 1), 1, (10, 11)),
        (6, 12, (3, 3), (2, 1), (1, 2), 1, (10, 11)),
        (8, 12, (1, 1), (1, 1), (0, 0), 4, (6, 6)),  # grouped 1x1 (ShuffleNet)
        (8, 8, (3, 3), (2, 2), (1, 1), 8, (9, 9)),  # depthwise (MobileNet)
        (3, 5, (5, 3), (1, 1), (0, 0), 1, (8, 5)),
    ],
)
def test_conv2d_matches_torch_float64(chans, out_chans, kernel, stride, padding, groups, size):
    rng = np.random.default_rng(sum(kernel) + groups)
    weight = _weight(rng, out_chans, chans // groups * kernel[0] * kernel[1], 0.3)
    rows = sk.sparse_rows(weight)
    x = rng.standard_normal((2, chans, *size)).astype(np.float32)
    bias = rng.standard_normal(out_chans).astype(np.float32)
    got = sk.sparse_conv2d(x, rows, chans, kernel, stride, padding, groups, bias, relu=True)
    want = F.conv2d(
        torch.from_numpy(x).double(),
        torch.from_numpy(weight.reshape(out_chans, chans // groups, *kernel)).double(),
        torch.from_numpy(bias).double(), stride, padding, groups=groups,
    ).clamp_min(0).numpy()  # fmt: skip
    assert got.shape == want.shape
    _close(got, want, np.abs(want).max())


def test_empty_rows_and_an_all_zero_matrix():
    weight = np.zeros((5, 9), np.float32)
    weight[2, 3] = 1.5
    x = np.arange(18, dtype=np.float32).reshape(2, 9)
    np.testing.assert_array_equal(sk.sparse_linear(x, sk.sparse_rows(weight)), x @ weight.T)
    zero = sk.sparse_rows(np.zeros((4, 9), np.float32))
    assert zero.nnz == 0
    np.testing.assert_array_equal(sk.sparse_linear(x[:1], zero), np.zeros((1, 4)))


def test_bad_inputs_are_refused_with_the_argument_named():
    rows = sk.sparse_rows(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="x must have 4 features"):
        sk.sparse_linear(np.zeros((1, 5), np.float32), rows)
    with pytest.raises(ValueError, match="x must be float32"):
        sk.sparse_linear(np.zeros((1, 4)), rows)
    with pytest.raises(ValueError, match="bias must have shape"):
        sk.sparse_linear(np.zeros((1, 4), np.float32), rows, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="cols must be below 4"):
        sk.SparseRows((4, 4), rows.indptr, rows.cols + 1, rows.codes, rows.codebook)
    with pytest.raises(ValueError, match="indptr must rise"):
        sk.SparseRows((4, 4), rows.indptr[::-1].copy(), rows.cols, rows.codes, rows.codebook)
    with pytest.raises(ValueError, match="codes must be below"):
        sk.SparseRows((4, 4), rows.indptr, rows.cols, rows.codes + 5, rows.codebook)
    with pytest.raises(ValueError, match="positions must rise strictly"):
        sk.sparse_rows_from_positions((2, 2), np.array([3, 1]), np.zeros(2), None)
    with pytest.raises(ValueError, match="does not fit"):
        sk.sparse_conv2d(np.zeros((1, 4, 2, 2), np.float32), sk.sparse_rows(
            np.ones((2, 36), np.float32)), 4, (3, 3))  # fmt: skip
    with pytest.raises(ValueError, match="not in the codebook"):
        sk.sparse_rows(np.eye(3, dtype=np.float32) * 2, codebook=np.ones(1, np.float32))


def test_a_large_layer_at_batch_one_takes_the_parallel_path_and_matches():
    rng = np.random.default_rng(7)
    weight = _weight(rng, 700, 900, 0.1)
    rows = sk.sparse_rows(weight)
    assert rows.nnz >= sk.SERIAL_NNZ  # above the serial cut: prange over balanced chunks
    x = rng.standard_normal((1, 900)).astype(np.float32)
    previous = numba.get_num_threads()
    sk.set_threads(2)
    try:
        got = sk.sparse_linear(x, rows)
    finally:
        numba.set_num_threads(previous)
    want = x.astype(np.float64) @ weight.astype(np.float64).T
    _close(got, want, np.abs(want).max())


def test_transpose_round_trips_and_keeps_the_codebook():
    rng = np.random.default_rng(3)
    weight = _weight(rng, 13, 40, 0.3)
    rows = sk.sparse_rows(weight)
    flipped = sk.transpose(rows)
    assert flipped.shape == (40, 13) and flipped.codebook is rows.codebook
    np.testing.assert_array_equal(sk.to_dense(flipped), weight.T)
    np.testing.assert_array_equal(sk.to_dense(sk.transpose(flipped)), weight)


def _mlp_float64(x, weights, biases, relus):
    out = x.astype(np.float64)
    for weight, bias, relu in zip(weights, biases, relus, strict=True):
        out = out @ weight.astype(np.float64).T + (0 if bias is None else bias)
        out = np.maximum(out, 0) if relu else out
    return out


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("zeros", [0.0, 0.8])
def test_chain_matches_a_float64_mlp(shared, zeros):
    rng = np.random.default_rng(int(zeros * 10) + shared)
    weights = [_weight(rng, 50, 80, 0.2), _weight(rng, 30, 50, 0.3), _weight(rng, 7, 30, 0.5)]
    most = sk.MAX_CODEBOOK if shared else 0  # 0: float32 values, no codebook
    biases = [rng.standard_normal(50).astype(np.float32), None,
              rng.standard_normal(7).astype(np.float32)]  # fmt: skip
    relus = (True, True, False)
    layers = tuple(sk.sparse_rows(w, max_codebook=most) for w in weights)
    chain = sk.SparseChain(layers, tuple(biases), relus)
    assert chain.shape == (7, 80) and (chain.books is not None) == shared
    x = rng.standard_normal((1, 80)).astype(np.float32)
    x[0, rng.random(80) < zeros] = 0.0  # EIE skips the zero inputs: same result
    want = _mlp_float64(x, weights, biases, relus)
    got = sk.sparse_chain(x, chain)
    _close(got, want, np.abs(want).max())
    _close(sk.sparse_chain(x[0], chain), want, np.abs(want).max())  # a 1-D vector too
    _close(sk.sparse_chain(x, chain), got, 0.0)  # its buffer reused: the same again


def test_bad_chains_and_chain_inputs_are_refused():
    rng = np.random.default_rng(0)
    a, b = sk.sparse_rows(_weight(rng, 5, 8, 0.5)), sk.sparse_rows(_weight(rng, 3, 6, 0.5))
    with pytest.raises(ValueError, match=r"a \(3, 6\) layer cannot follow a \(5, 8\) one"):
        sk.SparseChain((a, b), (None, None), (True, False))
    with pytest.raises(ValueError, match="one bias .or None. and one ReLU flag per layer"):
        sk.SparseChain((a,), (None, None), (True,))
    values = sk.sparse_rows(_weight(rng, 3, 5, 0.5), max_codebook=0)
    with pytest.raises(ValueError, match="all hold codebook indices or all values"):
        sk.SparseChain((a, values), (None, None), (True, False))
    chain = sk.SparseChain((a,), (None,), (False,))
    with pytest.raises(ValueError, match="one vector of 8 features"):
        sk.sparse_chain(np.zeros((2, 8), np.float32), chain)
    with pytest.raises(ValueError, match="x must be float32"):
        sk.sparse_chain(np.zeros((1, 8), np.float64), chain)
