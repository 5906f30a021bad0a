"""SqueezeNet: Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters
and <0.5MB model size", arXiv:1602.07360 (2016).

The building block is the ``Fire`` module: a 1x1 "squeeze" convolution (s1x1 filters)
feeding an "expand" layer of e1x1 1x1 and e3x3 3x3 filters whose outputs are concatenated.
Eight Fire modules (fire2..fire9) follow conv1; dropout 0.5, conv10 (1x1 to the classes)
and global average pooling replace fully connected layers.

Fire widths come from the §5 metaparameters, for fire module i = 0..7 (fire2..fire9)::

    e_i   = base_e + incr_e * floor(i / freq)        # expand filters, e1x1 + e3x3
    e3x3  = int(pct3x3 * e_i),  e1x1 = e_i - e3x3
    s1x1  = int(squeeze_ratio * e_i)

The defaults (128, 128, 0.5, 2, 0.125) give the published network: fire2-3 (16, 64, 64),
fire4-5 (32, 128, 128), fire6-7 (48, 192, 192), fire8-9 (64, 256, 256).

- ``squeezenet1_0``: conv1 96@7x7/2 (no padding: 109x109 at 224); 3x3/2 max-pools (ceil
  mode) after conv1, fire4 and fire8. 1,248,424 parameters, 818,924,576 MACs at 224.
- ``squeezenet1_1``: conv1 64@3x3/2; pools after conv1, fire3 and fire5.
  1,235,496 parameters, 349,151,936 MACs at 224.

Bypass (§6, Table 3): ``bypass="simple"`` adds an identity shortcut around every Fire
module whose input and output channel counts are equal: with the default metaparameters
that is fire3, fire5, fire7 and fire9 in both versions (the paper's choice); it adds no
parameters. ``bypass="complex"`` additionally adds a 1x1 convolution (with bias, like
every SqueezeNet conv) on the shortcut of the other modules (fire2, 4, 6, 8 by default).

Initialisation (``init``): "kaiming" (default, as torchvision: Kaiming-uniform convs,
conv10 N(0, 0.01)) or "lsuv". Without BatchNorm, bypasses make activations grow from
module to module under Kaiming init (RMS at fire9's output on unit-variance inputs: ~0.9
vanilla, ~10 simple, ~110 complex), the final ReLU dies and complex bypass does not
train. "lsuv" then rescales every conv but conv10, in forward order, so that its output
on a fixed standard-normal probe batch has unit variance: the layer-sequential
unit-variance step of Mishkin & Matas 2016 ("All you need is a good init"), data-free
(inputs are normalised per channel, so noise stands in for data) and without their
orthonormal start. Weights keep their Kaiming directions; only their scales change.

Shortcut re-scaling (``bypass_scale``, default 1: the paper): a Fire module with a bypass
returns ``bypass_scale * (fire(x) + shortcut(x))``. With 1/√2 two unit-variance,
uncorrelated branches sum to unit variance again, so activations no longer grow from
module to module without BatchNorm (the normaliser-free residual scaling of e.g. Brock et
al. 2021, applied to SqueezeNet's shortcuts); it adds no parameters.

Small inputs (``small_input=True``): conv1 becomes 3x3/1 with padding 1 and the same
filters; the three pools stay, so 28x28 runs the Fire modules at 14, 7 and 4 px (a quarter
of their ImageNet sides). A map too small for a layer's window raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import Tensor, nn

from netshrink.models._blocks import forward_features
from netshrink.models._registry import register_model

__all__ = [
    "Fire",
    "SqueezeNet",
    "fire_widths",
    "scale_to_unit_variance_",
    "squeezenet1_0",
    "squeezenet1_1",
]

BYPASS_MODES = ("none", "simple", "complex")
INIT_MODES = ("kaiming", "lsuv")


def fire_widths(
    base_e: int = 128,
    incr_e: int = 128,
    pct3x3: float = 0.5,
    freq: int = 2,
    squeeze_ratio: float = 0.125,
    num_fire: int = 8,
) -> list[tuple[int, int, int]]:
    """(s1x1, e1x1, e3x3) of each Fire module from the §5 metaparameters (see module doc)."""
    if not 0.0 < pct3x3 < 1.0:
        raise ValueError(f"pct3x3 must lie in (0, 1), got {pct3x3}")
    if not 0.0 < squeeze_ratio <= 1.0:
        raise ValueError(f"squeeze_ratio must lie in (0, 1], got {squeeze_ratio}")
    if base_e < 1 or incr_e < 0 or freq < 1:
        raise ValueError(
            f"need base_e >= 1, incr_e >= 0, freq >= 1; got {base_e}, {incr_e}, {freq}"
        )
    widths = []
    for i in range(num_fire):
        e = base_e + incr_e * math.floor(i / freq)
        e3x3 = int(pct3x3 * e)
        s1x1 = int(squeeze_ratio * e)
        if min(s1x1, e3x3, e - e3x3) < 1:
            raise ValueError(
                f"fire{i + 2}: metaparameters give an empty layer "
                f"(s1x1={s1x1}, e1x1={e - e3x3}, e3x3={e3x3})"
            )
        widths.append((s1x1, e - e3x3, e3x3))
    return widths


class Fire(nn.Module):
    """Squeeze (1x1) then expand (1x1 and 3x3, concatenated); optional bypass (§6).

    ``bypass``: "none", "identity" (needs in_chans == e1x1 + e3x3) or "conv" (1x1 conv).
    """

    def __init__(
        self,
        in_chans: int,
        s1x1: int,
        e1x1: int,
        e3x3: int,
        bypass: str = "none",
        bypass_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not (math.isfinite(bypass_scale) and bypass_scale > 0):
            raise ValueError(f"bypass_scale must be a positive number, got {bypass_scale}")
        self.bypass_scale = float(bypass_scale)
        out_chans = e1x1 + e3x3
        if bypass == "identity" and in_chans != out_chans:
            raise ValueError(
                f"identity bypass needs in == out channels ({in_chans} != {out_chans})"
            )
        self.squeeze = nn.Conv2d(in_chans, s1x1, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(s1x1, e1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(s1x1, e3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)
        self.bypass: nn.Module | None = None
        if bypass == "identity":
            self.bypass = nn.Identity()
        elif bypass == "conv":
            self.bypass = nn.Conv2d(in_chans, out_chans, kernel_size=1)
        elif bypass != "none":
            raise ValueError(f"unknown Fire bypass {bypass!r}")

    def forward(self, x: Tensor) -> Tensor:
        s = self.squeeze_activation(self.squeeze(x))  # (B, s1x1, H, W)
        out = torch.cat(
            [
                self.expand1x1_activation(self.expand1x1(s)),
                self.expand3x3_activation(self.expand3x3(s)),
            ],
            dim=1,
        )  # (B, e1x1 + e3x3, H, W)
        if self.bypass is not None:
            out = out + self.bypass(x)  # residual over the Fire module (§6)
            if self.bypass_scale != 1.0:
                out = out * self.bypass_scale
        return out


class SqueezeNet(nn.Module):
    """conv1, eight Fire modules with max-pools after ``pool_after``, then conv10 + GAP."""

    def __init__(
        self,
        version: str = "1_0",
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        bypass: str = "none",
        init: str = "kaiming",
        bypass_scale: float = 1.0,
        **metaparameters: float,
    ) -> None:
        super().__init__()
        if bypass not in BYPASS_MODES:
            raise ValueError(f"bypass must be one of {BYPASS_MODES}, got {bypass!r}")
        if init not in INIT_MODES:
            raise ValueError(f"init must be one of {INIT_MODES}, got {init!r}")
        if bypass == "none" and bypass_scale != 1.0:
            raise ValueError(f"bypass_scale={bypass_scale} scales shortcuts: it needs a bypass")
        self.name, self.small_input = f"squeezenet{version}", small_input
        if version == "1_0":
            conv1_chans, kernel, pool_after = 96, 7, ("conv1", "fire4", "fire8")
        elif version == "1_1":
            conv1_chans, kernel, pool_after = 64, 3, ("conv1", "fire3", "fire5")
        else:
            raise ValueError(f"unknown SqueezeNet version {version!r}")
        if small_input:
            conv1 = nn.Conv2d(in_chans, conv1_chans, kernel_size=3, stride=1, padding=1)
        else:
            conv1 = nn.Conv2d(in_chans, conv1_chans, kernel_size=kernel, stride=2)
        layers: list[tuple[str, nn.Module]] = [("conv1", conv1), ("relu1", nn.ReLU(inplace=True))]
        if "conv1" in pool_after:
            layers.append(("pool1", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)))
        chans = conv1_chans
        for i, (s1x1, e1x1, e3x3) in enumerate(fire_widths(**metaparameters), start=2):
            out_chans = e1x1 + e3x3
            mode = "none"
            if bypass != "none" and chans == out_chans:
                mode = "identity"
            elif bypass == "complex":
                mode = "conv"
            fire = Fire(chans, s1x1, e1x1, e3x3, bypass=mode, bypass_scale=bypass_scale)
            layers.append((f"fire{i}", fire))
            if f"fire{i}" in pool_after:
                layers.append((f"pool{i}", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)))
            chans = out_chans
        self.features = nn.Sequential(OrderedDict(layers))
        self.classifier = nn.Sequential(
            OrderedDict(
                drop9=nn.Dropout(0.5),
                conv10=nn.Conv2d(chans, num_classes, kernel_size=1),
                relu10=nn.ReLU(inplace=True),
                pool10=nn.AdaptiveAvgPool2d((1, 1)),
            )
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is self.classifier.conv10:
                    nn.init.normal_(m.weight, 0.0, 0.01)  # as the reference implementation
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        if init == "lsuv" and not self.classifier.conv10.weight.is_meta:
            side = 28 if small_input else 112
            generator = torch.Generator().manual_seed(0)  # the global RNG is left alone
            probe = torch.randn(16, in_chans, side, side, generator=generator)
            probe = probe.to(self.classifier.conv10.weight.device)
            scale_to_unit_variance_(self, probe, skip=(self.classifier.conv10,))

    def forward(self, x: Tensor) -> Tensor:
        x = forward_features(self.features, x, self.name, self.small_input)  # (B, 512, 13, 13)
        return torch.flatten(self.classifier(x), 1)  # (B, num_classes)


def scale_to_unit_variance_(
    model: nn.Module, probe: Tensor, skip: tuple[nn.Module, ...] = ()
) -> None:
    """LSUV's scaling step in one forward pass: each conv (but ``skip``) divides its weight
    and bias by the std of its output on ``probe``, in forward order, so every later layer
    already sees the rescaled maps (the output scales exactly with weight and bias). A conv
    called twice in one forward would be scaled twice. Every submodule's mode is kept."""

    def rescale(conv: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> Tensor:
        std = out.std()
        if not std > 1e-12:  # a constant map (or NaN) has no scale to fix
            return out
        conv.weight.div_(std)
        if conv.bias is not None:
            conv.bias.div_(std)
        return out / std

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m not in skip]
    hooks = [conv.register_forward_hook(rescale) for conv in convs]
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(probe)
    finally:
        for hook in hooks:
            hook.remove()
        for m, training in modes.items():
            m.training = training


