"""How any registered model meets any data size: no collapse, the right input."""

import pytest
import torch

from netshrink.models import create, list_models
from netshrink.runs.load import resolve_model


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("data_size", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_every_model_runs_on_every_small_data_size(name, data_size):
    args, size = resolve_model(name, data_size, {"num_classes": 10})
    assert size[0] == data_size[0]
    with torch.device("meta"):  # shapes only: fast even for VGG-16
        model = create(name, **args).eval()
        out = model(torch.zeros(2, *size))
    assert out.shape == (2, 10)
