"""``torch.fx`` helpers the engines share to find what they fuse in a traced network."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

__all__ = ["is_relu_node"]

_RELU_CALLS = (F.relu, torch.relu, torch.relu_)


def is_relu_node(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether a traced node applies ReLU (module, function or method)."""
    if node.op == "call_module":
        return isinstance(modules.get(node.target), nn.ReLU)
    if node.op == "call_function":
        return node.target in _RELU_CALLS
    return node.op == "call_method" and node.target in ("relu", "relu_")
