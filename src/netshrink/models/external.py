"""Networks the registry does not hold: ``package.module:factory``, imported on request.

A user's own network (or one from another package) is named by an importable path, the
module and, after a colon, the attribute that builds it: ``mynets.cifar:resnet8`` or
``efficientnet_pytorch:EfficientNet.from_name``. Its keyword arguments come from
``--arg key=value`` (typed by the factory's defaults; values of parameters without a
default, or taken by ``**kwargs``, read as YAML scalars: ``10``, ``0.5``, ``true``, text).

Importing runs the module's code, so netshrink imports only what a person names: a path
given to :func:`netshrink.models.create` in Python or on the command line (a model
argument, ``--model``) is *trusted* (:func:`trust_external`); a path that a checkpoint or an
``.nsz`` file records is rebuilt only once trusted, never because a file says so.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any

import yaml
from torch import nn

from netshrink.errors import NetshrinkError

__all__ = [
    "ExternalFactory",
    "factory",
    "is_external",
    "parse_external_args",
    "trust_external",
    "trusted",
]

_SPEC = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_TRUSTED: set[str] = set()


def is_external(name: str) -> bool:
    """Whether ``name`` is an importable path (``module:attr``) rather than a registry name."""
    return ":" in name


def trust_external(spec: str) -> str:
    """Allow ``spec`` to be imported when a file names it; returns ``spec``. Malformed
    paths are refused at once."""
    _check(spec)
    _TRUSTED.add(spec)
    return spec


def trusted(spec: str) -> bool:
    return spec in _TRUSTED


def _check(spec: str) -> None:
    if not _SPEC.match(spec):
        raise NetshrinkError(
            f"malformed model path {spec!r}: expected package.module:factory "
            "(e.g. mynets.cifar:resnet8)"
        )


class ExternalFactory:
    """The imported factory of ``spec`` and what its signature accepts."""

    def __init__(self, spec: str, fn: Callable[..., Any]) -> None:
        self.spec = spec
        self.fn = fn
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):  # a builtin or C callable: accept anything
            params = {}
            self.any_keyword = True
        else:
            kinds = {p.kind for p in params.values()}
            self.any_keyword = inspect.Parameter.VAR_KEYWORD in kinds
        self.defaults = {
            k: p.default
            for k, p in params.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }  # parameters without a default map to inspect.Parameter.empty

    def accepts(self, key: str) -> bool:
        return self.any_keyword or key in self.defaults

    def build(self, **kwargs: Any) -> nn.Module:
        for key in kwargs:
            if not self.accepts(key):
                raise NetshrinkError(
                    f"unknown argument {key!r} for model {self.spec!r} "
                    f"(accepted: {', '.join(sorted(self.defaults)) or 'none'})"
                )
        try:
            model = self.fn(**kwargs)
        except Exception as exc:  # the user's code: any error is reported in one line
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise NetshrinkError(
                f"model {self.spec!r} raised {type(exc).__name__}: {first}"
            ) from None
        if not isinstance(model, nn.Module):
            raise NetshrinkError(
                f"model {self.spec!r} returned {type(model).__name__}, not a torch nn.Module"
            )
        return model


def factory(spec: str, *, require_trust: bool = True) -> ExternalFactory:
    """Import ``spec`` (``module:attr.attr``) and return its factory; with
    ``require_trust``, only a path :func:`trust_external` allowed."""
    _check(spec)
    if require_trust and spec not in _TRUSTED:
        raise NetshrinkError(
            f"the model {spec!r} is external code, imported only when you name it: pass "
            f"--model {spec} (Python: netshrink.models.trust_external({spec!r}))"
        )
    module_name, _, attr_path = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        raise NetshrinkError(
            f"cannot import {module_name!r} for model {spec!r}: no module named {missing!r}"
        ) from None
    except Exception as exc:  # the module's own code failed while importing
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise NetshrinkError(
            f"importing {module_name!r} for model {spec!r} raised {type(exc).__name__}: {first}"
        ) from None
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise NetshrinkError(f"{module_name!r} has no attribute {attr_path!r} (model {spec!r})")
        target = getattr(target, part)
    if not callable(target):
        raise NetshrinkError(f"{spec!r} is not callable")
    return ExternalFactory(spec, target)


def _scalar(spec: str, key: str, text: str, default: Any) -> Any:
    if default is inspect.Parameter.empty or default is None:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            return text
        if isinstance(value, bool | int | float | str) or value is None:
            return value
        return text  # lists and mappings stay text: a factory gets scalars from the CLI
    from netshrink.models._registry import _convert

    return _convert(spec, key, text, default)


def parse_external_args(spec: str, pairs: list[str], *, require_trust: bool = True):
    """CLI ``key=value`` strings as keyword arguments of ``spec``'s factory."""
    made = factory(spec, require_trust=require_trust)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise NetshrinkError(f"malformed --arg {pair!r}: expected key=value")
        if not made.accepts(key):
            raise NetshrinkError(
                f"unknown argument {key!r} for model {spec!r} "
                f"(accepted: {', '.join(sorted(made.defaults)) or 'none'})"
            )
        out[key] = _scalar(spec, key, text.strip(), made.defaults.get(key, inspect._empty))
    return out
