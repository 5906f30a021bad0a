"""Render survey results: terminal table, JSON, CSV, PNG plots and a self-contained HTML page."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from netshrink.atomic import atomic_write_bytes, atomic_write_text
from netshrink.plots import agg_figure, label_points, png_bytes
from netshrink.survey.context import SurveyConfig
from netshrink.survey.peers import peer_summary
from netshrink.survey.survey import SurveyResult, SurveyRow

__all__ = [
    "peer_summary",
    "quick_notice",
    "render_rows",
    "render_table1",
    "runtime_summary",
    "write_report",
]

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
    ("ort", "ORT ms b1 / b64"),
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
    ort = " / ".join(f"{v:.2f}" for v in row.onnx_latency_ms.values()) or "-"
    return {
        "method": row.method,
        "approach": row.approach,
        "speed": "yes" if row.targets_speed else "no",
        "params": _human(row.params),
        "macs": _human(row.macs),
        "size": _bytes(row.size_bytes),
        "ratio": f"{row.compression_ratio:.1f}x",
        "top1": _top1(row),
        "lat": lat,
        "ort": ort,
        "theo": f"{row.speedup_theoretical:.2f}x",
        "meas": f"{row.speedup_measured:.2f}x",
    }


def _top1(row: SurveyRow) -> str:
    """Mean ± sample sd over the row's seeds, or the one seed's value, marked."""
    if row.top1_std is None:
        return f"{100 * row.top1:.2f} (1 seed)"
    return f"{100 * row.top1:.2f} ± {100 * row.top1_std:.2f} ({len(row.top1_seeds)} seeds)"


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


def quick_notice(result: SurveyResult) -> str:
    """What a ``--quick`` run's numbers are (a smoke test); empty for a full run."""
    config = result.config
    if not config.quick:
        return ""
    full = SurveyConfig(data=config.data)
    limit = config.image_limit
    images = f"at most {limit} images" if limit else "all images"
    tested = "/".join(map(str, result.test_images)) or "an unknown number of"
    epochs = config.train_epochs
    return (
        f"Quick run (--quick): a smoke test, not results. Each network trained for {epochs} "
        f"epoch{'s' if epochs != 1 else ''} on {images} and was tested on {tested} images; "
        f"latency is the median of {config.repeats} repeats. Run without --quick for the "
        f"survey's numbers ({full.train_epochs} epochs, all images, {full.repeats} repeats)."
    )


def runtime_summary(rows: list[SurveyRow]) -> list[str]:
    """Per batch size: on how many exported rows onnxruntime beats PyTorch (the row's own
    runtime: the engine for the compressed rows), and the median ratio."""
    lines = []
    batch_sizes = sorted({b for r in rows for b in r.onnx_latency_ms})
    for b in batch_sizes:
        ratios = sorted(
            r.latency_ms[b] / r.onnx_latency_ms[b] for r in rows if b in r.onnx_latency_ms
        )
        if not ratios:
            continue
        faster = sum(x > 1 for x in ratios)
        median = ratios[len(ratios) // 2] if len(ratios) % 2 else (
            ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2  # fmt: skip
        lines.append(
            f"Batch {b}: onnxruntime is faster than the row's own runtime on {faster} of "
            f"{len(ratios)} exported rows (median: the row's latency is {median:.2f}x "
            "onnxruntime's)."
        )
    return lines


# -- plots -------------------------------------------------------------------------------

# approach -> (marker, colour): one look per approach in every plot.
APPROACH_STYLE = {"architecture": ("o", "C0"), "weights": ("s", "C1")}


@dataclass(frozen=True)
class Plot:
    name: str  # file stem and the figure's id in report.html
    png: bytes
    keys: list[str]  # rows drawn, in the order labelled
    caption: str


def _pareto_front(xs: list[float], ys: list[float]) -> list[int]:
    """Indices of the points no other point beats on both (smaller x, larger y), by x."""
    order = sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i]))
    front, best = [], float("-inf")
    for i in order:
        if ys[i] > best:
            front.append(i)
            best = ys[i]
    return front


