"""Shared fixtures for the pruning tests: tiny data and an independent density count."""

import numpy as np
import pytest
import torch
from torch import nn

from netshrink.data import load_dataset
from netshrink.models import create


@pytest.fixture(scope="session")
def digits():
    """200 8x8 digits upscaled to 28x28: enough for a few fast optimizer steps."""
    return load_dataset("digits", input_size=(1, 28, 28), seed=0, limit=200)


@pytest.fixture
def lenet5():
    torch.manual_seed(0)
    return create("lenet5", num_classes=10, in_chans=1)


def nonzero_fraction(weight: torch.Tensor) -> float:
    """Density counted in NumPy, independently of ``layer_density``."""
    values = weight.detach().numpy()
    return np.count_nonzero(values) / values.size


def expected_density(weight: torch.Tensor | nn.Parameter, sparsity: float) -> float:
    n = weight.numel()
    return (n - round(sparsity * n)) / n
