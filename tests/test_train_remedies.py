"""Training remedies: learning-rate warm-up, gradient clipping, the dead-class count and
SqueezeNet's shortcut re-scaling, each against what it must compute."""

import math

import pytest
import torch
from torch import nn

from netshrink.data.dataset import Dataset, ImageSplit
from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.models.squeezenet import Fire
from netshrink.train import TrainConfig, dead_classes, train


def _data(n=96, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % classes

    def split():
        return ImageSplit(images, labels, (0.5,), (0.25,))

    return Dataset("toy", split(), split(), split(), [str(c) for c in range(classes)], (1, 4, 4))


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


class _Spy:
    """Records the learning rate and the gradients' norm each optimizer step saw."""

    def __init__(self, monkeypatch, cls):
        self.lrs, self.norms = [], []
        original = cls.step

        def step(opt, *args, **kwargs):
            self.lrs.append(opt.param_groups[0]["lr"])
            grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
            self.norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
            return original(opt, *args, **kwargs)

        monkeypatch.setattr(cls, "step", step)


def test_warmup_ramps_each_step_then_leaves_the_schedule_as_without_it(monkeypatch):
    data, steps = _data(), 96 // 32
    spy = _Spy(monkeypatch, torch.optim.SGD)
    config = TrainConfig(epochs=4, batch_size=32, optimizer="sgd", lr=0.1, momentum=0.0,
                         schedule="cosine", warmup_epochs=2)  # fmt: skip
    train(_net(), data, config, progress=False)
    cosine = [0.05 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]  # per epoch
    want = []
    for epoch in range(4):
        for step in range(steps):
            k = epoch * steps + step
            warm = min(1.0, (k + 1) / (2 * steps))
            want.append(cosine[epoch] * warm)
    assert spy.lrs == pytest.approx(want, rel=1e-12)


def test_warmup_longer_than_training_is_refused():
    with pytest.raises(NetshrinkError, match=r"warmup_epochs \(3\) must not exceed epochs \(2\)"):
        TrainConfig(epochs=2, warmup_epochs=3)


def test_clipping_bounds_every_steps_gradient_norm(monkeypatch):
    spy = _Spy(monkeypatch, torch.optim.Adam)
    train(_net(), _data(), TrainConfig(epochs=2, batch_size=32, clip_grad_norm=1e-3),
          progress=False)  # fmt: skip
    clipped = spy.norms
    spy.norms = []
    train(_net(), _data(), TrainConfig(epochs=2, batch_size=32), progress=False)
    assert max(clipped) <= 1e-3 * (1 + 1e-5)
    assert min(spy.norms) > 1e-2  # without clipping the same run's gradients are larger
    with pytest.raises(NetshrinkError, match="clip_grad_norm must be a finite number"):
        TrainConfig(clip_grad_norm=-1.0)


def test_dead_classes_are_those_whose_output_is_zero_on_every_image():
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 4), nn.ReLU())
    with torch.no_grad():
        net[1].weight.mul_(0.01)
        net[1].bias.copy_(torch.tensor([1.0, -100.0, 1.0, -100.0]))
    net.train()
    assert dead_classes(net, _data(classes=4).test) == [1, 3]
    assert net.training  # the mode is kept
    with torch.no_grad():
        net[1].bias.fill_(1.0)
    assert dead_classes(net, _data(classes=4).test) == []


def test_fire_bypass_scale_multiplies_the_sum_of_branch_and_shortcut():
    torch.manual_seed(0)
    x = torch.randn(2, 32, 5, 5)
    plain = Fire(32, 8, 16, 16, bypass="identity")
    scaled = Fire(32, 8, 16, 16, bypass="identity", bypass_scale=0.5**0.5)
    scaled.load_state_dict(plain.state_dict())
    with torch.no_grad():
        s = torch.relu(plain.squeeze(x))
        branch = torch.cat([torch.relu(plain.expand1x1(s)), torch.relu(plain.expand3x3(s))], 1)
        torch.testing.assert_close(plain(x), branch + x)
        torch.testing.assert_close(scaled(x), (branch + x) * 0.5**0.5)


def test_bypass_scale_keeps_unit_variance_where_the_paper_grows():
    probe = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))

    def fire9_rms(**args):
        torch.manual_seed(0)
        net = create("squeezenet1_0", num_classes=10, in_chans=1, small_input=True,
                     bypass="simple", init="lsuv", **args).eval()  # fmt: skip
        out = {}
        net.features.fire9.register_forward_hook(lambda m, i, o: out.setdefault("o", o))
        with torch.no_grad():
            net(probe)
        return out["o"].pow(2).mean().sqrt().item()

    # Under LSUV each conv's output has unit variance; the shortcuts' sums still grow (RMS
    # 1.45 at fire9 with simple bypass), and 1/sqrt(2) keeps them at about 1.
    assert fire9_rms() > 1.3
    assert fire9_rms(bypass_scale=0.5**0.5) == pytest.approx(1.0, abs=0.15)


@pytest.mark.parametrize("scale", [0.0, -1.0, math.nan, math.inf])
def test_bad_bypass_scales_are_refused(scale):
    with pytest.raises(NetshrinkError, match="bypass_scale must be a positive number"):
        create("squeezenet1_0", bypass="simple", bypass_scale=scale)


def test_bypass_scale_without_a_bypass_is_refused():
    with pytest.raises(NetshrinkError, match="it needs a bypass"):
        create("squeezenet1_0", bypass_scale=0.7)