def _draw_rows(ax, rows: list[SurveyRow], xs: list[float], ys: list[float]) -> None:
    for approach, (marker, color) in APPROACH_STYLE.items():
        idx = [i for i, r in enumerate(rows) if r.approach == approach]
        if idx:
            ax.scatter([xs[i] for i in idx], [ys[i] for i in idx], s=30, marker=marker,
                       color=color, alpha=0.85, zorder=3, label=f"{approach} row")  # fmt: skip
    others = [i for i, r in enumerate(rows) if r.approach not in APPROACH_STYLE]
    if others:
        ax.scatter([xs[i] for i in others], [ys[i] for i in others], s=30, marker="^",
                   color="C2", zorder=3, label="other row")  # fmt: skip


def _labelled(ax, rows: list[SurveyRow], xs, ys, bold=()) -> list[str]:
    """Label every point with its method; the keys in the order of the labels drawn."""
    label_points(ax, xs, ys, [r.method for r in rows], fontsize=6.5, bold=bold)
    return [r.key for r in rows]


def _accuracy_plot(rows: list[SurveyRow], name: str, xs: list[float], xlabel: str) -> Plot:
    fig = agg_figure(10.5, 6.5)
    ax = fig.add_subplot()
    ys = [100 * r.top1 for r in rows]
    _draw_rows(ax, rows, xs, ys)
    spread = [i for i, r in enumerate(rows) if r.top1_std is not None]
    if spread:
        ax.errorbar([xs[i] for i in spread], [ys[i] for i in spread],
                    yerr=[100 * rows[i].top1_std for i in spread], fmt="none", ecolor="0.35",
                    elinewidth=0.9, capsize=2.5, zorder=2.5, label="± sd over seeds")  # fmt: skip
    baselines = [i for i, r in enumerate(rows) if r.key == r.baseline]
    ax.scatter([xs[i] for i in baselines], [ys[i] for i in baselines], s=90, facecolors="none",
               edgecolors="black", linewidths=0.9, zorder=4, label="baseline")  # fmt: skip
    front = _pareto_front(xs, ys)
    ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", color="C2", lw=1.2,
            zorder=2, label="Pareto front (labels in bold)")  # fmt: skip
    ax.set_xscale("log")
    ax.margins(x=0.15, y=0.1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4, frameon=False, fontsize=8)
    keys = _labelled(ax, rows, xs, ys, bold=front)
    what = "size" if name.endswith("size") else "MACs"
    caption = (
        f"Test top-1 accuracy of every row against its {xlabel.split(' (')[0]} (log scale). "
        f"The green staircase is the Pareto front: no row has fewer {what} and a higher "
        "accuracy than a point on it. Circled points are baselines. Rows trained with "
        "several seeds show their mean with ± one sample standard deviation."
    )
    return Plot(name, png_bytes(fig), keys, caption)


