"""The survey runner: run every registered entry, measure side by side, write the report."""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from netshrink.atomic import ensure_dir
from netshrink.errors import NetshrinkError
from netshrink.models import create, get_spec
from netshrink.profile import LatencyStats, measure_latency, measure_side_by_side, profile
from netshrink.survey.context import SurveyConfig, SurveyContext
from netshrink.survey.registry import Figure, Measured, SurveyEntry, list_entries
from netshrink.version import __version__

__all__ = [
    "SurveyRow",
    "SurveyResult",
    "TABLE1_MODELS",
    "environment",
    "run_survey",
    "select_entries",
]

# Progress bars of the latency steps: steps are few and uneven, so no rate.
BAR = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"

# The survey's Table 1: classic models at ImageNet shape (no data needed).
TABLE1_MODELS: list[tuple[str, dict[str, Any]]] = [
    ("alexnet", {}),
    ("vgg16", {}),
    ("squeezenet1_0", {}),
    ("squeezenet1_1", {}),
    ("mobilenet_v1", {}),
    ("shufflenet_v1", {}),
]


@dataclass
class SurveyRow:
    key: str
    method: str
    approach: str
    targets_speed: bool
    baseline: str
    params: int
    macs: int
    size_bytes: int
    compression_ratio: float  # baseline size / size
    top1: float  # test top-1, fraction: the mean over top1_seeds
    latency_ms: dict[int, float]  # batch size -> median ms
    speedup_theoretical: float  # baseline MACs / MACs
    speedup_measured: float  # baseline latency / latency, batch 1
    notes: str = ""
    # The spread of the latency repeats: batch size -> 10th / 90th percentile ms.
    latency_p10_ms: dict[int, float] = field(default_factory=dict)
    latency_p90_ms: dict[int, float] = field(default_factory=dict)
    test_images: int | None = None  # size of the test split top1 was measured on, if known
    # The same row's network exported to ONNX and run by onnxruntime, timed interleaved with
    # the PyTorch runs: batch size -> median ms (empty: not exported, see onnx_note).
    onnx_latency_ms: dict[int, float] = field(default_factory=dict)
    onnx_note: str = ""
    # Test top-1 per seed (the survey's seed first); one entry for a single-seed row. Every
    # other column is measured on the first seed's network.
    top1_seeds: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    @property
    def top1_std(self) -> float | None:
        """Sample standard deviation over the seeds (None for a single-seed row)."""
        return statistics.stdev(self.top1_seeds) if len(self.top1_seeds) > 1 else None


@dataclass
class SurveyResult:
    config: SurveyConfig
    rows: list[SurveyRow]
    table1: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    figures: list[Figure] = field(default_factory=list)  # contributed by entries
    environment: dict[str, Any] = field(default_factory=dict)  # versions, CPU (environment())

    @property
    def test_images(self) -> list[int]:
        """The distinct test-split sizes of the rows (one, unless entries differ)."""
        return sorted({r.test_images for r in self.rows if r.test_images is not None})

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "environment": self.environment,
            "test_images": self.test_images,
            "latency_repeats": self.config.repeats,
            "rows": [{**asdict(r), "top1_std": r.top1_std} for r in self.rows],
            "table1": self.table1,
            "figures": [f.to_dict() for f in self.figures],
            "seconds": self.seconds,
        }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """What the survey's numbers were measured with: versions, CPU, threads."""
    return {
        "netshrink": __version__,
        "torch": torch.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }


def select_entries(config: SurveyConfig) -> list[SurveyEntry]:
    """The entries a run covers: ``--only`` (plus the baselines they need), or all."""
    entries = {e.key: e for e in list_entries()}
    if config.only:
        unknown = [k for k in config.only if k not in entries]
        if unknown:
            raise NetshrinkError(
                f"unknown survey entry {unknown[0]!r} (known: {', '.join(entries)})"
            )
        wanted = set(config.only)
        while missing := {entries[k].baseline for k in wanted} - wanted:
            wanted |= missing  # baselines of baselines too (the bypass rows' SqueezeNet)
    else:
        wanted = {k for k, e in entries.items() if e.quick or not config.quick}
    chosen = [e for e in entries.values() if e.key in wanted]
    if (config.seeds or 1) > 1 and not any(e.multi_seed for e in chosen):
        multi = ", ".join(e.key for e in entries.values() if e.multi_seed)
        raise NetshrinkError(
            f"--seeds {config.seeds}: none of the selected rows is trained with several seeds "
            f"(those are: {multi})"
        )
    return chosen


def _table1(repeats: int, progress: bool) -> list[dict[str, Any]]:
    rows = []
    bar = tqdm(TABLE1_MODELS, "Table 1 latency", bar_format=BAR, disable=not progress)
    for name, args in bar:
        bar.set_postfix_str(name)
        spec = get_spec(name)
        model: nn.Module = create(name, **args).eval()
        prof = profile(model, spec.input_size, name=name)
        latency = measure_latency(model, spec.input_size, batch_size=1, repeats=repeats, warmup=1)
        rows.append(
            {
                "model": name,
                "input": list(spec.input_size),
                "params": prof.params,
                "macs": prof.macs,
                "fp32_bytes": prof.params * 4,
                "latency_ms": latency.median_ms,
            }
        )
        del model
    return rows


ONNX = "@onnxruntime"  # suffix of a row's onnxruntime twin among the timed models


