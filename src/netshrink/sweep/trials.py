"""Trial functions of the built-in studies; each runs in its own process (see engine).

A trial trains through :func:`netshrink.runs.train.train_run` in its folder with ``resume``:
a trial whose process died mid-training continues from its last end-of-epoch checkpoint
when the sweep runs again, and a finished run is reused as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netshrink.data import load_dataset
from netshrink.distill import DistillConfig
from netshrink.errors import NetshrinkError
from netshrink.profile import profile
from netshrink.runs.checkpoint import Checkpoint
from netshrink.runs.compress import checkpoint_source, compress_run, resume_folder
from netshrink.runs.recipe import parse_recipe
from netshrink.runs.train import train_run
from netshrink.train import TrainConfig, dead_classes

__all__ = ["compress_trial", "distill_trial", "train_trial"]


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
    count_dead: bool = False,
) -> dict[str, Any]:
    """Train registry ``model``; return its test metrics, parameters, MACs and fp32 bytes
    (and with ``count_dead`` the classes whose output is 0 on every test image)."""
    config = TrainConfig(**train)
    ckpt = _run(trial_dir, model, data=data, config=config, model_args=model_args, limit=limit)
    out = _summary(ckpt)
    if count_dead:
        split = load_dataset(data, input_size=tuple(ckpt.input_size), seed=config.seed,
                             limit=limit).test  # fmt: skip
        out["dead_classes"] = dead_classes(ckpt.build(), split)
    return out


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


def compress_trial(
    trial_dir: Path,
    *,
    baseline: str,
    recipe: dict[str, Any],
    data: str,
    limit: int | None = None,
) -> dict[str, Any]:
    """Compress trial ``baseline``'s network (a sibling folder) with ``recipe``, retraining
    on ``data`` as the baseline's seed splits it; write ``model.nsz`` and its record here.
    Returns the baseline's and the file's test top-1, their change in points and the
    compression ratio. A trial killed mid-way resumes from its last finished stage."""
    parsed = parse_recipe(recipe)
    path = trial_dir / "model.nsz"

    def run(resume: bool) -> Any:
        source = checkpoint_source(trial_dir.parent / baseline / "model.pt", data, limit=limit)
        return compress_run(source, parsed, path, progress=False, resume=resume)

    saved = (resume_folder(path) / "state.pt").is_file()
    try:
        result = run(resume=saved)
    except NetshrinkError as exc:
        if not saved or "cannot resume" not in str(exc):
            raise
        result = run(resume=False)  # saved stages of other settings: start over
    before, after = result.baseline, result.metrics
    report = result.report
    return {
        "baseline_top1": before["test_top1"],
        "test_top1": after["test_top1"],
        "change_points": 100.0 * (after["test_top1"] - before["test_top1"]),
        "test_n": int(after["test_n"]),
        "ratio": report.ratio,
        "file_bytes": report.file_bytes,
        "dense_bytes": report.dense_bytes,
        "weights": sum(row.weights for row in report.layers),
        "nonzero": round(sum(row.weights * row.density for row in report.layers)),
    }
