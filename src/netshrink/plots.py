"""Figures drawn on matplotlib's Agg canvas directly, without pyplot's global state.

Every plot of the toolkit (survey, sweeps, sensitivity scans) starts from
:func:`agg_figure` and ends in :func:`png_bytes` (or :func:`save_figure`), so plots are
safe to make anywhere (no display, no backend switch) and all look alike.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from netshrink.atomic import atomic_open

__all__ = ["DPI", "agg_figure", "png_bytes", "save_figure"]

DPI = 110


def agg_figure(width: float, height: float) -> Figure:
    """A ``width`` x ``height`` inch figure on its own Agg canvas."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG bytes, cropped to its content."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Write ``fig`` atomically to ``path``, in the format of its suffix (png, svg, pdf)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format=fmt, dpi=DPI, bbox_inches="tight")
