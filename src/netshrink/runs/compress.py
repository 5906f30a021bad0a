"""Deep Compression end to end: run a recipe's stages on a model and pack the result.

Han, Mao, Dally (2016): prune (with retraining) → trained quantization (k-means weight
sharing with centroid fine-tuning) → Huffman-coded sparse storage. Each stage is a call
into the public API (:mod:`netshrink.prune`, :mod:`netshrink.quantize`,
:mod:`netshrink.nsz`); :func:`compress` only sequences them and records what each did.

:func:`compress_run` is the run ``netshrink compress`` and the survey make: compress, then
write the file with its resolved recipe and stage record beside it. What to compress comes
from :func:`checkpoint_source` (a trained file) or :func:`model_source` (a registry model).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netshrink.atomic import atomic_write_text
from netshrink.binarize import is_binary
from netshrink.data import Dataset, load_dataset, native_input_size
from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers, match_patterns
from netshrink.models import create, get_spec
from netshrink.nsz import CompressionReport, compression_report, pack, parse_nsz
from netshrink.prune import layer_density, prune_, prune_and_retrain
from netshrink.quantize import finetune_shared, share_weights_
from netshrink.runs.load import Trained, load_trained, resolve_model
from netshrink.runs.recipe import EncodeStage, PruneStage, QuantizeStage, Recipe
from netshrink.train import evaluate

__all__ = [
    "CompressResult",
    "CompressSource",
    "check_recipe",
    "checkpoint_source",
    "compress",
    "compress_run",
    "model_source",
    "save_compress_record",
]


@dataclass
class CompressResult:
    model: nn.Module  # the pruned and weight-shared model (what the file holds)
    data: bytes  # the .nsz file
    report: CompressionReport
    baseline: dict[str, float] = field(default_factory=dict)  # metrics before compressing
    stages: list[dict[str, Any]] = field(default_factory=list)  # one record per stage

    @property
    def metrics(self) -> dict[str, float]:
        return self.stages[-1].get("metrics", {}) if self.stages else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "stages": self.stages,
            "metrics": self.metrics,
            "compression": self.report.to_dict(),
        }


def check_recipe(model: nn.Module, recipe: Recipe) -> None:
    """Resolve every layer pattern of ``recipe`` on ``model`` before any work is done, so a
    pattern that matches no layer fails at once (one-line error naming it)."""
    names = list(compressible_layers(model))
    binary = [n for n, m in model.named_modules() if is_binary(m)]
    if binary:
        raise NetshrinkError(
            f"compress: {', '.join(binary)} {'is' if len(binary) == 1 else 'are'} binary "
            "(1 bit per weight already): pruning and weight sharing do not apply"
        )
    for i, stage in enumerate(recipe.stages):
        where = f"recipe stages[{i}]"
        if isinstance(stage, PruneStage):
            match_patterns(names, stage.config.sparsity, what=f"{where} prune sparsity")
            match_patterns(names, stage.config.quality, what=f"{where} prune quality")
        elif isinstance(stage, QuantizeStage):
            match_patterns(names, stage.config.bits, what=f"{where} quantize bits")
            match_patterns(names, dict.fromkeys(stage.config.exclude, 0), what=f"{where} exclude")
        elif isinstance(stage, EncodeStage):
            match_patterns(names, stage.config.index_bits, what=f"{where} encode index_bits")


def _metrics(model: nn.Module, data: Dataset | None) -> dict[str, float]:
    if data is None:
        return {}
    out = {f"val_{k}": v for k, v in evaluate(model, data.val).items()}
    out.update({f"test_{k}": v for k, v in evaluate(model, data.test).items()})
    return out


def compress(
    model: nn.Module,
    recipe: Recipe,
    data: Dataset | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    model_name: str | None = None,
    model_args: dict[str, Any] | None = None,
    input_size: tuple[int, int, int] | None = None,
    metadata: dict[str, Any] | None = None,
    progress: bool = True,
) -> CompressResult:
    """Run ``recipe`` on ``model`` (in place) and pack it; write ``path`` if given.

    With ``data=None`` nothing is retrained or evaluated: post-training compression of the
    weights at hand. The file is written atomically at the very end, so an interrupted
    run leaves no partial file.
    """
    check_recipe(model, recipe)
    baseline = _metrics(model, data)
    records: list[dict[str, Any]] = []
    for stage in recipe.stages:
        if isinstance(stage, PruneStage):
            if data is not None and stage.retrain is not None:
                prune_and_retrain(
                    model, data, stage.config, stage.retrain, rounds=stage.rounds,
                    progress=progress,
                )  # fmt: skip
            else:
                prune_(model, stage.config)
            record: dict[str, Any] = {"stage": "prune", "density": layer_density(model)}
        elif isinstance(stage, QuantizeStage):
            layers = share_weights_(model, stage.config)
            if data is not None and stage.finetune is not None:
                finetune_shared(model, data, stage.finetune, progress=progress)
            record = {"stage": "quantize", "bits": {k: v.bits for k, v in layers.items()}}
        else:
            continue
        record["metrics"] = _metrics(model, data)
        records.append(record)
    if recipe.encode.float16:
        # Tensors stored raw lose precision in fp16: give the model exactly what the file
        # will hold, so the accuracy reported is the file's.
        _round_like_file_(model, pack(model, None, recipe.encode))
        records.append({"stage": "encode", "float16": True, "metrics": _metrics(model, data)})
    # The header keeps a little provenance; the full resolved recipe is written beside
    # the file by compress_run (every byte of the header counts against LeNet-size files).
    meta: dict[str, Any] = {"recipe": recipe.name, **(metadata or {})}
    final = records[-1].get("metrics") if records else None
    if final:
        meta["metrics"] = {k: final[k] for k in ("test_top1", "test_top5") if k in final}
        meta["baseline"] = {k: baseline[k] for k in ("test_top1", "test_top5") if k in baseline}
    blob = pack(
        model, path, recipe.encode, model_name=model_name, model_args=model_args,
        input_size=input_size, metadata=meta,
    )  # fmt: skip
    report = compression_report(parse_nsz(blob))
    return CompressResult(model, blob, report, baseline, records)


@torch.no_grad()
def _round_like_file_(model: nn.Module, blob: bytes) -> None:
    """Copy the decoded value of every tensor stored raw in fp16 back into ``model``."""
    nsz = parse_nsz(blob)
    state = model.state_dict()
    for i, entry in enumerate(nsz.entries):
        if entry["encoding"] == "raw" and entry["storage"] == "float16":
            state[entry["name"]].copy_(torch.from_numpy(nsz.tensor(i)))


@dataclass
class CompressSource:
    """What to compress: the network with its registry identity, and the retraining data
    (None: post-training compression of the weights at hand)."""

    trained: Trained
    data: Dataset | None

    @property
    def metadata(self) -> dict[str, Any]:
        """What the file's header records of the source."""
        return {"data": self.data.spec if self.data is not None else "", "seed": self.trained.seed}


