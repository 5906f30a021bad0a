"""Dense-Sparse-Dense: phase order, sparsity of the sparse phase, masks gone afterwards."""

import json

import pytest
import torch
from torch import nn

from netshrink.data import load_dataset
from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers
from netshrink.prune import DSDConfig, dsd_train, masks
from netshrink.prune import dsd as dsd_module
from netshrink.train import TrainConfig, TrainResult
from netshrink.train import train as real_train
from tests.prune.conftest import expected_density, nonzero_fraction


def spy_on_train(monkeypatch, *, run: bool):
    """Record each phase's config, after_step and per-layer state as it starts."""
    phases = []

    def spy(model, data, config, *, progress, after_step=None, desc):
        weights = {n: m.weight.detach().clone() for n, m in compressible_layers(model).items()}
        phases.append(
            dict(
                desc=desc,
                config=config,
                after_step=after_step,
                masks=set(masks(model)),
                weights=weights,
            )
        )
        if run:
            return real_train(
                model, data, config, progress=progress, after_step=after_step, desc=desc
            )
        return TrainResult({"val_top1": 0.5})

    monkeypatch.setattr(dsd_module, "train", spy)
    return phases


@pytest.fixture(scope="module")
def digits8():
    return load_dataset("digits", input_size=(1, 8, 8), seed=0, limit=200)


def tiny_convnet() -> nn.Module:
    """Any nn.Module will do: two convs and a classifier on 8x8 digits."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3),  # "0": the first conv, kept dense
        nn.ReLU(),
        nn.Conv2d(8, 16, 3),  # "2"
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 32),  # "5"
        nn.ReLU(),
        nn.Linear(32, 10),  # "7"
    )


def test_dsd_phases(monkeypatch, digits8):
    model = tiny_convnet()
    phases = spy_on_train(monkeypatch, run=True)
    config = DSDConfig(sparsity=0.3, dense_epochs=1, sparse_epochs=1, redense_epochs=1)
    train_config = TrainConfig(epochs=9, batch_size=32, lr=2e-3, seed=1)
    result = dsd_train(model, digits8, config, train_config, progress=False)

    dense, sparse, redense = phases
    assert [p["config"].epochs for p in phases] == [1, 1, 1]
    assert [p["config"].lr for p in phases] == [2e-3, 2e-3, pytest.approx(2e-4)]
    assert dense["masks"] == set() and redense["masks"] == set()
    # Sparse phase: every layer but the first conv pruned to 30%, masks enforced.
    assert sparse["masks"] == {"2", "5", "7"}
    assert sparse["after_step"] is not None
    assert nonzero_fraction(sparse["weights"]["0"]) == 1.0
    for name in ("2", "5", "7"):
        weight = sparse["weights"][name]
        assert nonzero_fraction(weight) == expected_density(weight, 0.3), name
        # Still sparse at the end of the sparse phase (= start of re-dense), same zeros.
        assert torch.equal(redense["weights"][name] == 0, weight == 0), name
        assert result.sparse_density[name] == expected_density(weight, 0.3)
    assert result.sparse_density["0"] == 1.0
    # Re-dense: no masks, and the pruned weights train again from zero.
    assert masks(model) == {}
    for name in ("2", "5", "7"):
        was_pruned = redense["weights"][name] == 0
        revived = model[int(name)].weight.detach()[was_pruned] != 0
        assert revived.float().mean() > 0.5, name
    assert result.dense is not None and 0.0 <= result.redense.metrics["test_top1"] <= 1.0
    json.dumps(result.to_dict())


def test_dsd_from_trained_model_skips_dense_and_can_prune_first_conv(monkeypatch, lenet5, digits):
    phases = spy_on_train(monkeypatch, run=False)
    config = DSDConfig(sparsity=0.5, dense_epochs=0, keep_first_conv=False)
    result = dsd_train(lenet5, digits, config, TrainConfig(lr=1e-2), progress=False)
    assert [p["desc"] for p in phases] == ["DSD sparse", "DSD re-dense"]
    assert phases[0]["masks"] == {"conv1", "conv2", "fc1", "fc2"}
    assert phases[1]["config"].lr == pytest.approx(1e-3)
    assert result.dense is None and result.to_dict()["dense"] is None
    assert result.sparse_density["conv1"] == expected_density(lenet5.conv1.weight, 0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsity": 1.0}, r"sparsity must be in \[0, 1\), got 1\.0"),
        ({"sparsity": -0.1}, "sparsity"),
        ({"dense_epochs": -1}, "dense_epochs.*-1"),
        ({"sparse_epochs": 1.5}, "sparse_epochs.*1.5"),
        ({"redense_lr_scale": 0.0}, "redense_lr_scale.*0.0"),
        ({"keep_first_conv": "yes"}, "keep_first_conv.*'yes'"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(NetshrinkError, match=message):
        DSDConfig(**kwargs)
