"""Deep Compression end to end: run a recipe's stages on a model and pack the result.

Han, Mao, Dally (2016): prune (with retraining) → trained quantization (k-means weight
sharing with centroid fine-tuning) → Huffman-coded sparse storage. Each stage is a call
into the public API (:mod:`netshrink.prune`, :mod:`netshrink.quantize`,
:mod:`netshrink.nsz`); this module only sequences them and records what each did.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netshrink.binarize import is_binary
from netshrink.data import Dataset
from netshrink.errors import NetshrinkError
from netshrink.layers import compressible_layers, match_patterns
from netshrink.nsz import CompressionReport, compression_report, pack, parse_nsz
from netshrink.prune import layer_density, prune_, prune_and_retrain
from netshrink.quantize import finetune_shared, share_weights_
from netshrink.recipe import EncodeStage, PruneStage, QuantizeStage, Recipe
from netshrink.train import evaluate

__all__ = ["CompressResult", "check_recipe", "compress"]


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
    # the file by the CLI (every byte of the header counts against LeNet-size files).
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
