"""Render profiles (data) as terminal tables and Markdown; JSON is ``ModelProfile.to_dict``."""

from __future__ import annotations

from collections.abc import Sequence

from netshrink.profile.records import ModelProfile

__all__ = ["render_table", "render_comparison", "to_markdown"]

_Table = tuple[list[str], list[list[str]], str]  # headers, rows, alignment per column ("l"/"r")


def _int(n: int) -> str:
    return f"{n:,}"


def _human(n: float) -> str:
    """3-4 significant digits with a K/M/G suffix: 61.10M, 266.6K, 15.47G."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}"
    return f"{n:g}"


def _bytes(n: int) -> str:
    for scale, suffix in ((1e6, "MB"), (1e3, "KB")):
        if n >= scale:
            return f"{n / scale:.2f} {suffix}"
    return f"{n} B"


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape) if shape else "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _layer_table(profile: ModelProfile) -> _Table:
    timed = any(layer.latency_ms is not None for layer in profile.layers)
    headers = ["layer", "type", "output", "params", "MACs", "MAC %", "act KB"]
    headers += ["ms"] if timed else []
    rows = []
    for layer in profile.layers:
        share = 100 * layer.macs / profile.macs if profile.macs else 0.0
        row = [
            layer.name,
            layer.type,
            _shape(layer.output_shape),
            _int(layer.params),
            _int(layer.macs),
            f"{share:.1f}",
            f"{layer.activation_bytes / 1024:,.1f}",
        ]
        rows.append(row + ([_ms(layer.latency_ms)] if timed else []))
    total = [
        "total",
        "",
        _shape(profile.input),
        _int(profile.params),
        _int(profile.macs),
        "100.0" if profile.macs else "0.0",
        f"{profile.activation_bytes / 1024:,.1f}",
    ]
    if timed:
        total.append(_ms(sum(layer.latency_ms or 0.0 for layer in profile.layers)))
    rows.append(total)
    return headers, rows, "lll" + "r" * (len(headers) - 3)


def _comparison_table(profiles: Sequence[ModelProfile]) -> _Table:
    """Speed-ups are against the first profile: MAC ratio (theoretical) and latency ratio."""
    batch_sizes = sorted({b for p in profiles for b in p.latency})
    headers = ["model", "input", "params", "MACs", "fp32 size"]
    headers += [f"b{b} ms" for b in batch_sizes]
    headers += ["speed-up MACs"] + [f"speed-up b{b}" for b in batch_sizes]
    base = profiles[0]
    rows = []
    for p in profiles:
        row = [p.model, _shape(p.input), _human(p.params), _human(p.macs), _bytes(p.weight_bytes)]
        for b in batch_sizes:
            stats = p.latency.get(b)
            row.append(_ms(stats.median_ms if stats else None))
        row.append(f"{base.macs / p.macs:.2f}x" if p.macs else "-")
        for b in batch_sizes:
            if b in p.latency and b in base.latency:
                row.append(f"{base.latency[b].median_ms / p.latency[b].median_ms:.2f}x")
            else:
                row.append("-")
        rows.append(row)
    return headers, rows, "ll" + "r" * (len(headers) - 2)


def _text(table: _Table) -> str:
    headers, rows, align = table
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _markdown(table: _Table) -> str:
    headers, rows, align = table

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _footer(profile: ModelProfile) -> str:
    parts = [
        f"{profile.model}: input {_shape(profile.input)}",
        f"{_int(profile.params)} params ({_bytes(profile.weight_bytes)} fp32)",
        f"{_int(profile.macs)} MACs",
    ]
    for b, s in sorted(profile.latency.items()):
        parts.append(
            f"batch {b}: {s.median_ms:.3f} ms median "
            f"(p10 {s.p10_ms:.3f}, p90 {s.p90_ms:.3f}; {s.repeats} runs, {s.threads} threads)"
        )
    return "; ".join(parts)


def render_table(profile: ModelProfile) -> str:
    """Per-layer terminal table, a totals row, and a one-line summary below it."""
    return _text(_layer_table(profile)) + "\n" + _footer(profile)


def render_comparison(profiles: Sequence[ModelProfile]) -> str:
    """One row per model: params, MACs, fp32 MB, median latency per measured batch size."""
    return _text(_comparison_table(profiles))


def to_markdown(profile_or_profiles: ModelProfile | Sequence[ModelProfile]) -> str:
    """A per-layer Markdown table for one profile, a comparison table for several."""
    if isinstance(profile_or_profiles, ModelProfile):
        return _markdown(_layer_table(profile_or_profiles)) + "\n\n" + _footer(profile_or_profiles)
    return _markdown(_comparison_table(profile_or_profiles))
