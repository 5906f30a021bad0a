"""LeNet-300-100 and LeNet-5 against Deep Compression's figures (papers.md)."""

from __future__ import annotations

import pytest
import torch

from netshrink.models import create
from tests.models.conftest import meta_counts


@pytest.mark.parametrize(
    ("name", "params", "macs"),
    [("lenet300_100", 266_610, 266_200), ("lenet5", 431_080, 2_293_000)],
)
def test_published_counts(name: str, params: int, macs: int) -> None:
    measured = meta_counts(name, (1, 28, 28))
    assert (measured.params, measured.macs) == (params, macs)


@pytest.mark.parametrize(
    ("name", "layer_weights_k"),
    [
        # Deep Compression per-layer tables: ip1 235K, ip2 30K, ip3 1K weights ...
        ("lenet300_100", {"fc1": 235, "fc2": 30, "fc3": 1}),
        # ... and conv1 0.5K, conv2 25K, ip1 400K, ip2 5K.
        ("lenet5", {"conv1": 0.5, "conv2": 25, "fc1": 400, "fc2": 5}),
    ],
)
def test_layer_names_and_sizes_match_deep_compression(name: str, layer_weights_k: dict) -> None:
    model = create(name)
    for layer, thousands in layer_weights_k.items():
        weights = getattr(model, layer).weight.numel()
        assert round(weights / 1000, 1 if thousands < 1 else 0) == thousands, layer


def test_lenet5_relu_only_after_fc1() -> None:
    # Caffe's lenet_train_test.prototxt has a single ReLU, between ip1 and ip2.
    model = create("lenet5")
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 1


@pytest.mark.parametrize("name", ["lenet300_100", "lenet5"])
def test_wrong_input_size_raises(name: str) -> None:
    with pytest.raises(ValueError, match="28x28"):
        create(name)(torch.zeros(1, 1, 32, 32))


def test_lenet5_xnor_order():
    model = create("lenet5", order="xnor")
    assert [n for n, _ in model.named_children()] == [
        "conv1", "pool1", "bn2", "act2", "conv2", "pool2", "bn3", "act3", "fc1", "relu", "fc2",
    ]  # fmt: skip
    float_params = 431_080
    extra = 2 * 20 + 2 * 800  # the two BatchNorms
    assert sum(p.numel() for p in model.parameters()) == float_params + extra
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
