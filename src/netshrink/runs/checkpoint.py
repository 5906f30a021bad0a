"""Checkpoints: a plain dict of tensors and JSON-like values, written atomically.

Loading uses ``torch.load(weights_only=True)``, which unpickles only tensors and plain
containers, never arbitrary objects. A checkpoint records what is needed to rebuild the
model without the code that trained it: the registry name and arguments, the input size,
the data spec and the metrics.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netshrink.atomic import atomic_write_bytes
from netshrink.binarize import BinarizeConfig, rebinarize_
from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.nsz.container import MAGIC as NSZ_MAGIC

__all__ = ["Checkpoint", "load_checkpoint", "refuse_existing", "save_checkpoint"]

FORMAT = "netshrink-checkpoint"
VERSION = 1
# The fields every checkpoint has, and their types: a damaged dict is one line, not a KeyError.
_FIELDS = {"model_name": str, "model_args": dict, "input_size": list | tuple, "state_dict": dict}


@dataclass
class Checkpoint:
    model_name: str
    model_args: dict[str, Any]
    input_size: tuple[int, int, int]
    state_dict: dict[str, torch.Tensor]
    data: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    train_state: dict[str, Any] | None = None  # present while a run can be resumed

    @property
    def binarize(self) -> dict[str, Any] | list[dict[str, Any]] | None:
        """The resolved binarization of a binary network: ``BinarizeConfig.to_dict()``, or a
        list of them when layers were binarized differently (as in an ``.nsz`` header)."""
        return self.config.get("binarize") or None

    def build(self, model: nn.Module | None = None) -> nn.Module:
        """The model with its trained weights, in eval mode (binary layers rebuilt binary):
        the architecture the checkpoint names, or ``model``, a skeleton of the same
        structure given by the caller (e.g. built from an external factory)."""
        if model is None:
            model = create(self.model_name, **self.model_args)
        if self.binarize:
            groups = self.binarize if isinstance(self.binarize, list) else [self.binarize]
            configs = [BinarizeConfig.from_dict(group) for group in groups]
            rebinarize_(model, configs, source="the checkpoint")
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise NetshrinkError(
                f"checkpoint weights do not fit model {self.model_name!r}: {first}"
            ) from None
        return model.eval()


def save_checkpoint(path: str | os.PathLike[str], ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically (temporary file, then rename)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_name": ckpt.model_name,
        "model_args": dict(ckpt.model_args),
        "input_size": list(ckpt.input_size),
        "data": ckpt.data,
        "metrics": dict(ckpt.metrics),
        "config": dict(ckpt.config),
        "state_dict": {k: v.detach().cpu() for k, v in ckpt.state_dict.items()},
        "train_state": ckpt.train_state,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def refuse_existing(path: str | os.PathLike[str], overwrite: bool) -> None:
    """One line when ``path`` exists and the user did not ask to replace it (files made
    from it would lose their source)."""
    if Path(path).exists() and not overwrite:
        raise NetshrinkError(f"{path} exists: pass --overwrite to replace it")


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise NetshrinkError(f"checkpoint {path} does not exist")
    with open(path, "rb") as handle:
        if handle.read(8) == NSZ_MAGIC:
            raise NetshrinkError(
                f"{path} is a compressed .nsz file, not a checkpoint: `netshrink unpack "
                f"{path} --out MODEL.pt` writes its dense checkpoint"
            )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
            # A pickled object (``torch.save(model)``): its code would run to load it.
            raise NetshrinkError(
                f"{path} is not a netshrink checkpoint: it pickles Python objects (e.g. "
                "torch.save(model)), which netshrink never loads; save model.state_dict() "
                "or train with netshrink train"
            ) from None
        first = re.sub(r"\x1b\[[0-9;]*m", "", (str(exc).strip().splitlines() or ["unreadable"])[0])
        raise NetshrinkError(f"checkpoint {path} cannot be read: {first[:200]}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise NetshrinkError(f"{path} is not a netshrink checkpoint")
    for key, kind in _FIELDS.items():
        if not isinstance(payload.get(key), kind):
            raise NetshrinkError(f"checkpoint {path} is damaged: its {key!r} is missing or wrong")
    if payload.get("version") != VERSION:
        raise NetshrinkError(
            f"checkpoint {path} has version {payload.get('version')}; "
            f"this netshrink reads version {VERSION}"
        )
    for name, tensor in payload["state_dict"].items():
        if (
            isinstance(tensor, torch.Tensor)
            and tensor.is_floating_point()
            and not bool(torch.isfinite(tensor).all())
        ):
            raise NetshrinkError(f"checkpoint {path}: {name} holds NaN or infinite values")
    return Checkpoint(
        model_name=payload["model_name"],
        model_args=dict(payload["model_args"]),
        input_size=tuple(payload["input_size"]),
        state_dict=payload["state_dict"],
        data=payload.get("data", ""),
        metrics=dict(payload.get("metrics", {})),
        config=dict(payload.get("config", {})),
        train_state=payload.get("train_state"),
    )
