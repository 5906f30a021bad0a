"""One training run from names: registry model + data spec + config → checkpoint folder.

This is what ``netshrink train`` and the survey call. How a model meets the data:

- ``num_classes`` and ``in_chans`` come from the data unless given.
- Models with a fixed input (the LeNets) get the data resized to their input size.
- ImageNet-shape families get ``small_input=True`` when the images are smaller than
  64 px on a side and the caller did not choose; the choice is recorded in the
  checkpoint's model arguments, so the checkpoint rebuilds exactly. Images smaller than
  28 px (the 8x8 digits) are resized up to 28 px, the smallest side every small-input
  stem handles.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from netshrink._atomic import atomic_write_text, ensure_dir
from netshrink.binarize import BinarizeConfig, binarize_
from netshrink.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from netshrink.data import Dataset, load_dataset, native_input_size
from netshrink.errors import NetshrinkError
from netshrink.models import create, get_spec
from netshrink.train import TrainConfig, train

__all__ = ["MIN_SIDE", "SMALL_INPUT_SIDE", "resolve_model", "train_run", "RunResult"]

SMALL_INPUT_SIDE = 64  # below this side, ImageNet stems would shrink the map to nothing
MIN_SIDE = 28  # smallest side every small-input stem handles


def resolve_model(
    name: str, data_size: tuple[int, int, int], args: dict[str, Any]
) -> tuple[dict[str, Any], tuple[int, int, int]]:
    """Model arguments and the input size the data must be delivered at.

    Returns ``(model_args, input_size)`` for data whose native size is ``data_size``;
    the caller adds ``num_classes`` from the data.
    """
    spec = get_spec(name)
    args = dict(args)
    chans, height, width = data_size
    args.setdefault("in_chans", chans)
    if spec.supports_small_input:
        args.setdefault("small_input", min(height, width) < SMALL_INPUT_SIDE)
        return args, (args["in_chans"], max(height, MIN_SIDE), max(width, MIN_SIDE))
    return args, (args["in_chans"], spec.input_size[1], spec.input_size[2])


@dataclass
class RunResult:
    checkpoint: Checkpoint
    out_dir: Path
    reused: bool  # True when a finished run with the same config was found


def train_run(
    model_name: str,
    data: str | Dataset,
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    model_args: dict[str, Any] | None = None,
    resume: bool = False,
    reuse: bool = False,
    limit: int | None = None,
    progress: bool = True,
    binarize: BinarizeConfig | None = None,
) -> RunResult:
    """Train registry model ``model_name``; write model.pt, config.yaml, metrics.json to out_dir.

    ``binarize`` trains a binary network from scratch (:func:`netshrink.binarize.binarize_`
    right after the model is built); in xnor mode, a model that offers XNOR-Net's block
    order (an ``order`` argument) gets ``order="xnor"`` unless the caller chose.
    ``resume=True`` continues an interrupted run from ``out_dir/model.pt``;
    ``reuse=True`` returns a finished run with the identical resolved config untouched.
    """
    spec_text = data if isinstance(data, str) else data.spec
    native = native_input_size(spec_text) if isinstance(data, str) else data.input_size
    model_args = dict(model_args or {})
    if (
        binarize is not None
        and binarize.mode == "xnor"
        and "order" in get_spec(model_name).defaults
    ):
        model_args.setdefault("order", "xnor")
    args, input_size = resolve_model(model_name, native, model_args)
    if isinstance(data, Dataset) and data.input_size == input_size:
        dataset = data
    else:
        dataset = load_dataset(spec_text, input_size=input_size, seed=config.seed, limit=limit)
    args.setdefault("num_classes", dataset.num_classes)
    with torch.device("meta"):  # check the arguments (and binary layers) weightlessly
        probe = create(model_name, **args)
        if binarize is not None:
            binarize = binarize_(probe, binarize)
    out = ensure_dir(out_dir)  # only once the model and data are known to be valid
    resolved = {
        "model": model_name,
        "model_args": args,
        "input_size": list(input_size),
        "data": spec_text,
        "limit": limit,
        "train": config.to_dict(),
    }
    if binarize is not None:
        resolved["binarize"] = binarize.to_dict()
    ckpt_path = out / "model.pt"
    if reuse and ckpt_path.exists():
        try:
            previous = load_checkpoint(ckpt_path)
        except NetshrinkError:
            previous = None
        if previous and previous.config == resolved and previous.train_state is None:
            return RunResult(previous, out, reused=True)

    torch.manual_seed(config.seed)  # initial weights depend only on the seed
    model = create(model_name, **args)
    if binarize is not None:
        binarize_(model, binarize)
    resume_state = None
    if resume and ckpt_path.exists():
        previous = load_checkpoint(ckpt_path)
        if previous.config != resolved:
            raise NetshrinkError(
                f"cannot resume {ckpt_path}: it was trained with a different configuration"
            )
        if previous.train_state is None:
            print(f"{ckpt_path} is already finished; nothing to resume")
            return RunResult(previous, out, reused=True)
        model.load_state_dict(previous.state_dict)
        resume_state = previous.train_state

    atomic_write_text(out / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))

    def save_epoch(state: dict[str, Any]) -> None:
        save_checkpoint(
            ckpt_path,
            Checkpoint(
                model_name,
                args,
                input_size,
                model.state_dict(),
                spec_text,
                {},
                resolved,
                train_state=state,
            ),
        )

    result = train(
        model,
        dataset,
        config,
        progress=progress,
        checkpoint=save_epoch,
        resume_state=resume_state,
        desc=model_name,
    )
    metrics = dict(result.metrics)
    metrics["train_seconds"] = result.seconds
    final = Checkpoint(
        model_name, args, input_size, model.state_dict(), spec_text, metrics, resolved
    )
    save_checkpoint(ckpt_path, final)
    atomic_write_text(
        out / "metrics.json", json.dumps({"metrics": metrics, "history": result.history}, indent=2)
    )
    return RunResult(final, out, reused=False)
