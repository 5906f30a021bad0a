"""Which layers a compression method touches, and per-layer settings by name pattern.

Every method (pruning, weight sharing, binarization) works on the ``Conv2d`` and ``Linear``
layers of any ``nn.Module``, addressed by their qualified names (``features.conv1``,
``fire2.expand3x3``). Per-layer settings are mappings from ``fnmatch`` patterns to values.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import TypeVar

from torch import nn

from netshrink.errors import NetshrinkError

__all__ = ["compressible_layers", "foreign_forward", "is_conv", "match_patterns", "tied_layers"]

T = TypeVar("T")


def compressible_layers(model: nn.Module) -> dict[str, nn.Conv2d | nn.Linear]:
    """The model's ``Conv2d`` and ``Linear`` layers by qualified name, in registration order,
    less those whose weight is tied to another parameter (:func:`tied_layers`: compressing
    one copy would untie them, so every method leaves them float)."""
    tied = tied_layers(model)
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.Linear) and name and name not in tied
    }


def tied_layers(model: nn.Module) -> dict[str, str]:
    """``Conv2d``/``Linear`` layers whose ``weight`` is one tensor with another parameter of
    the model (tied weights), each with the first other name of that tensor. A module
    registered twice is one layer, not tied."""
    names: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name)
    aliases: dict[int, set[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        aliases.setdefault(id(module), set()).add(name)
    tied = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not name or not isinstance(module, nn.Conv2d | nn.Linear) or weight is None:
            continue
        owners = names.get(id(weight), [])
        others = [n for n in owners if n.rpartition(".")[0] not in aliases[id(module)]]
        if isinstance(weight, nn.Parameter) and others:
            tied[name] = others[0]
    return tied


def foreign_forward(module: nn.Module) -> str:
    """The class name of a ``Conv2d``/``Linear`` subclass from outside netshrink with a
    ``forward`` of its own (e.g. a convolution that pads itself first), else "". Methods
    that only change the weights keep such a layer's forward; those that replace the layer
    (binarization, the engines' kernels) would drop it, so they leave it float."""
    for base in (nn.Conv2d, nn.Linear):
        if isinstance(module, base):
            own = type(module).forward is not base.forward
            ours = type(module).__module__.startswith("netshrink.")
            return type(module).__name__ if own and not ours else ""
    return ""


def is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d)


def match_patterns(
    names: list[str], mapping: Mapping[str, T], *, what: str = "setting"
) -> dict[str, T]:
    """Resolve ``{pattern: value}`` onto layer ``names``: the first matching pattern wins.

    Patterns are ``fnmatch`` patterns (``*`` matches dots too), tried in the mapping's order,
    so put specific patterns before ``"*"``. A pattern that matches no layer is an error:
    it is almost always a typo, and silently ignoring it would leave a layer uncompressed.
    """
    resolved: dict[str, T] = {}
    for pattern, value in mapping.items():
        hits = [n for n in names if fnmatchcase(n, pattern)]
        if not hits:
            known = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise NetshrinkError(
                f"{what} pattern {pattern!r} matches no Conv2d/Linear layer (layers: {known})"
            )
        for name in hits:
            resolved.setdefault(name, value)
    return {n: resolved[n] for n in names if n in resolved}
