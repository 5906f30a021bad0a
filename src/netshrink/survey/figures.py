"""Figures that survey entries contribute (``ctx.add_figure``): numbers in, PNG bytes out.

Drawn on matplotlib's Agg canvas directly (:mod:`netshrink.plots`), without pyplot's
global state, so they are safe to make anywhere.
"""

from __future__ import annotations

import numpy as np

from netshrink.plots import agg_figure, png_bytes

__all__ = ["codebook_plot", "density_bars", "weight_histograms"]


def weight_histograms(layers: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """One panel per layer: ``(before, after)`` weights, the zeros of ``after`` left out.

    Han et al. 2015, Fig. 7: pruning removes the weights around zero; retraining moves the
    survivors, leaving a bimodal distribution. Log-scale counts, so that the few survivors
    of a layer pruned to 8% stay visible next to the dense layer.
    """
    fig = agg_figure(5.2 * len(layers), 3.6)
    for i, (name, (before, after)) in enumerate(layers.items()):
        ax = fig.add_subplot(1, len(layers), i + 1)
        before = np.asarray(before, dtype=np.float64).ravel()
        after = np.asarray(after, dtype=np.float64).ravel()
        kept = after[after != 0]
        low = min(before.min(), kept.min(initial=0.0))
        high = max(before.max(), kept.max(initial=0.0))
        bins = np.linspace(low, high, 81)
        ax.hist(before, bins, histtype="stepfilled", alpha=0.35, label=f"before ({before.size:,})")
        ax.hist(kept, bins, histtype="step", linewidth=1.5, label=f"after ({kept.size:,} nonzero)")
        ax.set_yscale("log")
        ax.set_title(f"{name}: {100 * kept.size / max(after.size, 1):.0f}% of the weights kept")
        ax.set_xlabel("weight")
        ax.set_ylabel("count (log scale)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return png_bytes(fig)


def density_bars(
    density: dict[str, float], targets: dict[str, dict[str, float]] | None = None, title: str = ""
) -> bytes:
    """Horizontal bars: the fraction of weights kept per layer; each of ``targets``
    (label -> {layer: fraction}) drawn as a set of markers."""
    names = list(density)
    fig = agg_figure(6.4, 0.8 + 0.26 * len(names))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    ax.barh(y, [100 * density[n] for n in names], color="C0", label="stored in the file")
    for i, (label, target) in enumerate((targets or {}).items()):
        marked = [j for j, n in enumerate(names) if n in target]
        ax.plot(
            [100 * target[names[j]] for j in marked],
            marked,
            "|x+"[i % 3],
            color="black" if i == 0 else f"C{i + 2}",
            markersize=12 if i == 0 else 7,
            markeredgewidth=2,
            linestyle="none",
            label=label,
        )
    for j, n in enumerate(names):
        right = max([density[n], *(t[n] for t in (targets or {}).values() if n in t)])
        ax.text(100 * right + 2, j, f"{100 * density[n]:.1f}%", va="center", fontsize=7)
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()  # first layer on top
    ax.set_xlim(0, 118)
    ax.set_xlabel("weights kept (%)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    return png_bytes(fig)


def codebook_plot(weights: np.ndarray, codebooks: dict[str, np.ndarray], title: str = "") -> bytes:
    """The distribution of a layer's nonzero weights with codebooks marked below it.

    Deep Compression, Fig. 4 (right): the weights and the centroids before and after
    fine-tuning; ``codebooks`` maps a label to its centroids, drawn top to bottom.
    """
    weights = np.asarray(weights, dtype=np.float64).ravel()
    weights = weights[weights != 0]
    fig = agg_figure(7.5, 4.0)
    ax = fig.add_subplot()
    counts, _, _ = ax.hist(weights, 120, color="C0", alpha=0.45, label="nonzero weights")
    top = float(counts.max())
    markers = "x.o^s"
    for i, (label, centroids) in enumerate(codebooks.items()):
        level = -top * 0.08 * (i + 1)
        centroids = np.asarray(centroids, dtype=np.float64)
        ax.plot(
            centroids,
            np.full(centroids.shape, level),
            markers[i % len(markers)],
            color=f"C{i + 1}",
            markersize=5,
            linestyle="none",
            label=f"{label} ({centroids.size})",
        )
    ax.set_ylim(-top * 0.08 * (len(codebooks) + 1), top * 1.05)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("weight value")
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return png_bytes(fig)
