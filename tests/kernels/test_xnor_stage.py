"""XNOR stages (prologue, K, popcount layer, pool in one call) against NumPy references."""

import numba
import numpy as np
import pytest
import torch

from netshrink.binarize.functions import input_scale_conv2d, input_scale_linear
from netshrink.kernels.binary import pack_conv_weight, pack_rows
from netshrink.kernels.xnor_stage import (
    Prologue,
    XnorConvStage,
    XnorLinearStage,
    batch_norm_terms,
)


def batch_norm(chans, seed, dims):
    """A BatchNorm in eval mode with statistics and affine terms that are not the identity."""
    torch.manual_seed(seed)
    bn = (torch.nn.BatchNorm2d if dims == 4 else torch.nn.BatchNorm1d)(chans).eval()
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.1, 3.0)
        bn.weight.normal_()
        bn.bias.normal_()
    return bn


def terms(bn):
    as_np = lambda t: t.detach().numpy()  # noqa: E731
    return batch_norm_terms(
        as_np(bn.running_mean), as_np(bn.running_var), as_np(bn.weight), as_np(bn.bias), bn.eps
    )


def signs(v):
    return np.where(v >= 0, 1, -1).astype(np.int64)  # NaN → -1, -0.0 → +1


def conv_dots(y, weight, padding):
    """Integer dots of sign(y) (zero padded) with sign(weight), stride 1, by im2col."""
    n_img, chans, height, width = y.shape
    n_out, _, kh, kw = weight.shape
    ph, pw = padding
    s = np.zeros((n_img, chans, height + 2 * ph, width + 2 * pw), np.int64)
    s[:, :, ph : ph + height, pw : pw + width] = signs(y)
    out_h, out_w = height + 2 * ph - kh + 1, width + 2 * pw - kw + 1
    dots = np.zeros((n_img, n_out, out_h, out_w), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = s[:, :, ky : ky + out_h, kx : kx + out_w]
            dots += np.einsum("nchw,oc->nohw", patch, signs(weight[:, :, ky, kx]))
    return dots


def box_scale(y, kernel, padding):
    """XNOR-Net's K in float64: mean_c |y| box-filtered, zero padded, stride 1."""
    a = np.abs(y.astype(np.float64)).mean(1)  # (N, H, W)
    a = np.pad(a, ((0, 0), (padding, padding), (padding, padding)))
    out_h, out_w = a.shape[1] - kernel + 1, a.shape[2] - kernel + 1
    k = np.zeros((y.shape[0], out_h, out_w))
    for ky in range(kernel):
        for kx in range(kernel):
            k += a[:, ky : ky + out_h, kx : kx + out_w]
    return k / kernel**2


def max_pool_2x2(v):
    n, c, h, w = v.shape
    v = v[:, :, : h // 2 * 2, : w // 2 * 2]
    return v.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def test_batch_norm_terms_give_torch_batch_norm_to_the_bit():
    for chans, shape in [(64, (2, 64, 14, 14)), (800, (3, 800)), (5, (1, 5, 3, 7))]:
        bn = batch_norm(chans, chans, len(shape))
        x = torch.randn(*shape) * 3
        with torch.no_grad():
            want = bn(x).numpy()
        got = _prologue_output(x.numpy(), *terms(bn))
        assert np.array_equal(got, want), np.abs(got - want).max()


def _prologue_output(x, scale, shift):
    """y of the compiled prologue (its first output) for an (N, C, ...) input."""
    from netshrink.kernels.xnor_stage import _prologue, _tree_rows

    flat = np.ascontiguousarray(x.reshape(x.shape[0], x.shape[1], -1))
    y = np.empty_like(flat)
    abs_sum = np.empty((x.shape[0], flat.shape[2]), np.float32)
    tree = np.zeros((_tree_rows(x.shape[1]), flat.shape[2]), np.float32)
    lo, hi = np.float32(-np.inf), np.float32(np.inf)
    _prologue(flat, scale, shift, lo, hi, True, False, tree, y, abs_sum)
    assert np.allclose(abs_sum, np.abs(y.astype(np.float64)).sum(1), rtol=1e-5)
    return y.reshape(x.shape)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    ("chans", "n_out", "kernel", "padding", "size"),
    [(64, 128, 3, 1, 14), (20, 50, 5, 0, 12), (3, 7, 3, 1, 9), (70, 3, 1, 0, 5)],
)
def test_conv_stage_against_numpy(chans, n_out, kernel, padding, size, threads):
    numba.set_num_threads(threads)
    try:
        rng = np.random.default_rng(chans + kernel)
        bn = batch_norm(chans, chans, 4)
        x = (rng.standard_normal((2, chans, size, size)) * 2).astype(np.float32)
        weight = rng.standard_normal((n_out, chans, kernel, kernel)).astype(np.float32)
        alpha = np.abs(weight).mean((1, 2, 3)).astype(np.float32)
        bias = rng.standard_normal(n_out).astype(np.float32)
        with torch.no_grad():  # the float simulation's BatchNorm and Hardtanh
            y = torch.nn.functional.hardtanh(bn(torch.from_numpy(x))).numpy()
        dots = conv_dots(y, weight, (padding, padding))
        scale, shift = terms(bn)
        for input_scale in (False, True):
            stage = XnorConvStage(
                Prologue(chans, scale, shift, (-1.0, 1.0)), pack_conv_weight(weight), chans,
                (kernel, kernel), (1, 1), (padding, padding), alpha, bias, input_scale,
                ((2, 2), (2, 2)),
            )  # fmt: skip
            got = stage(x)
            if input_scale:
                # K in float64 from the formula: the stage's float32 K to rounding
                k = box_scale(y, kernel, padding)[:, None]
                want = max_pool_2x2(dots * alpha[None, :, None, None] * k + bias[:, None, None])
                np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
                # and the float simulation's float32 K and expression, to the bit
                k = input_scale_conv2d(torch.from_numpy(y), (kernel,) * 2, (1, 1), (padding,) * 2)
                v = dots.astype(np.float32) * alpha[None, :, None, None] * k.numpy()[:, None]
                assert np.array_equal(got, max_pool_2x2(v + bias[:, None, None]))
            else:  # no K: the float simulation's float32 expression, to the bit
                v = dots.astype(np.float32) * alpha[None, :, None, None] + bias[:, None, None]
                assert np.array_equal(got, max_pool_2x2(v))
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


@pytest.mark.parametrize(("batch", "features"), [(1, 800), (3, 64), (7, 2304), (2, 5)])
def test_linear_stage_against_numpy(batch, features):
    rng = np.random.default_rng(features)
    bn = batch_norm(features, features, 2)
    x = (rng.standard_normal((batch, features)) * 2).astype(np.float32)
    weight = rng.standard_normal((33, features)).astype(np.float32)
    alpha = np.abs(weight).mean(1).astype(np.float32)
    bias = rng.standard_normal(33).astype(np.float32)
    with torch.no_grad():
        y = torch.nn.functional.hardtanh(bn(torch.from_numpy(x)), -0.5, 2.0).numpy()
    dots = signs(y) @ signs(weight).T
    scale, shift = terms(bn)
    for input_scale in (False, True):
        stage = XnorLinearStage(
            Prologue(features, scale, shift, (-0.5, 2.0)), pack_rows(weight), features, alpha,
            bias, input_scale,
        )  # fmt: skip
        got = stage(x)
        if input_scale:
            k = np.abs(y.astype(np.float64)).mean(1, keepdims=True)
            np.testing.assert_allclose(got, dots * alpha * k + bias, rtol=2e-5, atol=2e-5)
            k = input_scale_linear(torch.from_numpy(y)).numpy()[:, None]  # the simulation's
            assert np.array_equal(got, dots.astype(np.float32) * alpha * k + bias)
        else:
            assert np.array_equal(got, dots.astype(np.float32) * alpha + bias)


def test_stage_without_prologue_signs_the_raw_input():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 6, 5, 5)).astype(np.float32)
    x[0, 0, 0, 0], x[0, 1, 1, 1] = -0.0, np.nan  # -0.0 → +1, NaN → -1
    weight = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
    alpha = np.ones(4, np.float32)
    stage = XnorConvStage(Prologue(6), pack_conv_weight(weight), 6, (3, 3), (1, 1), (1, 1),
                          alpha, None, False)  # fmt: skip
    assert np.array_equal(stage(x), conv_dots(x, weight, (1, 1)).astype(np.float32))


