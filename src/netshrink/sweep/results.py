"""A sweep's results as data (rows with mean ± std over seeds), then tables and plots."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netshrink.atomic import atomic_write_bytes, atomic_write_text
from netshrink.plots import agg_figure, label_points, png_bytes
from netshrink.sweep.parallel import TrialOutcome
from netshrink.sweep.studies import MAX_DROP, Group, SweepConfig, get_study

__all__ = [
    "SweepRow",
    "meets_aims",
    "ratio_change_plot",
    "render_markdown",
    "render_text",
    "size_accuracy_plot",
    "summarize",
    "sweep_plot",
    "temperature_plot",
    "write_outputs",
]


@dataclass
class SweepRow:
    """One configuration over its seeds. Errors are test errors in % (100 − top-1)."""

    label: str
    role: str
    params: dict[str, Any]
    seeds_ok: int
    seeds: int
    param_count: int | None
    macs: int | None
    weight_bytes: int | None  # fp32 bytes of the parameters
    error_mean: float | None
    error_std: float | None  # sample standard deviation over seeds (None below two seeds)
    errors: list[float]  # per seed, in %
    test_n: int | None
    gap_closed: float | None = None  # distilled rows: (alone − distilled) / (alone − teacher)
    ratios: list[float] = field(default_factory=list)  # compressed rows: per seed
    changes: list[float] = field(default_factory=list)  # compressed rows: top-1 change, points
    dead: list[int] = field(default_factory=list)  # per seed: classes whose output died

    @classmethod
    def single(
        cls,
        label: str,
        role: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        param_count: int | None = None,
    ) -> SweepRow:
        """One finished run (no seeds): e.g. a survey run drawn with the sweep plots."""
        error = 100.0 * (1.0 - metrics["test_top1"])
        weight_bytes = None if param_count is None else 4 * param_count
        return cls(label, role, params, 1, 1, param_count, None, weight_bytes, error, None,
                   [error], int(metrics["test_n"]))  # fmt: skip


def _row(group: Group, outcomes: dict[str, TrialOutcome]) -> SweepRow:
    results = [outcomes[k].result for k in group.keys if outcomes[k].status in ("done", "cached")]
    errors = [100.0 * (1.0 - r["test_top1"]) for r in results]
    first = results[0] if results else {}
    return SweepRow(
        label=group.label,
        role=group.role,
        params=dict(group.params),
        seeds_ok=len(results),
        seeds=len(group.keys),
        param_count=first.get("params"),
        macs=first.get("macs"),
        weight_bytes=first.get("weight_bytes"),
        error_mean=statistics.fmean(errors) if errors else None,
        error_std=statistics.stdev(errors) if len(errors) > 1 else None,
        errors=errors,
        test_n=first.get("test_n"),
        ratios=[r["ratio"] for r in results if "ratio" in r],
        changes=[r["change_points"] for r in results if "change_points" in r],
        dead=[len(r["dead_classes"]) for r in results if "dead_classes" in r],
    )


def summarize(groups: list[Group], outcomes: dict[str, TrialOutcome]) -> list[SweepRow]:
    """Rows in the groups' order; distilled rows get the share of the gap they close."""
    rows = [_row(g, outcomes) for g in groups]
    teacher = next((r for r in rows if r.role == "teacher"), None)
    alone = {r.params["student"]: r for r in rows if r.role == "alone"}
    for row in rows:
        base = alone.get(row.params.get("student")) if row.role == "distilled" else None
        if (
            base is None
            or teacher is None
            or None in (row.error_mean, base.error_mean, teacher.error_mean)
        ):
            continue
        gap = base.error_mean - teacher.error_mean
        if gap > 0:
            row.gap_closed = (base.error_mean - row.error_mean) / gap
    return rows


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def _error(row: SweepRow) -> str:
    if row.error_mean is None:
        return "failed"
    if row.error_std is None:
        text = f"{row.error_mean:.2f} (1 seed)"
    else:
        text = f"{row.error_mean:.2f} ± {row.error_std:.2f}"
    return text if row.seeds_ok == row.seeds else f"{text} ({row.seeds_ok}/{row.seeds} seeds)"


