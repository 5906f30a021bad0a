"""Figures drawn on matplotlib's Agg canvas directly, without pyplot's global state.

Every plot of the toolkit (survey, sweeps, sensitivity scans) starts from
:func:`agg_figure` and ends in :func:`png_bytes` (or :func:`save_figure`), so plots are
safe to make anywhere (no display, no backend switch) and all look alike. Scatters label
their points with :func:`label_points`, so they read without a legend.
"""

from __future__ import annotations

import io
import os
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation

from netshrink.atomic import atomic_open

__all__ = ["DPI", "agg_figure", "label_points", "png_bytes", "save_figure"]

DPI = 110

# Where a label may sit around its point: 16 directions (on a square, so that one side of
# the label always clears the point by the gap) at growing gaps, in points.
_ANGLES = np.arange(16) * np.pi / 8
_DIRECTIONS = np.column_stack([np.cos(_ANGLES), np.sin(_ANGLES)])
_DIRECTIONS /= np.abs(_DIRECTIONS).max(axis=1, keepdims=True)
_GAPS_PT = (3.0, 5.0, 9.0, 14.0, 20.0, 28.0, 38.0, 50.0, 64.0)
_LEADER_PT = 6.0  # labels further than this from their point get a leader line
_MARKER_PT = 4.5  # half the width of the box a point's marker keeps free (a circled one too)


def agg_figure(width: float, height: float) -> Figure:
    """A ``width`` x ``height`` inch figure on its own Agg canvas."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _overlap(box: np.ndarray, boxes: np.ndarray) -> float:
    """Summed area where ``box`` (x0, y0, x1, y1) intersects each row of ``boxes``."""
    if not len(boxes):
        return 0.0
    w = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    h = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    return float(np.sum(np.clip(w, 0, None) * np.clip(h, 0, None)))


def _distance(box: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance from ``box`` (x0, y0, x1, y1) to each of ``points`` (N, 2); 0 inside."""
    dx = np.maximum(np.maximum(box[0] - points[:, 0], points[:, 0] - box[2]), 0)
    dy = np.maximum(np.maximum(box[1] - points[:, 1], points[:, 1] - box[3]), 0)
    return np.hypot(dx, dy)


def _clusters(points: np.ndarray, radius: float) -> list[list[int]]:
    """Indices of points chained closer than ``radius`` to each other (single link)."""
    clusters: list[list[int]] = []
    for i, p in enumerate(points):
        near = [c for c in clusters if np.min(np.hypot(*(points[c] - p).T)) <= radius]
        merged = [j for c in near for j in c] + [i]
        clusters = [c for c in clusters if c not in near] + [sorted(merged)]
    return sorted(clusters)


def _inside(samples: np.ndarray, boxes: np.ndarray) -> int:
    """How many of ``samples`` (M, 2) lie inside any of ``boxes`` (N, 4)."""
    if not len(samples) or not len(boxes):
        return 0
    x, y = samples[:, None, 0], samples[:, None, 1]
    within = (x > boxes[:, 0]) & (x < boxes[:, 2]) & (y > boxes[:, 1]) & (y < boxes[:, 3])
    return int(within.any(axis=1).sum())