def checkpoint_source(
    path: str | os.PathLike[str],
    data: str | None = None,
    *,
    limit: int | None = None,
    model: nn.Module | None = None,
) -> CompressSource:
    """A trained checkpoint or ``.nsz`` file, with ``data`` (default: the data it was
    trained on; ``"none"``: no retraining); ``model``: the skeleton to load it into
    (:func:`~netshrink.runs.load.load_trained`)."""
    trained = load_trained(path, model=model)
    spec = data if data is not None else (trained.data or "none")
    dataset = None if spec == "none" else trained.load_data(spec, limit=limit)
    return CompressSource(trained, dataset)


def model_source(
    name: str,
    model_args: dict[str, Any] | None = None,
    data: str | None = None,
    *,
    input_size: tuple[int, ...] | None = None,
    limit: int | None = None,
) -> CompressSource:
    """Registry model ``name`` with seed-0 weights: sized to ``data`` when given (its
    classes and channels), else to ``input_size`` ((C, H, W) or (H, W); default the
    model's published input)."""
    model_args = dict(model_args or {})
    dataset = None
    if data and data != "none":
        if input_size is not None:
            raise NetshrinkError("--input sets the model's input only with --data none")
        model_args, size = resolve_model(name, native_input_size(data), model_args)
        dataset = load_dataset(data, input_size=size, seed=0, limit=limit)
        model_args.setdefault("num_classes", dataset.num_classes)
    else:
        size = get_spec(name).input_size
        if input_size is not None:
            size = tuple(input_size) if len(input_size) == 3 else (size[0], *input_size)
            model_args.setdefault("in_chans", size[0])
    torch.manual_seed(0)
    model = create(name, **model_args)
    return CompressSource(Trained(model, name, model_args, tuple(size), "", 0), dataset)


def save_compress_record(
    stem: str | os.PathLike[str], recipe: Recipe, result: CompressResult
) -> None:
    """``STEM.recipe.yaml`` (the resolved recipe) and ``STEM.json`` (stages, metrics, the
    per-layer table) beside a compressed file."""
    atomic_write_text(f"{stem}.recipe.yaml", recipe.to_yaml())
    atomic_write_text(f"{stem}.json", json.dumps(result.to_dict(), indent=2))


def compress_run(
    source: CompressSource,
    recipe: Recipe,
    path: str | os.PathLike[str],
    *,
    progress: bool = True,
) -> CompressResult:
    """Compress ``source.trained.model`` (in place) with ``recipe``; write ``path`` and
    its record (:func:`save_compress_record`)."""
    path = Path(path)
    trained = source.trained
    result = compress(
        trained.model,
        recipe,
        source.data,
        path=path,
        model_name=trained.model_name,
        model_args=trained.model_args,
        input_size=trained.input_size,
        metadata=source.metadata,
        progress=progress,
    )
    save_compress_record(path.with_suffix(""), recipe, result)
    return result
