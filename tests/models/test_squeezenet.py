"""SqueezeNet 1.0/1.1 against papers.md: counts, Fire widths, §5 metaparameters, bypass."""

from __future__ import annotations

import math

import pytest
import torch

from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.models.squeezenet import scale_to_unit_variance_
from tests.models.conftest import meta_counts, meta_model

# papers.md: fire(s1x1, e1x1, e3x3) of fire2..fire9.
PUBLISHED_FIRES = {
    2: (16, 64, 64),
    3: (16, 64, 64),
    4: (32, 128, 128),
    5: (32, 128, 128),
    6: (48, 192, 192),
    7: (48, 192, 192),
    8: (64, 256, 256),
    9: (64, 256, 256),
}


def fire_channels(model: torch.nn.Module) -> dict[int, tuple[int, int, int]]:
    return {
        i: (
            fire.squeeze.out_channels,
            fire.expand1x1.out_channels,
            fire.expand3x3.out_channels,
        )
        for i in range(2, 10)
        for fire in [getattr(model.features, f"fire{i}")]
    }


@pytest.mark.parametrize(
    ("name", "params", "macs"),
    [("squeezenet1_0", 1_248_424, 818_924_576), ("squeezenet1_1", 1_235_496, 349_151_936)],
)
def test_published_counts(name: str, params: int, macs: int) -> None:
    measured = meta_counts(name, (3, 224, 224))
    assert (measured.params, measured.macs) == (params, macs)


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_fire_channels_are_published(name: str) -> None:
    assert fire_channels(meta_model(name)) == PUBLISHED_FIRES


def test_layout_of_1_0() -> None:
    measured = meta_counts("squeezenet1_0", (3, 224, 224))
    assert measured.layer_outputs["features.conv1"] == (96, 109, 109)
    names = [n for n, _ in meta_model("squeezenet1_0").features.named_children()]
    pools = [names[names.index(p) - 1] for p in names if p.startswith("pool")]
    assert pools == ["relu1", "fire4", "fire8"]  # max-pools after conv1, fire4, fire8


def test_layout_of_1_1() -> None:
    names = [n for n, _ in meta_model("squeezenet1_1").features.named_children()]
    pools = [names[names.index(p) - 1] for p in names if p.startswith("pool")]
    assert pools == ["relu1", "fire3", "fire5"]


@pytest.mark.parametrize(
    "meta",
    [
        dict(base_e=64, incr_e=32, pct3x3=0.25, freq=1, squeeze_ratio=0.25),
        dict(base_e=128, incr_e=96, pct3x3=0.75, freq=3, squeeze_ratio=0.75),
        dict(base_e=100, incr_e=0, pct3x3=0.01, freq=2, squeeze_ratio=1.0),
    ],
)
def test_section5_metaparameters(meta: dict) -> None:
    # Paper §5: e_i = base_e + incr_e * floor(i / freq); e3x3 = pct3x3 * e_i; s1x1 = SR * e_i.
    expected = {}
    for i in range(8):
        e = meta["base_e"] + meta["incr_e"] * math.floor(i / meta["freq"])
        e3x3 = int(meta["pct3x3"] * e)
        expected[i + 2] = (int(meta["squeeze_ratio"] * e), e - e3x3, e3x3)
    assert fire_channels(meta_model("squeezenet1_0", **meta)) == expected


@pytest.mark.parametrize(
    "bad", [dict(pct3x3=0.0), dict(pct3x3=1.0), dict(squeeze_ratio=0.0), dict(freq=0)]
)
def test_invalid_metaparameters_raise(bad: dict) -> None:
    with pytest.raises(NetshrinkError, match="squeezenet1_0"):
        create("squeezenet1_0", **bad)


def test_unknown_bypass_raises() -> None:
    with pytest.raises(NetshrinkError, match="bypass"):
        create("squeezenet1_1", bypass="dense")


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_simple_bypass_is_free_and_wraps_fire3_5_7_9(name: str) -> None:
    plain = meta_counts(name, (3, 224, 224))
    simple = meta_counts(name, (3, 224, 224), bypass="simple")
    assert (simple.params, simple.macs) == (plain.params, plain.macs)
    model = meta_model(name, bypass="simple")
    wrapped = [i for i in range(2, 10) if getattr(model.features, f"fire{i}").bypass is not None]
    assert wrapped == [3, 5, 7, 9]  # Table 3 / Fig. 2 middle


@pytest.mark.parametrize(("name", "conv1"), [("squeezenet1_0", 96), ("squeezenet1_1", 64)])
def test_complex_bypass_adds_1x1_convs(name: str, conv1: int) -> None:
    # 1x1 conv with bias on the shortcut of fire2, 4, 6, 8 (in -> out channels).
    shortcuts = [(conv1, 128), (128, 256), (256, 384), (384, 512)]
    extra = sum(cin * cout + cout for cin, cout in shortcuts)
    plain = meta_counts(name, (3, 224, 224)).params
    assert meta_counts(name, (3, 224, 224), bypass="complex").params == plain + extra


