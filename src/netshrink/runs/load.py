"""Loading for runs: how a registry model meets the data, and trained files read back.

How a model meets the data (:func:`resolve_model`):

- ``num_classes`` and ``in_chans`` come from the data unless given.
- Models with a fixed input (the LeNets) get the data resized to their input size.
- ImageNet-shape families get ``small_input=True`` when the images are smaller than
  64 px on a side and the caller did not choose; the choice is recorded in the
  checkpoint's model arguments, so the checkpoint rebuilds exactly. Images smaller than
  28 px (the 8x8 digits) are resized up to 28 px, the smallest side every small-input
  stem handles.

A trained network comes back from either file the toolkit writes, a checkpoint
(``model.pt``) or an ``.nsz`` file, told apart by the magic bytes (:func:`load_trained`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from torch import nn

from netshrink.data import Dataset, load_dataset
from netshrink.engine import EngineNote
from netshrink.errors import NetshrinkError
from netshrink.models import get_spec
from netshrink.runs.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

__all__ = [
    "MIN_SIDE",
    "SMALL_INPUT_SIDE",
    "Trained",
    "check_classes",
    "check_output",
    "is_nsz",
    "load_on_engine",
    "load_trained",
    "resolve_model",
    "unpack_to_checkpoint",
]

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
    if spec.family == "external":  # the data's own size; only arguments it names are set
        if "in_chans" in spec.defaults:
            args.setdefault("in_chans", chans)
        return args, (args.get("in_chans", chans), height, width)
    args.setdefault("in_chans", chans)
    if spec.supports_small_input:
        args.setdefault("small_input", min(height, width) < SMALL_INPUT_SIDE)
        return args, (args["in_chans"], max(height, MIN_SIDE), max(width, MIN_SIDE))
    return args, (args["in_chans"], spec.input_size[1], spec.input_size[2])


@dataclass
class Trained:
    """A trained network read back from a checkpoint (``model.pt``) or an ``.nsz`` file."""

    model: nn.Module
    model_name: str
    model_args: dict[str, Any]
    input_size: tuple[int, int, int]
    data: str  # data spec it was trained on ("" when the file does not say)
    seed: int
    path: str = ""  # where it was read from ("" for a model built in memory)

    def load_data(self, spec: str | None = None, *, limit: int | None = None) -> Dataset:
        """``spec`` (default: the data it was trained on) at this network's input size and
        seed, split as when it was trained; data with another number of classes than the
        network predicts is an error."""
        spec = spec or self.data
        if not spec:
            raise NetshrinkError("--data is required: the checkpoint records no data spec")
        data = load_dataset(spec, input_size=self.input_size, seed=self.seed, limit=limit)
        check_classes(self.path or self.model_name, self.model_args, spec, data)
        if not self.model_name or ":" in self.model_name:  # not a registry model: run it
            check_output(self.model, self.path or self.model_name, self.input_size,
                         data.num_classes)  # fmt: skip
        return data


def check_output(model: nn.Module, name: str, input_size: tuple[int, ...], classes: int) -> None:
    """One-line error unless ``model`` (an external network, whose arguments netshrink
    cannot read) runs on one ``input_size`` image and gives ``classes`` outputs."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *input_size))
    except Exception as exc:  # the user's forward: any failure is one line
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        size = "x".join(map(str, input_size))
        raise NetshrinkError(
            f"model {name!r} fails on a {size} input: {type(exc).__name__}: {first}"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != classes:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise NetshrinkError(
            f"model {name!r} gives outputs of shape {shape} for one image, not (1, {classes}) "
            f"for the data's {classes} classes (set its class count with --arg)"
        )


def check_classes(what: str, model_args: dict[str, Any], spec: str, data: Dataset) -> None:
    """One-line error when a model built with ``model_args`` cannot predict ``data``'s classes."""
    model_classes = model_args.get("num_classes")
    if model_classes is not None and model_classes != data.num_classes:
        raise NetshrinkError(
            f"{what} predicts {model_classes} classes but {spec} has {data.num_classes}"
        )


def is_nsz(path: str | os.PathLike[str]) -> bool:
    from netshrink.nsz.container import MAGIC

    try:
        with open(path, "rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _from_nsz(path: str | os.PathLike[str], build=None, model: nn.Module | None = None):
    """The ``.nsz`` file at ``path`` read, and its network rebuilt: ``(NszFile, Trained)``;
    ``build(nsz)`` rebuilds it instead of decoding it dense; ``model`` is the skeleton to
    decode into instead of the architecture the file names."""
    from netshrink.nsz import load_into, read_nsz, skeleton

    nsz = read_nsz(path)
    if build is None:
        model = load_into(nsz, skeleton(nsz) if model is None else model)
    else:
        model = build(nsz)
    if nsz.input_size is None or len(nsz.input_size) != 3:
        raise NetshrinkError(f"{path} does not record the model's input size")
    meta = nsz.metadata
    seed = meta.get("seed", 0) if isinstance(meta.get("seed", 0), int) else 0
    data = meta.get("data", "") if isinstance(meta.get("data", ""), str) else ""
    size = tuple(nsz.input_size)
    name, args = nsz.model_name or "", dict(nsz.model_args)
    return nsz, Trained(model, name, args, size, data, seed, str(path))


def load_trained(path: str | os.PathLike[str], *, model: nn.Module | None = None) -> Trained:
    """Read a checkpoint or an ``.nsz`` file (told apart by the file's magic bytes).

    ``model``: a skeleton of the network to load the weights into, instead of the
    architecture the file names (needed for a file that names none; a file that names an
    external ``package.module:factory`` rebuilds it once that path is trusted)."""
    if is_nsz(path):
        return _from_nsz(path, model=model)[1]
    ckpt = load_checkpoint(path)
    seed = ckpt.config.get("train", {}).get("seed", 0)
    size = tuple(ckpt.input_size)
    args = dict(ckpt.model_args)
    built = ckpt.build(model)
    return Trained(built, ckpt.model_name, args, size, ckpt.data, seed, str(path))


def load_on_engine(
    path: str | os.PathLike[str],
    engine: str,
    *,
    warn: bool = True,
    model: nn.Module | None = None,
) -> tuple[Trained, list[EngineNote]]:
    """Read a checkpoint or ``.nsz`` file and prepare its network on ``engine``.

    ``Trained.model`` is the engine's network. An engine that reads ``.nsz`` files itself
    (``sparse``, ``auto``) builds from the file's compressed tensors, not from a dense copy.
    ``model``: the skeleton to load into, as in :func:`load_trained`.
    """
    from netshrink.engine import get_engine

    chosen = get_engine(engine)
    if is_nsz(path) and chosen.load is not None:
        notes: list[EngineNote] = []

        def build(nsz):
            built, found = chosen.load(
                nsz, warn=warn, **({} if model is None else {"model": model})
            )
            notes.extend(found)
            return built

        return _from_nsz(path, build)[1], notes
    trained = load_trained(path, model=model)
    trained.model, notes = chosen.prepare(trained.model, warn=warn)
    return trained, notes


def unpack_to_checkpoint(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    model: nn.Module | None = None,
    named: tuple[str, Any] | None = None,
) -> Checkpoint:
    """Decode the ``.nsz`` file at ``path`` into a checkpoint written to ``out``: dense fp32
    weights, except that binary layers stay binary (their weights are ``±α``). ``model``:
    the skeleton to decode into; ``named``: the (model name, arguments) the checkpoint then
    records, the file's own otherwise."""
    nsz, trained = _from_nsz(path, model=model)
    name, args = named if named is not None else (trained.model_name, trained.model_args)
    if not name:
        raise NetshrinkError(
            f"{path} names no architecture; pass the model's code (--model SPEC) so that the "
            "checkpoint can name it"
        )
    if isinstance(args, list):  # CLI key=value pairs
        from netshrink.models import parse_model_args

        args = parse_model_args(name, args)
    metrics = nsz.metadata.get("metrics", {})
    ckpt = Checkpoint(
        model_name=name,
        model_args=dict(args),
        input_size=tuple(trained.input_size),
        state_dict=trained.model.state_dict(),
        data=trained.data,
        metrics=metrics if isinstance(metrics, dict) else {},
        config={"train": {"seed": trained.seed}, "unpacked_from": str(path)},
    )
    if nsz.header.get("binarize"):
        ckpt.config["binarize"] = nsz.header["binarize"]
    save_checkpoint(out, ckpt)
    return ckpt
