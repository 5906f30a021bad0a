"""The packed engine against the float simulation of the same binary network."""

import warnings

import pytest
import torch
from torch import nn

import netshrink as ns
from netshrink.binarize import BinarizeConfig, binarize_
from netshrink.engine.packed import (
    PackedBinaryConv2d,
    PackedBinaryLinear,
    PackedMaxPool2d,
    to_packed,
)
from netshrink.engine.packed_stages import PackedXnorStage
from netshrink.errors import NetshrinkError


def trained_like(name, mode, **kwargs):
    """A binarized network with BatchNorm statistics that are not the identity."""
    torch.manual_seed(0)
    model = ns.create(name, **kwargs)
    binarize_(model, BinarizeConfig(mode=mode))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, 1, 28, 28))
    return model.eval()


@pytest.mark.parametrize("name", ["lenet5", "vgg_small"])
@pytest.mark.parametrize("batch", [1, 5])
def test_packed_engine_equals_float_simulation_bit_for_bit(name, batch):
    model = trained_like(name, "xnor", order="xnor")
    packed, notes = to_packed(model, fuse=False)
    assert all(n.engine == "packed" for n in notes) and len(notes) >= 2
    kinds = {type(m) for m in packed.modules()}
    assert PackedBinaryConv2d in kinds and PackedBinaryLinear in kinds
    assert PackedMaxPool2d in kinds and nn.MaxPool2d not in kinds
    x = torch.randn(batch, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(packed(x), model(x))


def test_xnor_without_input_scale_and_binarize_all():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 70, 3, padding=1), nn.Conv2d(70, 65, 3, stride=2, padding=2),
        nn.Flatten(), nn.Linear(65 * 5 * 5, 10),
    )  # fmt: skip
    binarize_(model, BinarizeConfig(mode="xnor", keep_first_last=False, input_scale=False))
    packed, notes = to_packed(model)
    assert [n.engine for n in notes] == ["packed"] * 3
    x = torch.randn(2, 3, 7, 7)
    with torch.no_grad():
        assert torch.equal(packed(x), model(x))


def test_fallbacks_are_said_once_and_stay_exact():
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.Conv2d(8, 8, 3, groups=2), nn.Conv2d(8, 8, 3, dilation=2),
        nn.Conv2d(8, 8, 3), nn.Flatten(), nn.Linear(128, 3),
    )  # fmt: skip
    binarize_(model, BinarizeConfig(mode="xnor"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        packed, notes = to_packed(model)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "2 binary layer(s) run in float" in message and "groups=2" in message
    assert {n.layer: n.engine for n in notes} == {"1": "float", "2": "float", "3": "packed"}
    x = torch.randn(2, 1, 14, 14)
    with torch.no_grad():
        assert torch.equal(packed(x), model(x))


def test_string_padding_and_padding_mode_fall_back():
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.Conv2d(8, 8, 3, padding="same"),
        nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"), nn.Conv2d(8, 2, 1),
    )  # fmt: skip
    binarize_(model, BinarizeConfig(mode="xnor"))
    with pytest.warns(UserWarning, match="padding='same'"):
        packed, notes = to_packed(model)
    assert {n.layer: n.engine for n in notes} == {"1": "float", "2": "float"}
    x = torch.randn(2, 1, 9, 9)
    with torch.no_grad():
        assert torch.equal(packed(x), model(x))


def test_frozen_layers_forget_their_weights_when_new_ones_load():
    model = trained_like("lenet5", "bwn")
    other = trained_like("lenet5", "bwn")
    with torch.no_grad():
        other.conv2.weight.neg_()
    with pytest.warns(UserWarning):
        packed, _ = to_packed(model)
    packed.load_state_dict(other.state_dict())
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(packed(x), other(x))


def test_bwn_layers_run_in_float():
    model = trained_like("lenet5", "bwn")
    with pytest.warns(UserWarning, match="bwn: real-valued inputs"):
        packed, notes = to_packed(model)
    assert {n.engine for n in notes} == {"float"}
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(packed(x), model(x))


def test_model_without_binary_layers_is_an_error():
    with pytest.raises(NetshrinkError, match="no binary layer"):
        to_packed(ns.create("lenet5"))


def test_only_plain_max_pools_are_replaced_and_outputs_stay_exact():
    torch.manual_seed(4)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
        nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(8, 8, 3, padding=1),
        nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(8, 8, 1), nn.MaxPool2d((2, 1), stride=(1, 2)),
        nn.Flatten(), nn.LazyLinear(3),
    )  # fmt: skip
    x = torch.randn(2, 1, 15, 15)
    model(x)  # materialize the lazy layer
    binarize_(model, BinarizeConfig(mode="xnor"))
    packed, _ = to_packed(model.eval(), fuse=False)
    assert [type(packed[i]) for i in (1, 3, 5, 7)] == [
        PackedMaxPool2d, nn.MaxPool2d, nn.MaxPool2d, PackedMaxPool2d,
    ]  # fmt: skip
    with torch.no_grad():
        assert torch.equal(packed(x), model(x))


