"""Training loop: determinism and references for metrics."""

import numpy as np
import pytest
import torch

from netshrink.data import load_dataset
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
