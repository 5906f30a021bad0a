"""BWN / XNOR layers against float64 references written from the paper's formulas."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netshrink as ns
from netshrink.binarize import (
    BinarizeConfig,
    BinaryConv2d,
    BinaryLinear,
    binarize_,
    binary_layers,
    binary_sign,
    input_scale_conv2d,
    is_binary,
    pairwise_sum,
    sign,
)
from netshrink.errors import NetshrinkError
from netshrink.runs.recipe import parse_recipe


def np_sign(a):
    return np.where(a >= 0, 1.0, -1.0)  # NaN >= 0 is False -> -1


def test_sign_convention_zero_and_nan():
    x = torch.tensor([-2.0, -0.0, 0.0, 1e-30, -1e-30, float("nan"), float("inf")])
    assert sign(x).tolist() == [-1, 1, 1, 1, -1, -1, 1]


def test_straight_through_estimator_cancels_beyond_clip():
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.7, 1.0, 1.5], requires_grad=True)
    g = torch.arange(1.0, 8.0)
    binary_sign(x).backward(g)
    expected = np.where(np.abs(x.detach().numpy()) <= 1, g.numpy(), 0.0)
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    x.grad = None
    binary_sign(x, clip=0.6).backward(g)
    kept = np.abs(x.detach().numpy()) <= 0.6
    np.testing.assert_array_equal(x.grad.numpy(), np.where(kept, g.numpy(), 0))


def np_input_scale(x, k, stride, pad):
    """K of XNOR-Net §3.2 in float64 loops: box-filtered mean |x| over channels."""
    n, _, h, w = x.shape
    a = np.abs(x).mean(1)
    a = np.pad(a, ((0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.zeros((n, ho, wo))
    for y in range(ho):
        for z in range(wo):
            window = a[:, y * stride : y * stride + k, z * stride : z * stride + k]
            out[:, y, z] = window.sum((1, 2))
    return out / (k * k)


@pytest.mark.parametrize("k,stride,pad", [(3, 1, 1), (5, 1, 0), (3, 2, 1), (1, 1, 0)])
def test_input_scale_matches_loops(k, stride, pad):
    x = torch.randn(2, 5, 9, 8, dtype=torch.float64)
    got = input_scale_conv2d(x, (k, k), (stride, stride), (pad, pad))
    np.testing.assert_allclose(got.numpy(), np_input_scale(x.numpy(), k, stride, pad), rtol=1e-12)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation"),
    [((4, 3), (1, 1), "same", (1, 1)), ((3, 3), (1, 1), "same", (2, 1)),
     ((3, 2), (2, 1), "valid", (1, 1)), ((3, 3), (2, 2), (2, 1), (1, 2))],
)  # fmt: skip
def test_input_scale_matches_a_box_convolution(kernel, stride, padding, dilation):
    """K's fixed summation order against its definition: mean_c |x| ⊛ box, in float64."""
    x = torch.randn(2, 7, 11, 10, dtype=torch.float64)
    got = input_scale_conv2d(x, kernel, stride, padding, dilation)
    box = torch.full((1, 1, *kernel), 1 / (kernel[0] * kernel[1]), dtype=torch.float64)
    a = x.abs().mean(1, keepdim=True)
    want = F.conv2d(a, box, None, stride, padding, dilation).squeeze(1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_pairwise_sum_is_the_sum_in_a_fixed_order():
    for n in (1, 2, 5, 64, 100):
        x = torch.rand(3, n, 4, dtype=torch.float64)
        torch.testing.assert_close(pairwise_sum(x, 1), x.sum(1, keepdim=True))
    half_ulp = 2.0**-24  # of 1.0 in float32: 1 + half_ulp rounds to 1 (ties to even)
    # padded to [a, b, c, 0]: (a + c) + (b + 0), element i paired with i + 2
    assert pairwise_sum(torch.tensor([1.0, half_ulp, half_ulp]), 0).item() == 1.0
    assert pairwise_sum(torch.tensor([half_ulp, 1.0, half_ulp]), 0).item() == 1 + 2 * half_ulp


def reference_conv(x, weight, bias, mode, stride, pad, input_scale=True):
    """The binary conv in float64 from the formulas: W ≈ α·sign(W), I ≈ K·sign(I)."""
    x, weight = x.double(), weight.double()
    alpha = weight.abs().mean((1, 2, 3))
    wb = torch.from_numpy(np_sign(weight.numpy())) * alpha.view(-1, 1, 1, 1)
    if mode == "bwn":
        return F.conv2d(x, wb, bias.double(), stride, pad)
    k = weight.shape[-1]
    scale = torch.from_numpy(np_input_scale(x.numpy(), k, stride, pad)) if input_scale else 1.0
    xb = torch.from_numpy(np_sign(x.numpy()))
    out = F.conv2d(xb, wb, None, stride, pad)
    if input_scale:
        out = out * scale.unsqueeze(1)
    return out + bias.double().view(1, -1, 1, 1)


@pytest.mark.parametrize("mode", ["bwn", "xnor"])
@pytest.mark.parametrize("stride,pad", [(1, 1), (2, 0)])
def test_binary_conv_matches_float64_reference(mode, stride, pad):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 4, 3, stride=stride, padding=pad)
    layer = BinaryConv2d.from_float(conv, mode)
    x = torch.randn(2, 6, 10, 9)
    expected = reference_conv(x, conv.weight.detach(), conv.bias.detach(), mode, stride, pad)
    np.testing.assert_allclose(layer(x).detach().double(), expected, rtol=1e-5, atol=1e-5)


