"""The dense engine: the network as PyTorch runs it, float weights, zeros multiplied.

The reference every other engine is measured against; it changes nothing.
"""

from __future__ import annotations

from torch import nn

from netshrink.engine.registry import Engine, EngineNote, register_engine

__all__ = ["to_dense"]


def to_dense(model: nn.Module, *, warn: bool = True) -> tuple[nn.Module, list[EngineNote]]:
    """``model`` itself, in eval mode: PyTorch's dense float kernels run every layer."""
    return model.eval(), []


register_engine(
    Engine("dense", "PyTorch's float kernels, every layer dense", to_dense, aliases=("float",))
)
