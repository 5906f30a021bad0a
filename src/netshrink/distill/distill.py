"""Knowledge distillation: train a student on a teacher's (or an ensemble's) soft targets.

Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", arXiv:1503.02531
(2015). The loss is in :mod:`netshrink.distill.loss`; this module runs it over a dataset.

Teachers run in eval mode (dropout off) without gradients. When the training inputs are
not augmented, every epoch shows the teachers the same images, so their soft targets are
computed once for the whole train split before training and looked up per batch (the
``index`` the training loop passes); with augmentation each batch's shifted images go
through the teachers again.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netshrink.data import Dataset, ImageSplit
from netshrink.distill.loss import distillation_loss, soft_targets
from netshrink.errors import NetshrinkError
from netshrink.train import TrainConfig, TrainResult, evaluate, model_device, train

__all__ = ["DistillConfig", "Ensemble", "check_teachers", "distill", "teacher_targets"]


@dataclass
class DistillConfig:
    """``temperature`` T > 0 softens both distributions; ``alpha`` in [0, 1] weighs the
    soft term (α · T² · soft + (1 − α) · hard). ``cache_teacher=False`` recomputes the
    teachers' outputs every batch even without augmentation (same result, slower)."""

    temperature: float = 4.0
    alpha: float = 0.9
    cache_teacher: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, int | float) and math.isfinite(self.temperature)):
            raise NetshrinkError(f"temperature must be a number, got {self.temperature!r}")
        if self.temperature <= 0:
            raise NetshrinkError(f"temperature must be > 0, got {self.temperature}")
        if not (isinstance(self.alpha, int | float) and 0.0 <= self.alpha <= 1.0):
            raise NetshrinkError(f"alpha must lie in [0, 1], got {self.alpha}")
        self.temperature, self.alpha = float(self.temperature), float(self.alpha)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ensemble(nn.Module):
    """Teachers as one model: log of their mean softmax (a "logit" whose softmax is the
    ensemble's averaged prediction, so ``evaluate`` scores the ensemble)."""

    def __init__(self, teachers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.teachers = nn.ModuleList(teachers)

    def forward(self, x: Tensor) -> Tensor:
        # log(mean_i softmax(v_i)) = logsumexp_i(log_softmax(v_i)) - log n, without underflow
        log_probs = torch.stack([F.log_softmax(t(x).float(), dim=1) for t in self.teachers])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.teachers))  # (B, K)


@contextlib.contextmanager
def _eval_mode(models: Sequence[nn.Module]) -> Iterator[None]:
    """Eval mode inside, then every submodule's own flag back (``train(mode)`` on the top
    module would flatten a teacher whose parts were in different modes)."""
    modes = [(m, m.training) for model in models for m in model.modules()]
    for model in models:
        model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


def check_teachers(
    teachers: Sequence[nn.Module], data: Dataset, student: nn.Module | None = None
) -> None:
    """One-line errors unless every teacher (and the student) maps ``data``'s images to
    ``data.num_classes`` logits (run on two training images)."""
    if not teachers:
        raise NetshrinkError("distillation needs at least one teacher")
    x = next(data.train.batches(2))[0]
    shape = "x".join(map(str, x.shape[1:]))
    named = [(f"teacher {i + 1}", t) for i, t in enumerate(teachers)]
    if student is not None:
        named.append(("student", student))
    for name, model in named:
        try:
            with torch.no_grad(), _eval_mode([model]):
                out = model(x.to(model_device(model)))
        except (RuntimeError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise NetshrinkError(f"{name} cannot take {shape} inputs: {first}") from None
        if out.dim() != 2 or out.shape[1] != data.num_classes:
            raise NetshrinkError(
                f"{name} predicts {out.shape[-1]} classes but {data.spec} has {data.num_classes}"
            )


@torch.no_grad()
def teacher_targets(
    teachers: Sequence[nn.Module], split: ImageSplit, temperature: float, batch_size: int = 256
) -> Tensor:
    """Soft targets of the whole split, in split order: (N, K), computed once, on the
    teachers' device. The teachers run as they are: put them in eval mode first (dropout
    off). Under torchrun every rank computes them for the whole split (no communication;
    the training shards look them up by their global positions)."""
    where = model_device(teachers[0])
    chunks = [
        soft_targets([t(x.to(where)) for t in teachers], temperature)
        for x, _ in split.batches(batch_size)
    ]
    return torch.cat(chunks)


def distill(
    student: nn.Module,
    teachers: Sequence[nn.Module],
    data: Dataset,
    train_config: TrainConfig,
    config: DistillConfig,
    *,
    progress: bool = True,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
    resume_state: dict[str, Any] | None = None,
    desc: str = "distill",
) -> TrainResult:
    """Train ``student`` on ``data`` with the distillation loss against ``teachers``.

    Same loop, checkpointing and resumption as :func:`netshrink.train.train`; teachers run
    in eval mode without gradients and are returned in the mode they came in. Returns the
    student's final metrics plus ``teacher_val_top1`` and ``teacher_test_top1``: the
    teachers' (ensemble's) accuracy on the same splits.
    """
    where = model_device(student)
    teachers = [t.to(where) for t in teachers]  # the student's device
    check_teachers(teachers, data, student)
    with _eval_mode(teachers):  # dropout off; every teacher forward runs without gradients
        temperature, alpha = config.temperature, config.alpha
        cached: Tensor | None = None
        if config.cache_teacher and not train_config.augment:
            cached = teacher_targets(teachers, data.train, temperature)

        def loss_fn(logits: Tensor, labels: Tensor, inputs: Tensor, index: Tensor) -> Tensor:
            if cached is not None:
                targets = cached[index]  # (B, K)
            else:
                with torch.no_grad():
                    targets = soft_targets([t(inputs) for t in teachers], temperature)
            return distillation_loss(logits, targets, labels, temperature, alpha)

        result = train(
            student,
            data,
            train_config,
            progress=progress,
            checkpoint=checkpoint,
            resume_state=resume_state,
            loss_fn=loss_fn,
            desc=desc,
        )
        ensemble = Ensemble(teachers).eval()  # eval() first: evaluate restores the mode it found
        for name, split in (("val", data.val), ("test", data.test)):
            result.metrics[f"teacher_{name}_top1"] = evaluate(ensemble, split)["top1"]
        return result
