"""AlexNet (torchvision variant) and the Caffe two-group AlexNet, counted by hand."""

from __future__ import annotations

import pytest
import torch

from tests.models.conftest import meta_counts, meta_model

DEEP_COMPRESSION_LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]

# Caffe bvlc_alexnet at 227: (C_out, C_in per group, k, output side) per layer.
CAFFE_CONVS = {
    "conv1": (96, 3, 11, 55),
    "conv2": (256, 96 // 2, 5, 27),
    "conv3": (384, 256, 3, 13),
    "conv4": (384, 384 // 2, 3, 13),
    "conv5": (256, 384 // 2, 3, 13),
}
CAFFE_FCS = {"fc6": (256 * 6 * 6, 4096), "fc7": (4096, 4096), "fc8": (4096, 1000)}


def test_torchvision_variant_published_counts() -> None:
    measured = meta_counts("alexnet", (3, 224, 224))
    assert (measured.params, measured.macs) == (61_100_840, 714_188_480)


def test_caffe_alexnet_counted_layer_by_layer() -> None:
    params = sum(c * cin * k * k + c for c, cin, k, _ in CAFFE_CONVS.values())
    params += sum(i * o + o for i, o in CAFFE_FCS.values())
    macs = sum(c * side * side * cin * k * k for c, cin, k, side in CAFFE_CONVS.values())
    macs += sum(i * o for i, o in CAFFE_FCS.values())
    measured = meta_counts("alexnet_caffe", (3, 227, 227))
    assert (measured.params, measured.macs) == (params, macs)
    for name, (c, _, _, side) in CAFFE_CONVS.items():
        assert measured.layer_outputs[f"features.{name}"] == (c, side, side)  # conv1 55x55


@pytest.mark.parametrize("name", ["alexnet", "alexnet_caffe"])
def test_deep_compression_layer_names(name: str) -> None:
    model = meta_model(name)
    layers = {n.split(".")[-1] for n, m in model.named_modules() if hasattr(m, "weight")}
    assert set(DEEP_COMPRESSION_LAYERS) <= layers


@pytest.mark.parametrize(("name", "c1"), [("alexnet", 64), ("alexnet_caffe", 96)])
def test_small_input_only_swaps_conv1(name: str, c1: int) -> None:
    # 11x11 conv1 becomes 5x5 with the same filters; nothing else changes.
    full = meta_counts(name, (3, 227, 227)).params
    small = meta_model(name, small_input=True)
    assert sum(p.numel() for p in small.parameters()) == full - c1 * 3 * (11 * 11 - 5 * 5)
    for side in (28, 32):
        assert small(torch.zeros(2, 3, side, side, device="meta")).shape == (2, 1000)


@pytest.mark.parametrize("name", ["alexnet", "alexnet_caffe"])
def test_small_image_without_small_input_raises(name: str) -> None:
    with pytest.raises(ValueError, match=rf"28x28 is too small for {name} .*small_input=True"):
        meta_model(name, in_chans=1)(torch.zeros(1, 1, 28, 28, device="meta"))