def test_xnor_without_input_scale():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 5, 3, padding=1)
    layer = BinaryConv2d.from_float(conv, "xnor", input_scale=False)
    x = torch.randn(1, 3, 7, 7)
    expected = reference_conv(x, conv.weight.detach(), conv.bias.detach(), "xnor", 1, 1, False)
    np.testing.assert_allclose(layer(x).detach().double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["bwn", "xnor"])
def test_binary_linear_matches_float64_reference(mode):
    torch.manual_seed(2)
    fc = nn.Linear(33, 7)
    layer = BinaryLinear.from_float(fc, mode)
    x = torch.randn(5, 33)
    w = fc.weight.detach().double()
    wb = torch.from_numpy(np_sign(w.numpy())) * w.abs().mean(1, keepdim=True)
    xd = x.double()
    if mode == "xnor":
        xd = torch.from_numpy(np_sign(x.numpy())).double() * x.double().abs().mean(1, True)
    expected = xd @ wb.T + fc.bias.detach().double()
    np.testing.assert_allclose(layer(x).detach().double(), expected, rtol=1e-5, atol=1e-5)


def test_weight_gradient_is_the_chain_rule_through_alpha_and_the_ste():
    """dL/dW_i = α·1{|W_i|<=1}·g_i + sign(W_i)/n·Σ_j sign(W_j)·g_j, g = dL/dW̃ (eq. 7 in full)."""
    torch.manual_seed(3)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = 1.7  # beyond the clip: its STE term is cancelled
    layer = BinaryConv2d.from_float(conv, "bwn")
    x = torch.randn(2, 3, 6, 6)
    target = torch.randn(2, 4, 6, 6)
    ((layer(x) - target) ** 2).sum().backward()

    w = conv.weight.detach().double()
    n = w[0].numel()
    alpha = w.abs().mean((1, 2, 3), keepdim=True)
    w_tilde = (torch.from_numpy(np_sign(w.numpy())) * alpha).requires_grad_()
    out = F.conv2d(x.double(), w_tilde, conv.bias.detach().double(), 1, 1)
    ((out - target.double()) ** 2).sum().backward()
    g = w_tilde.grad
    s = torch.from_numpy(np_sign(w.numpy()))
    expected = alpha * (w.abs() <= 1) * g + s / n * (s * g).sum((1, 2, 3), keepdim=True)
    np.testing.assert_allclose(conv.weight.grad.double(), expected, rtol=1e-4, atol=1e-6)
    assert expected[0, 0, 0, 0] != 0 and conv.weight.grad[0, 0, 0, 0] != 0  # α term remains


def test_binarize_keeps_first_and_last_real_and_the_state_dict_keys():
    model = ns.create("lenet5")
    keys = list(model.state_dict())
    resolved = binarize_(model, BinarizeConfig(mode="xnor"))
    assert resolved.layers == ["conv2", "fc1"] and not resolved.keep_first_last
    assert [n for n, m in model.named_modules() if is_binary(m)] == ["conv2", "fc1"]
    assert list(model.state_dict()) == keys
    assert set(binary_layers(model)) == {"conv2", "fc1"}


