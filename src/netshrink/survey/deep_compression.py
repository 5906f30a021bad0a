"""Survey rows of Deep Compression (Han, Mao, Dally 2016).

LeNet-5 goes through ``recipes/lenet5.yaml`` one stage at a time, and each stage is a row:
pruned (P, fp32 values with relative indices) → pruned + quantized (P+Q, fixed-width codes)
→ Deep Compression (P+Q+H, the same model Huffman-coded). The stages run once and are
shared through ``ctx.memo``. The rows follow the shipped recipe, tuned for the survey's
data; the paper's densities are drawn beside them in the density figure. SqueezeNet 1.0
gets the densities of Table 1 of the SqueezeNet paper and 6-bit weights
(``recipes/squeezenet1_0_table1.yaml``), against AlexNet (510x in the paper).

Every compressed row is the network its ``.nsz`` file holds, run on the ``auto`` inference
engine built straight from the file (:func:`netshrink.engine.load_auto`: each pruned layer
timed at load on the sparse codebook kernels against the fused dense layer, the faster
kept; small fully connected layers chained, EIE's way): its accuracy on the test split and
its latency are the engine's, its size is the file's, and its parameters and MACs are
counted on the dense unpacked model. The recipes' retraining epochs scale with the survey's,
``epochs * train_epochs // FULL_EPOCHS`` capped at ``train_epochs``, with its batch size and
seed: a full run retrains LeNet-5 for at most 4 epochs per stage, ``--quick`` for 1, and
SqueezeNet (whose epochs cost most) not at all.

Outputs under ``<out>/deep_compression/``: ``KEY.nsz``, ``KEY.json`` (stages, metrics and
the per-layer table), ``KEY.txt`` (the table rendered), ``KEY.recipe.yaml`` (the resolved
recipe), and the LeNet-5 sensitivity scan.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from netshrink.atomic import atomic_write_text
from netshrink.data import Dataset
from netshrink.engine import load_auto
from netshrink.layer_patterns import compressible_layers, match_patterns
from netshrink.nsz import compression_report, pack, parse_nsz, render_report, unpack
from netshrink.prune import (
    plot_sensitivity,
    render_sensitivity,
    sensitivity_scan,
)
from netshrink.quantize import cluster_weights, shared_layers
from netshrink.runs.compress import (
    CompressResult,
    CompressSource,
    compress,
    compress_run,
    save_compress_record,
)
from netshrink.runs.load import Trained
from netshrink.runs.recipe import (
    EncodeStage,
    PruneStage,
    QuantizeStage,
    Recipe,
    shipped_recipe,
)
from netshrink.survey.architectures import ARCHITECTURES
from netshrink.survey.context import FULL_EPOCHS, SurveyContext
from netshrink.survey.figures import codebook_plot, density_bars, weight_histograms
from netshrink.survey.registry import Measured, SurveyEntry, register_entry
from netshrink.train import TrainConfig, evaluate

__all__ = ["ENTRIES", "TrainedRow", "metrics_on_test", "out_folder", "trained_row"]

# Deep Compression, Table 3: the fraction of LeNet-5's weights kept per layer. The
# survey's rows follow the shipped recipe, which may be tuned away from these for the data.
LENET5_PAPER_KEPT = {"conv1": 0.66, "conv2": 0.12, "fc1": 0.08, "fc2": 0.19}
# Sensitivity scan of LeNet-5, with the paper's conv2 and fc1 sparsities among the points.
SENSITIVITY_SPARSITIES = (0.0, 0.25, 0.5, 0.7, 0.8, 0.88, 0.92, 0.95, 0.98)
ENGINE_NOTE = "Runs on the auto engine from the .nsz: {sparse}/{layers} layers sparse."


def _scaled(ctx: SurveyContext, config: TrainConfig | None) -> TrainConfig | None:
    """A recipe's training at the survey's scale: ``epochs * train_epochs // FULL_EPOCHS``,
    at most ``train_epochs`` (no stage retrains longer than the survey trains a model), with
    the survey's batch size and seed; None (no retraining) below one epoch."""
    if config is None:
        return None
    train_epochs = ctx.config.train_epochs
    epochs = min(config.epochs * train_epochs // FULL_EPOCHS, train_epochs)
    if epochs < 1:
        return None
    survey = ctx.train_config()
    return replace(config, epochs=epochs, batch_size=survey.batch_size, seed=survey.seed)


def _survey_recipe(ctx: SurveyContext, name: str) -> Recipe:
    recipe = shipped_recipe(name)
    stages = []
    for stage in recipe.stages:
        if isinstance(stage, PruneStage):
            retrain = _scaled(ctx, stage.retrain)
            final = _scaled(ctx, stage.final_retrain) if retrain is not None else None
            stage = replace(stage, retrain=retrain, final_retrain=final)
        elif isinstance(stage, QuantizeStage):
            stage = replace(stage, finetune=_scaled(ctx, stage.finetune))
        stages.append(stage)
    return Recipe(stages, recipe.name, recipe.description)


@dataclass
class TrainedRow:
    """A trained survey row to start from; ``model`` is that row's: never modified."""

    model_name: str
    model_args: dict[str, Any]
    model: nn.Module
    input_size: tuple[int, int, int]
    data: Dataset
    train_overrides: dict[str, Any]


def trained_row(ctx: SurveyContext, key: str) -> TrainedRow:
    row = next(r for r in ARCHITECTURES if r.key == key)
    model, input_size, _ = ctx.train(row.key, row.model, row.args, **row.train)
    data = ctx.dataset(row.model, row.args)
    return TrainedRow(row.model, ctx.model_args(key), model, input_size, data, dict(row.train))


def out_folder(ctx: SurveyContext) -> Path:
    return ctx.out / "deep_compression"


def metrics_on_test(model: nn.Module, data: Dataset) -> dict[str, float]:
    return {f"test_{k}": v for k, v in evaluate(model, data.test).items()}


def _save_table(ctx: SurveyContext, key: str, result: CompressResult) -> None:
    """The per-layer table, rendered, beside ``KEY.nsz`` (``KEY.txt``)."""
    atomic_write_text(out_folder(ctx) / f"{key}.txt", render_report(result.report) + "\n")


def _save(ctx: SurveyContext, key: str, recipe: Recipe, result: CompressResult) -> None:
    """The resolved recipe, the stage records and the per-layer table beside ``KEY.nsz``."""
    save_compress_record(out_folder(ctx) / key, recipe, result)
    _save_table(ctx, key, result)


def _compress(
    ctx: SurveyContext, key: str, source: TrainedRow, model: nn.Module, recipe: Recipe
) -> CompressResult:
    trained = Trained(model, source.model_name, source.model_args, source.input_size,
                      ctx.config.data, ctx.config.seed)  # fmt: skip
    path = out_folder(ctx) / f"{key}.nsz"
    result = compress_run(CompressSource(trained, source.data), recipe, path, progress=ctx.progress)
    _save_table(ctx, key, result)
    return result


def _measured(ctx: SurveyContext, key: str, source: TrainedRow, notes: str) -> Measured:
    """The row of ``KEY.nsz``: the network on the auto engine built from the file (its test
    metrics and, in the survey, its latency), the file's size; counts on the unpacked model."""
    path = out_folder(ctx) / f"{key}.nsz"
    model, layers = load_auto(path, warn=False)
    metrics = metrics_on_test(model, source.data)
    size = path.stat().st_size
    sparse = sum(n.engine == "sparse" for n in layers)
    notes = f"{notes} {ENGINE_NOTE.format(sparse=sparse, layers=len(layers))}".strip()
    print(f"  {key}: {size:,} bytes, test top-1 {metrics['test_top1']:.4f}, "
          f"{sparse}/{len(layers)} layers sparse", flush=True)  # fmt: skip
    return Measured(model, source.input_size, metrics, size_bytes=size, notes=notes,
                    profile_model=unpack(path))  # fmt: skip


def _kept(model: nn.Module, prune: PruneStage) -> dict[str, float]:
    """The recipe's fraction of weights kept per layer (1.0 for layers it does not list)."""
    names = list(compressible_layers(model))
    sparsity = match_patterns(names, prune.config.sparsity, what="prune sparsity")
    return {n: 1.0 - sparsity.get(n, 0.0) for n in names}


def _weights(model: nn.Module, layer: str) -> np.ndarray:
    return model.state_dict()[f"{layer}.weight"].detach().cpu().numpy()


# LeNet-5: prune → quantize → Huffman, one row per stage.


def _lenet5_pruned(ctx: SurveyContext) -> CompressResult:
    return ctx.memo("deep_compression/lenet5_pruned", lambda: _prune_lenet5(ctx))


def _prune_lenet5(ctx: SurveyContext) -> CompressResult:
    source = trained_row(ctx, "lenet5")
    recipe = _survey_recipe(ctx, "lenet5")
    prune = [s for s in recipe.stages if isinstance(s, PruneStage)]
    encode = EncodeStage(replace(recipe.encode, huffman=False))
    stage = Recipe([*prune, encode], recipe.name, "the prune stage alone, without Huffman")
    result = _compress(ctx, "lenet5_pruned", source, copy.deepcopy(source.model), stage)

    ctx.add_figure(
        "lenet5_weight_histogram",
        "LeNet-5 weights before and after pruning",
        weight_histograms(
            {n: (_weights(source.model, n), _weights(result.model, n)) for n in ("conv1", "fc1")}
        ),
        "Weights of the trained baseline and the nonzero weights after pruning and "
        "retraining (Han et al. 2015, Fig. 7): pruning removes the weights around zero.",
    )
    ctx.add_figure(
        "lenet5_density",
        "LeNet-5: weights kept per layer",
        density_bars(
            {r.name: r.density for r in result.report.layers},
            {"recipe target": _kept(source.model, prune[0]), "paper": LENET5_PAPER_KEPT},
            f"LeNet-5 pruned ({recipe.name})",
        ),
        "Fraction of nonzero weights in each layer of lenet5_pruned.nsz; markers: the "
        "recipe's targets and the densities of Deep Compression, Table 3 (conv1 66%, "
        "conv2 12%, fc1 8%, fc2 19%).",
    )
    if ctx.primary:
        _lenet5_sensitivity(ctx, source)
    return result


def _lenet5_sensitivity(ctx: SurveyContext, source: TrainedRow) -> None:
    scan = sensitivity_scan(
        copy.deepcopy(source.model),
        lambda m: evaluate(m, source.data.val)["top1"],
        sparsities=SENSITIVITY_SPARSITIES,
    )
    stem = out_folder(ctx) / "lenet5_sensitivity"
    atomic_write_text(f"{stem}.json", json.dumps(scan.to_dict(), indent=2))
    atomic_write_text(f"{stem}.txt", render_sensitivity(scan) + "\n")
    plot_sensitivity(scan, f"{stem}.png")
    ctx.add_figure(
        "lenet5_sensitivity",
        "LeNet-5 pruning sensitivity",
        Path(f"{stem}.png").read_bytes(),
        "Validation top-1 of the trained LeNet-5 with one layer at a time pruned by "
        "magnitude, without retraining (Han et al. 2015, Fig. 6, where the first "
        "convolution is the most sensitive layer and the large fully connected ones the "
        "least).",
    )


def _lenet5_quantized(ctx: SurveyContext) -> dict[str, CompressResult]:
    return ctx.memo("deep_compression/lenet5_quantized", lambda: _quantize_lenet5(ctx))


def _quantize_lenet5(ctx: SurveyContext) -> dict[str, CompressResult]:
    """Weight sharing and centroid fine-tuning on the pruned model, then the P+Q file
    (fixed-width codes and indices) and the P+Q+H file of the same model."""
    source = trained_row(ctx, "lenet5")
    pruned = _lenet5_pruned(ctx)
    recipe = _survey_recipe(ctx, "lenet5")
    rest = Recipe([s for s in recipe.stages if not isinstance(s, PruneStage)], recipe.name)
    shared = compress(copy.deepcopy(pruned.model), rest, source.data, progress=ctx.progress)
    metadata = {
        "recipe": recipe.name,
        "data": ctx.config.data,
        "seed": ctx.config.seed,
        "metrics": {k: v for k, v in shared.metrics.items() if k in ("test_top1", "test_top5")},
        "baseline": {k: v for k, v in pruned.baseline.items() if k in ("test_top1", "test_top5")},
    }
    results = {}
    for key, encode in (
        ("lenet5_pq", replace(recipe.encode, huffman=False)),
        ("lenet5_dc", recipe.encode),
    ):
        blob = pack(
            shared.model,
            out_folder(ctx) / f"{key}.nsz",
            encode,
            model_name=source.model_name,
            model_args=source.model_args,
            input_size=source.input_size,
            metadata=metadata,
        )
        report = compression_report(parse_nsz(blob))
        stages = pruned.stages + shared.stages
        results[key] = CompressResult(shared.model, blob, report, pruned.baseline, stages)
        full = Recipe([*recipe.stages[:-1], EncodeStage(encode)], recipe.name, recipe.description)
        _save(ctx, key, full, results[key])

    quantize = next(s for s in rest.stages if isinstance(s, QuantizeStage)).config
    before = _weights(pruned.model, "fc1")
    nonzero = before[before != 0].astype(np.float64)
    tuned = shared_layers(shared.model)["fc1"]
    kmeans = cluster_weights(
        before, tuned.bits, init=quantize.init, max_iter=quantize.max_iter, seed=quantize.seed
    )
    codebooks = {
        "k-means after fine-tuning": tuned.codebook,
        "k-means before fine-tuning": kmeans.codebook,
    }
    if quantize.init == "linear":
        k = (1 << tuned.bits) - 1
        codebooks["linear initialization"] = np.linspace(nonzero.min(), nonzero.max(), k)
    ctx.add_figure(
        "lenet5_fc1_codebook",
        "LeNet-5 fc1 codebook",
        codebook_plot(nonzero, codebooks, f"LeNet-5 fc1: {tuned.bits}-bit weight sharing"),
        "Nonzero weights of the pruned fc1 and its centroids: linear initialization, after "
        "k-means, and after fine-tuning (Deep Compression, Fig. 4). Fine-tuning moves each "
        "centroid by the summed gradients of its weights.",
    )
    return results


def _retraining(recipe: Recipe) -> str:
    """How the recipe retrains at the survey's scale, for a row's notes."""
    parts = []
    for stage in recipe.stages:
        if isinstance(stage, PruneStage) and stage.retrain is not None:
            epochs = [stage.retraining(r).epochs for r in range(1, stage.rounds + 1)]
            shift = ", ±2 px shifts" if stage.retrain.augment else ""
            if len(set(epochs)) == 1:
                parts.append(f"pruning {stage.rounds} x {epochs[0]} epochs{shift}")
            else:
                parts.append(f"pruning {' + '.join(map(str, epochs))} epochs{shift}")
        elif isinstance(stage, QuantizeStage) and stage.finetune is not None:
            parts.append(f"centroid fine-tuning {stage.finetune.epochs} epochs")
    return "retraining: " + ", ".join(parts) if parts else "no retraining at this scale"


def _run_lenet5_pruned(ctx: SurveyContext) -> Measured:
    result = _lenet5_pruned(ctx)
    prune = [s for s in _survey_recipe(ctx, "lenet5").stages if isinstance(s, PruneStage)]
    notes = (
        f"Magnitude pruning to {100 * result.report.to_dict()['density']:.1f}% of the weights "
        f"({_retraining(Recipe(prune))}); fp32 values with relative indices, no Huffman."
    )
    return _measured(ctx, "lenet5_pruned", trained_row(ctx, "lenet5"), notes)


def _bits(result: CompressResult) -> str:
    """The code bits the quantize stage gave each layer, for a row's notes."""
    bits = next(s["bits"] for s in result.stages if s["stage"] == "quantize")
    if len(set(bits.values())) == 1:
        return f"{next(iter(bits.values()))}-bit"
    return ", ".join(f"{name} {b}-bit" for name, b in bits.items())


def _run_lenet5_pq(ctx: SurveyContext) -> Measured:
    result = _lenet5_quantized(ctx)["lenet5_pq"]
    notes = (
        f"lenet5_pruned, then weight sharing ({_bits(result)}) with centroid fine-tuning; "
        f"fixed-width codes and indices, no Huffman."
    )
    return _measured(ctx, "lenet5_pq", trained_row(ctx, "lenet5"), notes)


def _run_lenet5_dc(ctx: SurveyContext) -> Measured:
    _lenet5_quantized(ctx)
    retraining = _retraining(_survey_recipe(ctx, "lenet5"))
    notes = f"recipes/lenet5.yaml ({retraining}): the lenet5_pq model Huffman-coded (paper: 39x)."
    return _measured(ctx, "lenet5_dc", trained_row(ctx, "lenet5"), notes)


def _run_squeezenet_dc(ctx: SurveyContext) -> Measured:
    source = trained_row(ctx, "squeezenet1_0")
    recipe = _survey_recipe(ctx, "squeezenet1_0_table1")
    result = _compress(ctx, "squeezenet1_0_dc", source, copy.deepcopy(source.model), recipe)
    prune = next(s for s in recipe.stages if isinstance(s, PruneStage))
    ctx.add_figure(
        "squeezenet1_0_density",
        "SqueezeNet 1.0: weights kept per layer",
        density_bars(
            {r.name: r.density for r in result.report.layers},
            {"recipe target (SqueezeNet paper, Table 1)": _kept(source.model, prune)},
            "SqueezeNet 1.0 + Deep Compression (Table 1 densities)",
        ),
        "Fraction of nonzero weights in each layer of squeezenet1_0_dc.nsz; markers: the "
        "Table 1 targets (layers not listed keep all their weights).",
    )
    notes = (
        f"recipes/squeezenet1_0_table1.yaml: Table 1 densities, {_bits(result)} weight "
        f"sharing, Huffman ({_retraining(recipe)}); against AlexNet (paper: 510x)."
    )
    return _measured(ctx, "squeezenet1_0_dc", source, notes)


ENTRIES = [
    ("lenet5_pruned", "LeNet-5 pruned", "lenet5", _run_lenet5_pruned),
    ("lenet5_pq", "LeNet-5 pruned + quantized", "lenet5", _run_lenet5_pq),
    ("lenet5_dc", "LeNet-5 Deep Compression (P+Q+H)", "lenet5", _run_lenet5_dc),
    ("squeezenet1_0_dc", "SqueezeNet 1.0 + Deep Compression", "alexnet", _run_squeezenet_dc),
]

for _key, _label, _baseline, _run in ENTRIES:
    register_entry(
        SurveyEntry(
            key=_key,
            method=_label,
            approach="weights",
            targets_speed=True,  # on the sparse engine: smaller and faster
            baseline=_baseline,
            run=_run,
            multi_seed=_key.startswith("lenet5"),  # SqueezeNet's training costs minutes
        )
    )
