"""AGP schedule values from Zhu & Gupta's eq. 1, and a pruner that reaches its target."""

import pytest
import torch

from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.prune import GradualPruner, PruneConfig, agp_sparsity, masks
from netshrink.train import TrainConfig, train
from tests.prune.conftest import expected_density, nonzero_fraction


@pytest.mark.parametrize(
    ("step", "initial", "expected"),
    [
        (0, 0.0, 0.0),  # before the start: s_i
        (10, 0.0, 0.0),  # t_0
        (15, 0.0, 0.7),  # halfway: 0.8 - 0.8 * 0.5**3
        (15, 0.2, 0.725),  # 0.8 + (0.2 - 0.8) * 0.5**3
        (12, 0.0, 0.8 - 0.8 * 0.8**3),
        (20, 0.0, 0.8),  # t_end
        (99, 0.2, 0.8),  # after the end: s_f
    ],
)
def test_agp_values(step, initial, expected):
    assert agp_sparsity(step, 0.8, 10, 20, initial) == pytest.approx(expected, abs=1e-12)


def test_agp_rises_fast_then_slowly():
    values = [agp_sparsity(t, 0.9, 0, 100) for t in range(0, 101, 10)]
    increments = [b - a for a, b in zip(values, values[1:], strict=False)]
    assert all(d > 0 for d in increments)
    assert all(b < a for a, b in zip(increments, increments[1:], strict=False))


@pytest.mark.parametrize(
    "args", [(5, 0.8, 10, 10), (5, 0.8, 10, 5), (5, 1.0, 0, 10), (5, 0.5, 0, 10, 0.6)]
)
def test_agp_rejects_bad_arguments(args):
    with pytest.raises(NetshrinkError):
        agp_sparsity(*args)


def test_pruner_follows_the_schedule_and_reaches_the_target():
    torch.manual_seed(0)
    model = create("lenet300_100")
    pruner = GradualPruner(model, PruneConfig(sparsity={"fc1": 0.9, "fc2": 0.6}), 2, 9, 3)
    densities = []
    for _ in range(12):
        pruner(model)
        densities.append(nonzero_fraction(model.fc1.weight))
    # Pruning steps: 2 (s_i = 0), 5, 8 and the end step 9 (not a multiple of 3 after 2).
    expected, current = [], 1.0
    for step in range(1, 13):
        if step in (2, 5, 8, 9):
            current = expected_density(model.fc1.weight, agp_sparsity(step, 0.9, 2, 9))
        expected.append(current)
    assert densities == expected
    assert nonzero_fraction(model.fc2.weight) == expected_density(model.fc2.weight, 0.6)
    assert set(masks(model)) == {"fc1", "fc2"}


def test_pruner_as_after_step_in_training(digits):
    torch.manual_seed(0)
    model = create("lenet300_100")
    config = TrainConfig(epochs=1, batch_size=16, optimizer="sgd", lr=0.01)
    steps = -(-len(digits.train) // 16)
    pruner = GradualPruner(model, PruneConfig(sparsity={"*": 0.8}), 0, steps - 2, 2)
    train(model, digits, config, progress=False, after_step=pruner)
    assert pruner.step == steps
    for name, module in (("fc1", model.fc1), ("fc2", model.fc2), ("fc3", model.fc3)):
        assert nonzero_fraction(module.weight) == expected_density(module.weight, 0.8), name


def test_pruner_rejects_quality_and_bad_steps():
    model = create("lenet300_100")
    with pytest.raises(NetshrinkError, match="sparsity patterns only"):
        GradualPruner(model, PruneConfig(quality={"fc1": 1.0}), 0, 10, 1)
    with pytest.raises(NetshrinkError, match="end step"):
        GradualPruner(model, PruneConfig(sparsity={"fc1": 0.5}), 10, 10, 1)
    with pytest.raises(NetshrinkError, match="frequency"):
        GradualPruner(model, PruneConfig(sparsity={"fc1": 0.5}), 0, 10, 0)
    with pytest.raises(NetshrinkError, match="'fc9' matches no"):
        GradualPruner(model, PruneConfig(sparsity={"fc9": 0.5}), 0, 10, 1)
