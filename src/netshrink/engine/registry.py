"""The engines a trained network can run on, by name.

An engine turns a trained network into one that computes the same function, faster, on
kernels of its own (:mod:`netshrink.kernels`); layers it cannot run stay PyTorch float and
are named in its notes. ``netshrink eval --engine NAME`` and the survey pick engines from
this registry; a new engine is one module that calls :func:`register_engine`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from netshrink.errors import NetshrinkError

__all__ = ["Engine", "EngineNote", "get_engine", "list_engines", "prepare", "register_engine"]


@dataclass(frozen=True)
class EngineNote:
    """Where one layer runs under an engine, and why."""

    layer: str
    engine: str  # the engine's name, or "float" for a layer left to PyTorch
    reason: str = ""


@dataclass(frozen=True)
class Engine:
    """``prepare(model, warn)`` returns the network to run (a copy when anything changes)
    and one :class:`EngineNote` per layer the engine considered; ``warn`` says fall-backs
    once, as a ``UserWarning``. ``load(nsz, warn)``, where given, builds the same from a
    parsed ``.nsz`` file without first expanding it to a dense model."""

    name: str
    summary: str  # one line, for ``--help`` and the docs
    prepare: Callable[..., tuple[nn.Module, list[EngineNote]]]
    aliases: tuple[str, ...] = ()
    load: Callable[..., tuple[nn.Module, list[EngineNote]]] | None = None


_ENGINES: dict[str, Engine] = {}
_ALIASES: dict[str, str] = {}


def register_engine(engine: Engine) -> Engine:
    for name in (engine.name, *engine.aliases):
        if name in _ENGINES or name in _ALIASES:
            raise NetshrinkError(f"engine {name!r} is registered already")
    _ENGINES[engine.name] = engine
    _ALIASES.update(dict.fromkeys(engine.aliases, engine.name))
    return engine


def list_engines(*, aliases: bool = False) -> list[str]:
    """Registered engine names (with ``aliases``, their other names too)."""
    return [*_ENGINES, *_ALIASES] if aliases else list(_ENGINES)


def get_engine(name: str) -> Engine:
    engine = _ENGINES.get(_ALIASES.get(name, name))
    if engine is None:
        raise NetshrinkError(f"unknown engine {name!r} (known: {', '.join(_ENGINES)})")
    return engine


def prepare(
    model: nn.Module, engine: str = "dense", *, warn: bool = True
) -> tuple[nn.Module, list[EngineNote]]:
    """``model`` ready to run on ``engine``, and the engine's notes on its layers."""
    return get_engine(engine).prepare(model, warn=warn)
