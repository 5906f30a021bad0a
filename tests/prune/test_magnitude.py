"""prune_ and friends: exact densities, masks kept through training, checkpoint round trips."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.prune import (
    PruneConfig,
    apply_masks_,
    layer_density,
    magnitude,
    masks,
    prune_,
    prune_and_retrain,
    remove_masks_,
    restore_masks_,
)
from netshrink.runs.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from netshrink.train import TrainConfig, TrainResult, train
from tests.prune.conftest import expected_density, nonzero_fraction


def _weights(model):
    return {n: m.weight.detach().clone() for n, m in model.named_modules() if hasattr(m, "weight")}


def test_prune_gives_exact_density_and_keeps_the_largest(lenet5):
    before = {k: v.clone() for k, v in lenet5.state_dict().items()}
    targets = {"conv1": 0.34, "conv2": 0.88, "fc1": 0.92, "fc2": 0.81}  # Han et al. LeNet-5
    density = prune_(lenet5, PruneConfig(sparsity={"conv*": 0.0, **targets}))
    layers = dict(lenet5.named_modules())
    # "conv*" comes first and wins for conv1/conv2: first matching pattern wins.
    assert density["conv1"] == density["conv2"] == 1.0
    for name in ("fc1", "fc2"):
        weight = layers[name].weight
        assert density[name] == expected_density(weight, targets[name])
        assert nonzero_fraction(weight) == density[name]
        original = before[f"{name}.weight"].abs().numpy()
        kept = layers[name].weight_mask.numpy()
        assert original[kept].min() >= original[~kept].max()  # the largest survive
        np.testing.assert_array_equal(
            layers[name].weight.detach().numpy()[kept], before[f"{name}.weight"].numpy()[kept]
        )
        assert torch.equal(layers[name].bias, before[f"{name}.bias"])  # bias never pruned
    # Masks are not saved: the state dict has the same keys as a fresh model's.
    assert lenet5.state_dict().keys() == before.keys()
    assert layer_density(lenet5) == pytest.approx(
        {n: nonzero_fraction(layers[n].weight) for n in layers if n in density}
    )


def test_prune_works_on_any_module_of_conv_and_linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    density = prune_(model, PruneConfig(sparsity={"3": 0.75}))
    assert density == {"3": expected_density(model[3].weight, 0.75)}
    assert set(masks(model)) == {"3"}


def test_quality_prunes_below_q_standard_deviations():
    torch.manual_seed(0)
    model = create("lenet300_100")
    original = model.fc2.weight.detach().double().numpy().copy()
    prune_(model, PruneConfig(quality={"fc2": 0.7}))
    threshold = 0.7 * np.sqrt(np.mean((original - original.mean()) ** 2))
    np.testing.assert_array_equal(model.fc2.weight_mask.numpy(), np.abs(original) > threshold)
    assert set(masks(model)) == {"fc2"}


def test_repeated_pruning_is_cumulative_and_monotone(lenet5):
    previous = None
    for sparsity, expected in ((0.5, 0.5), (0.8, 0.8), (0.3, 0.8)):  # lower target: no revival
        prune_(lenet5, PruneConfig(sparsity={"fc1": sparsity}))
        mask = lenet5.fc1.weight_mask.clone()
        assert nonzero_fraction(lenet5.fc1.weight) == expected_density(lenet5.fc1.weight, expected)
        if previous is not None:
            assert not (mask & ~previous).any()
        previous = mask


def test_prune_and_retrain_rounds_step_towards_the_target(monkeypatch, lenet5, digits):
    seen = []

    def fake_train(model, data, config, *, progress, after_step, desc):
        assert after_step is apply_masks_
        seen.append((nonzero_fraction(model.fc1.weight), nonzero_fraction(model.conv2.weight)))
        return TrainResult({})

    monkeypatch.setattr(magnitude, "train", fake_train)
    config = PruneConfig(sparsity={"fc1": 0.9}, quality={"conv2": 1.5})
    results = prune_and_retrain(lenet5, digits, config, TrainConfig(epochs=1), rounds=3)
    assert len(results) == 3
    fc1 = [expected_density(lenet5.fc1.weight, 0.9 * r / 3) for r in (1, 2, 3)]
    assert [s[0] for s in seen] == fc1
    conv2 = [s[1] for s in seen]
    assert conv2[0] > conv2[1] > conv2[2]  # thresholds 0.5, 1.0, 1.5 std


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_pruned_weights_stay_exactly_zero_through_training(optimizer, digits):
    torch.manual_seed(0)
    model = create("lenet300_100")
    prune_(model, PruneConfig(sparsity={"*": 0.9}))
    before = _weights(model)
    checked = []

    def after_step(m):
        apply_masks_(m)
        for name, mask in masks(m).items():
            weight = dict(m.named_modules())[name].weight
            assert bool((weight[~mask] == 0).all()), name
        checked.append(True)

    cfg = TrainConfig(epochs=1, batch_size=32, optimizer=optimizer, lr=0.01, weight_decay=1e-3)
    train(model, digits, cfg, progress=False, after_step=after_step)
    assert len(checked) == -(-len(digits.train) // 32)
    for name, mask in masks(model).items():
        weight = dict(model.named_modules())[name].weight.detach()
        assert not torch.equal(weight[mask], before[name][mask])  # the kept weights trained
        assert nonzero_fraction(weight) == expected_density(weight, 0.9)


def test_gradient_of_pruned_weights_is_zero():
    torch.manual_seed(0)
    model = create("lenet300_100")
    prune_(model, PruneConfig(sparsity={"fc1": 0.5}))
    model(torch.randn(4, 1, 28, 28)).sum().backward()
    mask = model.fc1.weight_mask
    assert bool((model.fc1.weight.grad[~mask] == 0).all())
    assert bool((model.fc1.weight.grad[mask] != 0).any())


def test_restore_masks_after_checkpoint_round_trip(tmp_path, lenet5):
    prune_(lenet5, PruneConfig(sparsity={"conv2": 0.6, "fc*": 0.9}))
    original = {k: v.clone() for k, v in masks(lenet5).items()}
    args = {"num_classes": 10, "in_chans": 1}
    save_checkpoint(tmp_path / "m.pt", Checkpoint("lenet5", args, (1, 28, 28), lenet5.state_dict()))
    fresh = load_checkpoint(tmp_path / "m.pt").build()  # strict load: no missing keys
    assert masks(fresh) == {}
    density = restore_masks_(fresh)
    restored = masks(fresh)
    assert set(restored) == set(original) == set(density)
    for name, mask in original.items():
        assert torch.equal(restored[name], mask)
        assert density[name] == int(mask.sum()) / mask.numel()


def test_remove_masks_keeps_zeros_and_lets_gradients_through(lenet5):
    prune_(lenet5, PruneConfig(sparsity={"fc1": 0.7}))
    pruned = ~lenet5.fc1.weight_mask.clone()
    remove_masks_(lenet5)
    assert masks(lenet5) == {} and not hasattr(lenet5.fc1, "weight_mask")
    assert bool((lenet5.fc1.weight[pruned] == 0).all())
    lenet5(torch.randn(2, 1, 28, 28)).sum().backward()
    assert bool((lenet5.fc1.weight.grad[pruned] != 0).any())  # no gradient hook left


def test_deep_copy_keeps_masks_and_is_independent(lenet5):
    prune_(lenet5, PruneConfig(sparsity={"fc1": 0.7}))
    twin = copy.deepcopy(lenet5)
    assert torch.equal(twin.fc1.weight_mask, lenet5.fc1.weight_mask)
    apply_masks_(twin)  # re-installs the gradient hook that deepcopy dropped
    remove_masks_(twin)  # must not touch the original's hook
    lenet5(torch.randn(2, 1, 28, 28)).sum().backward()
    assert bool((lenet5.fc1.weight.grad[~lenet5.fc1.weight_mask] == 0).all())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsity": {"fc1": 1.0}}, r"sparsity for 'fc1' must be in \[0, 1\), got 1\.0"),
        ({"sparsity": {"fc1": -0.1}}, r"'fc1'.*-0\.1"),
        ({"sparsity": {"fc1": float("nan")}}, r"'fc1'.*nan"),
        ({"sparsity": {"fc1": True}}, r"'fc1'.*True"),
        ({"sparsity": {"fc1": "0.5"}}, r"'fc1'.*'0\.5'"),
        ({"quality": {"fc*": -1.0}}, r"quality for 'fc\*'.*-1\.0"),
        ({"quality": {"fc*": float("inf")}}, r"'fc\*'.*inf"),
        ({"sparsity": {"fc1": 0.5}, "quality": {"fc1": 1.0}}, r"'fc1'.*both"),
        ({}, "at least one"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(NetshrinkError, match=message):
        PruneConfig(**kwargs)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (PruneConfig(sparsity={"fc1": 0.5, "fc9*": 0.5}), r"sparsity pattern 'fc9\*' matches no"),
        (PruneConfig(sparsity={"fc*": 0.5}, quality={"fc2": 1.0}), r"layer 'fc2' .* both"),
    ],
)
def test_pattern_errors_leave_the_model_untouched(lenet5, config, message):
    before = {k: v.clone() for k, v in lenet5.state_dict().items()}
    with pytest.raises(NetshrinkError, match=message):
        prune_(lenet5, config)
    assert masks(lenet5) == {}
    for key, value in lenet5.state_dict().items():
        assert torch.equal(value, before[key])


def test_prune_and_retrain_rejects_bad_rounds(lenet5, digits):
    with pytest.raises(NetshrinkError, match="rounds"):
        prune_and_retrain(lenet5, digits, PruneConfig({"fc1": 0.5}), TrainConfig(), rounds=0)
