"""Profile a model: parameters, MACs, memory and latency, per layer and in total.

Counts follow papers.md "Counting convention" (one multiply-accumulate = 1; only Conv and
Linear layers have MACs). A profile is plain data (``ModelProfile``), rendered separately by
``render_table``, ``render_comparison``, ``to_markdown`` and ``ModelProfile.to_dict``.

Latency on multi-core CPUs: set ``OMP_WAIT_POLICY=ACTIVE`` in the environment before
``import torch`` (see ``netshrink.profile.latency``), or multi-threaded timings can include
multi-millisecond OpenMP wake-up stalls.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from netshrink.profile.counting import FP32_BYTES, count_layers, count_macs, count_params
from netshrink.profile.latency import (
    measure_latency,
    measure_latency_interleaved,
    measure_layer_latency,
    measure_side_by_side,
)
from netshrink.profile.records import LatencyStats, LayerProfile, ModelProfile
from netshrink.profile.render import render_comparison, render_table, to_markdown

__all__ = [
    "LayerProfile",
    "LatencyStats",
    "ModelProfile",
    "profile",
    "count_macs",
    "count_params",
    "measure_latency",
    "measure_latency_interleaved",
    "measure_side_by_side",
    "speedup",
    "render_table",
    "render_comparison",
    "to_markdown",
]


def profile(
    model: nn.Module,
    input_size: tuple[int, int, int],
    *,
    name: str = "",
    latency: bool = False,
    batch_sizes: Sequence[int] = (1,),
    threads: int | None = None,
    repeats: int = 30,
    warmup: int = 5,
    per_layer_latency: bool = False,
) -> ModelProfile:
    """Count ``model`` at one sample of shape ``input_size`` (C, H, W); optionally time it.

    ``latency=True`` measures the whole model once per entry of ``batch_sizes``;
    ``per_layer_latency=True`` times every row at ``batch_sizes[0]`` (times include hook
    overhead). The model is not modified: hooks are removed, training flags restored.
    """
    rows = count_layers(model, tuple(input_size))
    layers = [row for _, row in rows]
    params = count_params(model)
    timings: dict[int, LatencyStats] = {}
    if latency:
        for b in batch_sizes:
            timings[b] = measure_latency(
                model, input_size, batch_size=b, threads=threads, repeats=repeats, warmup=warmup
            )
    if per_layer_latency:
        called = {row.name: module for module, row in rows if row.output_shape}
        medians = measure_layer_latency(
            model,
            called,
            input_size,
            batch_size=batch_sizes[0],
            threads=threads,
            repeats=repeats,
            warmup=warmup,
        )
        for row in layers:
            row.latency_ms = medians.get(row.name)
    c, h, w = input_size
    return ModelProfile(
        model=name or type(model).__name__,
        input=(c, h, w),
        layers=layers,
        params=params,
        macs=sum(row.macs for row in layers),
        weight_bytes=params * FP32_BYTES,
        activation_bytes=sum(row.activation_bytes for row in layers),
        latency=timings,
    )


def speedup(
    baseline: ModelProfile, other: ModelProfile, batch_size: int = 1
) -> dict[str, float | None]:
    """How much faster ``other`` is than ``baseline``.

    ``theoretical`` = baseline MACs / other MACs; ``measured`` = baseline median latency /
    other median latency at ``batch_size`` (None unless both profiles measured it).
    """
    if other.macs == 0:
        raise ValueError(f"profile {other.model!r} has no MACs; theoretical speed-up undefined")
    base, fast = baseline.latency.get(batch_size), other.latency.get(batch_size)
    measured = base.median_ms / fast.median_ms if base and fast else None
    return {"theoretical": baseline.macs / other.macs, "measured": measured}