def _speedup_plot(rows: list[SurveyRow]) -> Plot:
    fig = agg_figure(10.5, 6.5)
    ax = fig.add_subplot()
    others = [r for r in rows if r.key != r.baseline]
    xs = [r.speedup_theoretical for r in others]
    ys = [r.speedup_measured for r in others]
    values = xs + ys + [1.0]
    lo, hi = min(values) / 1.5, max(values) * 1.5
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="measured = theoretical")
    _draw_rows(ax, others, xs, ys)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("theoretical speed-up (baseline MACs / MACs)")
    ax.set_ylabel("measured speed-up (baseline latency / latency, batch 1)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False, fontsize=8)
    keys = _labelled(ax, others, xs, ys)
    caption = (
        "Measured speed-up at batch 1 against the speed-up the MAC count predicts, both "
        "against each row's baseline (the baselines themselves are left out). Points below "
        "the dashed line run slower than their MAC count promises."
    )
    return Plot("speedup_theoretical_vs_measured", png_bytes(fig), keys, caption)


def _plots(rows: list[SurveyRow]) -> list[Plot]:
    sizes = [r.size_bytes / 2**20 for r in rows]
    macs = [r.macs / 1e6 for r in rows]
    return [
        _accuracy_plot(rows, "accuracy_vs_size", sizes, "size (MiB, log scale)"),
        _accuracy_plot(rows, "accuracy_vs_macs", macs, "MACs per image (millions, log scale)"),
        _speedup_plot(rows),
    ]


# -- HTML --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    html: str  # escaped already
    value: float | None = None  # what a numeric column sorts by
    css: str = ""


@dataclass(frozen=True)
class HtmlColumn:
    header: str
    cell: Callable[[SurveyRow], Cell]
    numeric: bool = False
    title: str = ""  # the header's tooltip
    css: str = ""  # class of the header


def _text(s: str, css: str = "") -> Cell:
    return Cell(html.escape(s), css=css)


def _number(s: str, value: float) -> Cell:
    return Cell(html.escape(s), float(value))


def _latency(row: SurveyRow, b: int) -> Cell:
    median = row.latency_ms[b]
    text = f"{median:.2f}"
    if b in row.latency_p10_ms and b in row.latency_p90_ms:
        spread = f"{row.latency_p10_ms[b]:.2f}–{row.latency_p90_ms[b]:.2f}"
        text += f' <span class="spread">{spread}</span>'
    return Cell(text, median)


def _onnx(row: SurveyRow, b: int) -> Cell:
    if b not in row.onnx_latency_ms:
        return _missing(row)
    median = row.onnx_latency_ms[b]
    return Cell(f"{median:.2f}", median)


def _missing(row: SurveyRow) -> Cell:
    title = html.escape(row.onnx_note or "not exported")
    return Cell(f'<span title="{title}">–</span>')


def _html_columns(batch_sizes: list[int], repeats: int) -> list[HtmlColumn]:
    c = _cells
    columns = [
        HtmlColumn("Method", lambda r: _text(r.method)),
        HtmlColumn("Approach", lambda r: _text(r.approach)),
        HtmlColumn("Speed?", lambda r: _text(c(r)["speed"]), title="the method targets speed"),
        HtmlColumn("Params", lambda r: _number(c(r)["params"], r.params), True),
        HtmlColumn("MACs", lambda r: _number(c(r)["macs"], r.macs), True),
        HtmlColumn("Size", lambda r: _number(c(r)["size"], r.size_bytes), True),
        HtmlColumn(
            "Ratio",
            lambda r: _number(c(r)["ratio"], r.compression_ratio),
            True,
            "baseline size / size",
        ),  # fmt: skip
        HtmlColumn("Top-1 %", lambda r: _number(c(r)["top1"], r.top1), True),
    ]
    for b in batch_sizes:
        title = f"median of {repeats} repeats at batch {b}; small: 10th–90th percentile"
        columns.append(HtmlColumn(f"ms b{b}", lambda r, b=b: _latency(r, b), True, title))
    for b in batch_sizes:
        title = (
            f"the row's float network exported to ONNX, run by onnxruntime at batch {b} "
            "(median, timed interleaved with the PyTorch runs); blank: not exported"
        )
        columns.append(HtmlColumn(f"ORT ms b{b}", lambda r, b=b: _onnx(r, b), True, title))
    columns += [
        HtmlColumn(
            "Speed-up MACs",
            lambda r: _number(c(r)["theo"], r.speedup_theoretical),
            True,
            "baseline MACs / MACs",
        ),  # fmt: skip
        HtmlColumn(
            "Speed-up meas.",
            lambda r: _number(c(r)["meas"], r.speedup_measured),
            True,
            f"baseline latency / latency at batch {batch_sizes[0]}",
        ),  # fmt: skip
        HtmlColumn("Notes", lambda r: _text(r.notes, "notes"), css="notes"),
    ]
    return columns


def _attrs(**attrs: object) -> str:
    """`` name="value"`` for each attribute that is not None (``css`` -> ``class``)."""
    return "".join(
        f' {"class" if k == "css" else k.replace("_", "-")}="{html.escape(str(v))}"'
        for k, v in attrs.items()
        if v is not None and v != ""
    )


def _html_table(
    columns: list[HtmlColumn], rows: list[list[Cell]], keys: list[str] | None = None, id_: str = ""
) -> str:
    head = "".join(
        f"<th{_attrs(scope='col', data_type='number' if c.numeric else None, title=c.title)}"
        f"{_attrs(css=c.css)}>{html.escape(c.header)}</th>"
        for c in columns
    )
    body = "".join(
        f"<tr{_attrs(data_key=keys[i] if keys else None)}>"
        + "".join(f"<td{_attrs(css=c.css, data_value=c.value)}>{c.html}</td>" for c in cells)
        + "</tr>"
        for i, cells in enumerate(rows)
    )
    return (
        f'<div class="scroll"><table class="sortable"{_attrs(id=id_)}>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _table1_html(table1: list[dict]) -> str:
    headers, texts = _table1_cells(table1)
    numeric = [False, False, True, True, True, True]
    columns = [HtmlColumn(h, _text, n) for h, n in zip(headers, numeric, strict=True)]
    rows = []
    for t, text in zip(table1, texts, strict=True):
        values = [None, None, t["params"], t["macs"], t["fp32_bytes"], t["latency_ms"]]
        rows.append([Cell(html.escape(s), v) for s, v in zip(text, values, strict=True)])
    return _html_table(columns, rows, id_="table1")


def _sentence(text: str) -> str:
    """``text`` with a capital first letter and a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def _inline(text: str) -> str:
    """Escape ``text``; `backquoted` spans become <code>."""
    parts = re.split(r"`([^`]+)`", text)
    return "".join(
        f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts)
    )


def _figure(id_: str, png: bytes, title: str, caption: str, keys: list[str] | None = None) -> str:
    points = f" data-points='{html.escape(json.dumps(keys))}'" if keys is not None else ""
    data = base64.b64encode(png).decode()
    return (
        f'<figure id="{html.escape(id_)}"{points}>'
        f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{_inline(_sentence(title))}</b> {_inline(_sentence(caption))}"
        "</figcaption></figure>"
    )


def _environment_line(env: dict) -> str:
    if not env:
        return ""
    versions = ", ".join(f"{k} {env[k]}" for k in ("netshrink", "torch", "numba") if k in env)
    threads = env.get("torch_threads")
    return (
        f"Measured with {versions} on {env.get('cpu', 'an unknown CPU')} "
        f"({env.get('cpu_count')} logical cores, {threads} torch threads)."
    )


# Click a header to sort by it, again to reverse. Numeric columns sort by data-value.
SORT_SCRIPT = """
for (const table of document.querySelectorAll("table.sortable")) {
  const heads = Array.from(table.tHead.rows[0].cells);
  heads.forEach((th, col) => th.addEventListener("click", () => {
    const numeric = th.dataset.type === "number";
    const sign = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    const key = (row) => numeric ? parseFloat(row.cells[col].dataset.value)
                                 : row.cells[col].textContent.trim();
    const rows = Array.from(table.tBodies[0].rows);
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      if (!numeric) return sign * x.localeCompare(y);
      if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);  // missing values last
      return sign * (x - y);
    });
    heads.forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", sign === 1 ? "ascending" : "descending");
    table.tBodies[0].append(...rows);
  }));
}
"""

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;line-height:1.4}
.banner{background:#fff3cd;border:1px solid #e0b400;padding:.7em 1em;font-size:15px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}
td:first-child,th:first-child{text-align:left}
th{background:#f3f3f3}.sortable th{cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td[data-value]{white-space:nowrap}td:first-child{min-width:12em}
.notes{text-align:left}td.notes{font-size:12px;min-width:18em;max-width:32em}
.spread{color:#777;font-size:11px;white-space:nowrap}
figure{margin:1.5em 0}img{max-width:100%}figcaption{max-width:60em}
pre{background:#f5f5f5;padding:1em}
"""


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
        "top1_std",
        "top1_seeds",
        "test_images",
    ]
    fields += [f"latency_ms_b{b}" for b in batch_sizes]
    fields += [f"latency_{q}_ms_b{b}" for b in batch_sizes for q in ("p10", "p90")]
    fields += [f"onnx_latency_ms_b{b}" for b in batch_sizes] + ["onnx_note"]
    fields += ["speedup_theoretical", "speedup_measured", "notes"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for row in result.rows:
        d = {k: getattr(row, k) for k in fields if hasattr(row, k)}
        d["top1_seeds"] = " ".join(f"{v:.4f}" for v in row.top1_seeds)
        d.update({f"latency_ms_b{b}": row.latency_ms[b] for b in batch_sizes})
        d.update({f"latency_p10_ms_b{b}": row.latency_p10_ms.get(b) for b in batch_sizes})
        d.update({f"latency_p90_ms_b{b}": row.latency_p90_ms.get(b) for b in batch_sizes})
        d.update({f"onnx_latency_ms_b{b}": row.onnx_latency_ms.get(b) for b in batch_sizes})
        writer.writerow(d)
    paths["csv"] = out / "results.csv"
    atomic_write_text(paths["csv"], buf.getvalue())

    plots = _plots(result.rows)
    for plot in plots:
        paths[plot.name] = out / f"{plot.name}.png"
        atomic_write_bytes(paths[plot.name], plot.png)
    for figure in result.figures:
        paths[figure.path] = out / figure.path
        atomic_write_bytes(paths[figure.path], figure.png)

    paths["html"] = out / "report.html"
    atomic_write_text(paths["html"], _page(result, plots))
    return paths


def _summary_html(result: SurveyResult) -> str:
    out = ""
    if peers := peer_summary(result.rows):
        items = "".join(f"<li>{html.escape(line)}</li>" for line in peers)
        out += (
            "<h2>netshrink against the peers</h2><p>What a user would pick instead, on the "
            "same trained networks and test split: PyTorch's pruning and int8 "
            "quantization, fp16 storage, zstd. Size, accuracy and batch-1 latency of the "
            f'Deep Compression file against each:</p><ul id="peers">{items}</ul>'
        )
    if runtimes := runtime_summary(result.rows):
        items = "".join(f"<li>{html.escape(line)}</li>" for line in runtimes)
        out += (
            "<h2>Runtimes</h2><p>Each row's float network exported to ONNX (BatchNorm "
            "folded; the Deep Compression rows dense, as <code>netshrink export</code> "
            "writes them) and run by onnxruntime, timed interleaved with the rows "
            f'(columns ORT ms):</p><ul id="runtimes">{items}</ul>'
        )
    return out


def _page(result: SurveyResult, plots: list[Plot]) -> str:
    config = result.config
    columns = _html_columns(list(config.batch_sizes), config.repeats)
    table2 = _html_table(
        columns,
        [[col.cell(r) for col in columns] for r in result.rows],
        [r.key for r in result.rows],
        "table2",
    )
    table1 = _table1_html(result.table1) if result.table1 else "<p>(Skipped.)</p>"
    titles = {
        "accuracy_vs_size": "Accuracy against size",
        "accuracy_vs_macs": "Accuracy against MACs",
        "speedup_theoretical_vs_measured": "Theoretical against measured speed-up",
    }
    images = "".join(_figure(p.name, p.png, titles[p.name], p.caption, p.keys) for p in plots)
    figures = "".join(_figure(f.key, f.png, f.title, f.caption) for f in result.figures)
    if figures:
        figures = f"<h2>Figures</h2>{figures}"
    notice = quick_notice(result)
    banner = f'<p class="banner" id="quick-banner" role="note">{notice}</p>' if notice else ""
    tested = "/".join(map(str, result.test_images)) or "unknown"
    env_rows = "".join(
        f"<tr><th scope=row>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in result.environment.items()
    )
    cfg = html.escape(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>netshrink survey</title>
<style>{STYLE}</style></head><body>
<h1>netshrink survey</h1>
{banner}
<p>Data: <code>{html.escape(config.data)}</code>, test split of {tested} images. Every
number below was measured in this run ({result.seconds:.0f} s): accuracy on the held-out
test split; latency as the median of {config.repeats} repeats after warm-up (in small
type: the 10th to 90th percentile), measured side by side in one process. Speed-ups and
compression ratios are against each row's baseline.
{html.escape(_environment_line(result.environment))}</p>
<h2>Table 2: methods compared</h2>
<p>Click a column header to sort by it; click it again to reverse the order.</p>
{table2}
{_summary_html(result)}
<h2>Plots</h2>{images}
{figures}
<h2>Table 1: classic models at ImageNet shape</h2>{table1}
<h2>Environment</h2><table id="environment">{env_rows}</table>
<h2>Configuration</h2><pre>{cfg}</pre>
<script>{SORT_SCRIPT}</script>
</body></html>
"""
