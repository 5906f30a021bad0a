"""Training loop, checkpoints and runs: determinism, exact resume, references for metrics."""

import numpy as np
import pytest
import torch

from netshrink import runner
from netshrink.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from netshrink.data import load_dataset
from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.train import TrainConfig, evaluate, recalibrate_batchnorm, train

TINY = dict(epochs=2, batch_size=32, lr=1e-3, seed=3)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", input_size=(1, 28, 28), seed=0, limit=400)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_learns_and_is_deterministic(digits):
    torch.manual_seed(0)
    a = create("lenet300_100")
    torch.manual_seed(0)
    b = create("lenet300_100")
    ra = train(a, digits, TrainConfig(**TINY), progress=False)
    train(b, digits, TrainConfig(**TINY), progress=False)
    for key, value in _state(a).items():
        assert torch.equal(value, b.state_dict()[key]), key
    # 10 classes: chance is 0.1; two epochs on 8x8 digits learn far more than that.
    assert ra.metrics["test_top1"] > 0.5
    assert len(ra.history) == 2


def test_evaluate_matches_numpy_reference(digits):
    torch.manual_seed(1)
    model = create("lenet300_100").eval()
    got = evaluate(model, digits.test, batch_size=17)
    with torch.no_grad():
        xs, ys = zip(*digits.test.batches(1000), strict=True)
        logits = model(torch.cat(xs)).double().numpy()
    labels = torch.cat(ys).numpy()
    top1 = np.mean(logits.argmax(1) == labels)
    ranks = np.argsort(-logits, axis=1)[:, :5]
    top5 = np.mean([labels[i] in ranks[i] for i in range(len(labels))])
    log_softmax = logits - logits.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    loss = -log_softmax[np.arange(len(labels)), labels].mean()
    assert got["n"] == len(labels) == len(digits.test)
    assert got["top1"] == pytest.approx(top1)
    assert got["top5"] == pytest.approx(top5)
    assert got["loss"] == pytest.approx(loss, rel=1e-5)


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
    args, size = runner.resolve_model("squeezenet1_0", (1, 28, 28), {})
    assert args["small_input"] is True and size == (1, 28, 28)
    args, size = runner.resolve_model("squeezenet1_0", (3, 224, 224), {})
    assert args["small_input"] is False
    # Fixed-input models get the data resized to their input.
    args, size = runner.resolve_model("lenet5", (1, 8, 8), {})
    assert size == (1, 28, 28)


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    model = create("lenet5")
    ckpt = Checkpoint(
        "lenet5", {"num_classes": 10}, (1, 28, 28), model.state_dict(), "digits", {"test_top1": 0.5}
    )
    save_checkpoint(tmp_path / "m.pt", ckpt)
    back = load_checkpoint(tmp_path / "m.pt")
    assert back.model_name == "lenet5" and back.input_size == (1, 28, 28)
    rebuilt = back.build()
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(rebuilt(x), model.eval()(x))

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(NetshrinkError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(NetshrinkError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")

    # A checkpoint whose weights belong to another architecture.
    wrong = Checkpoint("lenet300_100", {}, (1, 28, 28), model.state_dict())
    save_checkpoint(tmp_path / "wrong.pt", wrong)
    with pytest.raises(NetshrinkError, match="do not fit model 'lenet300_100'"):
        load_checkpoint(tmp_path / "wrong.pt").build()


def test_loading_never_unpickles_arbitrary_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"format": "netshrink-checkpoint", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(NetshrinkError, match="cannot be read"):
        load_checkpoint(tmp_path / "evil.pt")


def test_recalibrated_batchnorm_equals_dataset_statistics(digits):
    # Reference: the mean and (unbiased, per-batch) variance a BatchNorm layer sees,
    # computed directly in float64 over the same images.
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    model[1].running_mean.fill_(5.0)
    assert recalibrate_batchnorm(model, digits.train, max_images=10_000)
    feats = [model[0](x).double() for x, _ in digits.train.batches(256)]
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats])
    variances = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in feats])
    # momentum=None: a plain average of the per-batch statistics.
    assert torch.allclose(model[1].running_mean.double(), means.mean(0), atol=1e-5)
    assert torch.allclose(model[1].running_var.double(), variances.mean(0), atol=1e-4)
    assert model[1].momentum == 0.1  # restored
    assert not recalibrate_batchnorm(torch.nn.Linear(3, 2), digits.train)
