"""Training and evaluation: a small, deterministic loop for CPU.

The loop is deliberately plain (nanoGPT style): one function trains, one evaluates.
Determinism: with the same seed, thread count and data, two runs give identical weights;
a run resumed from an end-of-epoch checkpoint matches the uninterrupted run, because the
checkpoint carries the optimizer, schedule and RNG states and each epoch's shuffle order
is derived from ``(seed, epoch)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from netshrink.data import Dataset, ImageSplit
from netshrink.errors import NetshrinkError

__all__ = [
    "LossFn",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "make_optimizer",
    "recalibrate_batchnorm",
    "train",
]


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (the CLI flags map onto these fields)."""

    epochs: int = 5
    batch_size: int = 64
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    step_size: int = 10  # epochs between decays for schedule="step"
    gamma: float = 0.1  # decay factor for schedule="step"
    augment: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        def integer(key: str, low: int, high: int) -> None:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise NetshrinkError(f"{key} must be an integer, got {value!r}")
            if not low <= value <= high:  # an epoch count of 10**400 never ends
                raise NetshrinkError(f"{key} must be in [{low}, {high:,}], got {value}")

        def real(key: str, low: float, high: float, low_open: bool = False) -> None:
            value = getattr(self, key)
            number = math.nan  # fails every comparison below
            if isinstance(value, int | float) and not isinstance(value, bool):
                number = float(value) if abs(value) < 1e308 else math.inf  # 10**400: no float
            if not (math.isfinite(number) and low <= number <= high) or (
                low_open and number == low
            ):
                bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
                raise NetshrinkError(f"{key} must be a finite number in {bounds}, got {value!r}")

        integer("epochs", 0, 1_000_000)
        integer("batch_size", 1, 2**31 - 1)
        integer("step_size", 1, 1_000_000)
        if self.optimizer not in ("sgd", "adam"):
            raise NetshrinkError(f"unknown optimizer {self.optimizer!r} (sgd, adam)")
        if self.schedule not in ("cosine", "step", "constant"):
            raise NetshrinkError(f"unknown schedule {self.schedule!r} (cosine, step, constant)")
        real("lr", 0.0, math.inf, low_open=True)
        real("momentum", 0.0, 1.0)
        real("weight_decay", 0.0, math.inf)
        real("gamma", 0.0, math.inf, low_open=True)
        if not isinstance(self.augment, bool):
            raise NetshrinkError(f"augment must be true or false, got {self.augment!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise NetshrinkError(f"seed must be an integer, got {self.seed!r}")
        if not 0 <= self.seed < 2**32:  # numpy's and torch's generators take [0, 2**32)
            raise NetshrinkError(f"seed must be in [0, 2**32), got {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    metrics: dict[str, float]  # final val_* and test_* metrics
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    seconds: float = 0.0


def make_optimizer(
    model: nn.Module, config: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The optimizer and per-epoch learning-rate schedule named by ``config``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    else:
        opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.schedule == "cosine":
        sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(config.epochs, 1)
        )
    elif config.schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, config.step_size, config.gamma)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _epoch: 1.0)
    return opt, sched


