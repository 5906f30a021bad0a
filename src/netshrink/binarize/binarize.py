"""``binarize_``: turn a network's ``Conv2d``/``Linear`` layers into BWN or XNOR layers.

Rastegari et al., "XNOR-Net", ECCV 2016, §3. Works on any ``nn.Module``; from scratch
(binarize, then train) or from a float checkpoint (binarize, then fine-tune). The first
and last layers stay real-valued by default, as in the paper: the first sees few input
channels (binarizing it saves little and costs much), the last produces the logits.

XNOR mode binarizes each binary layer's *input*, so it needs inputs centred around zero:
the paper's block order BatchNorm → BinActiv → BinConv → Pool. After a ReLU every input
is >= 0 and its sign is always +1, so the registered networks that support it take
``order="xnor"`` (LeNet-5, the small VGG); see docs/binary.md.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from torch import nn

from netshrink.binarize.functions import filter_scale
from netshrink.binarize.modules import MODES, BinaryConv2d, BinaryLinear, is_binary
from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers, foreign_forward, match_patterns

__all__ = ["BinarizeConfig", "BinaryWeights", "binarize_", "binary_layers", "rebinarize_"]


def _patterns(key: str, value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(p, str) and p for p in value):
        raise NetshrinkError(
            f"binarize: {key} must be a list of layer-name patterns, got {value!r}"
        )
    return list(value)


@dataclass
class BinarizeConfig:
    """Which layers :func:`binarize_` turns binary, and how.

    ``mode``: ``"bwn"`` (binary weights, real inputs) or ``"xnor"`` (both binary).
    ``layers``: patterns of the layers to binarize; empty means every ``Conv2d``/``Linear``
    except, with ``keep_first_last``, the first and the last in registration order.
    ``exclude``: patterns kept real (wins over ``layers``). ``input_scale``: xnor's
    per-position ``K`` (False: scale by ``α`` only; always True for bwn). ``clip``: the
    straight-through estimator's cancel threshold (the paper's 1).
    """

    mode: str = "bwn"
    layers: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    keep_first_last: bool = True
    input_scale: bool = True
    clip: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise NetshrinkError(
                f"binarize: mode must be one of {', '.join(MODES)}, got {self.mode!r}"
            )
        self.layers = _patterns("layers", self.layers)
        self.exclude = _patterns("exclude", self.exclude)
        for key in ("keep_first_last", "input_scale"):
            if not isinstance(getattr(self, key), bool):
                raise NetshrinkError(f"binarize: {key} must be true or false")
        try:
            clip = float(self.clip) if not isinstance(self.clip, bool | str) else math.nan
        except (TypeError, ValueError, OverflowError):
            clip = math.nan
        if not (math.isfinite(clip) and clip > 0):
            raise NetshrinkError(f"binarize: clip must be a positive number, got {self.clip!r}")
        self.clip = clip
        if self.mode == "bwn":
            self.input_scale = True  # K scales binary inputs: meaningless without them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BinarizeConfig:
        if not isinstance(values, dict):
            raise NetshrinkError(f"binarize: expected a mapping, got {values!r}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise NetshrinkError(f"binarize: unknown key {unknown[0]!r}")
        return cls(**values)


def _plan(model: nn.Module, config: BinarizeConfig) -> list[str]:
    layers = compressible_layers(model)
    names = list(layers)
    if not names:
        raise NetshrinkError("binarize: the model has no Conv2d or Linear layer")
    if config.layers:
        chosen = set(match_patterns(names, dict.fromkeys(config.layers, True), what="binarize"))
    else:
        chosen = set(names)
        if config.keep_first_last:
            chosen -= {names[0], names[-1]}
    excluded = match_patterns(names, dict.fromkeys(config.exclude, True), what="binarize exclude")
    plan = [n for n in names if n in chosen and n not in excluded]
    foreign = {n: foreign_forward(layers[n]) for n in plan if foreign_forward(layers[n])}
    if foreign and config.layers:
        name, kind = next(iter(foreign.items()))
        raise NetshrinkError(
            f"binarize: layer {name!r} ({kind}) has a forward of its own, which a binary "
            "layer would drop; leave it out"
        )
    if foreign and len(foreign) == len(plan):
        kinds = ", ".join(sorted(set(foreign.values())))
        raise NetshrinkError(
            f"binarize: no eligible layer: all {len(plan)} chosen Conv2d/Linear layers have a "
            f"forward of their own ({kinds}), which a binary layer would drop"
        )
    if foreign:
        listed = ", ".join(f"{n} ({k})" for n, k in list(foreign.items())[:5])
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        warnings.warn(
            f"binarize: {len(foreign)} layer(s) with a forward of their own stay real-valued: "
            f"{listed}{more}",
            stacklevel=3,
        )
        plan = [n for n in plan if n not in foreign]
    if not plan:
        kept = " (the first and last stay real-valued)" if config.keep_first_last else ""
        raise NetshrinkError(
            f"binarize: no eligible layer: the model has {len(names)} Conv2d/Linear "
            f"layer{'s' if len(names) != 1 else ''}{kept}"
        )
    for name in plan:
        layer = layers[name]
        if is_binary(layer):
            raise NetshrinkError(f"binarize: layer {name!r} is binary already")
        if "codebook" in layer._parameters:
            raise NetshrinkError(f"binarize: layer {name!r} is weight-shared; unshare it first")
    return plan


def binarize_(model: nn.Module, config: BinarizeConfig) -> BinarizeConfig:
    """Replace the selected layers of ``model`` by binary ones, in place (XNOR-Net §3).

    Each chosen ``Conv2d``/``Linear`` becomes a :class:`~netshrink.binarize.BinaryConv2d` /
    :class:`~netshrink.binarize.BinaryLinear` holding the same Parameters, so an optimizer
    built before or after sees the real-valued weights. Returns the *resolved* config (the
    explicit layer names), which rebuilds the same model and is what checkpoints and
    ``.nsz`` files record. Every pattern is checked before anything changes.
    """
    plan = _plan(model, config)
    for name in plan:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        layer = getattr(parent, child)
        binary_type = BinaryConv2d if isinstance(layer, nn.Conv2d) else BinaryLinear
        setattr(
            parent,
            child,
            binary_type.from_float(layer, config.mode, config.input_scale, config.clip),
        )
    return BinarizeConfig(
        mode=config.mode,
        layers=plan,
        keep_first_last=False,
        input_scale=config.input_scale,
        clip=config.clip,
    )


def rebinarize_(
    model: nn.Module, resolved: Sequence[BinarizeConfig], *, source: str = "the file"
) -> nn.Module:
    """Make ``model``'s binary layers exactly those of ``resolved``, in place.

    ``resolved`` are configs returned by :func:`binarize_` (explicit layer names), as a
    checkpoint or an ``.nsz`` header records them; ``source`` names that record in errors.
    Layers already binary alike are kept (a skeleton the caller binarized); a layer binary
    in one but not the other, or binarized differently, is an error, since the stored
    weights would compute something else. Everything is checked before anything changes.
    """
    layers = compressible_layers(model)
    wanted = {name: config for config in resolved for name in config.layers}
    for name in wanted:
        if name not in layers:
            raise NetshrinkError(
                f"{source} binarizes layer {name!r}; the model has no Conv2d/Linear of that name"
            )
    for name, layer in layers.items():
        if not is_binary(layer):
            continue
        if name not in wanted:
            raise NetshrinkError(f"layer {name!r} is binary in the model but not in {source}")
        for key in ("mode", "input_scale", "clip"):
            if getattr(layer, key) != getattr(wanted[name], key):
                raise NetshrinkError(
                    f"layer {name!r} is binary with {key}={getattr(layer, key)!r} in the model, "
                    f"{key}={getattr(wanted[name], key)!r} in {source}"
                )
    for config in resolved:
        todo = [name for name in config.layers if not is_binary(layers[name])]
        if todo:  # an empty list would mean "every layer" to binarize_
            exact = [re.sub(r"([*?[])", r"[\1]", name) for name in todo]  # names, not patterns
            binarize_(model, BinarizeConfig(**{**config.to_dict(), "layers": exact}))
    return model


@dataclass
class BinaryWeights:
    """What a binary layer stores: the signs of its weights and one scale per filter.

    ``negative`` (bool, the weight's shape) is True where the weight is -1; ``scales``
    (float32, ``(out,)``) are the ``α``. The layer's effective weight is
    ``where(negative, -α, α)``.
    """

    mode: str
    negative: np.ndarray
    scales: np.ndarray


def binary_layers(model: nn.Module) -> dict[str, BinaryWeights]:
    """The signs and scales of every binary layer of ``model``, by qualified name."""
    out = {}
    for name, module in model.named_modules():
        if is_binary(module):
            weight = module.weight.detach().cpu()
            out[name] = BinaryWeights(
                mode=module.mode,
                negative=~(weight >= 0).numpy(),
                scales=filter_scale(weight).float().numpy().copy(),
            )
    return out
