"""ShuffleNet v1 against Zhang et al. 2018 (Tables 1 and 2 as quoted in papers.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.models.shufflenet import channel_shuffle
from tests.models.conftest import meta_counts, meta_model

STAGE_OUT = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
CONV_ONLY_MMACS = {1: 143, 2: 140, 3: 137, 4: 133, 8: 137}


def test_published_counts() -> None:
    measured = meta_counts("shufflenet_v1", (3, 224, 224))
    assert (measured.params, measured.macs) == (1_865_728, 137_460_672)


@pytest.mark.parametrize("groups", sorted(STAGE_OUT))
def test_table1_stage_channels_and_complexity(groups: int) -> None:
    measured = meta_counts("shufflenet_v1", (3, 224, 224), groups=groups)
    out = measured.layer_outputs
    assert out["conv1"] == (24, 112, 112)
    last_units = ("stage2.3", "stage3.7", "stage4.3")  # repeats 4 / 8 / 4
    sides = (28, 14, 7)
    for unit, channels, side in zip(last_units, STAGE_OUT[groups], sides, strict=True):
        assert out[f"{unit}.gconv2"] == (channels, side, side)
        assert out[f"{unit}.gconv1"][0] == channels // 4  # bottleneck = out / 4
    conv_macs = measured.macs - measured.layer_macs["fc"]
    assert round(conv_macs / 1e6) == CONV_ONLY_MMACS[groups]


@pytest.mark.parametrize("groups", sorted(STAGE_OUT))
def test_unit_rules(groups: int) -> None:
    model = meta_model("shufflenet_v1", groups=groups)
    first = model.stage2[0]
    assert first.gconv1.groups == 1  # too few input channels to group
    assert model.stage2[1].gconv1.groups == groups
    # stride-2 branch outputs out - in, concatenated with the avg-pooled input
    assert first.gconv2.out_channels == STAGE_OUT[groups][0] - 24
    assert model.stage3[0].gconv2.out_channels == STAGE_OUT[groups][1] - STAGE_OUT[groups][0]


@pytest.mark.parametrize(("scale", "conv1", "mmacs"), [(0.5, 12, 38), (0.25, 12, 13)])
def test_table2_scaled_models(scale: float, conv1: int, mmacs: int) -> None:
    measured = meta_counts("shufflenet_v1", (3, 224, 224), scale=scale)
    assert measured.layer_outputs["conv1"][0] == conv1
    assert measured.layer_outputs["stage4.3.gconv2"][0] == 960 * scale
    assert round(measured.macs / 1e6) == mmacs


@pytest.mark.parametrize("scale", [0.25, 0.5, 1.5, 2.0])
@pytest.mark.parametrize("groups", sorted(STAGE_OUT))
def test_every_scale_and_group_builds(scale: float, groups: int) -> None:
    measured = meta_counts("shufflenet_v1", (3, 64, 64), scale=scale, groups=groups)
    assert measured.layer_outputs["fc"] == (1000,)


def test_channel_shuffle_matches_numpy() -> None:
    groups, per_group = 3, 4
    x = torch.arange(2 * groups * per_group * 2 * 2, dtype=torch.float32).reshape(2, 12, 2, 2)
    ref = x.numpy().reshape(2, groups, per_group, 2, 2).transpose(0, 2, 1, 3, 4).reshape(x.shape)
    np.testing.assert_array_equal(channel_shuffle(x, groups).numpy(), ref)
    # channel j*n + k (group j, slot k) lands at k*g + j
    order = channel_shuffle(torch.arange(12.0).reshape(1, 12, 1, 1), 3).flatten().tolist()
    assert order == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]


def test_no_shuffle_ablation_same_cost_different_function() -> None:
    on = meta_counts("shufflenet_v1", (3, 224, 224))
    off = meta_counts("shufflenet_v1", (3, 224, 224), shuffle=False)
    assert (off.params, off.macs) == (on.params, on.macs)
    torch.manual_seed(0)
    shuffled = create("shufflenet_v1", num_classes=10, small_input=True).eval()
    plain = create("shufflenet_v1", num_classes=10, small_input=True, shuffle=False).eval()
    plain.load_state_dict(shuffled.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(shuffled(x), plain(x))


@pytest.mark.parametrize("bad", [dict(groups=5), dict(scale=0.0)])
def test_invalid_arguments_raise(bad: dict) -> None:
    with pytest.raises(NetshrinkError, match="shufflenet_v1"):
        create("shufflenet_v1", **bad)