@torch.no_grad()
def evaluate(model: nn.Module, split: ImageSplit, batch_size: int = 256) -> dict[str, float]:
    """Top-1 (and top-5 when there are more than 5 classes) accuracy and mean loss.

    Returns fractions in [0, 1]: ``{"top1", "top5"?, "loss", "n"}``.
    """
    was_training = model.training
    model.eval()
    correct1 = correct5 = 0
    loss_sum = 0.0
    n = 0
    num_classes = None
    for x, y in split.batches(batch_size):
        logits = model(x)  # (B, K)
        num_classes = logits.shape[1]
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        top = logits.topk(min(5, num_classes), dim=1).indices  # (B, 5)
        correct1 += (top[:, 0] == y).sum().item()
        correct5 += (top == y[:, None]).any(dim=1).sum().item()
        n += len(y)
    model.train(was_training)
    if n == 0:
        raise NetshrinkError("cannot evaluate on an empty split")
    out = {"top1": correct1 / n, "loss": loss_sum / n, "n": n}
    if num_classes is not None and num_classes > 5:
        out["top5"] = correct5 / n
    return out


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, split: ImageSplit, max_images: int = 4096) -> bool:
    """Re-estimate BatchNorm running statistics with the final weights ("precise BN").

    During training the running mean/variance are an exponential average over weights that
    kept changing; after few steps they lag far behind and eval-mode accuracy can sit at
    chance while train-mode accuracy is fine. Here they are reset and recomputed as the
    plain average over up to ``max_images`` training images, with everything except
    BatchNorm in eval mode (so dropout is off). Returns False if the model has no BatchNorm.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return False
    was_training = model.training
    model.eval()
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    seen = 0
    for x, _ in split.batches(256):
        model(x)
        seen += len(x)
        if seen >= max_images:
            break
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    model.train(was_training)
    return True


# (student logits, labels, inputs, positions in the train split) -> scalar loss
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # Shuffle order depends only on (seed, epoch), so a resumed run replays it exactly.
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def train(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    *,
    progress: bool = True,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
    resume_state: dict[str, Any] | None = None,
    loss_fn: LossFn | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train ``model`` on ``data.train``, validate each epoch, test at the end.

    ``checkpoint(state)`` is called at the end of every epoch with the resumable training
    state; pass that state back as ``resume_state`` to continue an interrupted run.
    ``loss_fn(logits, labels, inputs, index)`` replaces cross-entropy; ``index`` holds the
    batch's positions in ``data.train`` (distillation looks up cached teacher outputs);
    ``after_step(model)`` runs after every optimizer step (pruning re-applies masks there).
    """
    total = len(data.train) + len(data.val) + len(data.test)
    for name in ("train", "val", "test"):
        if len(getattr(data, name)) == 0:  # found now, not after the training it would waste
            raise NetshrinkError(
                f"{data.spec}: the {name} split is empty ({total} images in all); "
                "use more images (a larger --limit)"
            )
    torch.manual_seed(config.seed)
    opt, sched = make_optimizer(model, config)
    history: list[dict[str, float]] = []
    start_epoch = 0
    if resume_state is not None:
        opt.load_state_dict(resume_state["optimizer"])
        sched.load_state_dict(resume_state["scheduler"])
        torch.set_rng_state(resume_state["rng"])
        history = list(resume_state.get("history", []))
        start_epoch = int(resume_state["epoch"])
    started = time.perf_counter()
    n_train = len(data.train)
    steps = math.ceil(n_train / config.batch_size)
    for epoch in range(start_epoch, config.epochs):
        model.train()
        bar = tqdm(
            total=steps,
            desc=f"{desc} {epoch + 1}/{config.epochs}",
            disable=not progress,
            leave=False,
            unit="batch",
        )
        loss_sum, seen = 0.0, 0
        batches = data.train.batches(
            config.batch_size,
            shuffle=True,
            generator=_epoch_generator(config.seed, epoch),
            augment=config.augment,
            with_index=True,
        )
        for x, y, index in batches:
            logits = model(x)
            loss = loss_fn(logits, y, x, index) if loss_fn else F.cross_entropy(logits, y)
            if not torch.isfinite(loss):
                raise NetshrinkError(
                    f"{desc}: loss became {loss.item()} at epoch {epoch + 1}; "
                    "lower the learning rate"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step(model)
            loss_sum += loss.item() * len(y)
            seen += len(y)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        bar.close()
        sched.step()
        val = evaluate(model, data.val)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1)}
        row.update({f"val_{k}": v for k, v in val.items() if k != "n"})
        history.append(row)
        if checkpoint is not None:
            checkpoint(
                {
                    "epoch": epoch + 1,
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": torch.get_rng_state(),
                    "history": history,
                }
            )
    if config.epochs > 0:
        recalibrate_batchnorm(model, data.train)
    metrics = _final_metrics(model, data)
    return TrainResult(metrics, history, time.perf_counter() - started)


def _final_metrics(model: nn.Module, data: Dataset) -> dict[str, float]:
    val = evaluate(model, data.val)
    test = evaluate(model, data.test)
    out = {f"val_{k}": v for k, v in val.items()}
    out.update({f"test_{k}": v for k, v in test.items()})
    return out
