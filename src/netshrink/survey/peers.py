"""Survey rows of the peers: what a user would pick instead of netshrink (``netshrink.peers``).

On the same trained networks and data split as the Deep Compression rows: LeNet-5 through
``torch.nn.utils.prune`` at the sparsity of ``lenet5_dc`` (retrained with its masks for as
many epochs as the recipe's prune stages retrain), PyTorch's int8 static (FX) and dynamic
quantization, fp16 storage and zstd of the fp32 checkpoint; SqueezeNet 1.0 through int8
static quantization, beside ``squeezenet1_0_dc``. Sizes are the files those tools write
(``torch.save`` state dicts); parameters and MACs are counted on the float network (the
int8 modules hide their layers). :func:`peer_summary` states, from the measured rows, where
netshrink's Deep Compression file wins and where it loses.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from netshrink.peers import (
    PeerModel,
    calibration_batches,
    fp16_storage,
    int8_dynamic,
    int8_static,
    torch_prune,
    weight_sparsity,
    zstd_checkpoint,
)
from netshrink.runs.recipe import PruneStage
from netshrink.survey.context import SurveyContext
from netshrink.survey.deep_compression import (
    _lenet5_quantized,
    _survey_recipe,
    metrics_on_test,
    trained_row,
)
from netshrink.survey.registry import Measured, SurveyEntry, register_entry
from netshrink.train import train

__all__ = ["PEER_ROWS", "peer_summary"]

# peer row -> the Deep Compression row of the same trained network.
PEER_ROWS: dict[str, str] = {}


def _measured(ctx: SurveyContext, source_key: str, peer: PeerModel) -> Measured:
    source = trained_row(ctx, source_key)
    metrics = metrics_on_test(peer.model, source.data)
    print(f"  {peer.key}: {peer.size_bytes:,} bytes, test top-1 {metrics['test_top1']:.4f}",
          flush=True)  # fmt: skip
    int8 = peer.key.startswith("int8")  # its modules hide the layers from the counters
    return Measured(peer.model, source.input_size, metrics, peer.size_bytes, peer.notes,
                    profile_model=source.model if int8 else None, onnx=not int8)  # fmt: skip


def _calibration(ctx: SurveyContext, source_key: str) -> list[torch.Tensor]:
    return calibration_batches(trained_row(ctx, source_key).data.train)


def _lenet5_torch_prune(ctx: SurveyContext) -> Measured:
    source = trained_row(ctx, "lenet5")
    dc = _lenet5_quantized(ctx)["lenet5_dc"].model
    prune = [s for s in _survey_recipe(ctx, "lenet5").stages if isinstance(s, PruneStage)]
    retrains = [s for s in prune if s.retrain is not None]
    retrain = None
    if retrains:
        epochs = sum(s.retraining(r).epochs for s in retrains for r in range(1, s.rounds + 1))
        config = replace(retrains[0].retrain, epochs=epochs)

        def retrain(model: nn.Module) -> None:
            train(model, source.data, config, progress=ctx.progress, desc="torch prune")

    peer = torch_prune(source.model, weight_sparsity(dc), retrain)
    peer.notes += " Same sparsity as lenet5_dc, and as many retraining epochs as its pruning."
    return _measured(ctx, "lenet5", peer)


def _lenet5_int8_static(ctx: SurveyContext) -> Measured:
    source = trained_row(ctx, "lenet5")
    return _measured(ctx, "lenet5", int8_static(source.model, _calibration(ctx, "lenet5")))


def _squeezenet_int8_static(ctx: SurveyContext) -> Measured:
    source = trained_row(ctx, "squeezenet1_0")
    peer = int8_static(source.model, _calibration(ctx, "squeezenet1_0"))
    return _measured(ctx, "squeezenet1_0", peer)


def _lenet5_int8_dynamic(ctx: SurveyContext) -> Measured:
    return _measured(ctx, "lenet5", int8_dynamic(trained_row(ctx, "lenet5").model))


def _lenet5_fp16(ctx: SurveyContext) -> Measured:
    return _measured(ctx, "lenet5", fp16_storage(trained_row(ctx, "lenet5").model))


def _lenet5_zstd(ctx: SurveyContext) -> Measured:
    return _measured(ctx, "lenet5", zstd_checkpoint(trained_row(ctx, "lenet5").model))


# key, label, baseline, Deep Compression row beside it, targets speed, run
ENTRIES = [
    ("lenet5_torch_prune", "LeNet-5 torch.nn.utils.prune", "lenet5", "lenet5_dc", False,
     _lenet5_torch_prune),
    ("lenet5_int8_static", "LeNet-5 PyTorch int8 static (FX)", "lenet5", "lenet5_dc", True,
     _lenet5_int8_static),
    ("lenet5_int8_dynamic", "LeNet-5 PyTorch int8 dynamic", "lenet5", "lenet5_dc", True,
     _lenet5_int8_dynamic),
    ("lenet5_fp16", "LeNet-5 fp16 storage", "lenet5", "lenet5_dc", False, _lenet5_fp16),
    ("lenet5_zstd", "LeNet-5 zstd of the fp32 checkpoint", "lenet5", "lenet5_dc", False,
     _lenet5_zstd),
    ("squeezenet1_0_int8_static", "SqueezeNet 1.0 PyTorch int8 static (FX)", "alexnet",
     "squeezenet1_0_dc", True, _squeezenet_int8_static),
]  # fmt: skip

for _key, _label, _baseline, _dc, _speed, _run in ENTRIES:
    PEER_ROWS[_key] = _dc
    register_entry(
        SurveyEntry(
            key=_key,
            method=_label,
            approach="weights",
            targets_speed=_speed,
            baseline=_baseline,
            run=_run,
        )
    )


def peer_summary(rows: list) -> list[str]:
    """One sentence per peer row whose Deep Compression row ran too: file size, accuracy
    and batch-1 latency of netshrink's file against the peer's, from the measured rows.
    Accuracies are the first seed's: both rows start from that seed's trained network (a
    multi-seed row's mean would set other seeds' networks against this one's)."""
    by_key = {r.key: r for r in rows}
    lines = []
    for key, dc_key in PEER_ROWS.items():
        if key not in by_key or dc_key not in by_key:
            continue
        peer, dc = by_key[key], by_key[dc_key]
        b = min(dc.latency_ms)
        size = peer.size_bytes / dc.size_bytes
        accuracy = 100 * (_first_seed(dc) - _first_seed(peer))
        speed = peer.latency_ms[b] / dc.latency_ms[b]
        smaller = f"{size:.1f}x smaller" if size >= 1 else f"{1 / size:.1f}x larger"
        accurate = (
            f"{accuracy:.1f} points more accurate"
            if accuracy > 0
            else f"{-accuracy:.1f} points less accurate"
            if accuracy < 0
            else "as accurate"
        )
        faster = f"{speed:.2f}x faster" if speed >= 1 else f"{1 / speed:.2f}x slower"
        verdict = _verdict(size >= 1, accuracy >= 0, speed >= 1)
        lines.append(
            f"{dc.method} against {peer.method}: {smaller}, {accurate}, {faster} at batch "
            f"{b} — {verdict}."
        )
    return lines


def _first_seed(row: Any) -> float:
    return row.top1_seeds[0] if getattr(row, "top1_seeds", None) else row.top1


def _verdict(smaller: bool, accurate: bool, faster: bool) -> str:
    checks = (("size", smaller), ("accuracy", accurate), ("speed", faster))
    wins = [what for what, ok in checks if ok]
    losses = [what for what, ok in checks if not ok]
    if not losses:
        return "netshrink wins on all three"
    if not wins:
        return "netshrink loses on all three"
    return f"netshrink wins on {' and '.join(wins)}, loses on {' and '.join(losses)}"