def _onnx_sessions(
    measured: dict[str, Measured], progress: bool
) -> tuple[dict[str, tuple[nn.Module, tuple[int, int, int]]], dict[str, str]]:
    """Each row's float network (``profile_model or model``) exported to ONNX (BatchNorm
    folded, checked against PyTorch) as an onnxruntime module; and why a row has none."""
    from netshrink.deploy import onnx_bytes, session_module

    sessions, why = {}, {}
    bar = tqdm(measured.items(), "ONNX export", bar_format=BAR, disable=not progress)
    for key, m in bar:
        bar.set_postfix_str(key)
        if not m.onnx:
            why[key] = "not exported: the float network is not what this row runs"
            continue
        try:
            data, _ = onnx_bytes(m.profile_model or m.model, m.input_size)
        except NetshrinkError as exc:
            why[key] = f"not exported: {exc}"
            continue
        sessions[key + ONNX] = (session_module(data), m.input_size)
    return sessions, why


def _side_by_side(
    measured: dict[str, Measured],
    batch_sizes: tuple[int, ...],
    repeats: int,
    progress: bool,
    extra: dict[str, tuple[nn.Module, tuple[int, int, int]]] | None = None,
) -> dict[int, dict[str, LatencyStats]]:
    """Latency of every row (and of the ``extra`` models), batch size by batch size (one
    progress step each): all models of one input size are timed interleaved, so machine
    drifts hit a row, its baseline and its onnxruntime twin alike."""
    timed = {k: (m.model, m.input_size) for k, m in measured.items()}
    timed.update(extra or {})
    latency = {}
    bar = tqdm(batch_sizes, "latency side by side", bar_format=BAR, disable=not progress)
    for b in bar:
        bar.set_postfix_str(f"{len(timed)} models at batch {b}")
        latency[b] = measure_side_by_side(timed, batch_size=b, repeats=repeats, warmup=2)
    return latency


def run_survey(config: SurveyConfig, *, progress: bool = True) -> SurveyResult:
    """Run the selected entries on ``config.data`` and return the measured rows.

    ``progress=False`` prints nothing of the runner's own (entries may still print).
    """
    started = time.perf_counter()
    entries = select_entries(config)
    ensure_dir(config.out)
    ctx = SurveyContext(config, progress=progress)
    measured: dict[str, Measured] = {}
    for i, entry in enumerate(entries, 1):
        if progress:
            print(f"[{i}/{len(entries)}] {entry.method}", flush=True)
        entry_started = time.perf_counter()
        measured[entry.key] = entry.run(ctx)
        if progress:
            print(f"  ({time.perf_counter() - entry_started:.1f} s)", flush=True)
    top1 = _further_seeds(ctx, entries, measured, progress)

    sessions, no_onnx = _onnx_sessions(measured, progress) if config.onnx else ({}, {})
    stats = _side_by_side(measured, config.batch_sizes, config.repeats, progress, sessions)
    latency = {b: {k: s.median_ms for k, s in by_key.items()} for b, by_key in stats.items()}
    profiles = {
        k: profile(m.profile_model or m.model, m.input_size, name=k) for k, m in measured.items()
    }

    rows = []
    first_batch = config.batch_sizes[0]
    for entry in entries:
        m, prof = measured[entry.key], profiles[entry.key]
        base, base_prof = measured[entry.baseline], profiles[entry.baseline]
        size = m.size_bytes if m.size_bytes is not None else prof.params * 4
        base_size = base.size_bytes if base.size_bytes is not None else base_prof.params * 4
        rows.append(
            SurveyRow(
                key=entry.key,
                method=entry.method,
                approach=entry.approach,
                targets_speed=entry.targets_speed,
                baseline=entry.baseline,
                params=prof.params,
                macs=prof.macs,
                size_bytes=size,
                compression_ratio=base_size / size,
                top1=statistics.fmean(top1[entry.key]),
                latency_ms={b: latency[b][entry.key] for b in config.batch_sizes},
                speedup_theoretical=base_prof.macs / prof.macs,
                speedup_measured=latency[first_batch][entry.baseline]
                / latency[first_batch][entry.key],
                notes=m.notes,
                latency_p10_ms={b: stats[b][entry.key].p10_ms for b in config.batch_sizes},
                latency_p90_ms={b: stats[b][entry.key].p90_ms for b in config.batch_sizes},
                test_images=_test_images(m.metrics),
                onnx_latency_ms={
                    b: latency[b][entry.key + ONNX]
                    for b in config.batch_sizes
                    if entry.key + ONNX in latency[b]
                },
                onnx_note=no_onnx.get(entry.key, "" if config.onnx else "skipped (--no-onnx)"),
                top1_seeds=top1[entry.key],
                seeds=config.seed_list[: len(top1[entry.key])],
            )
        )
    table1 = _table1(max(2, config.repeats // 5), progress) if config.table1 else []
    return SurveyResult(
        config, rows, table1, time.perf_counter() - started, ctx.figures, environment()
    )


def _further_seeds(
    ctx: SurveyContext, entries: list[SurveyEntry], measured: dict[str, Measured], progress: bool
) -> dict[str, list[float]]:
    """Test top-1 per seed of every entry: the multi-seed entries run again, in order, in
    one context per further seed (its own runs folder and memo); the others keep one."""
    top1 = {key: [m.metrics["test_top1"]] for key, m in measured.items()}
    multi = [e for e in entries if e.multi_seed]
    further = ctx.config.seed_list[1:]
    share = tuple(k for e in entries for k in e.shared_runs)
    for seed in further if multi else []:
        seed_ctx = ctx.for_seed(seed, share=share)
        for i, entry in enumerate(multi, 1):
            if progress:
                print(f"[seed {seed}: {i}/{len(multi)}] {entry.method}", flush=True)
            top1[entry.key].append(entry.run(seed_ctx).metrics["test_top1"])
    return top1


def _test_images(metrics: dict[str, float]) -> int | None:
    n = metrics.get("test_n")
    return None if n is None else int(n)
