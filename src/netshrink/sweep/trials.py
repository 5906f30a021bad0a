"""Trial functions of the built-in studies; each runs in its own process (see engine).

A trial trains through :func:`netshrink.runs.train.train_run` in its folder with ``resume``:
a trial whose process died mid-training continues from its last end-of-epoch checkpoint
when the sweep runs again, and a finished run is reused as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netshrink.distill import DistillConfig
from netshrink.errors import NetshrinkError
from netshrink.profile import profile
from netshrink.runs.checkpoint import Checkpoint
from netshrink.runs.train import train_run
from netshrink.train import TrainConfig

__all__ = ["distill_trial", "train_trial"]


def _run(trial_dir: Path, model: str, **kwargs: Any) -> Checkpoint:
    try:
        run = train_run(model, out_dir=trial_dir, resume=True, reuse=True, progress=False, **kwargs)
    except NetshrinkError as exc:
        if "different configuration" not in str(exc):
            raise
        # The trial's settings changed since its checkpoint was written: start over.
        (trial_dir / "model.pt").unlink()
        run = train_run(model, out_dir=trial_dir, resume=True, progress=False, **kwargs)
    return run.checkpoint


def _summary(ckpt: Checkpoint) -> dict[str, Any]:
    counts = profile(ckpt.build(), tuple(ckpt.input_size))
    keys = ("test_top1", "test_top5", "val_top1", "test_n", "train_seconds", "teacher_test_top1")
    out: dict[str, Any] = {k: ckpt.metrics[k] for k in keys if k in ckpt.metrics}
    out.update(params=counts.params, macs=counts.macs, weight_bytes=counts.weight_bytes)
    return out


def train_trial(
    trial_dir: Path,
    *,
    model: str,
    model_args: dict[str, Any],
    data: str,
    train: dict[str, Any],
    limit: int | None = None,
) -> dict[str, Any]:
    """Train registry ``model``; return its test metrics, parameters, MACs and fp32 bytes."""
    ckpt = _run(
        trial_dir, model, data=data, config=TrainConfig(**train), model_args=model_args, limit=limit
    )
    return _summary(ckpt)


def distill_trial(
    trial_dir: Path,
    *,
    model: str,
    model_args: dict[str, Any],
    data: str,
    train: dict[str, Any],
    teacher: str,
    temperature: float,
    alpha: float,
    limit: int | None = None,
) -> dict[str, Any]:
    """Distil registry ``model`` from trial ``teacher`` of the same sweep (its folder is a
    sibling of this one); same result as :func:`train_trial`."""
    ckpt = _run(
        trial_dir,
        model,
        data=data,
        config=TrainConfig(**train),
        model_args=model_args,
        limit=limit,
        teachers=[trial_dir.parent / teacher / "model.pt"],
        distill_config=DistillConfig(temperature, alpha),
    )
    return _summary(ckpt)
