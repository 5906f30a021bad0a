"""Training runs: exact resume, reuse of finished runs, how a model meets the data."""

import pytest
import torch

from netshrink.runs import load as runner_load
from netshrink.runs import train as runner
from netshrink.runs.checkpoint import load_checkpoint
from netshrink.train import TrainConfig

TINY = dict(epochs=2, batch_size=32, lr=1e-3, seed=3)


def test_resume_continues_exactly(tmp_path, monkeypatch):
    config = TrainConfig(**TINY)
    kwargs = dict(limit=300, progress=False)
    whole = runner.train_run("lenet300_100", "digits", config, tmp_path / "whole", **kwargs)

    real_save = runner.save_checkpoint

    def interrupted(path, ckpt):
        real_save(path, ckpt)
        if ckpt.train_state is not None and ckpt.train_state["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(runner, "save_checkpoint", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.train_run("lenet300_100", "digits", config, tmp_path / "cut", **kwargs)
    monkeypatch.undo()
    half = load_checkpoint(tmp_path / "cut" / "model.pt")
    assert half.train_state["epoch"] == 1
    resumed = runner.train_run(
        "lenet300_100", "digits", config, tmp_path / "cut", resume=True, **kwargs
    )
    for key, value in whole.checkpoint.state_dict.items():
        assert torch.equal(value, resumed.checkpoint.state_dict[key]), key
    assert resumed.checkpoint.metrics["test_top1"] == whole.checkpoint.metrics["test_top1"]
    assert (tmp_path / "cut" / "metrics.json").exists()
    assert (tmp_path / "cut" / "config.yaml").exists()


def test_reuse_skips_finished_run_with_same_config(tmp_path):
    config = TrainConfig(epochs=1, batch_size=64, seed=0)
    first = runner.train_run("lenet300_100", "digits", config, tmp_path, limit=200, progress=False)
    again = runner.train_run(
        "lenet300_100", "digits", config, tmp_path, limit=200, progress=False, reuse=True
    )
    assert not first.reused and again.reused
    other = TrainConfig(epochs=1, batch_size=64, seed=1)
    third = runner.train_run(
        "lenet300_100", "digits", other, tmp_path, limit=200, progress=False, reuse=True
    )
    assert not third.reused


def test_small_inputs_switch_on_small_stem():
    args, size = runner_load.resolve_model("squeezenet1_0", (1, 28, 28), {})
    assert args["small_input"] is True and size == (1, 28, 28)
    args, size = runner_load.resolve_model("squeezenet1_0", (3, 224, 224), {})
    assert args["small_input"] is False
    # Fixed-input models get the data resized to their input.
    args, size = runner_load.resolve_model("lenet5", (1, 8, 8), {})
    assert size == (1, 28, 28)