def _leader(anchor: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Points along the line from ``anchor`` to the nearest point of ``box``, ends left out."""
    end = np.clip(anchor, box[:2], box[2:])
    return anchor + np.linspace(0.1, 0.9, 9)[:, None] * (end - anchor)


def label_points(
    ax: Axes,
    xs: Sequence[float],
    ys: Sequence[float],
    labels: Sequence[str],
    *,
    fontsize: float = 7.0,
    merge_pt: float = 3.0,
    bold: Collection[int] = (),
) -> list[Annotation]:
    """Write each label next to its point, over no other label, point or leader line where
    it can.

    Greedy: the most crowded points are labelled first, each at the best of 16 directions x
    9 gaps, scored by what it covers (labels worst, then the outside of the axes, then
    markers and leader lines), by how far it sits from its point, and, for a label without a
    leader line, by whether another point is nearer to it than its own (it would read as that
    point's label). Labels further than a few points from their point get a thin leader
    line. Points closer than ``merge_pt`` points share one label, a line each, instead of
    printing on top of each other. ``bold``: indices of labels to set in bold.

    Call it after the axes' scales and data are final: it fixes the axis limits, so the
    positions it computed stay valid. Returns the annotations, one per merged point.
    """
    if not (len(xs) == len(ys) == len(labels)):
        raise ValueError(f"got {len(xs)} x, {len(ys)} y and {len(labels)} labels")
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    pt = fig.dpi / 72.0  # pixels per point
    points = ax.transData.transform(np.column_stack([xs, ys]).astype(np.float64))
    clusters = _clusters(points, merge_pt * pt)
    anchors = np.array([points[c].mean(axis=0) for c in clusters])
    # Crowded points first: they have the fewest free places.
    crowd = [int(np.sum(np.hypot(*(anchors - a).T) < 40 * pt)) for a in anchors]
    order = sorted(range(len(clusters)), key=lambda k: -crowd[k])
    markers = np.column_stack([points - _MARKER_PT * pt, points + _MARKER_PT * pt])  # (N, 4)
    frame = ax.get_window_extent(renderer)
    frame_box = np.array([[frame.x0, frame.y0, frame.x1, frame.y1]])
    placed = np.empty((0, 4))  # label boxes so far
    leaders = np.empty((0, 2))  # points along the leader lines so far
    found: dict[int, Annotation] = {}
    for k in order:
        members, anchor = clusters[k], anchors[k]
        others = np.delete(points, members, axis=0)
        text = "\n".join(labels[i] for i in members)
        weight = "bold" if any(i in bold for i in members) else "normal"
        probe = ax.text(0, 0, text, fontsize=fontsize, fontweight=weight)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        half = np.array([extent.width / 2 + pt, extent.height / 2 + pt])
        area = 4 * half[0] * half[1]
        best: tuple[float, float, np.ndarray, np.ndarray] | None = None
        for gap in _GAPS_PT:
            for direction in _DIRECTIONS:
                center = anchor + direction * (gap * pt + half)
                box = np.concatenate([center - half, center + half])
                covered = _overlap(box, placed)
                # Any overlap with a placed label costs more than every other penalty.
                cost = 3 * covered + 4 * area * (covered > 0) + _overlap(box, markers)
                cost += 2 * (area - _overlap(box, frame_box))
                cost += area * (gap / 100 + abs(direction[1]) / 20)  # near, beside it
                cost += 0.1 * area * _inside(leaders, box[None])
                if gap > _LEADER_PT:
                    cost += 0.1 * area * _inside(_leader(anchor, box), placed)
                else:
                    own = _distance(box, anchor[None])[0]
                    cost += 0.5 * area * np.sum(_distance(box, others) <= own + pt)
                if best is None or cost < best[0]:
                    best = (cost, gap, direction, box)
        assert best is not None
        _, gap, direction, box = best
        offset = ((box[:2] + box[2:]) / 2 - anchor) / pt
        line = {"arrowstyle": "-", "color": "0.5", "lw": 0.6, "shrinkA": 0, "shrinkB": 2}
        found[k] = ax.annotate(
            text,
            ax.transData.inverted().transform(anchor),
            xytext=tuple(offset),
            textcoords="offset points",
            ha="center",
            va="center",
            multialignment="left" if direction[0] >= 0 else "right",
            fontsize=fontsize,
            fontweight=weight,
            arrowprops=line if gap > _LEADER_PT else None,
        )
        placed = np.vstack([placed, box])
        if gap > _LEADER_PT:
            leaders = np.vstack([leaders, _leader(anchor, box)])
    return [found[k] for k in range(len(clusters))]


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
