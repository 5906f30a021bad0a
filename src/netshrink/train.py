"""Training and evaluation: a small, deterministic loop, on one process or many.

The loop is deliberately plain (nanoGPT style): one function trains, one evaluates.
Determinism: with the same seed, thread count and data, two runs give identical weights;
a run resumed from an end-of-epoch checkpoint matches the uninterrupted run, because the
checkpoint carries the optimizer, schedule and RNG states and each epoch's shuffle order
is derived from ``(seed, epoch)``.

Under torchrun (:mod:`netshrink.distributed`) the model is wrapped in
DistributedDataParallel and every rank takes its slice of each global batch of
``config.batch_size`` (the same permutation everywhere), with its loss scaled so that the
averaged gradient is the one-process gradient of the whole batch; evaluation is sharded and
its counts and loss sums are summed over the ranks. Runs on the device the model is on.
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
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from netshrink import distributed
from netshrink.data import Dataset, ImageSplit
from netshrink.errors import NetshrinkError

__all__ = [
    "LossFn",
    "TrainConfig",
    "TrainResult",
    "dead_classes",
    "evaluate",
    "make_optimizer",
    "model_device",
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
    # Linear learning-rate warm-up over the first warmup_epochs (per step, from lr / steps
    # up to the schedule's rate), then the schedule; 0: none.
    warmup_epochs: int = 0
    clip_grad_norm: float = 0.0  # clip the gradients' global L2 norm to this; 0: no clipping

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
        integer("warmup_epochs", 0, 1_000_000)
        if self.warmup_epochs > self.epochs:
            raise NetshrinkError(
                f"warmup_epochs ({self.warmup_epochs}) must not exceed epochs ({self.epochs})"
            )
        if self.optimizer not in ("sgd", "adam"):
            raise NetshrinkError(f"unknown optimizer {self.optimizer!r} (sgd, adam)")
        if self.schedule not in ("cosine", "step", "constant"):
            raise NetshrinkError(f"unknown schedule {self.schedule!r} (cosine, step, constant)")
        real("lr", 0.0, math.inf, low_open=True)
        real("momentum", 0.0, 1.0)
        real("weight_decay", 0.0, math.inf)
        real("gamma", 0.0, math.inf, low_open=True)
        real("clip_grad_norm", 0.0, math.inf)
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

    Returns fractions in [0, 1]: ``{"top1", "top5"?, "loss", "n"}``. Runs on the model's
    device. Under torchrun every rank evaluates its shard of each batch and the counts and
    loss sums are summed over the ranks (every rank must call it): the counts, hence the
    accuracies, are those of the whole split; the loss equals it up to float rounding.
    """
    was_training = model.training
    model.eval()
    where = model_device(model)
    correct1 = correct5 = 0
    loss_sum = 0.0
    n = 0
    num_classes = 0
    shard = (distributed.rank(), distributed.world_size())
    for x, y in split.batches(batch_size, shard=shard if shard[1] > 1 else None):
        if len(y) == 0:
            continue
        x, y = x.to(where, non_blocking=True), y.to(where, non_blocking=True)
        logits = model(x)  # (B, K)
        num_classes = logits.shape[1]
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        top = logits.topk(min(5, num_classes), dim=1).indices  # (B, 5)
        correct1 += (top[:, 0] == y).sum().item()
        correct5 += (top == y[:, None]).any(dim=1).sum().item()
        n += len(y)
    model.train(was_training)
    if shard[1] > 1:
        correct1, correct5, loss_sum, n = distributed.all_reduce_sum(
            [correct1, correct5, loss_sum, n]
        )
        correct1, correct5, n = int(correct1), int(correct5), int(n)
        num_classes = int(distributed.all_reduce_sum([num_classes], op="max")[0])
    if n == 0:
        raise NetshrinkError("cannot evaluate on an empty split")
    out = {"top1": correct1 / n, "loss": loss_sum / n, "n": n}
    if num_classes > 5:
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
    Under torchrun every rank does the same, on the same (unsharded) images, so the
    statistics are identical on every rank and equal to a single process's.
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
    where = model_device(model)
    for x, _ in split.batches(256):
        model(x.to(where, non_blocking=True))
        seen += len(x)
        if seen >= max_images:
            break
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    model.train(was_training)
    return True


