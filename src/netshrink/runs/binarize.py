"""Binarization runs: binarize a trained network, fine-tune it, store it at 1 bit a weight.

After :func:`netshrink.binarize.binarize_`, :func:`finetune_binary` is the rest of the
sequence the CLI and the survey share (Rastegari et al., ECCV 2016: binarize → fine-tune
→ pack); :func:`binarize_checkpoint` is ``netshrink binarize``: the whole sequence from a
checkpoint, with its files written into a run folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from netshrink import distributed
from netshrink.atomic import atomic_write_bytes, atomic_write_text, ensure_dir
from netshrink.binarize import BinarizeConfig, binarize_
from netshrink.data import Dataset, load_dataset
from netshrink.errors import NetshrinkError
from netshrink.models import get_spec
from netshrink.nsz import pack
from netshrink.runs.checkpoint import (
    Checkpoint,
    load_checkpoint,
    refuse_existing,
    save_checkpoint,
)
from netshrink.runs.load import check_classes
from netshrink.train import TrainConfig, TrainResult, evaluate, train

__all__ = [
    "BinarizeRun",
    "CheckpointBinarizeRun",
    "binarize_checkpoint",
    "finetune_binary",
    "lacks_xnor_order",
]


@dataclass
class BinarizeRun:
    model: nn.Module  # the fine-tuned binary network, eval mode
    resolved: BinarizeConfig  # the layers binarized, by name
    binarized: dict[str, float]  # test metrics of the binarized weights, before fine-tuning
    training: TrainResult  # the fine-tuning
    nsz: bytes  # the network's .nsz file

    @property
    def dense_bytes(self) -> int:
        """The network's fp32 size: every tensor of its state at 4 bytes a value."""
        return sum(t.numel() * 4 for t in self.model.state_dict().values())


def lacks_xnor_order(model_name: str, model_args: dict[str, Any]) -> bool:
    """True when XNOR layers of this registry model may see only non-negative inputs
    (after a ReLU): the model is not built in XNOR-Net's block order (``order="xnor"``)."""
    offers_order = "order" in get_spec(model_name).defaults
    return not offers_order or model_args.get("order", "standard") != "xnor"


def finetune_binary(
    model: nn.Module,
    resolved: BinarizeConfig,
    data: Dataset,
    train_config: TrainConfig,
    *,
    model_name: str,
    model_args: dict[str, Any],
    input_size: tuple[int, int, int],
    metadata: dict[str, Any],
    describe: bool = True,
    progress: bool = True,
    desc: str | None = None,
) -> BinarizeRun:
    """Fine-tune ``model``, binarized by ``binarize_`` into ``resolved``, and pack it.

    ``metadata`` goes into the file's header; ``describe`` adds the fine-tuned metrics and
    the resolved binarization to it (every header byte counts against small files, so a
    caller that records them beside the file may leave them out). Nothing is written.
    """
    binarized = evaluate(model.eval(), data.test)
    training = train(model, data, train_config, progress=progress, desc=desc or resolved.mode)
    if describe:
        metadata = {**metadata, "metrics": dict(training.metrics), "binarize": resolved.to_dict()}
    blob = pack(
        model.cpu().eval(),  # the file is CPU data; the model stays on the CPU
        None,
        model_name=model_name,
        model_args=model_args,
        input_size=input_size,
        metadata=metadata,
    )
    return BinarizeRun(model, resolved, binarized, training, blob)


@dataclass
class CheckpointBinarizeRun:
    source: Checkpoint  # the float network it started from
    run: BinarizeRun
    float_metrics: dict[str, float]  # test metrics of the float network
    out_dir: Path


def binarize_checkpoint(
    path: str | os.PathLike[str],
    config: BinarizeConfig,
    train_config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    data: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    on_resolved: Callable[[Checkpoint, BinarizeConfig], None] | None = None,
    overwrite: bool = False,
) -> CheckpointBinarizeRun:
    """``netshrink binarize``: binarize the float checkpoint at ``path``, fine-tune it on
    ``data`` (default: its own), and write ``model.pt``, ``model.nsz``, ``config.yaml`` and
    ``metrics.json`` into ``out_dir``. Bad input fails before ``out_dir`` is created;
    ``on_resolved(source, resolved)`` is called once the layers are known, before training.
    An existing ``out_dir/model.pt`` is refused unless ``overwrite=True``."""
    refuse_existing(Path(out_dir) / "model.pt", overwrite)
    ckpt = load_checkpoint(path)
    if ckpt.binarize:
        raise NetshrinkError(f"{path} is a binary network already")
    model = ckpt.build()
    spec = data or ckpt.data
    if not spec:
        raise NetshrinkError("--data is required: the checkpoint records no data spec")
    dataset = load_dataset(spec, input_size=ckpt.input_size, seed=train_config.seed, limit=limit)
    check_classes(str(path), ckpt.model_args, spec, dataset)
    resolved = binarize_(model, config)  # checks before any output
    if on_resolved is not None:
        on_resolved(ckpt, resolved)
    distributed.barrier()  # every rank has checked --out before rank 0 writes into it
    out = ensure_dir(Path(out_dir))
    float_metrics = evaluate(ckpt.build(), dataset.test)
    run = finetune_binary(
        model.to(distributed.device()),
        resolved,
        dataset,
        train_config,
        model_name=ckpt.model_name,
        model_args=ckpt.model_args,
        input_size=ckpt.input_size,
        metadata={"data": spec, "seed": train_config.seed},
        progress=progress,
    )
    saved = {"source": str(path), "data": spec, "limit": limit, "train": train_config.to_dict(),
             "binarize": resolved.to_dict()}  # fmt: skip
    metrics = {
        **{f"float_{k}": v for k, v in float_metrics.items()},
        **{f"binarized_{k}": v for k, v in run.binarized.items()},
        **run.training.metrics,
        "train_seconds": run.training.seconds,
        "file_bytes": len(run.nsz),
        "dense_bytes": run.dense_bytes,
    }
    save_checkpoint(
        out / "model.pt",
        Checkpoint(ckpt.model_name, ckpt.model_args, ckpt.input_size, run.model.state_dict(),
                   spec, dict(run.training.metrics), saved),
    )  # fmt: skip
    atomic_write_bytes(out / "model.nsz", run.nsz)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(saved, sort_keys=False))
    record = {"metrics": metrics, "history": run.training.history}
    atomic_write_text(out / "metrics.json", json.dumps(record, indent=2))
    distributed.barrier()  # rank 0's files exist before any rank goes on
    return CheckpointBinarizeRun(ckpt, run, float_metrics, out)