def _cells(row: SweepRow) -> list[str]:
    errors = "-"
    if row.error_mean is not None and row.test_n:
        errors = f"{row.error_mean * row.test_n / 100:.1f} / {row.test_n}"
    return [
        row.label,
        "-" if row.param_count is None else f"{row.param_count:,}",
        _mb(row.weight_bytes),
        "-" if row.macs is None else f"{row.macs / 1e6:.2f}M",
        _error(row),
        errors,
        "" if row.gap_closed is None else f"{100 * row.gap_closed:.0f}%",
    ]


_HEADERS = ["Configuration", "Params", "Size fp32", "MACs", "Test error % (mean ± std)",
            "Errors", "Gap closed"]  # fmt: skip


def _spread(values: list[float], spec: str, unit: str = "") -> str:
    """``values`` as "mean ± sd" (``spec``: the mean's format, e.g. "+.2f"), "(1 seed)" for
    one, "failed" for none."""
    if not values:
        return "failed"
    mean = f"{statistics.fmean(values):{spec}}{unit}"
    if len(values) == 1:
        return f"{mean} (1 seed)"
    return f"{mean} ± {statistics.stdev(values):{spec.lstrip('+')}}"


def meets_aims(row: SweepRow) -> tuple[int, int] | None:
    """Compressed rows held to aims: (seeds meeting them all, seeds that finished). The
    aims: top-1 no more than MAX_DROP points below the baseline, and the ratio at least
    ``aim_ratio`` where the row has one."""
    if not row.params.get("aimed") or not row.ratios:
        return None
    aim = row.params.get("aim_ratio")
    ok = sum(
        (aim is None or r >= aim) and c >= -MAX_DROP - 1e-9
        for r, c in zip(row.ratios, row.changes, strict=True)
    )
    return ok, len(row.ratios)


def _aims_cell(row: SweepRow) -> str:
    if not row.params.get("aimed"):
        return "-"
    aim = row.params.get("aim_ratio")
    return ("" if aim is None else f">= {aim:g}x, ") + f">= {-MAX_DROP:+.1f}"


def _dc_cells(row: SweepRow) -> list[str]:
    aims = meets_aims(row)
    seeds = f"{row.seeds_ok}" if row.seeds_ok == row.seeds else f"{row.seeds_ok}/{row.seeds}"
    base = [100.0 * (1.0 - e / 100.0) - c for e, c in zip(row.errors, row.changes, strict=True)]
    return [
        row.label,
        seeds,
        "-" if not base else f"{statistics.fmean(base):.2f}",
        _spread(row.ratios, ".1f", "x"),
        f"{min(row.ratios):.1f}x" if row.ratios else "-",
        _spread(row.changes, "+.2f"),
        f"{min(row.changes):+.1f}" if row.changes else "-",
        _aims_cell(row),
        "-" if aims is None else f"{aims[0]}/{aims[1]}",
    ]


_DC_HEADERS = ["Configuration", "Seeds", "Baseline top-1 %", "Ratio (mean ± sd)",
               "Worst ratio", "Top-1 change, points (mean ± sd)", "Worst change", "Aims",
               "Seeds meeting aims"]  # fmt: skip


def _dead(row: SweepRow) -> str:
    if not row.dead:
        return "-"
    runs = sum(n > 0 for n in row.dead)
    return f"{', '.join(map(str, row.dead))} ({runs} of {len(row.dead)} runs lost classes)"


def _table(rows: list[SweepRow]) -> tuple[list[str], list[list[str]]]:
    if rows and all(r.role == "compressed" for r in rows):
        return _DC_HEADERS, [_dc_cells(r) for r in rows]
    if any(r.dead for r in rows):
        headers = _HEADERS[:-1] + ["Dead classes per seed"]  # no gap closed here
        return headers, [_cells(r)[:-1] + [_dead(r)] for r in rows]
    return _HEADERS, [_cells(r) for r in rows]


def render_text(rows: list[SweepRow]) -> str:
    headers, cells = _table(rows)
    table = [headers] + cells
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: list[SweepRow]) -> str:
    headers, cells = _table(rows)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines)


