"""The fused engine against the plain network: BatchNorm folded exactly (float64), every
architecture within float32 rounding, shuffles and depthwise blocks fused, binary layers
left alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netshrink.binarize import BinarizeConfig, BinaryConv2d, binarize_
from netshrink.engine import get_engine, to_fused
from netshrink.engine.fused import (
    FusedConv2d,
    FusedDepthwiseSeparable,
    FusedShuffleUnit,
    fold_batch_norm,
)
from netshrink.models import create, list_models
from tests.engine.test_sparse import BIG, _args


def _with_statistics(model: nn.Module) -> nn.Module:
    torch.manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(-1.5, 1.5)  # negative scales too
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def test_fold_batch_norm_equals_the_float64_formula():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3), _with_statistics(nn.BatchNorm2d(5))
    weight, bias = fold_batch_norm(conv.weight, conv.bias, bn)
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    want_w = conv.weight.double() * scale.view(-1, 1, 1, 1)
    want_b = (conv.bias.double() - bn.running_mean.double()) * scale + bn.bias.double()
    torch.testing.assert_close(weight.double(), want_w, rtol=0, atol=1e-7)
    torch.testing.assert_close(bias.double(), want_b, rtol=0, atol=1e-7)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(FusedConv2d(conv, bn)(x), bn(conv(x)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in list_models() if n not in BIG])
@pytest.mark.parametrize("batch", [1, 3])
def test_every_architecture_matches_the_plain_network(name, batch):
    torch.manual_seed(0)
    model = _with_statistics(create(name, **_args(name)))
    fused, notes = to_fused(model)
    assert any(n.engine == "fused" for n in notes)
    x = torch.randn(batch, 1, 28, 28)
    with torch.no_grad():
        want, got = model(x), fused(x)
    assert got.is_contiguous()
    scale = max(want.abs().max().item(), 1.0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4 * scale)


def test_compact_blocks_are_fused_and_their_batch_norms_folded():
    mobilenet = _with_statistics(create("mobilenet_v1", **_args("mobilenet_v1")))
    fused, notes = to_fused(mobilenet)
    kinds = [type(m) for m in fused.modules()]
    assert FusedDepthwiseSeparable in kinds or kinds.count(FusedConv2d) >= 2 * 13  # 13 blocks
    assert nn.BatchNorm2d not in kinds and nn.Conv2d not in kinds  # every BN folded
    shufflenet = _with_statistics(create("shufflenet_v1", **_args("shufflenet_v1")))
    fused, notes = to_fused(shufflenet)
    assert any(isinstance(m, FusedShuffleUnit) for m in fused.modules())
    assert get_engine("fused").prepare is to_fused


def test_binary_layers_are_left_as_they_are():
    torch.manual_seed(0)
    model = create("lenet5", order="xnor")
    binarize_(model, BinarizeConfig(mode="xnor"))
    model = _with_statistics(model)
    fused, notes = to_fused(model)
    assert sum(isinstance(m, BinaryConv2d) for m in fused.modules()) == sum(
        isinstance(m, BinaryConv2d) for m in model.modules()
    ) > 0  # fmt: skip
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=0, atol=1e-4)


def test_a_block_with_a_layer_on_another_engine_is_fused_layer_by_layer():
    from netshrink.engine.sparse import to_sparse

    model = _with_statistics(create("shufflenet_v1", **_args("shufflenet_v1")))
    with torch.no_grad():  # one unit's first conv pruned hard enough to run sparse
        unit = next(m for m in model.modules() if type(m).__name__ == "ShuffleUnit")
        unit.gconv1.weight.mul_((torch.rand_like(unit.gconv1.weight) < 0.02).float())
    sparse, notes = to_sparse(model, warn=False, max_density={"conv1x1": 0.05, "conv": 0.0})
    assert sum(n.engine == "sparse" for n in notes) >= 1
    fused, _ = to_fused(sparse)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        want = model(x)
        torch.testing.assert_close(fused(x), want, rtol=0, atol=1e-4 * max(want.abs().max(), 1))
