"""Render survey results: terminal table, JSON, CSV, PNG plots and a self-contained HTML page."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

import yaml

from netshrink.atomic import atomic_write_bytes, atomic_write_text
from netshrink.plots import agg_figure, png_bytes
from netshrink.survey.survey import SurveyResult, SurveyRow

__all__ = ["render_table1", "render_rows", "write_report"]

COLUMNS = [
    ("method", "Method"),
    ("approach", "Approach"),
    ("speed", "Speed?"),
    ("params", "Params"),
    ("macs", "MACs"),
    ("size", "Size"),
    ("ratio", "Ratio"),
    ("top1", "Top-1 %"),
    ("lat", "ms b1 / b64"),
    ("theo", "Speed-up MACs"),
    ("meas", "Speed-up meas."),
]


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _bytes(n: int) -> str:
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _cells(row: SurveyRow) -> dict[str, str]:
    lat = " / ".join(f"{v:.2f}" for v in row.latency_ms.values())
    return {
        "method": row.method,
        "approach": row.approach,
        "speed": "yes" if row.targets_speed else "no",
        "params": _human(row.params),
        "macs": _human(row.macs),
        "size": _bytes(row.size_bytes),
        "ratio": f"{row.compression_ratio:.1f}x",
        "top1": f"{100 * row.top1:.2f}",
        "lat": lat,
        "theo": f"{row.speedup_theoretical:.2f}x",
        "meas": f"{row.speedup_measured:.2f}x",
    }


def _text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def render_rows(rows: list[SurveyRow]) -> str:
    """The survey's Table 2 as a terminal table."""
    cells = [_cells(r) for r in rows]
    return _text_table([h for _, h in COLUMNS], [[c[k] for k, _ in COLUMNS] for c in cells])