def size_accuracy_plot(rows: list[SweepRow], title: str) -> bytes:
    """Paper Fig. 3: model size (fp32 MB) against accuracy, one point per configuration."""
    fig = agg_figure(6.4, 4.4)
    ax = fig.add_subplot(1, 1, 1)
    xs, ys, labels = [], [], []
    for row in rows:
        if row.error_mean is None or row.weight_bytes is None:
            continue
        size, top1 = row.weight_bytes / 1e6, 100.0 - row.error_mean
        ax.errorbar(size, top1, yerr=row.error_std or 0.0, fmt="o", capsize=3, color="tab:blue")
        xs.append(size), ys.append(top1), labels.append(row.label)
    ax.set_xlabel("model size (MB of fp32 weights)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.margins(x=0.2, y=0.15)
    # Configurations of one size (a simple bypass adds no weights) share a point: placed
    # labels, merged where points coincide, instead of text printed over text.
    label_points(ax, xs, ys, labels, fontsize=7)
    return png_bytes(fig)


def temperature_plot(rows: list[SweepRow], title: str) -> bytes:
    """Test error against temperature per student, with the student alone and the teacher."""
    fig = agg_figure(6.4, 4.4)
    ax = fig.add_subplot(1, 1, 1)
    teacher = next((r for r in rows if r.role == "teacher" and r.error_mean is not None), None)
    series: dict[tuple[str, float], list[SweepRow]] = {}
    for row in rows:
        if row.role == "distilled" and row.error_mean is not None:
            series.setdefault((row.params["student"], row.params["alpha"]), []).append(row)
    colors = dict(zip(dict.fromkeys(s for s, _ in series), ["tab:blue", "tab:orange",
                  "tab:green", "tab:red", "tab:purple"] * 4, strict=False))  # fmt: skip
    for (student, alpha), points in series.items():
        points.sort(key=lambda r: r.params["temperature"])
        ax.errorbar(
            [r.params["temperature"] for r in points],
            [r.error_mean for r in points],
            yerr=[r.error_std or 0.0 for r in points],
            marker="o",
            capsize=3,
            color=colors[student],
            label=f"{student} distilled (alpha={alpha:g})",
        )
    for row in rows:
        if row.role == "alone" and row.error_mean is not None and row.params["student"] in colors:
            ax.axhline(row.error_mean, ls="--", color=colors[row.params["student"]],
                       label=f"{row.params['student']} alone")  # fmt: skip
    if teacher is not None:
        ax.axhline(teacher.error_mean, ls=":", color="black", label=teacher.label)
    ax.set_xscale("log")
    ax.set_xlabel("temperature T")
    ax.set_ylabel("test error (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return png_bytes(fig)


def ratio_change_plot(rows: list[SweepRow], title: str) -> bytes:
    """Every compressed baseline: its compression ratio against its top-1 change, one
    colour per configuration, with the accuracy aim and each ratio aim drawn."""
    fig = agg_figure(6.4, 5.2)
    ax = fig.add_subplot(1, 1, 1)
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for i, row in enumerate(rows):
        color = colors[i % len(colors)]
        ax.scatter(row.ratios, row.changes, color=color, label=row.label, alpha=0.8, s=24)
        aim = row.params.get("aim_ratio")
        if aim is not None:
            ax.axvline(aim, ls=":", color=color, lw=1)
    ax.axhline(-MAX_DROP, ls="--", color="black", lw=1, label=f"aim: top-1 change >= {-MAX_DROP}")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("compression ratio (dense fp32 bytes / file bytes)")
    ax.set_ylabel("top-1 change after compression (points)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2,
              frameon=False)  # below the axes: clear of every point  # fmt: skip
    return png_bytes(fig)


def sweep_plot(config: SweepConfig, rows: list[SweepRow]) -> bytes:
    title = get_study(config.study).title
    if config.study == "distill":
        return temperature_plot(rows, title)
    if config.study == "deep-compression":
        return ratio_change_plot(rows, title)
    return size_accuracy_plot(rows, title)


def write_outputs(
    config: SweepConfig, rows: list[SweepRow], outcomes: dict[str, TrialOutcome]
) -> dict[str, Path]:
    """``results.json``, ``table.md`` and ``figure.png`` in the sweep's folder."""
    out = Path(config.out)
    record = {
        "config": config.to_dict(),
        "rows": [asdict(r) for r in rows],
        "trials": {k: asdict(o) for k, o in outcomes.items()},
    }
    paths = {
        "results": out / "results.json",
        "table": out / "table.md",
        "figure": out / "figure.png",
    }
    title = get_study(config.study).title
    atomic_write_text(paths["results"], json.dumps(record, indent=2, allow_nan=False))
    atomic_write_text(paths["table"], f"# {title}\n\n{render_markdown(rows)}\n")
    atomic_write_bytes(paths["figure"], sweep_plot(config, rows))
    return paths
