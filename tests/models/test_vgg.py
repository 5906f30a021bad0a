"""VGG-16 (configuration D) against the published counts."""

from __future__ import annotations

import pytest
import torch

from netshrink.errors import NetshrinkError
from netshrink.models import create
from tests.models.conftest import meta_counts, meta_model

CONV_NAMES = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)]


def test_published_counts() -> None:
    measured = meta_counts("vgg16", (3, 224, 224))
    assert (measured.params, measured.macs) == (138_357_544, 15_470_264_320)


def test_layer_names_follow_the_paper() -> None:
    measured = meta_counts("vgg16", (3, 224, 224))
    expected = [f"features.{n}" for n in CONV_NAMES] + [f"classifier.fc{i}" for i in (6, 7, 8)]
    assert list(measured.layer_macs) == expected
    assert measured.layer_outputs["features.conv5_3"] == (512, 14, 14)


def test_small_input_keeps_every_layer() -> None:
    full = meta_counts("vgg16", (3, 224, 224))
    for side in (28, 32):
        small = meta_counts("vgg16", (3, side, side), small_input=True)
        assert small.params == full.params
        assert list(small.layer_macs) == list(full.layer_macs)


def test_small_image_without_small_input_raises() -> None:
    # 28 -> 14 -> 7 -> 3 -> 1 -> pool5 would give 0x0.
    with pytest.raises(ValueError, match=r"28x28 is too small for vgg16 .*pool5.*small_input"):
        meta_model("vgg16")(torch.zeros(1, 3, 28, 28, device="meta"))


def test_too_small_even_for_small_input_raises() -> None:
    with pytest.raises(ValueError, match="8x8 is too small for vgg16"):
        meta_model("vgg16", small_input=True)(torch.zeros(1, 3, 8, 8, device="meta"))


def test_vgg_small_counts_by_hand():
    """3x3 convs 1->64->128->256 (no bias) + BN, fc 2304->512 (no bias) + BN, fc 512->10."""
    from netshrink.profile import count_macs

    convs = 9 * (1 * 64 + 64 * 128 + 128 * 256)
    bn = 2 * (64 + 128 + 256 + 512)
    fcs = 2304 * 512 + 512 * 10 + 10
    model = create("vgg_small")
    assert sum(p.numel() for p in model.parameters()) == convs + bn + fcs
    macs = 28 * 28 * 9 * 64 + 14 * 14 * 9 * 64 * 128 + 7 * 7 * 9 * 128 * 256 + 2304 * 512 + 5120
    assert count_macs(model, (1, 28, 28)) == macs


def test_vgg_small_xnor_order_puts_batchnorm_and_activation_before_each_binary_layer():
    model = create("vgg_small", order="xnor")
    names = [n for n, _ in model.features.named_children()]
    assert names[:4] == ["conv1", "bn1", "relu1", "pool1"]  # the first layer stays real
    assert names[4:8] == ["bn2", "act2", "conv2", "pool2"]
    head = [n for n, _ in model.classifier.named_children()]
    assert head == ["bn_fc1", "act_fc1", "fc1", "bn_fc2", "relu_fc2", "fc2"]
    with pytest.raises(NetshrinkError, match="order must be one of"):
        create("vgg_small", order="xnorr")
