"""Numerical faults get one line naming what went wrong, or a documented behaviour.

(NaN/Inf checkpoints: tests/runs/test_checkpoint_safety.py; non-finite weights and more
clusters than distinct weights in weight sharing: tests/quantize/test_weight_sharing_faults.py.)
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netshrink.data import load_dataset
from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.prune import PruneConfig, prune_
from netshrink.train import TrainConfig, train


def test_a_diverging_run_stops_with_one_line_naming_the_epoch():
    data = load_dataset("digits", input_size=(1, 28, 28), limit=200)
    torch.manual_seed(0)
    model = create("lenet300_100", num_classes=10)
    config = TrainConfig(epochs=3, optimizer="sgd", lr=1e12, schedule="constant")
    with pytest.raises(NetshrinkError, match=r"loss became (nan|inf) at epoch \d; lower") as err:
        train(model, data, config, progress=False)
    assert "\n" not in str(err.value)


def _net() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("conv", nn.Conv2d(1, 4, 3))
    model.add_module("flat", nn.Flatten())
    model.add_module("fc", nn.Linear(4 * 4 * 4, 3))
    return model


def test_pruning_that_would_empty_a_layer_is_refused_before_any_change():
    """A layer of zeros outputs the same for every input: refused, the model untouched."""
    model = _net()
    prune_(model, PruneConfig(sparsity={"fc": 0.99}))  # keeps 2 of 192: allowed
    assert int((model.fc.weight != 0).sum()) == 2
    for config in (PruneConfig(sparsity={"fc": 0.999}), PruneConfig(quality={"fc": 100.0})):
        model = _net()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(NetshrinkError, match="layer 'fc' .* keeps none of its 192 weights"):
            prune_(model, config)
        for name, tensor in model.state_dict().items():
            assert torch.equal(tensor, before[name]), name
