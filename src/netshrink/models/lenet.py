"""LeNet-300-100 and LeNet-5, the MNIST networks of Deep Compression.

LeCun et al., "Gradient-based learning applied to document recognition", Proc. IEEE 1998;
the exact layer sizes are those of Han, Mao & Dally, "Deep Compression", ICLR 2016
(arXiv:1510.00149), Table 1, i.e. Caffe's ``lenet_train_test.prototxt``:

- LeNet-300-100: fully connected 784-300-100-10 with ReLU; 266,610 parameters, 266,200 MACs.
- LeNet-5 (Caffe): conv 20@5x5, max-pool 2, conv 50@5x5, max-pool 2, fc 500, ReLU, fc 10.
  Caffe's version has no nonlinearity after the convolutions: ReLU only after fc1.
  431,080 parameters, 2,293,000 MACs at 1x28x28.

XNOR block order (``lenet5(order="xnor")``, for :mod:`netshrink.binarize`): XNOR-Net
(Rastegari et al. 2016, §3.3) puts BatchNorm → binary activation → binary conv → pool, so
each binary layer sees inputs centred on zero. The float network in that order uses
``Hardtanh`` where the binary one takes the sign (its gradient is the sign's
straight-through estimator): conv1 → pool1 → [bn2 → act2 → conv2 → pool2] →
[bn3 → act3 → fc1] → ReLU → fc2. conv1 and fc2 (first and last) stay real-valued.

Both expect a 28x28 image (the fully connected sizes are fixed by it); other sizes raise
``ValueError``. Layer names follow the paper's per-layer tables (ip1.. are ``fc1``..).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from netshrink.models._registry import register_model

__all__ = ["LeNet300100", "LeNet5", "lenet300_100", "lenet5"]

_SIDE = 28  # MNIST


def _check_input(x: Tensor, name: str) -> None:
    if tuple(x.shape[-2:]) != (_SIDE, _SIDE):
        h, w = x.shape[-2:]
        raise ValueError(f"{name} expects a {_SIDE}x{_SIDE} input, got {h}x{w}")


# torch.fx records the check as one call instead of tracing into it (the engines trace the
# networks to fuse their layers; a branch on a shape does not trace).
torch.fx.wrap("_check_input")


def _init_xavier(model: nn.Module) -> None:
    # Caffe's LeNet uses the "xavier" filler and zero biases.
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class LeNet300100(nn.Module):
    """Fully connected 784-300-100-10 (for ``in_chans`` > 1 the input is C*28*28)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_chans * _SIDE * _SIDE, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)
        self.relu = nn.ReLU(inplace=True)
        _init_xavier(self)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, "lenet300_100")
        x = torch.flatten(x, 1)  # (B, C*784)
        x = self.relu(self.fc1(x))  # (B, 300)
        x = self.relu(self.fc2(x))  # (B, 100)
        return self.fc3(x)  # (B, num_classes)


ORDERS = ("standard", "xnor")


def check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")


class LeNet5(nn.Module):
    """Caffe LeNet-5: two conv/pool stages, then fc 500 and the classifier."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, order: str = "standard") -> None:
        super().__init__()
        check_order(order)
        self.order = order
        self.conv1 = nn.Conv2d(in_chans, 20, kernel_size=5)
        self.pool1 = nn.MaxPool2d(2)
        if order == "xnor":
            self.bn2, self.act2 = nn.BatchNorm2d(20), nn.Hardtanh()
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        self.pool2 = nn.MaxPool2d(2)
        if order == "xnor":
            self.bn3, self.act3 = nn.BatchNorm1d(50 * 4 * 4), nn.Hardtanh()
        self.fc1 = nn.Linear(50 * 4 * 4, 500)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(500, num_classes)
        _init_xavier(self)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, "lenet5")
        x = self.pool1(self.conv1(x))  # (B, 20, 12, 12)
        if self.order == "xnor":
            x = self.act2(self.bn2(x))
        x = self.pool2(self.conv2(x))  # (B, 50, 4, 4)
        x = torch.flatten(x, 1)  # (B, 800)
        if self.order == "xnor":
            x = self.act3(self.bn3(x))
        x = self.relu(self.fc1(x))  # (B, 500)
        return self.fc2(x)  # (B, num_classes)


@register_model(
    family="lenet",
    input_size=(1, 28, 28),
    paper="Han et al. 2016, Deep Compression (LeNet-300-100)",
    published={"params": 266_610, "macs": 266_200},
)
def lenet300_100(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    return LeNet300100(num_classes=num_classes, in_chans=in_chans)


@register_model(
    family="lenet",
    input_size=(1, 28, 28),
    paper="Han et al. 2016, Deep Compression (LeNet-5, Caffe)",
    published={"params": 431_080, "macs": 2_293_000},
)
def lenet5(num_classes: int = 10, in_chans: int = 1, order: str = "standard") -> nn.Module:
    return LeNet5(num_classes=num_classes, in_chans=in_chans, order=order)