# (student logits, labels, inputs, positions in the train split) -> scalar loss
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters (or buffers) are; CPU for a model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _wrap(model: nn.Module) -> nn.Module:
    """``model`` in DistributedDataParallel under torchrun (rank 0's weights and buffers
    broadcast to all first), else ``model`` itself."""
    if distributed.world_size() == 1:
        return model
    where = model_device(model)
    distributed.broadcast_tensors_([*model.parameters(), *model.buffers()])
    if not any(p.requires_grad for p in model.parameters()):
        return model  # nothing to train, nothing to reduce
    # Buffers are not broadcast each step (a bool pruning mask, an int code table are
    # identical anyway); BatchNorm statistics are synchronised at the end of each epoch.
    return DistributedDataParallel(
        model,
        device_ids=[where.index] if where.type == "cuda" else None,
        init_sync=False,  # done above, for every dtype (gloo carries no int16 codes)
        forward_sync_buffers=False,
    )


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

    Runs on the device ``model`` is on. Under torchrun every rank calls it with the same
    model and data: ``after_step`` runs on every rank (with the unwrapped model),
    ``checkpoint`` on rank 0 only, progress bars show on rank 0 only.
    """
    total = len(data.train) + len(data.val) + len(data.test)
    for name in ("train", "val", "test"):
        if len(getattr(data, name)) == 0:  # found now, not after the training it would waste
            raise NetshrinkError(
                f"{data.spec}: the {name} split is empty ({total} images in all); "
                "use more images (a larger --limit)"
            )
    torch.manual_seed(config.seed)
    where = model_device(model)
    rank, world = distributed.rank(), distributed.world_size()
    net = _wrap(model)
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
            disable=not (progress and distributed.is_main()),
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
            shard=(rank, world) if world > 1 else None,
        )
        for step, (x, y, index) in enumerate(batches):
            x = x.to(where, non_blocking=True)
            y, index = y.to(where, non_blocking=True), index.to(where, non_blocking=True)
            if len(y) == 0:  # a last global batch smaller than the world: nothing here
                loss = _empty_step_loss(net, x)
            else:
                logits = net(x)
                loss = loss_fn(logits, y, x, index) if loss_fn else F.cross_entropy(logits, y)
            if len(y) and not torch.isfinite(loss):
                raise NetshrinkError(
                    f"{desc}: loss became {loss.item()} at epoch {epoch + 1}; "
                    "lower the learning rate"
                )
            opt.zero_grad(set_to_none=True)
            if world > 1:
                # DDP averages gradients over the ranks: scale each rank's mean loss so the
                # average is the gradient of the global batch's mean loss.
                batch = min(config.batch_size, n_train - step * config.batch_size)
                (loss * (len(y) * world / batch)).backward()
            else:
                loss.backward()
            if config.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
            warm = _warmup_factor(config, epoch, step, steps)
            if warm < 1.0:
                scheduled = [group["lr"] for group in opt.param_groups]
                for group in opt.param_groups:
                    group["lr"] *= warm
                opt.step()
                for group, lr in zip(opt.param_groups, scheduled, strict=True):
                    group["lr"] = lr  # the schedule's own state stays as it was
            else:
                opt.step()
            if after_step is not None:
                after_step(model)
            if len(y):
                loss_sum += loss.item() * len(y)
                seen += len(y)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
            bar.update(1)
        bar.close()
        sched.step()
        if world > 1:
            _sync_batchnorm_(model)
            loss_sum, seen = distributed.all_reduce_sum([loss_sum, seen])
        val = evaluate(model, data.val)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1)}
        row.update({f"val_{k}": v for k, v in val.items() if k != "n"})
        history.append(row)
        if checkpoint is not None and distributed.is_main():
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


@torch.no_grad()
def dead_classes(model: nn.Module, split: ImageSplit, batch_size: int = 256) -> list[int]:
    """The classes whose output is exactly 0 on every image of ``split``: a final ReLU
    that died for them (SqueezeNet's conv10 → ReLU), so the network never predicts them
    and no gradient revives them. The model's mode is kept."""
    was_training = model.training
    model.eval()
    where = model_device(model)
    alive: torch.Tensor | None = None
    try:
        for x, _ in split.batches(batch_size):
            nonzero = (model(x.to(where)) != 0).any(dim=0).cpu()
            alive = nonzero if alive is None else alive | nonzero
    finally:
        model.train(was_training)
    return [] if alive is None else [int(c) for c in torch.nonzero(~alive).flatten()]


def _warmup_factor(config: TrainConfig, epoch: int, step: int, steps: int) -> float:
    """The fraction of the scheduled rate at this step: (k + 1) / K over the first K steps
    of warm-up, then 1."""
    total = config.warmup_epochs * steps
    done = epoch * steps + step
    return 1.0 if done >= total else (done + 1) / total


def _empty_step_loss(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A zero loss that still takes part in DDP's gradient reduction: the forward of an
    empty batch, in eval mode so that BatchNorm statistics are left alone."""
    was_training = net.training
    net.eval()
    try:
        return net(x).sum() * 0.0
    finally:
        net.train(was_training)


def _sync_batchnorm_(model: nn.Module) -> None:
    """Every rank's BatchNorm running statistics set to rank 0's (each rank saw only its
    shards; evaluation and checkpoints need one model)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            distributed.broadcast_tensors_(module.buffers())


def _final_metrics(model: nn.Module, data: Dataset) -> dict[str, float]:
    val = evaluate(model, data.val)
    test = evaluate(model, data.test)
    out = {f"val_{k}": v for k, v in val.items()}
    out.update({f"test_{k}": v for k, v in test.items()})
    return out
