"""Sensitivity scan: each layer alone at each sparsity (checked by a NumPy score), exact
restore, suggestions on a hand-built result, and the rendered table pinned."""

import json

import numpy as np
import pytest
import torch

from netshrink.errors import NetshrinkError
from netshrink.prune import (
    PruneConfig,
    SensitivityResult,
    plot_sensitivity,
    prune_,
    render_sensitivity,
    sensitivity_scan,
    suggest_sparsity,
)
from netshrink.train import evaluate


def _bits(model):
    return {
        k: v.clone().view(torch.int32)
        for k, v in model.state_dict().items()
        if v.is_floating_point()
    }


def l1_score(model) -> float:
    """A score with a closed form under pruning: the sum of all |weights| in float64."""
    return sum(
        float(m.weight.detach().double().abs().sum())
        for m in (model.conv1, model.conv2, model.fc1, model.fc2)
    )


def test_scan_prunes_one_layer_at_a_time(lenet5):
    sparsities = [0.0, 0.5, 0.9]
    result = sensitivity_scan(lenet5, l1_score, sparsities, layers=["conv*", "fc2"])
    assert list(result.accuracy) == ["conv1", "conv2", "fc2"]
    baseline = l1_score(lenet5)
    assert result.baseline == baseline
    for name, values in result.accuracy.items():
        magnitudes = np.sort(getattr(lenet5, name).weight.detach().double().abs().numpy().ravel())
        for s, got in zip(sparsities, values, strict=True):
            removed = magnitudes[: round(s * magnitudes.size)].sum()  # the smallest ones
            assert got == pytest.approx(baseline - removed, rel=1e-9)


def test_scan_restores_weights_bit_for_bit(lenet5, digits):
    prune_(lenet5, PruneConfig(sparsity={"fc1": 0.5}))  # existing masks are left as they are
    before = _bits(lenet5)
    mask = lenet5.fc1.weight_mask.clone()
    result = sensitivity_scan(lenet5, lambda m: evaluate(m, digits.val)["top1"], [0.0, 0.5, 0.95])
    assert set(result.accuracy) == {"conv1", "conv2", "fc1", "fc2"}
    # fc1 is already at 50%: scanning it at 0 and 0.5 changes nothing.
    assert result.accuracy["fc1"][:2] == [result.baseline] * 2
    for key, value in _bits(lenet5).items():
        assert torch.equal(value, before[key]), key
    assert torch.equal(lenet5.fc1.weight_mask, mask)


def test_scan_restores_weights_when_evaluation_fails(lenet5):
    before = _bits(lenet5)
    calls = []

    def failing(model):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return 0.0

    with pytest.raises(RuntimeError, match="boom"):
        sensitivity_scan(lenet5, failing, [0.5, 0.9])
    for key, value in _bits(lenet5).items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("sparsities", [[], [0.5, 0.2], [0.0, 1.0]])
def test_scan_rejects_bad_sparsities(lenet5, sparsities):
    with pytest.raises(NetshrinkError, match="sparsit"):
        sensitivity_scan(lenet5, l1_score, sparsities)


HAND = SensitivityResult(
    baseline=0.90,
    sparsities=[0.0, 0.5, 0.7, 0.9],
    accuracy={
        "conv1": [0.90, 0.89, 0.85, 0.50],  # falls steadily
        "fc1": [0.90, 0.80, 0.90, 0.90],  # dips at 0.5: higher sparsities do not count
        "fc2": [0.70, 0.90, 0.90, 0.90],  # fails even at the smallest
        "fc3": [0.91, 0.90, 0.90, 0.89],  # tolerates everything
    },
)


@pytest.mark.parametrize(
    ("max_drop", "expected"),
    [
        (0.05, {"conv1": 0.7, "fc1": 0.0, "fc2": 0.0, "fc3": 0.9}),  # 0.85 is exactly 0.90-0.05
        (0.01, {"conv1": 0.5, "fc1": 0.0, "fc2": 0.0, "fc3": 0.9}),
        (0.0, {"conv1": 0.0, "fc1": 0.0, "fc2": 0.0, "fc3": 0.7}),
        (0.5, {"conv1": 0.9, "fc1": 0.9, "fc2": 0.9, "fc3": 0.9}),
    ],
)
def test_suggest_sparsity(max_drop, expected):
    assert suggest_sparsity(HAND, max_drop) == expected


def test_suggestion_is_a_prune_config(lenet5):
    result = SensitivityResult(1.0, [0.0, 0.5], {"conv1": [1.0, 0.0], "fc1": [1.0, 1.0]})
    config = PruneConfig(sparsity=suggest_sparsity(result, 0.1))
    assert prune_(lenet5, config)["fc1"] == 0.5


def test_result_round_trips_through_json():
    again = SensitivityResult.from_dict(json.loads(json.dumps(HAND.to_dict())))
    assert again == HAND
    with pytest.raises(NetshrinkError, match="sensitivity"):
        SensitivityResult.from_dict({"baseline": 1.0})
    with pytest.raises(NetshrinkError, match="'fc1' has 1 values for 2"):
        SensitivityResult(1.0, [0.0, 0.5], {"fc1": [1.0]})


def test_render_table_snapshot():
    expected = """\
sensitivity (baseline 0.9000; columns: sparsity of that layer alone)
layer       0     0.5     0.7     0.9  suggest (drop<=0.05)
-----  ------  ------  ------  ------  --------------------
conv1  0.9000  0.8900  0.8500  0.5000                   0.7
fc1    0.9000  0.8000  0.9000  0.9000                     0
fc2    0.7000  0.9000  0.9000  0.9000                     0
fc3    0.9100  0.9000  0.9000  0.8900                   0.9"""
    assert render_sensitivity(HAND, max_drop=0.05) == expected
    assert "suggest" not in render_sensitivity(HAND)


def test_plot_writes_a_png_atomically(tmp_path):
    path = tmp_path / "plots" / "sensitivity.png"
    plot_sensitivity(HAND, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["sensitivity.png"]
