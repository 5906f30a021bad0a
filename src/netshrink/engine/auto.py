"""The auto engine: each layer on the engine that runs it fastest.

XNOR layers go to the packed popcount kernels (:mod:`netshrink.engine.packed`), pruned
layers sparse enough for it to pay to the sparse codebook kernels
(:mod:`netshrink.engine.sparse`, whose per-kind density crossovers decide), and every
other layer stays PyTorch dense. The notes name each layer's engine and why.
"""

from __future__ import annotations

import os

from torch import nn

from netshrink.binarize import is_binary
from netshrink.engine.packed import to_packed
from netshrink.engine.registry import Engine, EngineNote, register_engine
from netshrink.engine.sparse import load_sparse, to_sparse
from netshrink.nsz import NszFile

__all__ = ["load_auto", "to_auto"]


def to_auto(model: nn.Module, *, warn: bool = True) -> tuple[nn.Module, list[EngineNote]]:
    """A copy of ``model`` (eval mode): XNOR layers packed, sparse layers sparse, the rest
    dense (see the module docstring); one note per layer considered."""
    model, notes = to_sparse(model, warn=warn)
    if any(is_binary(m) for m in model.modules()):
        model, packed = to_packed(model, warn=warn)
        notes = [*notes, *packed]
    return model, notes


def load_auto(
    source: str | os.PathLike[str] | NszFile, *, model: nn.Module | None = None, warn: bool = True
) -> tuple[nn.Module, list[EngineNote]]:
    """The network an ``.nsz`` file holds, its pruned layers built sparse straight from the
    file (:func:`~netshrink.engine.sparse.load_sparse`), its XNOR layers packed."""
    net, notes = load_sparse(source, model=model, warn=warn)
    if any(is_binary(m) for m in net.modules()):
        net, packed = to_packed(net, warn=warn)
        notes = [*notes, *packed]
    return net, notes


register_engine(
    Engine(
        "auto",
        "per layer the fastest: packed for XNOR, sparse where it pays, dense for the rest",
        to_auto,
        load=load_auto,
    )
)
