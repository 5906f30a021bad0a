"""Per-layer pruning sensitivity: how accuracy falls as one layer at a time is pruned.

Han, Pool, Tran & Dally, NeurIPS 2015, §4 and Fig. 6: layers differ in how much pruning
they tolerate (the first conv layer least, fully connected layers most), so the
per-layer sparsity is chosen from a scan that prunes each layer alone, without retraining,
and records the accuracy. The scan is data; :func:`render_sensitivity` and
:func:`plot_sensitivity` present it and :func:`suggest_sparsity` turns it into targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers, match_patterns
from netshrink.primitives.masks import magnitude_mask
from netshrink.prune.magnitude import MASK

__all__ = [
    "DEFAULT_SPARSITIES",
    "SensitivityResult",
    "plot_sensitivity",
    "render_sensitivity",
    "sensitivity_scan",
    "suggest_sparsity",
]

DEFAULT_SPARSITIES = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
_TOLERANCE = 1e-9  # so that a drop of exactly max_drop passes despite float rounding


@dataclass
class SensitivityResult:
    """Accuracy with each layer pruned alone: ``accuracy[layer][i]`` at ``sparsities[i]``.

    ``baseline`` is the accuracy of the model as given (no extra pruning).
    """

    baseline: float
    sparsities: list[float]
    accuracy: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for layer, values in self.accuracy.items():
            if len(values) != len(self.sparsities):
                raise NetshrinkError(
                    f"sensitivity of layer {layer!r} has {len(values)} values "
                    f"for {len(self.sparsities)} sparsities"
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "sparsities": list(self.sparsities),
            "accuracy": {layer: list(values) for layer, values in self.accuracy.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SensitivityResult:
        try:
            return cls(
                baseline=float(data["baseline"]),
                sparsities=[float(s) for s in data["sparsities"]],
                accuracy={str(k): [float(a) for a in v] for k, v in dict(data["accuracy"]).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise NetshrinkError(f"not a sensitivity result: {exc!r}") from None


def _check_sparsities(sparsities: Sequence[float]) -> list[float]:
    values = [float(s) for s in sparsities]
    if not values:
        raise NetshrinkError("sensitivity scan needs at least one sparsity")
    for s in values:
        if not 0.0 <= s < 1.0:
            raise NetshrinkError(f"scan sparsity must be in [0, 1), got {s!r}")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise NetshrinkError(f"scan sparsities must be strictly increasing, got {values}")
    return values


@torch.no_grad()
def sensitivity_scan(
    model: nn.Module,
    evaluate_fn: Callable[[nn.Module], float],
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    layers: list[str] | None = None,
) -> SensitivityResult:
    """Prune one layer at a time by magnitude to each sparsity and record ``evaluate_fn``.

    ``evaluate_fn(model)`` returns a score where higher is better (e.g. val top-1). The
    other layers stay as given; a layer's sparsity counts its existing zeros (weights
    pruned before are the smallest). ``layers`` are names or ``fnmatch`` patterns (default:
    every Conv2d/Linear layer). Each layer's weights are restored bit for bit afterwards,
    also when ``evaluate_fn`` raises. Masks are neither used nor changed, except that an
    existing ``weight_mask`` counts as pruned.
    """
    sparsities = _check_sparsities(sparsities)
    modules = compressible_layers(model)
    names = list(modules)
    if layers is not None:
        names = list(match_patterns(names, {p: True for p in layers}, what="layer"))
    baseline = float(evaluate_fn(model))
    accuracy: dict[str, list[float]] = {}
    for name in names:
        weight = modules[name].weight
        saved = weight.detach().clone()
        values = saved.float().cpu().numpy()
        previous = modules[name]._buffers.get(MASK)
        previous = None if previous is None else previous.cpu().numpy()
        scores = []
        try:
            for s in sparsities:
                keep = torch.from_numpy(magnitude_mask(values, s, previous=previous))
                keep = keep.to(saved.device)
                if bool((saved[~keep] == 0).all()):  # nothing changes: no need to evaluate
                    scores.append(baseline)
                    continue
                weight.copy_(saved.masked_fill(~keep, 0))
                scores.append(float(evaluate_fn(model)))
        finally:
            weight.copy_(saved)
        accuracy[name] = scores
    return SensitivityResult(baseline, sparsities, accuracy)


def suggest_sparsity(result: SensitivityResult, max_drop: float) -> dict[str, float]:
    """Per layer, the largest tested sparsity such that it and every smaller tested one
    keep ``accuracy >= baseline - max_drop``; 0.0 when even the smallest fails.

    The result can be used as ``PruneConfig(sparsity=suggest_sparsity(result, 0.01))``.
    """
    if not (isinstance(max_drop, int | float) and 0 <= max_drop < float("inf")):
        raise NetshrinkError(f"max drop must be a finite number >= 0, got {max_drop!r}")
    floor = result.baseline - max_drop - _TOLERANCE
    suggestion = {}
    for layer, values in result.accuracy.items():
        best = 0.0
        for s, accuracy in zip(result.sparsities, values, strict=True):
            if accuracy < floor:
                break
            best = s
        suggestion[layer] = best
    return suggestion


def render_sensitivity(result: SensitivityResult, max_drop: float | None = None) -> str:
    """A plain-text table: one row per layer, one column per sparsity (accuracy there).

    With ``max_drop``, a last column gives :func:`suggest_sparsity`'s choice.
    """
    headers = ["layer"] + [f"{s:g}" for s in result.sparsities]
    suggestion = None if max_drop is None else suggest_sparsity(result, max_drop)
    if suggestion is not None:
        headers.append(f"suggest (drop<={max_drop:g})")
    rows = []
    for layer, values in result.accuracy.items():
        row = [layer] + [f"{a:.4f}" for a in values]
        rows.append(row + ([f"{suggestion[layer]:g}"] if suggestion is not None else []))
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    title = f"sensitivity (baseline {result.baseline:.4f}; columns: sparsity of that layer alone)"
    return "\n".join([title, line(headers), rule, *(line(r) for r in rows)])


def plot_sensitivity(result: SensitivityResult, path: str | Path) -> None:
    """Accuracy against sparsity, one line per layer, written atomically to ``path``.

    The image format follows the file suffix (png, svg, pdf); matplotlib's Agg canvas is
    used directly, so the global backend is left alone.
    """
    from netshrink.plots import agg_figure, save_figure  # matplotlib only when plotting

    fig = agg_figure(6.4, 4.2)
    ax = fig.add_subplot()
    for layer, values in result.accuracy.items():
        ax.plot(result.sparsities, values, marker="o", label=layer)
    ax.axhline(result.baseline, color="gray", linestyle="--", linewidth=1, label="baseline")
    ax.set_xlabel("sparsity of the layer (others unchanged)")
    ax.set_ylabel("accuracy")
    ax.set_title("Pruning sensitivity per layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    save_figure(fig, path)
