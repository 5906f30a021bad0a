"""A flat registry of model builders (timm style).

Every builder has the same small interface: ``builder(num_classes=..., in_chans=..., **kw)``
returns an ``nn.Module``. Builders declare the input they were published at and the
published parameter/MAC counts there, so tests can check declaration against measurement.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from netshrink.errors import NetshrinkError
from netshrink.models.external import factory, is_external, parse_external_args

__all__ = [
    "ModelSpec",
    "register_model",
    "create",
    "list_models",
    "get_spec",
    "parse_model_args",
]


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows of one model builder.

    ``input_size`` is the (C, H, W) the published network expects with its default
    arguments; ``published`` holds ``{"params": int, "macs": int}`` measured there with
    the default ``num_classes`` (MACs counted as in papers.md: one multiply-accumulate = 1).
    """

    name: str
    builder: Callable[..., nn.Module]
    family: str
    input_size: tuple[int, int, int]
    paper: str = ""
    published: dict[str, int] = field(default_factory=dict)

    @property
    def defaults(self) -> dict[str, Any]:
        """Keyword arguments of the builder and their default values."""
        sig = inspect.signature(self.builder)
        return {
            k: p.default
            for k, p in sig.parameters.items()
            if p.default is not inspect.Parameter.empty
        }

    @property
    def supports_small_input(self) -> bool:
        return "small_input" in self.defaults


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    *,
    family: str,
    input_size: tuple[int, int, int],
    paper: str = "",
    published: dict[str, int] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``fn`` under its function name."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        sig = inspect.signature(fn)
        for required in ("num_classes", "in_chans"):
            if required not in sig.parameters:
                raise TypeError(f"builder {name!r} must take {required!r}")
        _REGISTRY[name] = ModelSpec(name, fn, family, tuple(input_size), paper, published or {})
        return fn

    return wrap


def list_models(family: str | None = None) -> list[str]:
    """Registered model names, sorted (optionally one family)."""
    return sorted(n for n, s in _REGISTRY.items() if family is None or s.family == family)


def get_spec(name: str) -> ModelSpec:
    """The spec of model ``name``; unknown names raise with the nearest suggestion.

    An importable path (``package.module:factory``, :mod:`netshrink.models.external`) gets
    a spec of family ``external`` with no input size of its own, once trusted."""
    if is_external(name):
        made = factory(name)
        return ModelSpec(name, made.fn, "external", ())
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1, cutoff=0.4)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise NetshrinkError(f"unknown model {name!r}{hint} (see `netshrink models`)") from None


def create(name: str, **kwargs: Any) -> nn.Module:
    """Build registered model ``name``: ``create("squeezenet1_0", num_classes=10, in_chans=1)``.

    Unknown keyword arguments raise ``NetshrinkError`` naming the argument. An importable
    path (``package.module:factory``) is built by its factory once trusted
    (:func:`netshrink.models.trust_external`).
    """
    if is_external(name):
        return factory(name).build(**kwargs)
    spec = get_spec(name)
    accepted = spec.defaults
    for key in kwargs:
        if key not in accepted:
            raise NetshrinkError(
                f"unknown argument {key!r} for model {name!r} "
                f"(accepted: {', '.join(sorted(accepted))})"
            )
    try:
        return spec.builder(**kwargs)
    except (ValueError, TypeError) as exc:
        raise NetshrinkError(f"model {name!r}: {exc}") from None


def _convert(name: str, key: str, text: str, default: Any) -> Any:
    """Convert ``text`` to the type of the builder's default value."""
    try:
        if isinstance(default, bool):
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if default is None:
            # Untyped default: best effort number, else string.
            for cast in (int, float):
                try:
                    return cast(text)
                except ValueError:
                    pass
        return text
    except ValueError:
        kind = type(default).__name__
        raise NetshrinkError(
            f"argument {key!r} of model {name!r} expects {kind}, got {text!r}"
        ) from None


def parse_model_args(name: str, pairs: Iterable[str]) -> dict[str, Any]:
    """Parse CLI ``key=value`` strings into typed builder kwargs for model ``name``."""
    if is_external(name):
        return parse_external_args(name, list(pairs))
    accepted = get_spec(name).defaults
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise NetshrinkError(f"malformed --arg {pair!r}: expected key=value")
        if key not in accepted:
            raise NetshrinkError(
                f"unknown argument {key!r} for model {name!r} "
                f"(accepted: {', '.join(sorted(accepted))})"
            )
        out[key] = _convert(name, key, text.strip(), accepted[key])
    return out
