"""Deterministic stratified subsets and splits of a label array (NumPy, pure)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["stratified_subset", "stratified_split"]


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def stratified_subset(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``count`` items drawn at random within each class, keeping class proportions.

    Quotas are ``count * n_class / n`` rounded by largest remainder, so they sum to exactly
    ``count``. Returned in ascending order; all indices when ``count >= len(labels)``.
    """
    if count >= len(labels):
        return np.arange(len(labels))
    classes, sizes = np.unique(labels, return_counts=True)
    exact = sizes * count / len(labels)
    quotas = np.floor(exact).astype(np.int64)
    largest_remainders = np.argsort(-(exact - quotas), kind="stable")
    quotas[largest_remainders[: count - quotas.sum()]] += 1
    picked = [
        rng.permutation(np.flatnonzero(labels == label))[:quota]
        for label, quota in zip(classes, quotas, strict=True)
    ]
    return np.sort(np.concatenate(picked))


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float], rng: np.random.Generator
) -> list[np.ndarray]:
    """Split indices into ``len(fractions) + 1`` parts, class by class.

    Part i takes ``round(fractions[i] * n_class)`` of each class (half rounds up); the last
    part takes the rest. Each part comes back in a random order, so an unshuffled pass
    does not see one class after another.
    """
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        start = 0
        for part, fraction in zip(parts, fractions, strict=False):
            take = min(_round_half_up(fraction * len(members)), len(members) - start)
            part.append(members[start : start + take])
            start += take
        parts[-1].append(members[start:])
    return [
        rng.permutation(np.concatenate(part)) if part else np.empty(0, np.int64) for part in parts
    ]