def _table1_cells(table1: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["Model", "Input", "Params", "MACs", "fp32 size", "CPU ms (b1)"]
    rows = [
        [
            t["model"],
            "x".join(map(str, t["input"])),
            f"{t['params']:,}",
            f"{t['macs']:,}",
            _bytes(t["fp32_bytes"]),
            f"{t['latency_ms']:.1f}",
        ]
        for t in table1
    ]
    return headers, rows


def render_table1(table1: list[dict]) -> str:
    return _text_table(*_table1_cells(table1))


MARKERS = "osD^v<>pP*Xh"


def _legend_scatter(
    ax, rows: list[SurveyRow], xs: list[float], ys: list[float], styles: list[int]
) -> None:
    # Labels as a legend, not annotations: points of similar models sit on top of each other.
    # ``styles`` index each row's marker and colour, so a method looks the same in every plot.
    for i, r, x, y in zip(styles, rows, xs, ys, strict=True):
        ax.scatter(
            x,
            y,
            s=40,
            marker=MARKERS[i % len(MARKERS)],
            color=f"C{i % 10}",
            label=r.method,
            alpha=0.85,
        )
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    ax.grid(alpha=0.3)


def _scatter(rows: list[SurveyRow], x: str, xlabel: str) -> bytes:
    fig = agg_figure(7.5, 4.2)
    ax = fig.add_subplot()
    xs = [r.size_bytes / 2**20 if x == "size" else r.macs / 1e6 for r in rows]
    _legend_scatter(ax, rows, xs, [100 * r.top1 for r in rows], list(range(len(rows))))
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test top-1 (%)")
    return png_bytes(fig)


def _speedup_plot(rows: list[SurveyRow]) -> bytes:
    fig = agg_figure(7.5, 4.2)
    ax = fig.add_subplot()
    styles = [i for i, r in enumerate(rows) if r.key != r.baseline]
    others = [rows[i] for i in styles]
    xs = [r.speedup_theoretical for r in others]
    ys = [r.speedup_measured for r in others]
    values = xs + ys + [1.0]
    lo, hi = min(values) / 1.5, max(values) * 1.5
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="measured = theoretical")
    _legend_scatter(ax, others, xs, ys, styles)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("theoretical speed-up (MAC ratio)")
    ax.set_ylabel("measured speed-up (batch 1 latency ratio)")
    return png_bytes(fig)


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(result: SurveyResult) -> dict[str, Path]:
    """Write results.json, results.csv, survey.yaml, the PNG plots, the entries' figures
    (``figures/*.png``) and report.html."""
    out = Path(result.config.out)
    paths = {}
    data = result.to_dict()
    paths["json"] = out / "results.json"
    atomic_write_text(paths["json"], json.dumps(data, indent=2))
    paths["config"] = out / "survey.yaml"
    atomic_write_text(paths["config"], yaml.safe_dump(result.config.to_dict(), sort_keys=False))

    buf = io.StringIO()
    batch_sizes = list(result.config.batch_sizes)
    fields = [
        "key",
        "method",
        "approach",
        "targets_speed",
        "baseline",
        "params",
        "macs",
        "size_bytes",
        "compression_ratio",
        "top1",
    ]
    fields += [f"latency_ms_b{b}" for b in batch_sizes]
    fields += ["speedup_theoretical", "speedup_measured", "notes"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for row in result.rows:
        d = {k: getattr(row, k) for k in fields if hasattr(row, k)}
        d.update({f"latency_ms_b{b}": row.latency_ms[b] for b in batch_sizes})
        writer.writerow(d)
    paths["csv"] = out / "results.csv"
    atomic_write_text(paths["csv"], buf.getvalue())

    plots = {
        "accuracy_vs_size": _scatter(result.rows, "size", "size (MiB, log scale)"),
        "accuracy_vs_macs": _scatter(result.rows, "macs", "MACs (millions, log scale)"),
        "speedup_theoretical_vs_measured": _speedup_plot(result.rows),
    }
    for name, png in plots.items():
        paths[name] = out / f"{name}.png"
        atomic_write_bytes(paths[name], png)
    for figure in result.figures:
        paths[figure.path] = out / figure.path
        atomic_write_bytes(paths[figure.path], figure.png)

    cells = [_cells(r) for r in result.rows]
    table2 = _html_table([h for _, h in COLUMNS], [[c[k] for k, _ in COLUMNS] for c in cells])
    table1 = _html_table(*_table1_cells(result.table1)) if result.table1 else ""
    images = "".join(
        f'<figure><img alt="{n}" src="data:image/png;base64,{base64.b64encode(p).decode()}">'
        f"<figcaption>{html.escape(n.replace('_', ' '))}</figcaption></figure>"
        for n, p in plots.items()
    )
    figures = "".join(
        f'<figure><img alt="{html.escape(f.key)}" '
        f'src="data:image/png;base64,{base64.b64encode(f.png).decode()}">'
        f"<figcaption><b>{html.escape(f.title)}</b>. {html.escape(f.caption)}</figcaption></figure>"
        for f in result.figures
    )
    if figures:
        figures = f"<h2>Figures</h2>{figures}"
    cfg = html.escape(yaml.safe_dump(result.config.to_dict(), sort_keys=False))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>netshrink survey</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 7px;
text-align:right}}td:first-child,th:first-child{{text-align:left}}figure{{display:inline-block;
margin:1em}}img,figcaption{{max-width:760px}}pre{{background:#f5f5f5;padding:1em}}</style></head><body>
<h1>netshrink survey</h1>
<p>Data: <code>{html.escape(result.config.data)}</code>. Every number below was measured in
this run ({result.seconds:.0f} s): accuracy on the held-out test split, latency as the median
of repeats after warm-up, measured side by side in one process. Speed-ups and compression
ratios are against each row's baseline.</p>
<h2>Table 2: methods compared</h2>{table2}
<h2>Plots</h2>{images}
{figures}
<h2>Table 1: classic models at ImageNet shape</h2>{table1 or "<p>(skipped)</p>"}
<h2>Configuration</h2><pre>{cfg}</pre>
</body></html>
"""
    paths["html"] = out / "report.html"
    atomic_write_text(paths["html"], page)
    return paths