def test_binarize_shares_parameters_with_the_float_layer():
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2))
    weight = model[1].weight
    binarize_(model, BinarizeConfig(mode="bwn"))
    assert isinstance(model[1], BinaryLinear) and model[1].weight is weight
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = weight.detach().clone()
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    assert not torch.equal(weight.detach(), before)  # the real weights are what is updated


def test_resolved_config_rebuilds_the_same_network():
    torch.manual_seed(4)
    model = ns.create("vgg_small", order="xnor")
    resolved = binarize_(model, BinarizeConfig(mode="xnor", exclude=["features.conv3"]))
    assert resolved.layers == ["features.conv2", "classifier.fc1"]
    twin = ns.create("vgg_small", order="xnor")
    binarize_(twin, BinarizeConfig.from_dict(resolved.to_dict()))
    twin.load_state_dict(model.state_dict())
    x = torch.randn(3, 1, 28, 28)
    model.eval(), twin.eval()
    assert torch.equal(model(x), twin(x))


@pytest.mark.parametrize(
    "config,needle",
    [
        (dict(mode="ternary"), "mode must be one of bwn, xnor"),
        (dict(layers="conv2"), "layers must be a list"),
        (dict(exclude=["nope*"]), "matches no Conv2d/Linear layer"),
        (dict(exclude=["*"]), "no eligible layer"),
        (dict(clip=0), "clip must be a positive number"),
    ],
)
def test_bad_configs_are_one_line_errors(config, needle):
    with pytest.raises(NetshrinkError, match=needle):
        binarize_(ns.create("lenet5"), BinarizeConfig(**config))


def test_no_eligible_layer_and_already_binary():
    two = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    with pytest.raises(NetshrinkError, match="no eligible layer: the model has 2"):
        binarize_(two, BinarizeConfig())
    with pytest.raises(NetshrinkError, match="no Conv2d or Linear"):
        binarize_(nn.Sequential(nn.ReLU()), BinarizeConfig())
    model = ns.create("lenet5")
    binarize_(model, BinarizeConfig())
    with pytest.raises(NetshrinkError, match="binary already"):
        binarize_(model, BinarizeConfig(layers=["conv2"]))
    with pytest.raises(NetshrinkError, match="unknown key 'modes'"):
        BinarizeConfig.from_dict({"modes": "bwn"})


def test_xnor_network_learns_a_small_problem():
    """From scratch: an XNOR LeNet-5 fits 64 digits (the STE carries a usable gradient)."""
    torch.manual_seed(5)
    data = ns.load_dataset("digits", input_size=(1, 28, 28), limit=200)
    x, y = next(data.train.batches(64))
    model = ns.create("lenet5", order="xnor")
    binarize_(model, BinarizeConfig(mode="xnor"))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize(
    "values,needle",
    [
        ({"clip": 10**400}, "clip must be a positive number"),
        ({"clip": "1"}, "clip must be a positive number"),
        ({"layers": 5}, "layers must be a list"),
        ({"exclude": None}, "exclude must be a list"),
    ],
)
def test_from_dict_rejects_odd_values_in_one_line(values, needle):
    with pytest.raises(NetshrinkError, match=needle):
        BinarizeConfig.from_dict(values)


def test_input_scale_is_meaningless_and_normalised_for_bwn():
    assert BinarizeConfig(mode="bwn", input_scale=False).input_scale is True
    assert BinarizeConfig(mode="xnor", input_scale=False).input_scale is False


def test_compress_refuses_binary_layers_before_any_stage():
    model = ns.create("lenet5")
    binarize_(model, BinarizeConfig(mode="bwn"))
    recipe = parse_recipe({"stages": [{"encode": {}}]})
    with pytest.raises(NetshrinkError, match="conv2, fc1 are binary"):
        ns.compress(model, recipe, None)


def test_pack_of_diverged_binary_weights_is_a_one_line_error(tmp_path):
    model = ns.create("lenet5")
    binarize_(model, BinarizeConfig(mode="bwn"))
    with torch.no_grad():
        model.conv2.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(NetshrinkError, match="cannot write .nsz"):
        ns.pack(model, tmp_path / "m.nsz")
    assert not (tmp_path / "m.nsz").exists()