@register_model(
    family="squeezenet",
    input_size=(3, 224, 224),
    paper="Iandola et al. 2016, SqueezeNet v1.0",
    published={"params": 1_248_424, "macs": 818_924_576},
)
def squeezenet1_0(
    num_classes: int = 1000,
    in_chans: int = 3,
    small_input: bool = False,
    bypass: str = "none",
    init: str = "kaiming",
    bypass_scale: float = 1.0,
    base_e: int = 128,
    incr_e: int = 128,
    pct3x3: float = 0.5,
    freq: int = 2,
    squeeze_ratio: float = 0.125,
) -> nn.Module:
    return SqueezeNet("1_0", **locals())  # every builder argument, unchanged


@register_model(
    family="squeezenet",
    input_size=(3, 224, 224),
    paper="Iandola et al. 2016, SqueezeNet v1.1 (DeepScale release)",
    published={"params": 1_235_496, "macs": 349_151_936},
)
def squeezenet1_1(
    num_classes: int = 1000,
    in_chans: int = 3,
    small_input: bool = False,
    bypass: str = "none",
    init: str = "kaiming",
    bypass_scale: float = 1.0,
    base_e: int = 128,
    incr_e: int = 128,
    pct3x3: float = 0.5,
    freq: int = 2,
    squeeze_ratio: float = 0.125,
) -> nn.Module:
    return SqueezeNet("1_1", **locals())  # every builder argument, unchanged