def test_table1_pruning_densities_give_published_total() -> None:
    # Table 1 applied per layer (weights kept rounded up, biases kept): 1,248,424 -> 421,098.
    density = {"features.conv1": 1.0, "classifier.conv10": 0.2}
    for i in range(2, 10):
        density[f"features.fire{i}.squeeze"] = 0.5 if i in (7, 9) else 1.0
        density[f"features.fire{i}.expand1x1"] = 0.5 if i in (6, 8) else 1.0
        density[f"features.fire{i}.expand3x3"] = 0.30 if i in (8, 9) else 0.33
    model = meta_model("squeezenet1_0")
    kept = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            kept += math.ceil(density.pop(name) * module.weight.numel()) + module.bias.numel()
    assert not density  # every Table 1 layer name exists
    assert kept == 421_098


def test_small_image_without_small_input_raises() -> None:
    with pytest.raises(ValueError, match=r"28x28 is too small for squeezenet1_0 .*small_input"):
        meta_model("squeezenet1_0")(torch.zeros(1, 3, 28, 28, device="meta"))


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_small_input_swaps_conv1_for_3x3(name: str) -> None:
    full, small = meta_model(name), meta_model(name, small_input=True)
    conv1 = small.features.conv1
    assert (conv1.kernel_size, conv1.stride, conv1.out_channels) == (
        (3, 3),
        (1, 1),
        full.features.conv1.out_channels,
    )
    for side in (28, 32):
        measured = meta_counts(name, (3, side, side), small_input=True)
        assert measured.layer_outputs["classifier.conv10"][1] >= 1


def _fire_rms(model: torch.nn.Module, x: torch.Tensor) -> list[float]:
    rms = []
    for name, layer in model.features.named_children():
        x = layer(x)
        if name.startswith("fire"):
            rms.append(x.pow(2).mean().sqrt().item())
    return rms


def test_lsuv_init_gives_unit_variance_conv_outputs_on_fresh_noise() -> None:
    torch.manual_seed(0)
    model = create("squeezenet1_0", num_classes=10, in_chans=1, small_input=True, init="lsuv")
    outputs: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            # clone: the in-place ReLU after each conv would overwrite the stored map
            module.register_forward_hook(lambda m, i, o, n=name: outputs.__setitem__(n, o.clone()))
    model.eval()
    with torch.no_grad():
        model(torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(123)))
    conv10 = outputs.pop("classifier.conv10")
    assert len(outputs) == 25  # conv1 and three convs in each of the eight Fire modules
    for name, out in outputs.items():
        # Scaled on another noise batch: unit variance up to sampling error.
        assert out.double().std().item() == pytest.approx(1.0, abs=0.1), name
    assert conv10.std().item() < 0.5  # conv10 keeps N(0, 0.01)


@pytest.mark.parametrize("bypass", ["none", "simple", "complex"])
def test_lsuv_only_rescales_kaiming_weights(bypass: str) -> None:
    models = {}
    for init in ("kaiming", "lsuv"):
        torch.manual_seed(3)
        models[init] = create(
            "squeezenet1_1", num_classes=10, in_chans=1, small_input=True, bypass=bypass, init=init
        )
    lsuv = dict(models["lsuv"].named_parameters())
    for name, ref in models["kaiming"].named_parameters():
        if name.endswith("bias") or name.startswith("classifier"):
            assert torch.equal(lsuv[name], ref), name  # zero biases, conv10 untouched
            continue
        ratio = lsuv[name] / ref  # one positive factor per layer
        assert ratio.min() > 0 and torch.allclose(ratio, ratio.flatten()[0]), name


def test_lsuv_keeps_bypass_activations_bounded() -> None:
    # Under Kaiming init, shortcuts compound: fire9's RMS is ~10x the vanilla one (simple)
    # and ~100x (complex). LSUV keeps every variant within a small factor of 1.
    x = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    final = {}
    for init in ("kaiming", "lsuv"):
        for bypass in ("none", "complex"):
            torch.manual_seed(0)
            model = create(
                "squeezenet1_0", num_classes=10, in_chans=1, small_input=True, bypass=bypass,
                init=init,
            )  # fmt: skip
            with torch.no_grad():
                final[init, bypass] = _fire_rms(model.eval(), x)[-1]
    assert final["kaiming", "complex"] > 20 * final["kaiming", "none"]
    assert 0.3 < final["lsuv", "none"] < 3 and 0.3 < final["lsuv", "complex"] < 3


def test_unknown_init_raises() -> None:
    with pytest.raises(NetshrinkError, match="init must be one of"):
        create("squeezenet1_0", init="xavier")


def test_scale_to_unit_variance_is_exact_with_biases_and_keeps_modes() -> None:
    torch.manual_seed(0)
    model = create("squeezenet1_0", num_classes=10, in_chans=1, small_input=True)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.uniform_(module.bias, 0.2, 0.5)
    model.features.fire5.eval()  # a submodule's own mode survives the pass
    probe = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    scale_to_unit_variance_(model, probe, skip=(model.classifier.conv10,))
    assert model.training and not model.features.fire5.training
    stds = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d) and name != "classifier.conv10":
            module.register_forward_hook(
                lambda m, i, o, n=name: stds.__setitem__(n, o.double().std().item())
            )
    with torch.no_grad():
        model.eval()(probe)
    assert len(stds) == 25
    for name, std in stds.items():
        assert std == pytest.approx(1.0, rel=1e-4), name  # on the probe itself: exact


def test_lsuv_at_imagenet_shape() -> None:
    torch.manual_seed(0)
    model = create("squeezenet1_1", init="lsuv")  # probed at 112 px, no small_input
    with torch.no_grad():
        out = model.features(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 512, 13, 13) and 0.2 < out.pow(2).mean().sqrt().item() < 5
