"""The auto engine: per-layer choices timed on this machine, outputs against the dense
unpacked model on every fast architecture, XNOR layers packed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netshrink.binarize import BinarizeConfig, binarize_
from netshrink.engine import SparseChainLinear, get_engine, load_auto, to_auto, to_packed
from netshrink.engine.fused import FusedNetwork
from netshrink.errors import NetshrinkError
from netshrink.models import create, list_models
from netshrink.nsz import load_into, pack, parse_nsz, skeleton
from tests.engine.test_sparse import BIG, _args
from tests.engine.test_sparse import _pruned as pruned


def _pruned(name: str, args: dict, sparsity: float = 0.9) -> nn.Module:
    return pruned(name, args, sparsity)


def _assert_matches(engine, dense, x):
    with torch.no_grad():
        want, got, one = dense(x), engine(x), engine(x[:1])
    scale = max(want.abs().max().item(), 1.0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4 * scale)
    torch.testing.assert_close(one, want[:1], rtol=0, atol=1e-4 * scale)
    assert torch.equal(got.argmax(1), want.argmax(1))


@pytest.mark.parametrize("name", ["lenet300_100", "lenet5"])
def test_load_auto_times_every_layer_and_matches_the_dense_model(name):
    model = _pruned(name, {})
    nsz = parse_nsz(pack(model, None, model_name=name, model_args={}, input_size=(1, 28, 28)))
    dense = load_into(nsz, skeleton(nsz)).eval()
    engine, notes = load_auto(nsz, warn=False)
    assert {n.layer for n in notes} >= {"fc1", "fc2"}
    for note in notes:  # each choice timed (or chained after timing), or too dense to time
        assert any(w in note.reason for w in ("measured", "above the 0.6")), note
    _assert_matches(engine, dense, torch.randn(3, 1, 28, 28))
    assert get_engine("auto").load is load_auto


def test_an_mlp_at_batch_one_runs_as_one_chain():
    model = _pruned("lenet300_100", {}, sparsity=0.95)
    engine, notes = to_auto(model, warn=False, input_size=(1, 28, 28))
    chains = [m for m in engine.modules() if isinstance(m, SparseChainLinear)]
    if chains:  # chained only where timing found it faster than the layers one by one
        assert all("chained: measured" in n.reason for n in notes if n.engine == "sparse")
        assert sum(len(c.chain.layers) for c in chains) == sum(
            n.engine == "sparse" for n in notes
        )  # fmt: skip
    _assert_matches(engine, model, torch.randn(4, 1, 28, 28))


def test_without_an_input_size_the_thresholds_decide():
    model = _pruned("lenet300_100", {}, sparsity=0.95)
    engine, notes = to_auto(model, warn=False)
    assert not any("measured" in n.reason for n in notes)
    assert all(n.engine == "sparse" for n in notes)  # 5% dense: under every crossover
    assert [type(m) for m in engine.children()] == [SparseChainLinear]  # one call, no copies
    _assert_matches(engine, model, torch.randn(2, 1, 28, 28))


FAST = [name for name in list_models() if name not in BIG]


@pytest.mark.parametrize("name", FAST)
def test_every_fast_architecture_matches_on_auto(name):
    args = _args(name)
    model = _pruned(name, args, sparsity=0.8)
    engine, notes = to_auto(model, warn=False, input_size=(1, 28, 28))
    assert notes and {n.engine for n in notes} <= {"sparse", "fused", "float"}
    if any(n.engine == "fused" for n in notes):
        assert isinstance(engine, FusedNetwork)
    _assert_matches(engine, model, torch.randn(2, 1, 28, 28))


def test_xnor_layers_go_to_the_packed_kernels():
    torch.manual_seed(0)
    model = create("lenet5", order="xnor")
    binarize_(model, BinarizeConfig(mode="xnor"))
    model.train()
    with torch.no_grad():
        model(torch.randn(32, 1, 28, 28))  # BN statistics
    model.eval()
    engine, notes = to_auto(model, warn=False, input_size=(1, 28, 28))
    packed, _ = to_packed(model, warn=False)
    assert any(n.engine == "packed" for n in notes)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        want, got = packed(x), engine(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4 * max(want.abs().max().item(), 1))


def test_an_input_size_the_network_cannot_take_gets_one_line():
    with pytest.raises(NetshrinkError, match=r"cannot run the network on input size 1x5x5"):
        to_auto(_pruned("lenet5", {}), input_size=(1, 5, 5))
