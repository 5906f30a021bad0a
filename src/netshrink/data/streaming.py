"""Datasets larger than memory: splits whose images stay on disk, decoded batch by batch.

:class:`StreamingSplit` has :class:`~netshrink.data.dataset.ImageSplit`'s interface
(``len``, ``labels``, ``mean``/``std``, ``batches``) and yields the same batches where the
transforms coincide. Under it, :class:`SplitImages` (a ``torch.utils.data.Dataset``)
reads and transforms one image per item, in ``num_workers`` DataLoader worker processes;
the main process keeps only the labels, draws the shuffle and the ±2 px shifts from the
caller's generator, and normalises. Layouts, transforms and memory use: docs/data.md.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from netshrink.data.dataset import AUGMENT_MAX_SHIFT, check_shard, normalize, shard_slice
from netshrink.data.readers import ImageFiles, MemmapImages
from netshrink.data.transforms import (
    channel_histograms,
    fit_to_input_size,
    mean_std_from_histograms,
    random_shifts,
    translate,
)
from netshrink.errors import NetshrinkError

__all__ = [
    "STATS_IMAGES",
    "Split",
    "SplitImages",
    "StreamingSplit",
    "default_workers",
    "sample_mean_std",
    "shard_slice",
]

STATS_IMAGES = 2048  # train images mean/std are estimated from (all, when fewer)
STATS_BATCH = 64


class Split(Protocol):
    """What the training loop needs of a split: ImageSplit and StreamingSplit both are."""

    labels: torch.Tensor  # int64 (N,)
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __len__(self) -> int: ...

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        augment: bool = False,
        with_index: bool = False,
        shard: tuple[int, int] | None = None,
    ) -> Iterator[tuple[torch.Tensor, ...]]: ...


def default_workers() -> int:
    """DataLoader worker processes by default: min(4, CPUs this process may run on)."""
    return min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


class SplitImages(TorchDataset):
    """Position i of a split -> its image, uint8 (C, H, W) at ``input_size``.

    ``records[i]`` is the image's index in ``reader``. Each image is resized by its shorter
    side (aspect kept) and centre-cropped to ``input_size``, then its channels converted
    (1 -> 3 repeats, 3 -> 1 is BT.601 luma). Resizing is done the way the in-memory path
    does it for the same source: Pillow for folder images, torch (antialiased bilinear,
    :func:`~netshrink.data.transforms.fit_to_input_size`) for IDX and CIFAR records.
    Pickles small (paths and offsets, no pixels) for spawned DataLoader workers.
    """

    def __init__(
        self,
        reader: MemmapImages | ImageFiles,
        records: np.ndarray,
        input_size: tuple[int, int, int],
    ) -> None:
        self.reader = reader
        self.records = np.asarray(records, dtype=np.int64)
        self.input_size = tuple(int(dim) for dim in input_size)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, position: int) -> torch.Tensor:
        image = self.reader.read(int(self.records[position]), size=self.input_size[1:])
        return fit_to_input_size(torch.from_numpy(image), self.input_size)


class _PlannedBatches(Sampler[list[int]]):
    """Yields the positions of each batch, in the order the caller planned (and seeded)."""

    def __init__(self, batches: Sequence[torch.Tensor]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        return (batch.tolist() for batch in self.batches)


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id; base_seed comes from the loader's
    # own generator (below), so this is the same every run. Our transforms draw nothing at
    # random in a worker; this keeps any library that does (NumPy, random) reproducible.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _loader(items: SplitImages, batches: Sequence[torch.Tensor], num_workers: int) -> DataLoader:
    return DataLoader(
        items,
        batch_sampler=_PlannedBatches(batches),
        num_workers=num_workers,
        worker_init_fn=_seed_worker if num_workers else None,
        # Without its own generator a DataLoader draws its seed from the global RNG, so
        # streaming would shift the training's dropout and init draws against in-memory.
        generator=torch.Generator().manual_seed(0),
        persistent_workers=False,
    )


def sample_mean_std(
    items: SplitImages, count: int, rng: np.random.Generator, num_workers: int = 0
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (in [0, 1] units) of ``count`` images drawn by ``rng``
    (all of them when there are no more), from exact level histograms: with every image
    drawn, the values equal :func:`~netshrink.data.transforms.channel_mean_std`'s."""
    n = len(items)
    if n == 0:
        raise NetshrinkError("cannot compute normalisation statistics of an empty split")
    chosen = np.arange(n) if count >= n else np.sort(rng.choice(n, size=count, replace=False))
    batches = torch.from_numpy(chosen).split(STATS_BATCH)  # n > 0, so none is empty
    counts = torch.zeros((items.input_size[0], 256), dtype=torch.int64)
    for images in _loader(items, batches, num_workers):
        counts += channel_histograms(images)
    return mean_std_from_histograms(counts)


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensor fields with == is ambiguous
class StreamingSplit:
    """One split read from disk per batch; :class:`ImageSplit`'s interface and batches.

    ``mean``/``std`` are per channel in [0, 1] units, estimated on a sample of the train
    split (:func:`sample_mean_std`) and shared by all three splits.
    """

    items: SplitImages
    labels: torch.Tensor  # int64 (N,)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_workers: int = field(default_factory=default_workers)

    def __post_init__(self) -> None:
        if self.labels.dtype != torch.int64 or self.labels.shape != (len(self.items),):
            raise ValueError(f"labels must be int64 ({len(self.items)},)")
        if not len(self.mean) == len(self.std) == self.items.input_size[0]:
            raise ValueError("mean and std need one value per channel")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def input_size(self) -> tuple[int, int, int]:
        return self.items.input_size

    @property
    def images(self) -> torch.Tensor:
        raise NetshrinkError(
            f"this split streams its {len(self)} images from disk and has no .images tensor; "
            "use batches() or sample_images(n)"
        )

    def sample_images(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (count, C, H, W): ``count`` images at random positions (without
        replacement, drawn from ``generator``), or all of them in order when there are
        no more: for whatever needs pixels but not the whole split."""
        n = len(self)
        if count >= n:
            chosen = torch.arange(n)
        else:
            chosen = torch.randperm(n, generator=generator)[:count].sort().values
        if len(chosen) == 0:
            return torch.empty((0, *self.input_size), dtype=torch.uint8)
        parts = list(_loader(self.items, chosen.split(STATS_BATCH), self.num_workers))
        return torch.cat(parts)

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

        As :meth:`ImageSplit.batches`, batch for batch: the last batch may be smaller;
        ``shuffle`` draws a permutation and ``augment`` a random translation of up to
        ±2 px per image (zero padding, then a random crop), both from ``generator`` in the
        main process; ``with_index`` adds int64 (B,) positions in the split.

        ``shard=(rank, world)`` yields only rank's contiguous part of every global batch
        of ``batch_size`` (:func:`shard_slice`; possibly empty, so all ranks take the
        same number of steps) and reads only its images. The generator draws for the whole
        global batch, so with one seed the ranks' parts put together are the unsharded
        batch, shifts included.
        """
        if batch_size < 1:
            raise NetshrinkError(f"batch size must be at least 1, got {batch_size}")
        check_shard(shard)
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        global_batches = order.split(batch_size) if n else ()  # split() of empty gives one
        parts = [
            shard_slice(len(batch), *shard) if shard else slice(None) for batch in global_batches
        ]
        local_batches = [batch[part] for batch, part in zip(global_batches, parts, strict=True)]
        to_read = [batch for batch in local_batches if len(batch)]
        loaded = iter(_loader(self.items, to_read, self.num_workers) if to_read else ())
        for global_batch, part, index in zip(global_batches, parts, local_batches, strict=True):
            if len(index):
                images = next(loaded)
            else:
                images = torch.empty((0, *self.input_size), dtype=torch.uint8)
            labels = self.labels[index]
            if augment:
                top, left = random_shifts(len(global_batch), AUGMENT_MAX_SHIFT, generator)
                images = translate(images, top[part], left[part], AUGMENT_MAX_SHIFT)
            x = normalize(images, self.mean, self.std)
            yield (x, labels, index) if with_index else (x, labels)
