"""Hinton et al.'s MNIST nets: layer sizes by hand, dropout only in the teacher."""

import pytest
import torch
from torch import nn

from netshrink.models import create


@pytest.mark.parametrize(
    ("name", "hidden"), [("mlp2x1200", 1200), ("mlp2x800", 800), ("mlp2x30", 30)]
)
def test_layer_sizes_and_parameter_count(name, hidden):
    model = create(name)
    widths = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert widths == [(784, hidden), (hidden, hidden), (hidden, 10)]
    by_hand = 784 * hidden + hidden + hidden * hidden + hidden + hidden * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == by_hand


def test_only_the_teacher_has_dropout():
    rates = {n: [m.p for m in create(n).modules() if isinstance(m, nn.Dropout)] for n in
             ("mlp2x1200", "mlp2x800", "mlp2x30")}  # fmt: skip
    assert rates["mlp2x1200"] == [0.2, 0.5, 0.5]
    assert rates["mlp2x800"] == rates["mlp2x30"] == [0.0, 0.0, 0.0]
    teacher = create("mlp2x1200").eval()
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(teacher(x), teacher(x))  # eval mode: dropout off


def test_other_input_sizes_raise():
    with pytest.raises(ValueError, match="expect a 28x28 input, got 32x32"):
        create("mlp2x30")(torch.zeros(1, 1, 32, 32))
