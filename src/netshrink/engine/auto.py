"""The auto engine: each layer on the engine that runs it fastest.

XNOR layers go to the packed popcount kernels (:mod:`netshrink.engine.packed`), pruned
layers to the sparse codebook kernels (:mod:`netshrink.engine.sparse`) where that is
faster, and the rest of the network runs on the fused engine (:mod:`netshrink.engine.fused`:
channels-last, BatchNorm folded, ReLU fused, 1x1 convolutions as GEMMs). "Faster" is
measured: when the input size is known (an ``.nsz`` file records it) each pruned layer is
timed both ways on this machine at batch 1, on a channels-last input, against the fused
dense layer it would otherwise be, and keeps the faster; otherwise the sparse engine's
per-kind density crossovers decide. The notes name each layer's engine and why.
"""

from __future__ import annotations

import os

from torch import nn

from netshrink.binarize import is_binary
from netshrink.engine.fused import fuse_layer, to_fused
from netshrink.engine.packed import to_packed
from netshrink.engine.registry import Engine, EngineNote, register_engine
from netshrink.engine.sparse import dense_copy, load_sparse, to_sparse
from netshrink.nsz import NszFile, NszFormatError, read_nsz

__all__ = ["load_auto", "to_auto"]


def _fused_twin(layer: nn.Module) -> nn.Module:
    """The dense contender of a pruned layer: its fused form, as the fused network runs it."""
    return fuse_layer(dense_copy(layer))


def _fuse_rest(net: nn.Module, notes: list[EngineNote], warn: bool):
    """``net`` on the fused engine around its sparse and packed layers; the notes of the
    layers the fused engine took over say so."""
    fused_net, fused = to_fused(net, warn=warn)
    done = {n.layer: n for n in fused if n.engine == "fused"}
    if not done:  # nothing left for the fused engine: skip its channels-last wrapper
        return net, notes
    net = fused_net
    kept = [
        EngineNote(n.layer, "fused", f"{n.reason}; fused: {done.pop(n.layer).reason or 'as is'}")
        if n.engine == "float" and n.layer in done else n
        for n in notes
    ]  # fmt: skip
    return net, [*kept, *done.values()]


def _finish(net: nn.Module, notes: list[EngineNote], warn: bool):
    """The sparse-tuned ``net`` with its XNOR layers packed and the rest fused."""
    if any(is_binary(m) for m in net.modules()):
        net, packed = to_packed(net, warn=warn)
        notes = [*notes, *packed]
    return _fuse_rest(net, notes, warn)


def to_auto(
    model: nn.Module, *, warn: bool = True, input_size: tuple[int, ...] | None = None
) -> tuple[nn.Module, list[EngineNote]]:
    """A copy of ``model`` (eval mode): XNOR layers packed, pruned layers sparse where it is
    faster (timed on a batch-1 ``input_size`` (C, H, W) input when given), the rest fused;
    one note per layer."""
    net, notes = to_sparse(
        model, warn=False, tune=input_size is not None, input_size=input_size,
        dense_twin=_fused_twin, channels_last=True,
    )  # fmt: skip
    return _finish(net, notes, warn)


def load_auto(
    source: str | os.PathLike[str] | NszFile,
    *,
    model: nn.Module | None = None,
    warn: bool = True,
    input_size: tuple[int, ...] | None = None,
) -> tuple[nn.Module, list[EngineNote]]:
    """The network an ``.nsz`` file holds, its pruned layers built sparse straight from the
    file (:func:`~netshrink.engine.sparse.load_sparse`) where timing them on ``input_size``
    (default: the file's) finds it faster, its XNOR layers packed, the rest fused."""
    nsz = source if isinstance(source, NszFile) else read_nsz(source)
    size = input_size if input_size is not None else nsz.input_size
    try:
        net, notes = load_sparse(
            nsz, model=model, warn=False, tune=size is not None, input_size=size,
            dense_twin=_fused_twin, channels_last=True,
        )  # fmt: skip
    except NszFormatError as exc:
        where = "" if isinstance(source, NszFile) else f"{source}: "
        raise NszFormatError(f"{where}{exc}") from None
    return _finish(net, notes, warn)


register_engine(
    Engine(
        "auto",
        "per layer the fastest: packed for XNOR, sparse where timed faster, fused for the rest",
        to_auto,
        load=load_auto,
    )
)
