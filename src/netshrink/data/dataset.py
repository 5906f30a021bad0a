"""The in-memory dataset: uint8 images per split, normalised and batched on the fly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from netshrink.data.transforms import random_translate
from netshrink.errors import NetshrinkError

__all__ = ["AUGMENT_MAX_SHIFT", "ImageSplit", "Dataset", "check_shard", "normalize", "shard_slice"]

AUGMENT_MAX_SHIFT = 2  # pixels; small enough that a digit never leaves a 28x28 frame


def check_shard(shard: tuple[int, int] | None) -> tuple[int, int]:
    """``(rank, world)`` of a ``shard`` argument; ``(0, 1)`` for None (no sharding)."""
    rank, world = shard if shard is not None else (0, 1)
    if not 0 <= rank < world:
        raise NetshrinkError(f"shard must be (rank, world) with 0 <= rank < world, got {shard}")
    return rank, world


def shard_slice(size: int, rank: int, world: int) -> slice:
    """Rank ``rank``'s contiguous part of a batch of ``size`` split ``world`` ways:
    ``[size * rank // world, size * (rank + 1) // world)``; a rank may get none (a last
    batch smaller than ``world``). Every split's ``batches(shard=...)`` slices by this."""
    return slice(size * rank // world, size * (rank + 1) // world)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]):
    """uint8 (B, C, H, W) -> float32 ``(pixel / 255 - mean) / std``, folded into one
    multiply-subtract."""
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    shift = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) / std_t
    return images.float().mul_(1.0 / (255.0 * std_t)).sub_(shift)


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensor fields with == is ambiguous
class ImageSplit:
    """One split. Images stay uint8 (4x smaller than float); ``batches`` normalises.

    ``mean``/``std`` are per channel in [0, 1] units, computed on the train split and
    shared by all three splits, so every split is normalised the same way.
    """

    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            shape = tuple(self.images.shape)
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {shape}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(f"labels must be int64 ({len(self.images)},)")
        if not len(self.mean) == len(self.std) == self.images.shape[1]:
            raise ValueError("mean and std need one value per channel")

    def __len__(self) -> int:
        return self.images.shape[0]

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        augment: bool = False,
        with_index: bool = False,
        shard: tuple[int, int] | None = None,
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """Yield ``(x, y)``: float32 (B, C, H, W) with x = (pixel / 255 - mean) / std, int64 (B,).

        The last batch may be smaller. ``shuffle`` draws a permutation and ``augment`` a
        random translation of up to ±2 px per image (zero padding, then a random crop),
        both from ``generator``, so a seeded generator gives the same batches every time.
        ``with_index`` yields ``(x, y, index)``: int64 (B,) positions of the images in the
        split, so per-image values computed once (a teacher's soft targets) can be looked up.
        ``shard=(rank, world)`` yields this rank's contiguous slice of every global batch of
        ``batch_size`` (images ``[b * rank // world, b * (rank + 1) // world)`` of a batch of
        ``b``; possibly empty): the ranks' slices together are the unsharded batches, with
        the same shuffle and the same augmentation (drawn for the whole global batch).
        """
        if batch_size < 1:
            raise NetshrinkError(f"batch size must be at least 1, got {batch_size}")
        rank, world = check_shard(shard)
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else None
        for start in range(0, n, batch_size):
            if order is None:
                index = torch.arange(start, min(start + batch_size, n))
                images = self.images[start : start + batch_size]
                labels = self.labels[start : start + batch_size]
            else:
                index = order[start : start + batch_size]
                images, labels = self.images[index], self.labels[index]
            if augment:
                images = random_translate(images, AUGMENT_MAX_SHIFT, generator)
            if world > 1:
                part = shard_slice(len(index), rank, world)
                index, images, labels = index[part], images[part], labels[part]
            x = normalize(images, self.mean, self.std)
            yield (x, labels, index) if with_index else (x, labels)


@dataclass(frozen=True)
class Dataset:
    """Train/val/test splits of one data source, all at ``input_size`` = (C, H, W)."""

    spec: str  # what it was loaded from, e.g. "mnist5k" or "folder:/path"
    train: ImageSplit
    val: ImageSplit
    test: ImageSplit
    classes: list[str]
    input_size: tuple[int, int, int]

    @property
    def num_classes(self) -> int:
        return len(self.classes)
