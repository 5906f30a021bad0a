"""The shared Agg plotting helper: real PNG bytes, atomic files, no pyplot state; point labels
that neither overlap nor repeat."""

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.text import Text

from netshrink.plots import agg_figure, label_points, png_bytes, save_figure


def test_png_bytes_and_files_without_pyplot(tmp_path):
    before = plt.get_fignums()
    fig = agg_figure(3, 2)
    fig.add_subplot().plot([0, 1], [1, 0])
    data = png_bytes(fig)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    save_figure(fig, tmp_path / "f.svg")
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")
    assert plt.get_fignums() == before  # nothing registered with pyplot
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.svg"]  # no temporary left


def test_save_figure_refuses_an_unknown_format(tmp_path):
    fig = agg_figure(1, 1)
    with pytest.raises(ValueError):
        save_figure(fig, tmp_path / "f.unknown")
    assert list(tmp_path.iterdir()) == []


# -- label_points --------------------------------------------------------------------------

# A crowded scatter: 12 lone points plus groups drawn on (or within a hair of) one another.
LONE = [(1, 90), (2, 95), (4, 70), (8, 97), (16, 60), (32, 85), (50, 40), (64, 75), (80, 20),
        (100, 55), (12, 30), (40, 10)]  # fmt: skip
# index of a lone point -> the points drawn on it: exact duplicates or within ~0.1 px.
ON_TOP = {3: [(8, 97), (8, 97)], 5: [(32.02, 85.03), (32.01, 84.98), (31.99, 85.01)],
          7: [(64, 75.02), (64.03, 75)], 9: [(100, 55)]}  # fmt: skip
NAMES = [
    "LeNet-5", "Pruned LeNet-5", "Deep Compression", "SqueezeNet 1.1", "MobileNet 0.25",
    "ShuffleNet g3", "XNOR-Net", "BinaryConnect", "Distilled student", "DSD retrained",
    "Bypass SqueezeNet", "fp16 storage", "int8 (PyTorch)", "zstd file", "Huffman only",
    "k-means 4 bit", "k-means 5 bit", "Magnitude 80%", "Magnitude 95%", "Complex bypass",
]  # fmt: skip


def _scatter():
    """The crowded scatter labelled; its points, labels and the groups that are drawn on
    one another (by construction: within a group well under a pixel apart, across groups
    more than 12 px)."""
    points = list(LONE)
    groups = [[i] for i in range(len(LONE))]
    for i, extra in ON_TOP.items():
        groups[i] += range(len(points), len(points) + len(extra))
        points += extra
    xs, ys = (list(v) for v in zip(*points, strict=True))
    fig = agg_figure(6, 4)
    ax = fig.add_subplot()
    ax.scatter(xs, ys, s=20)
    annotations = label_points(ax, xs, ys, NAMES)
    fig.canvas.draw()
    return fig, ax, annotations, xs, ys, [sorted(g) for g in groups]


def _label_box(annotation, renderer):
    """The box of an annotation's text alone: Annotation.get_window_extent adds the
    bounding box of the leader line, which may span other labels without touching them."""
    return Text.get_window_extent(annotation, renderer)


def _overlap_px(a, b) -> tuple[float, float]:
    """Width and height (px) of the intersection of two boxes; negative where apart."""
    return float(min(a.x1, b.x1) - max(a.x0, b.x0)), float(min(a.y1, b.y1) - max(a.y0, b.y0))


def test_label_points_labels_do_not_overlap():
    fig, _, annotations, *_ = _scatter()
    renderer = fig.canvas.get_renderer()
    boxes = [_label_box(a, renderer) for a in annotations]
    assert all(b.width > 10 and b.height > 5 for b in boxes)  # real text boxes, not empty
    overlapping = [
        (annotations[i].get_text(), annotations[j].get_text(), _overlap_px(boxes[i], boxes[j]))
        for i, j in itertools.combinations(range(len(boxes)), 2)
        if min(_overlap_px(boxes[i], boxes[j])) > 1.0  # 1 px tolerance
    ]
    assert overlapping == []  # (label, label, (width, height) in px of their intersection)


def test_label_points_writes_every_label_once():
    _, _, annotations, *_ = _scatter()
    written = [line for a in annotations for line in a.get_text().split("\n")]
    assert sorted(written) == sorted(NAMES)


def test_label_points_merges_points_drawn_on_one_another():
    fig, ax, annotations, xs, ys, groups = _scatter()
    # The premise, checked in pixels: merge_pt (3 pt) separates the groups.
    merge_px = 3.0 * fig.dpi / 72
    pixels = ax.transData.transform(np.column_stack([xs, ys]))
    for g, h in itertools.combinations(groups, 2):
        assert min(np.hypot(*(pixels[i] - pixels[j])) for i in g for j in h) > 3 * merge_px
    for g in groups:
        assert max(np.hypot(*(pixels[i] - pixels[j])) for i in g for j in g) < merge_px / 4
    merged = sorted(sorted(a.get_text().split("\n")) for a in annotations)
    assert merged == sorted(sorted(NAMES[i] for i in g) for g in groups)


@pytest.mark.parametrize(("merge_pt", "annotations"), [(3.0, 1), (1.0, 2)])
def test_label_points_merge_distance(merge_pt, annotations):
    fig = agg_figure(4, 3)
    ax = fig.add_subplot()
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    # Two points 2 pt apart on the screen: one label under merge_pt=3, two under merge_pt=1.
    gap = ax.transData.inverted().transform([[0, 0], [2.0 * fig.dpi / 72, 0]])
    dx = gap[1, 0] - gap[0, 0]
    found = label_points(ax, [50, 50 + dx], [50, 50], ["a", "b"], merge_pt=merge_pt)
    assert len(found) == annotations
    assert sorted("\n".join(a.get_text() for a in found).split("\n")) == ["a", "b"]


def test_label_points_refuses_mismatched_lengths():
    ax = agg_figure(2, 2).add_subplot()
    with pytest.raises(ValueError):
        label_points(ax, [1, 2, 3], [1, 2], ["a", "b", "c"])
    with pytest.raises(ValueError):
        label_points(ax, [1, 2], [1, 2], ["a"])


@pytest.mark.parametrize("scale", ["linear", "log"])
def test_label_points_keeps_the_axis_limits(scale):
    fig = agg_figure(6, 4)
    ax = fig.add_subplot()
    xs, ys = (list(v) for v in zip(*LONE, strict=True))
    ax.scatter(xs, ys)
    ax.set_xscale(scale)
    before = ax.get_xlim(), ax.get_ylim()  # autoscaled to the data
    label_points(ax, xs, ys, NAMES[: len(xs)])
    fig.canvas.draw()
    assert (ax.get_xlim(), ax.get_ylim()) == before