def test_packed_max_pool_takes_other_inputs_to_torch():
    pool = PackedMaxPool2d(nn.MaxPool2d(2))
    for x in (torch.randn(3, 6, 6), torch.randn(1, 2, 6, 6, dtype=torch.float64)):
        assert torch.equal(pool(x), nn.functional.max_pool2d(x, 2))


def trained_xnor(name, input_scale):
    torch.manual_seed(0)
    model = ns.create(name, order="xnor")
    binarize_(model, BinarizeConfig(mode="xnor", input_scale=input_scale))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, 1, 28, 28))
    return model.eval()


@pytest.mark.parametrize("name", ["lenet5", "vgg_small"])
def test_fused_stages_without_input_scale_equal_the_float_simulation_bit_for_bit(name):
    model = trained_xnor(name, input_scale=False)
    packed, notes = to_packed(model)
    stages = [m for m in packed.modules() if isinstance(m, PackedXnorStage)]
    assert len(stages) == len(notes) >= 2
    assert all(n.reason.startswith("xnor stage: BatchNorm, Hardtanh") for n in notes)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(packed(x), model(x))


@pytest.mark.parametrize("name", ["lenet5", "vgg_small"])
def test_fused_stages_with_input_scale_equal_the_float_simulation_bit_for_bit(name):
    """K too: the stages sum it in the order the float simulation fixes."""
    model = trained_xnor(name, input_scale=True)
    packed, _ = to_packed(model)
    assert any(isinstance(m, PackedXnorStage) for m in packed.modules())
    for batch in (1, 8):
        x = torch.randn(batch, 1, 28, 28)
        with torch.no_grad():
            assert torch.equal(packed(x), model(x))


def binary_block():
    """bn → hardtanh → conv → pool, binarized without input scale, with trained statistics."""
    torch.manual_seed(5)
    layers = [
        nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.Hardtanh(), nn.Conv2d(8, 8, 3, padding=1),
        nn.MaxPool2d(2), nn.BatchNorm2d(8), nn.Hardtanh(), nn.Conv2d(8, 4, 3),
    ]  # fmt: skip
    return layers


def settle(model, shape):
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(*shape))
    return model.eval()


def test_a_sequential_keeps_its_names_and_indices():
    model = nn.Sequential(*binary_block())
    binarize_(model, BinarizeConfig(mode="xnor", input_scale=False, layers=["3", "7"]))
    model = settle(model, (16, 1, 12, 12))
    packed, notes = to_packed(model)
    kinds = [type(m) for m in packed]
    assert kinds == [
        nn.Conv2d, nn.Identity, nn.Identity, PackedXnorStage, nn.Identity,
        nn.Identity, nn.Identity, PackedXnorStage,
    ]  # fmt: skip
    assert {n.layer: n.reason for n in notes} == {
        "3": "xnor stage: BatchNorm, Hardtanh, max pool fused",
        "7": "xnor stage: BatchNorm, Hardtanh fused",
    }
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(packed(x), model(x))


class TwoReaders(nn.Module):
    """The BatchNorm's output is read twice: only the Hardtanh may be fused."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.Hardtanh()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.bn(self.stem(x))
        return self.head(self.pool(self.conv(self.act(y)) + y))


class Branchy(nn.Module):
    """A forward that torch.fx cannot trace (control flow on a value): fused child by child."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3)
        self.block = nn.Sequential(*binary_block()[1:5])
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        if float(x.sum()) > float("inf"):  # never, but fx cannot know
            x = -x
        return self.head(self.block(x))


def test_a_value_read_twice_is_not_fused_into_a_stage():
    model = TwoReaders()
    binarize_(model, BinarizeConfig(mode="xnor", input_scale=False, layers=["conv"]))
    model = settle(model, (16, 1, 12, 12))
    packed, notes = to_packed(model)
    assert [n.reason for n in notes] == ["xnor stage: Hardtanh fused"]
    assert isinstance(packed.bn, nn.BatchNorm2d)
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(packed(x), model(x))


def test_a_forward_that_does_not_trace_is_fused_child_by_child():
    model = Branchy()
    binarize_(model, BinarizeConfig(mode="xnor", input_scale=False))
    model = settle(model, (16, 1, 12, 12))
    packed, notes = to_packed(model)
    assert type(packed) is Branchy
    assert [type(m) for m in packed.block] == [nn.Identity] * 2 + [PackedXnorStage, nn.Identity]
    assert [n.reason for n in notes] == ["xnor stage: BatchNorm, Hardtanh, max pool fused"]
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(packed(x), model(x))
