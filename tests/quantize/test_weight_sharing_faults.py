"""Numerical faults in weight sharing: one-line errors naming the layer, or documented results."""

import numpy as np
import pytest
import torch
from torch import nn

from netshrink.errors import NetshrinkError
from netshrink.quantize import WeightSharingConfig, share_weights_


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_before_anything_changes(bad):
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    with torch.no_grad():
        model[1].weight[0, 0] = bad
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(NetshrinkError, match="layer '1' has NaN or infinite weights"):
        share_weights_(model, WeightSharingConfig(fc_bits=4))
    for a, b in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0, equal_nan=True)
    assert "codebook" not in dict(model[0].named_parameters())  # layer 0 untouched too


def test_more_clusters_than_distinct_weights_gives_the_distinct_values():
    model = nn.Sequential(nn.Linear(4, 3))
    values = torch.tensor([[1.0, 1, 2, 2], [1, 1, 2, 2], [0, 0, -1, -1]])
    with torch.no_grad():
        model[0].weight.copy_(values)
    shared = share_weights_(model, WeightSharingConfig(fc_bits=8))["0"]  # 255 clusters asked
    np.testing.assert_array_equal(np.sort(shared.codebook), [-1.0, 1.0, 2.0])
    torch.testing.assert_close(model[0](torch.eye(4)), nn.functional.linear(
        torch.eye(4), values, model[0].bias))  # fmt: skip
