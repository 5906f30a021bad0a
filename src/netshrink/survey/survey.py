"""The survey runner: run every registered entry, measure side by side, write the report."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from netshrink.atomic import ensure_dir
from netshrink.errors import NetshrinkError
from netshrink.models import create, get_spec
from netshrink.profile import measure_latency, measure_side_by_side, profile
from netshrink.survey.context import SurveyConfig, SurveyContext
from netshrink.survey.registry import Figure, Measured, SurveyEntry, list_entries

__all__ = ["SurveyRow", "SurveyResult", "TABLE1_MODELS", "run_survey", "select_entries"]

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
    top1: float  # test top-1, fraction
    latency_ms: dict[int, float]  # batch size -> median ms
    speedup_theoretical: float  # baseline MACs / MACs
    speedup_measured: float  # baseline latency / latency, batch 1
    notes: str = ""


@dataclass
class SurveyResult:
    config: SurveyConfig
    rows: list[SurveyRow]
    table1: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    figures: list[Figure] = field(default_factory=list)  # contributed by entries

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "rows": [asdict(r) for r in self.rows],
            "table1": self.table1,
            "figures": [f.to_dict() for f in self.figures],
            "seconds": self.seconds,
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
    return [e for e in entries.values() if e.key in wanted]


def _table1(repeats: int, progress: bool) -> list[dict[str, Any]]:
    rows = []
    for name, args in TABLE1_MODELS:
        spec = get_spec(name)
        model: nn.Module = create(name, **args).eval()
        prof = profile(model, spec.input_size, name=name)
        latency = measure_latency(model, spec.input_size, batch_size=1, repeats=repeats, warmup=1)
        if progress:
            print(f"  {name}: {latency.median_ms:.1f} ms at batch 1", flush=True)
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


def run_survey(config: SurveyConfig, *, progress: bool = True) -> SurveyResult:
    """Run the selected entries on ``config.data`` and return the measured rows."""
    started = time.perf_counter()
    ensure_dir(config.out)
    entries = select_entries(config)
    ctx = SurveyContext(config, progress=progress)
    measured: dict[str, Measured] = {}
    for i, entry in enumerate(entries, 1):
        print(f"[{i}/{len(entries)}] {entry.method}", flush=True)
        entry_started = time.perf_counter()
        measured[entry.key] = entry.run(ctx)
        print(f"  ({time.perf_counter() - entry_started:.1f} s)", flush=True)

    print("measuring latency side by side ...", flush=True)
    timed = {k: (m.model, m.input_size) for k, m in measured.items()}
    latency: dict[int, dict[str, float]] = {}
    for b in config.batch_sizes:
        stats = measure_side_by_side(timed, batch_size=b, repeats=config.repeats, warmup=2)
        latency[b] = {k: s.median_ms for k, s in stats.items()}
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
                top1=m.metrics["test_top1"],
                latency_ms={b: latency[b][entry.key] for b in config.batch_sizes},
                speedup_theoretical=base_prof.macs / prof.macs,
                speedup_measured=latency[first_batch][entry.baseline]
                / latency[first_batch][entry.key],
                notes=m.notes,
            )
        )
    table1 = []
    if config.table1:
        print("Table 1: classic models at ImageNet shape ...", flush=True)
        table1 = _table1(max(2, config.repeats // 5), progress)
    return SurveyResult(config, rows, table1, time.perf_counter() - started, ctx.figures)
