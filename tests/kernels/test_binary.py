"""The packed XNOR kernels against independent references: a bit-by-bit packer, NumPy ±1
integer matmuls, and torch's conv2d / linear on the ±1 tensors (float64 for the dots, the
float32 expression of the float simulation for the scaled outputs)."""

import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from netshrink.kernels.binary import (
    binary_conv2d,
    binary_conv2d_counts,
    binary_gemm,
    binary_linear,
    max_pool2d,
    pack_conv_weight,
    pack_rows,
    words,
)


def signs(x: np.ndarray) -> np.ndarray:
    """+1 where x >= 0, -1 elsewhere (NaN included), as int64."""
    return np.where(x >= 0, 1, -1)


def torch_signs(x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    t = torch.from_numpy(x)
    return torch.where(t >= 0, 1.0, -1.0).to(dtype)


def reference_pack(x: np.ndarray) -> np.ndarray:
    """Bit k % 64 of word k // 64 set iff element k is negative (or NaN), one bit at a time."""
    out = np.zeros((x.shape[0], words(x.shape[1])), np.uint64)
    for i, row in enumerate(x):
        for k, v in enumerate(row):
            if not v >= 0:
                out[i, k // 64] |= np.uint64(1) << np.uint64(k % 64)
    return out


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise float32 equality (tells -0.0 from 0.0)."""
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    previous = numba.get_num_threads()
    numba.set_num_threads(min(request.param, numba.config.NUMBA_NUM_THREADS))
    yield request.param
    numba.set_num_threads(previous)


# --- pack_rows and binary_gemm ----------------------------------------------------------


@pytest.mark.parametrize("length", [1, 63, 64, 65, 200])
def test_pack_rows_matches_a_bit_by_bit_packer(length):
    rng = np.random.default_rng(length)
    x = rng.standard_normal((5, length)).astype(np.float32)
    x[0, :] = 0.0
    x[1, :] = -0.0
    x[2, ::3] = np.nan
    packed = pack_rows(x)
    assert packed.dtype == np.uint64 and packed.shape == (5, words(length))
    assert np.array_equal(packed, reference_pack(x))
    assert not packed[0].any() and not packed[1].any()  # 0.0 and -0.0 are +1


@pytest.mark.parametrize("length", [1, 63, 64, 65, 200])
def test_binary_gemm_matches_a_numpy_integer_matmul(length, threads):
    rng = np.random.default_rng(length)
    for m, n in [(1, 1), (1, 9), (3, 2), (7, 5), (13, 30)]:
        a = rng.standard_normal((m, length)).astype(np.float32)
        b = rng.standard_normal((n, length)).astype(np.float32)
        a[0, 0], b[0, -1] = np.nan, -0.0
        got = binary_gemm(pack_rows(a), pack_rows(b), length)
        assert got.dtype == np.int32
        assert np.array_equal(got, signs(a) @ signs(b).T)


def test_binary_gemm_extremes():
    k = 65
    plus, minus = np.ones((6, k), np.float32), -np.ones((3, k), np.float32)
    zeros, negative_zeros = np.zeros((2, k), np.float32), np.full((2, k), -0.0, np.float32)
    nans = np.full((2, k), np.nan, np.float32)
    assert (binary_gemm(pack_rows(plus), pack_rows(plus), k) == k).all()
    assert (binary_gemm(pack_rows(plus), pack_rows(minus), k) == -k).all()
    assert (binary_gemm(pack_rows(zeros), pack_rows(negative_zeros), k) == k).all()
    assert (binary_gemm(pack_rows(nans), pack_rows(minus), k) == k).all()


# --- convolution ------------------------------------------------------------------------


def conv_case(seed, n_img, chans, out_chans, size, kernel):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_img, chans, *size)).astype(np.float32)
    x.flat[::7] = 0.0  # zeros are +1 ...
    x.flat[3::11] = -0.0  # ... so are negative zeros ...
    x.flat[5::13] = np.nan  # ... and NaN is -1
    weight = rng.standard_normal((out_chans, chans, kernel, kernel)).astype(np.float32)
    return x, weight


@pytest.mark.parametrize("chans", [1, 3, 20, 64, 65, 130])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_conv_counts_match_torch_conv2d_exactly(chans, kernel, threads):
    for n_img, out_chans, size in [(1, 5, (9, 7)), (3, 2, (6, 11)), (1, 1, (5, 5))]:
        x, weight = conv_case(chans * kernel, n_img, chans, out_chans, size, kernel)
        weight_bits = pack_conv_weight(weight)
        for stride in (1, 2):
            for padding in (0, 1, 2):
                if min(size) + 2 * padding < kernel:
                    continue
                got = binary_conv2d_counts(
                    x, weight_bits, chans, (kernel, kernel), (stride, stride), (padding, padding)
                )
                expected = F.conv2d(
                    torch_signs(x, torch.float64),
                    torch_signs(weight, torch.float64),
                    None,
                    stride,
                    padding,
                )
                assert got.dtype == np.int32 and got.flags.c_contiguous
                assert np.array_equal(got, expected.numpy()), (size, stride, padding)


def test_conv_counts_with_unequal_strides_and_paddings():
    x, weight = conv_case(0, 2, 70, 3, (10, 9), 3)
    weight = np.concatenate([weight, weight[:, :, :1]], axis=2)  # a 4x3 kernel
    got = binary_conv2d_counts(x, pack_conv_weight(weight), 70, (4, 3), (2, 1), (2, 0))
    expected = F.conv2d(
        torch_signs(x, torch.float64), torch_signs(weight, torch.float64), None, (2, 1), (2, 0)
    )
    assert np.array_equal(got, expected.numpy())


def torch_binary_conv(x, weight, stride, padding, alpha, scale, bias):
    """The float simulation's float32 expression, on the ±1 tensors."""
    out = F.conv2d(
        torch_signs(x, torch.float32), torch_signs(weight, torch.float32), None, stride, padding
    )
    out = out * torch.from_numpy(alpha).view(1, -1, 1, 1)
    if scale is not None:
        out = out * torch.from_numpy(scale).unsqueeze(1)
    if bias is not None:
        out = out + torch.from_numpy(bias).view(1, -1, 1, 1)
    return out.numpy()


@pytest.mark.parametrize("with_scale", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_output_is_bit_identical_to_the_torch_float32_expression(
    with_scale, with_bias, threads
):
    rng = np.random.default_rng(1)
    for chans, out_chans, kernel, stride, padding in [
        (64, 17, 3, 1, 1),
        (20, 6, 5, 2, 2),
        (130, 4, 1, 1, 0),
    ]:
        x, weight = conv_case(chans, 3, chans, out_chans, (8, 10), kernel)
        alpha = rng.random(out_chans).astype(np.float32)
        alpha[0] = -alpha[0]  # a negative scale makes -0.0 outputs: bias=None must keep them
        out_h = (8 + 2 * padding - kernel) // stride + 1
        out_w = (10 + 2 * padding - kernel) // stride + 1
        scale = rng.random((3, out_h, out_w)).astype(np.float32) if with_scale else None
        bias = rng.standard_normal(out_chans).astype(np.float32) if with_bias else None
        got = binary_conv2d(
            x,
            pack_conv_weight(weight),
            chans,
            (kernel, kernel),
            (stride, stride),
            (padding, padding),
            alpha,
            scale,
            bias,
        )
        expected = torch_binary_conv(x, weight, stride, padding, alpha, scale, bias)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        assert same_bits(got, expected)


# --- linear -----------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 2, 5, 6, 13])
@pytest.mark.parametrize("features", [1, 64, 65, 200])
def test_linear_output_is_bit_identical_to_the_torch_float32_expression(batch, features, threads):
    rng = np.random.default_rng(batch * features)
    for out_features in (1, 7, 33):
        x = rng.standard_normal((batch, features)).astype(np.float32)
        x[0, 0] = np.nan
        weight = rng.standard_normal((out_features, features)).astype(np.float32)
        alpha = rng.random(out_features).astype(np.float32) - 0.3
        scale = rng.random(batch).astype(np.float32)
        bias = rng.standard_normal(out_features).astype(np.float32)
        dots = F.linear(torch_signs(x, torch.float32), torch_signs(weight, torch.float32))
        scaled = dots * torch.from_numpy(alpha)
        weight_bits = pack_rows(weight)

        got = binary_linear(x, weight_bits, features, alpha, scale, bias)
        expected = (scaled * torch.from_numpy(scale).unsqueeze(1)) + torch.from_numpy(bias)
        assert same_bits(got, expected.numpy())
        assert same_bits(binary_linear(x, weight_bits, features, alpha), scaled.numpy())


# --- bad input --------------------------------------------------------------------------


def test_strided_input_is_copied_not_misread():
    x, weight = conv_case(2, 2, 8, 3, (6, 6), 3)
    strided = np.asfortranarray(x)
    wide = np.zeros((2, 16, 6, 6), np.float32)
    wide[:, ::2] = x
    args = (pack_conv_weight(weight), 8, (3, 3), (1, 1), (1, 1))
    expected = binary_conv2d_counts(x, *args)
    assert np.array_equal(binary_conv2d_counts(strided, *args), expected)
    assert np.array_equal(binary_conv2d_counts(wide[:, ::2], *args), expected)


def test_bad_input_is_rejected_with_a_clear_message():
    x, weight = conv_case(3, 1, 8, 3, (6, 6), 3)
    bits = pack_conv_weight(weight)
    alpha = np.ones(3, np.float32)
    conv_args = ((3, 3), (1, 1), (1, 1))
    with pytest.raises(ValueError, match="x must be float32, got float64"):
        binary_conv2d_counts(x.astype(np.float64), bits, 8, *conv_args)
    with pytest.raises(ValueError, match="x has 8 channels, the layer takes 9"):
        binary_conv2d_counts(x, bits, 9, *conv_args)
    with pytest.raises(ValueError, match="x must have 4 dimensions"):
        binary_conv2d_counts(x[0], bits, 8, *conv_args)
    with pytest.raises(ValueError, match="weight_bits must have shape"):
        binary_conv2d_counts(x, bits, 8, (1, 1), (1, 1), (1, 1))
    with pytest.raises(ValueError, match="weight_bits must be uint64"):
        binary_conv2d_counts(x, bits.astype(np.int64), 8, *conv_args)
    with pytest.raises(ValueError, match="padding bits"):
        binary_conv2d_counts(x, bits | np.uint64(1 << 9), 8, *conv_args)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        binary_conv2d_counts(x, bits, 8, (3, 3), (0, 1), (1, 1))
    with pytest.raises(ValueError, match="kernel_size must be a tuple of two ints"):
        binary_conv2d_counts(x, bits, 8, 3, (1, 1), (1, 1))
    with pytest.raises(ValueError, match="smaller than the"):
        binary_conv2d_counts(x[:, :, :2, :2], bits, 8, (3, 3), (1, 1), (0, 0))
    with pytest.raises(ValueError, match=r"alpha must have shape \(3,\)"):
        binary_conv2d(x, bits, 8, *conv_args, np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"input_scale must have shape \(1, 6, 6\)"):
        binary_conv2d(x, bits, 8, *conv_args, alpha, np.ones((1, 5, 6), np.float32))
    with pytest.raises(ValueError, match="bias must be float32"):
        binary_conv2d(x, bits, 8, *conv_args, alpha, None, np.ones(3))
    with pytest.raises(ValueError, match="must be a numpy array"):
        binary_conv2d(torch.from_numpy(x), bits, 8, *conv_args, alpha)

    a = pack_rows(np.ones((2, 70), np.float32))
    with pytest.raises(ValueError, match="does not fit 2 words"):
        binary_gemm(a, a, 200)
    with pytest.raises(ValueError, match="as many words per row"):
        binary_gemm(a, a[:, :1], 70)
    huge = np.zeros((1, words(1 << 24)), np.uint64)
    with pytest.raises(ValueError, match="not exact in float32"):
        binary_gemm(huge, huge, 1 << 24)
    with pytest.raises(ValueError, match="x has 70 features, the layer takes 64"):
        binary_linear(np.ones((1, 70), np.float32), a, 64, np.ones(2, np.float32))
    with pytest.raises(ValueError, match="128 features need 2"):
        binary_linear(np.ones((1, 128), np.float32), a[:, :1], 128, np.ones(2, np.float32))
    with pytest.raises(ValueError, match="x must be float32"):
        pack_rows(np.ones((2, 3), np.float16))


# --- max_pool2d ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "kernel", "stride"),
    [((1, 64, 28, 28), (2, 2), (2, 2)), ((2, 5, 7, 9), (2, 2), (2, 2)),
     ((3, 4, 9, 8), (3, 3), (2, 2)), ((1, 3, 6, 7), (2, 3), (1, 2))],
)  # fmt: skip
def test_max_pool_is_torch_max_pool2d_to_the_bit(shape, kernel, stride, threads):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(np.float32)
    x.reshape(-1)[::5] = 0.0
    x.reshape(-1)[1::7] = -0.0  # ties of -0.0 and 0.0: the first in the window is kept
    x.reshape(-1)[2::11] = -np.inf
    expected = F.max_pool2d(torch.from_numpy(x), kernel, stride).numpy()
    assert same_bits(max_pool2d(x, kernel, stride), expected)


def test_max_pool_nan_and_infinite_windows():
    x = np.full((1, 1, 4, 4), -np.inf, np.float32)
    x[0, 0, 0, 1] = np.nan  # a NaN after a larger value still wins, as in torch
    x[0, 0, 0, 0] = 5.0
    x[0, 0, 3, 3] = -0.0
    x[0, 0, 2, 2] = 0.0
    got = max_pool2d(x, (2, 2), (2, 2))
    expected = F.max_pool2d(torch.from_numpy(x), 2).numpy()
    assert np.isnan(got[0, 0, 0, 0]) and np.isnan(expected[0, 0, 0, 0])
    assert same_bits(got[..., 1:, :], expected[..., 1:, :])
    assert same_bits(got[..., 0, 1:], expected[..., 0, 1:])


def test_max_pool_rejects_bad_input():
    x = np.zeros((1, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="smaller than the"):
        max_pool2d(x, (4, 4), (1, 1))
    with pytest.raises(ValueError, match="x must be float32"):
        max_pool2d(x.astype(np.float64), (2, 2), (2, 2))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        max_pool2d(x, (2, 2), (0, 2))
