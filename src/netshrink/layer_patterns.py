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

__all__ = ["compressible_layers", "is_conv", "match_patterns"]

T = TypeVar("T")


def compressible_layers(model: nn.Module) -> dict[str, nn.Conv2d | nn.Linear]:
    """The model's ``Conv2d`` and ``Linear`` layers by qualified name, in registration order."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.Linear) and name
    }


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
