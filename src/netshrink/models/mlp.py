"""The MNIST networks of Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
Network", arXiv:1503.02531 (2015), §3.

Fully connected nets with two hidden layers of rectified linear units:

- ``mlp2x1200``: the teacher, 784-1200-1200-10, "strongly regularized using dropout":
  dropout 0.2 on the inputs and 0.5 on each hidden layer (Srivastava et al. 2014's MNIST
  settings). The paper also jittered the inputs by up to two pixels; that is a training
  setting here (``TrainConfig(augment=True)``, ``--augment``), which shifts by up to ±2 px.
  2,395,210 parameters, 2,392,800 MACs.
- ``mlp2x800``: the student, 784-800-800-10, no regularization. 1,276,810 parameters,
  1,275,200 MACs.
- ``mlp2x30``: the paper's smallest student, 784-30-30-10. 24,790 parameters, 24,720 MACs.

Every variant takes ``hidden`` and the two dropout rates, so ``mlp2x800`` with
``hidden=300`` is a 2x300 student. Inputs are 28x28 (``in_chans`` x 784 features);
other sizes raise ``ValueError``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from netshrink.models._registry import register_model

__all__ = ["HintonMLP", "mlp2x1200", "mlp2x800", "mlp2x30"]

_SIDE = 28  # MNIST


class HintonMLP(nn.Module):
    """input dropout → [fc → ReLU → dropout] x 2 → fc to the classes."""

    def __init__(
        self,
        hidden: int,
        num_classes: int = 10,
        in_chans: int = 1,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        for name, rate in (("dropout", dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {rate}")
        self.layers = nn.Sequential(
            OrderedDict(
                drop0=nn.Dropout(input_dropout),
                fc1=nn.Linear(in_chans * _SIDE * _SIDE, hidden),
                relu1=nn.ReLU(inplace=True),
                drop1=nn.Dropout(dropout),
                fc2=nn.Linear(hidden, hidden),
                relu2=nn.ReLU(inplace=True),
                drop2=nn.Dropout(dropout),
                fc3=nn.Linear(hidden, num_classes),
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != (_SIDE, _SIDE):
            h, w = x.shape[-2:]
            raise ValueError(f"the Hinton MLPs expect a {_SIDE}x{_SIDE} input, got {h}x{w}")
        return self.layers(torch.flatten(x, 1))  # (B, C*784) -> (B, num_classes)


_PAPER = "Hinton, Vinyals & Dean 2015, MNIST"


@register_model(
    family="mlp",
    input_size=(1, 28, 28),
    paper=f"{_PAPER} teacher (2x1200, dropout)",
    published={"params": 2_395_210, "macs": 2_392_800},
)
def mlp2x1200(
    num_classes: int = 10,
    in_chans: int = 1,
    hidden: int = 1200,
    dropout: float = 0.5,
    input_dropout: float = 0.2,
) -> nn.Module:
    return HintonMLP(hidden, num_classes, in_chans, dropout, input_dropout)


@register_model(
    family="mlp",
    input_size=(1, 28, 28),
    paper=f"{_PAPER} student (2x800)",
    published={"params": 1_276_810, "macs": 1_275_200},
)
def mlp2x800(
    num_classes: int = 10,
    in_chans: int = 1,
    hidden: int = 800,
    dropout: float = 0.0,
    input_dropout: float = 0.0,
) -> nn.Module:
    return HintonMLP(hidden, num_classes, in_chans, dropout, input_dropout)


@register_model(
    family="mlp",
    input_size=(1, 28, 28),
    paper=f"{_PAPER} small student (2x30)",
    published={"params": 24_790, "macs": 24_720},
)
def mlp2x30(
    num_classes: int = 10,
    in_chans: int = 1,
    hidden: int = 30,
    dropout: float = 0.0,
    input_dropout: float = 0.0,
) -> nn.Module:
    return HintonMLP(hidden, num_classes, in_chans, dropout, input_dropout)
