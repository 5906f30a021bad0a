"""The sparse engine on every registered architecture, compressed as a recipe would: its
outputs against the dense unpacked model's and a float64 reference."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from netshrink.engine import (
    SparseChainLinear,
    SparseConv2d,
    SparseLinear,
    get_engine,
    load_sparse,
    to_sparse,
)
from netshrink.errors import NetshrinkError
from netshrink.models import create, get_spec, list_models
from netshrink.nsz import NszFormatError, load_into, pack, parse_nsz, skeleton
from netshrink.prune import PruneConfig, prune_
from netshrink.quantize import WeightSharingConfig, share_weights_

EVERY_LAYER = {"linear": 1.0, "small_linear": 1.0, "conv1x1": 1.0, "conv": 1.0}


def _args(name: str) -> dict:
    args = {"num_classes": 10, "in_chans": 1}
    if get_spec(name).supports_small_input:
        args["small_input"] = True
    if "width_mult" in get_spec(name).defaults and name != "squeezenet1_0":
        args["width_mult"] = 0.25  # keeps VGG-16, MobileNet small enough to test quickly
    return args


def _pruned(name: str, args: dict, sparsity: float = 0.8) -> nn.Module:
    """``name`` with BN statistics set, pruned to ``sparsity`` everywhere, weight-shared."""
    torch.manual_seed(0)
    model = create(name, **args).eval()
    with torch.no_grad():  # BN statistics away from their initial identity
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    prune_(model, PruneConfig(sparsity={"*": sparsity}))
    share_weights_(model, WeightSharingConfig(conv_bits=4, fc_bits=5))
    return model


def _compressed(name: str, args: dict) -> bytes:
    return pack(_pruned(name, args), None, model_name=name, model_args=args)


# ImageNet-size fully connected layers (57M-138M weights even at 28x28): minutes of
# pruning and k-means, so run by `make test-slow`; the fast suite covers every other family.
BIG = {"alexnet", "alexnet_caffe", "vgg16"}
ARCHITECTURES = [
    pytest.param(name, marks=pytest.mark.slow) if name in BIG else name for name in list_models()
]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_architecture_matches_dense_and_float64(name):
    args = _args(name)
    nsz = parse_nsz(_compressed(name, args))
    dense = load_into(nsz, skeleton(nsz)).eval()
    engine, notes = load_sparse(nsz, warn=False, max_density=EVERY_LAYER)
    sparse_layers = [m for m in engine.modules() if isinstance(m, SparseConv2d | SparseLinear)]
    chained = [layer for m in engine.modules() if isinstance(m, SparseChainLinear)
               for layer in m.chain.layers]  # fmt: skip
    assert len(sparse_layers) + len(chained) == sum(n.engine == "sparse" for n in notes) > 0
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        want = dense(x)
        ref = copy.deepcopy(dense).double()(x.double())
        got = engine(x)
        batch_one = engine(x[:1])
    scale = ref.abs().max().item()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4 * max(scale, 1))
    torch.testing.assert_close(got.double(), ref, rtol=0, atol=1e-4 * max(scale, 1))
    torch.testing.assert_close(batch_one, got[:1], rtol=0, atol=1e-5 * max(scale, 1))
    assert torch.equal(got.argmax(1), want.argmax(1)) or scale == 0


def test_to_sparse_recovers_the_codebook_and_keeps_dense_layers_above_the_crossover():
    torch.manual_seed(0)
    model = create("lenet300_100", num_classes=10).eval()
    prune_(model, PruneConfig(sparsity={"fc1": 0.95, "fc2": 0.95, "fc3": 0.1}))
    share_weights_(model, WeightSharingConfig(fc_bits=5))
    with pytest.warns(UserWarning, match="1 layer.s. run dense .*fc3: density 0.90 above"):
        engine, notes = to_sparse(model)
    assert {n.layer: n.engine for n in notes} == {"fc1": "sparse", "fc2": "sparse", "fc3": "float"}
    assert "chained (sparse_chain0)" in notes[0].reason  # fc1 -> ReLU -> fc2: one call
    fc1, fc2 = engine.sparse_chain0.chain.layers
    assert fc1.codebook.size <= 31 and isinstance(engine.fc3, nn.Linear)
    assert fc1.nbytes < model.fc1.weight.numel()  # < 1 byte per weight
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(engine(x), model(x), rtol=0, atol=1e-5)
    assert get_engine("sparse").prepare is to_sparse


def test_layers_the_kernels_cannot_run_stay_dense_and_are_named():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, dilation=2), nn.Flatten(), nn.Linear(4 * 24 * 24, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_((torch.rand_like(p) < 0.02).float())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine, notes = to_sparse(model, max_density=EVERY_LAYER)
    assert notes[0].engine == "float" and "dilation=(2, 2)" in notes[0].reason
    assert notes[1].engine == "sparse" and "0: dilation" in str(caught[0].message)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(engine(x), model(x), rtol=0, atol=1e-5)


def test_bad_thresholds_and_files_get_one_line():
    with pytest.raises(NetshrinkError, match="unknown layer kind 'fc'"):
        to_sparse(nn.Linear(2, 2), max_density={"fc": 0.5})
    with pytest.raises(NetshrinkError, match="max density must be in 0..1"):
        to_sparse(nn.Linear(2, 2), max_density={"linear": 2})
    with pytest.raises(NszFormatError):
        load_sparse(parse_nsz(b"not an nsz file"))
