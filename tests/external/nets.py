"""Hand-written networks the registry does not hold, one per layer kind a user's model may
have: importable as ``tests.external.nets:NAME`` by the CLI tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Scale(nn.Module):
    """A layer netshrink does not know: a learned per-channel scale."""

    def __init__(self, chans: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(chans))

    def forward(self, x):
        return x * self.gamma.view(1, -1, 1, 1)


class Residual(nn.Module):
    def __init__(self, chans: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Sequential(nn.Conv2d(chans, chans, 3, padding=2, dilation=2, bias=False)),
            nn.BatchNorm2d(chans),
        )

    def forward(self, x):
        return F.relu(x + self.body(x))  # a residual addition, functional ReLU


class OddNet(nn.Module):
    """Grouped, dilated, reflect-padded and bias-free convolutions, BatchNorm, a residual
    block in nested Sequentials, functional calls, an unknown layer and tied weights."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_chans, width, 3, padding=1, padding_mode="reflect")
        self.grouped = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, groups=2, bias=False)
        self.bn = nn.BatchNorm2d(2 * width)
        self.block = nn.Sequential(nn.Sequential(Residual(2 * width)))
        self.scale = Scale(2 * width)
        self.fc1 = nn.Linear(2 * width, 2 * width)
        self.fc2 = nn.Linear(2 * width, 2 * width)
        self.fc2.weight = self.fc1.weight  # tied
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.relu(self.bn(self.grouped(x)))
        x = self.scale(self.block(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        x = F.relu(self.fc2(F.relu(self.fc1(x))))
        return self.head(x)


def odd_net(num_classes: int = 10, in_chans: int = 1, width: int = 8) -> nn.Module:
    return OddNet(num_classes, in_chans, width)


def plain_net(classes: int = 10) -> nn.Module:
    """A factory whose arguments netshrink cannot guess (no num_classes / in_chans)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 13 * 13, classes),
    )


def broken_net() -> nn.Module:
    raise ValueError("this factory always fails")


def not_a_module() -> int:
    return 3


class UnknownLayers(nn.Module):
    """Layers the methods do not compress: a transposed and a 1-D convolution, LayerNorm, an
    Embedding read by its weight."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.c1d = nn.Conv1d(4, 4, 3, padding=1)
        self.ln = nn.LayerNorm(4)
        self.emb = nn.Embedding(10, 4)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        x = self.up(torch.relu(self.c1(x))).flatten(2)  # (N, 4, 4HW)
        x = self.ln(self.c1d(x).mean(2)) + self.emb.weight[:1]
        return self.fc(x)