def test_bad_input_is_rejected_with_a_clear_message():
    weight = pack_conv_weight(np.ones((4, 6, 3, 3), np.float32))
    alpha = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="scale and shift come together"):
        Prologue(6, np.ones(6, np.float32))
    with pytest.raises(ValueError, match="lo <= hi"):
        Prologue(6, clamp=(1.0, -1.0))
    with pytest.raises(ValueError, match="prologue has 5 channels"):
        XnorConvStage(Prologue(5, np.ones(5, np.float32), np.zeros(5, np.float32)), weight, 6,
                      (3, 3), (1, 1), (1, 1), alpha, None, True)  # fmt: skip
    with pytest.raises(ValueError, match="weight_bits must have shape"):
        XnorConvStage(Prologue(6), weight, 6, (5, 5), (1, 1), (1, 1), alpha, None, True)
    stage = XnorConvStage(Prologue(6), weight, 6, (3, 3), (1, 1), (0, 0), alpha, None, True,
                          ((2, 2), (2, 2)))  # fmt: skip
    with pytest.raises(ValueError, match="x has 5 channels"):
        stage(np.ones((1, 5, 8, 8), np.float32))
    with pytest.raises(ValueError, match="must be float32"):
        stage(np.ones((1, 6, 8, 8)))
    with pytest.raises(ValueError, match="smaller than the"):
        stage(np.ones((1, 6, 2, 2), np.float32))
    with pytest.raises(ValueError, match="smaller than the"):
        stage(np.ones((1, 6, 3, 3), np.float32))  # a 1x1 map for a 2x2 pool
    linear = XnorLinearStage(Prologue(10), pack_rows(np.ones((3, 10), np.float32)), 10,
                             np.ones(3, np.float32), None, True)  # fmt: skip
    with pytest.raises(ValueError, match="x has 9 features"):
        linear(np.ones((2, 9), np.float32))
