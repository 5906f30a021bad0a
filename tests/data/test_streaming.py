"""Streaming splits against the in-memory path (same split, same batches where the transforms
coincide), Pillow and float64 NumPy references, and files written byte by byte here."""

from __future__ import annotations

import inspect
import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from netshrink.data import (
    Dataset,
    ImageSplit,
    StreamingSplit,
    load_dataset,
    native_input_size,
    streaming,
)
from netshrink.data import readers as readers_module
from netshrink.errors import NetshrinkError
from netshrink.train import TrainConfig, train

SPLITS = ("train", "val", "test")
CIFAR_RECORD = 1 + 3 * 32 * 32


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist_dir(root: Path, train_count: int = 60, rows: int = 7, cols: int = 6) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for stem, count in (("train", train_count), ("t10k", 15)):
        write_idx(
            root / f"{stem}-images-idx3-ubyte", rng.integers(0, 256, (count, rows, cols)), 0x803
        )
        write_idx(root / f"{stem}-labels-idx1-ubyte", np.arange(count) % 3, 0x801)


def make_cifar_dir(root: Path, per_batch: int = 6) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        records = rng.integers(0, 256, (per_batch, CIFAR_RECORD), dtype=np.uint8)
        records[:, 0] = rng.integers(0, 10, per_batch)
        (root / name).write_bytes(records.tobytes())


def write_class_folder(
    root: Path, per_class: int, size: tuple[int, int], seed: int, jpeg: bool = True
) -> None:
    """Classes ant, bee, cat of RGB PNGs and JPEGs (every third image, when ``jpeg``) and a
    grayscale PNG, all (H, W) = size."""
    rng = np.random.default_rng(seed)
    for name in ("cat", "ant", "bee"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            gray = name == "bee" and i == 1
            pixels = rng.integers(0, 256, size if gray else (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(
                root / name / f"img{i:02d}.{'jpg' if jpeg and i % 3 == 2 else 'png'}"
            )


@pytest.fixture(scope="module")
def flat_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flat")
    write_class_folder(root, per_class=10, size=(9, 8), seed=1)
    return root


@pytest.fixture(scope="module")
def imagenet_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imagenet")
    write_class_folder(root / "train", per_class=8, size=(9, 8), seed=3)
    write_class_folder(root / "val", per_class=3, size=(9, 8), seed=4)
    return root


def collect(split, batch_size: int = 7, seed: int | None = 5, **kwargs) -> list[tuple]:
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    shuffle = seed is not None
    return list(split.batches(batch_size, shuffle=shuffle, generator=generator, **kwargs))


def assert_same_batches(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for batch_a, batch_b in zip(a, b, strict=True):
        assert len(batch_a) == len(batch_b)
        for tensor_a, tensor_b in zip(batch_a, batch_b, strict=True):
            assert tensor_a.dtype == tensor_b.dtype and torch.equal(tensor_a, tensor_b)


def assert_same_as_in_memory(streamed: Dataset, in_memory: Dataset) -> None:
    assert streamed.classes == in_memory.classes
    assert streamed.input_size == in_memory.input_size
    for name in SPLITS:
        s, m = getattr(streamed, name), getattr(in_memory, name)
        assert isinstance(s, StreamingSplit) and isinstance(m, ImageSplit)
        assert torch.equal(s.labels, m.labels)
        assert s.mean == m.mean and s.std == m.std  # every train image sampled: exact
        assert_same_batches(collect(s, seed=None), collect(m, seed=None))
        assert_same_batches(
            collect(s, augment=True, with_index=True), collect(m, augment=True, with_index=True)
        )


# ---- the same batches as in memory ---------------------------------------------------------


def test_folder_streams_the_in_memory_batches(flat_folder):
    spec = f"folder:{flat_folder}"
    assert native_input_size(spec + "?stream=1") == native_input_size(spec) == (3, 9, 8)
    streamed = load_dataset(spec + "?stream=1&workers=0", seed=3)
    assert streamed.spec == spec + "?stream=1&workers=0"
    assert_same_as_in_memory(streamed, load_dataset(spec, seed=3))
    # 3 -> 1 channels (BT.601 luma) coincides too.
    gray = load_dataset(spec + "?stream=1&workers=0", seed=3, input_size=(1, 9, 8))
    assert_same_as_in_memory(gray, load_dataset(spec, seed=3, input_size=(1, 9, 8)))


def test_mnist_idx_streams_the_in_memory_batches(tmp_path):
    make_mnist_dir(tmp_path)
    spec = f"mnist:{tmp_path}"
    streamed = load_dataset(spec + "?stream=1&workers=0", seed=1, limit=50)
    assert_same_as_in_memory(streamed, load_dataset(spec, seed=1, limit=50))
    rgb = load_dataset(spec + "?stream=1&workers=0", input_size=(3, 7, 6))  # 1 -> 3 repeats
    assert_same_as_in_memory(rgb, load_dataset(spec, input_size=(3, 7, 6)))


def test_cifar_streams_the_in_memory_batches(tmp_path):
    make_cifar_dir(tmp_path)
    spec = f"cifar10:{tmp_path}"
    assert_same_as_in_memory(load_dataset(spec + "?stream=1&workers=0"), load_dataset(spec))
    # Square to square: the shorter-side resize is the in-memory resize.
    small = load_dataset(spec + "?stream=1&workers=0", input_size=(3, 16, 16))
    assert_same_as_in_memory(small, load_dataset(spec, input_size=(3, 16, 16)))


def test_normalisation_matches_float64_numpy(flat_folder):
    data = load_dataset(f"folder:{flat_folder}?stream=1&workers=0")
    train_split = data.train
    files = train_split.items.reader

    def pixels(split: StreamingSplit, position: int) -> np.ndarray:  # Pillow, straight
        with Image.open(files.path(int(split.items.records[position]))) as image:
            return np.asarray(image.convert("RGB"), dtype=np.float64).transpose(2, 0, 1) / 255

    train_pixels = np.stack([pixels(train_split, i) for i in range(len(train_split))])
    mean = train_pixels.mean(axis=(0, 2, 3))
    std = train_pixels.std(axis=(0, 2, 3))
    np.testing.assert_allclose(train_split.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(train_split.std, std, rtol=1e-12)
    for x, y, index in data.val.batches(4, with_index=True):
        expected = [
            (pixels(data.val, int(i)) - mean[:, None, None]) / std[:, None, None] for i in index
        ]
        np.testing.assert_allclose(x.numpy(), np.stack(expected), atol=1e-5)
        assert torch.equal(y, data.val.labels[index])


def test_shorter_side_resize_and_centre_crop_match_pillow(tmp_path):
    rng = np.random.default_rng(7)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(5):
            pixels = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    data = load_dataset(f"folder:{tmp_path}?stream=1&workers=0", input_size=(3, 10, 12))
    split = data.train
    images = split.sample_images(len(split))
    for image, record in zip(images, split.items.records, strict=True):
        with Image.open(split.items.reader.path(int(record))) as source:
            # Shorter side 20 -> 10, so 40 -> 20 wide; centre crop 12 of the 20 columns.
            resized = np.asarray(source.resize((20, 10), Image.Resampling.BILINEAR))
        assert np.array_equal(image.numpy(), resized[:, 4:16].transpose(2, 0, 1))


def test_square_folder_resized_as_in_memory(tmp_path):
    # PNG only: a JPEG twice the size is decoded at half size (draft mode), not resized.
    write_class_folder(tmp_path, per_class=4, size=(12, 12), seed=8, jpeg=False)
    spec = f"folder:{tmp_path}"
    for size in ((3, 6, 6), (1, 6, 6)):
        streamed = load_dataset(spec + "?stream=1&workers=0", input_size=size)
        assert len(streamed.val) == 0  # 10% of 4 per class: no batches at all, as in memory
        assert_same_as_in_memory(streamed, load_dataset(spec, input_size=size))


def test_large_jpeg_decoded_in_draft_mode_is_close_to_a_full_decode(tmp_path):
    (tmp_path / "a").mkdir()
    ramp = np.linspace(0, 255, 96)
    smooth = np.stack(
        [
            ramp[None, :].repeat(96, 0),
            ramp[:, None].repeat(96, 1),
            255 - ramp[None, :].repeat(96, 0),
        ],
        -1,
    )
    Image.fromarray(smooth.astype(np.uint8)).save(tmp_path / "a" / "0.jpg", quality=95)
    split = load_dataset(
        f"folder:{tmp_path}?stream=1&workers=0",
        input_size=(3, 24, 24),
        val_fraction=0,
        test_fraction=0,
    ).train
    with Image.open(tmp_path / "a" / "0.jpg") as image:
        full = np.asarray(image.convert("RGB").resize((24, 24), Image.Resampling.BILINEAR))
    difference = np.abs(split.sample_images(1)[0].numpy().astype(int) - full.transpose(2, 0, 1))
    assert difference.mean() < 2 and difference.max() <= 12


# ---- determinism, workers, shards, pickling -------------------------------------------------


def test_same_seed_same_batches_and_workers_agree(flat_folder):
    spec = f"folder:{flat_folder}?stream=1"
    in_process = load_dataset(spec + "&workers=0").train
    two_workers = load_dataset(spec + "&workers=2").train
    assert two_workers.num_workers == 2
    first = collect(in_process, augment=True, with_index=True)
    assert_same_batches(first, collect(in_process, augment=True, with_index=True))
    assert_same_batches(first, collect(two_workers, augment=True, with_index=True))
    other_seed = collect(in_process, seed=6, with_index=True)
    assert not torch.equal(first[0][2], other_seed[0][2])


def test_streaming_leaves_the_global_rng_alone(flat_folder):
    split = load_dataset(f"folder:{flat_folder}?stream=1&workers=1").train
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    collect(split, augment=True)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("batch_size", [6, 7])
def test_two_shards_cover_each_global_batch_once(flat_folder, batch_size):
    spec = f"folder:{flat_folder}"
    split = load_dataset(spec + "?stream=1&workers=0").train
    kwargs = dict(batch_size=batch_size, augment=True, with_index=True)
    whole = collect(split, **kwargs)
    ranks = [collect(split, shard=(rank, 2), **kwargs) for rank in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(whole)
    for batch, part0, part1 in zip(whole, *ranks, strict=True):
        assert 0 <= len(part1[0]) - len(part0[0]) <= 1  # contiguous halves, rank 1 the larger
        joined = tuple(torch.cat([a, b]) for a, b in zip(part0, part1, strict=True))
        assert_same_batches([joined], [batch])
    in_memory = load_dataset(spec).train
    if "shard" in inspect.signature(in_memory.batches).parameters:  # ImageSplit's own shards
        for rank in range(2):
            assert_same_batches(ranks[rank], collect(in_memory, shard=(rank, 2), **kwargs))
    with pytest.raises(NetshrinkError, match="shard must be"):
        collect(split, shard=(2, 2))


def test_a_shard_may_be_empty_but_keeps_step(flat_folder):
    split = load_dataset(f"folder:{flat_folder}?stream=1&workers=0").val  # 1 per class: 3
    batches = collect(split, batch_size=2, shard=(0, 2))
    assert [len(y) for _, y in batches] == [1, 0]
    assert batches[1][0].shape == (0, 3, 9, 8)


def test_pickles_without_pixels(tmp_path):
    make_mnist_dir(tmp_path, train_count=400, rows=28, cols=28)
    split = load_dataset(f"mnist:{tmp_path}?stream=1&workers=0").train
    before = collect(split, augment=True)  # opens the memmaps, which must not be pickled
    blob = pickle.dumps(split)
    assert len(blob) < 28 * 28 * len(split) / 4
    assert_same_batches(collect(pickle.loads(blob), augment=True), before)


# ---- memory: loading reads labels and a sample, not the images ------------------------------


def test_loading_a_folder_decodes_only_the_stats_sample(flat_folder, monkeypatch):
    opened = []
    real_open = readers_module.Image.open

    def counting_open(path, *args, **kwargs):
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(readers_module.Image, "open", counting_open)
    monkeypatch.setattr(streaming, "STATS_IMAGES", 4)
    data = load_dataset(f"folder:{flat_folder}?stream=1&workers=0", input_size=(3, 9, 8))
    assert len(opened) == 4 < len(data.train)
    next(data.train.batches(5))
    assert len(opened) == 4 + 5


def test_loading_idx_and_cifar_does_not_copy_the_images(tmp_path, monkeypatch):
    monkeypatch.setattr(streaming, "STATS_IMAGES", 16)
    make_mnist_dir(tmp_path / "mnist", train_count=4000, rows=28, cols=28)
    make_cifar_dir(tmp_path / "cifar", per_batch=200)  # 1,000 train images, 3 MB
    for spec, decoded_bytes in (
        (f"mnist:{tmp_path / 'mnist'}", 4000 * 784),
        (f"cifar10:{tmp_path / 'cifar'}", 1200 * 3072),
    ):
        tracemalloc.start()
        data = load_dataset(spec + "?stream=1&workers=0")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < decoded_bytes / 8, (spec, peak)
        x, _ = next(data.train.batches(32))
        assert x.shape[0] == 32


# ---- layouts and specs ----------------------------------------------------------------------


def test_imagenet_layout_train_and_val_is_test(imagenet_folder, tmp_path):
    data = load_dataset(f"folder:{imagenet_folder}?stream=1&workers=0")
    assert data.classes == ["ant", "bee", "cat"]
    assert len(data.train) == 24 and len(data.val) == len(data.test) == 9
    assert torch.equal(data.val.labels, data.test.labels)
    assert np.array_equal(data.val.items.records, data.test.items.records)
    assert data.train.items.reader.root == imagenet_folder / "train"
    assert data.val.items.reader.root == imagenet_folder / "val"
    val_names = {
        data.val.items.reader.path(int(r)).relative_to(imagenet_folder / "val")
        for r in data.val.items.records
    }
    assert val_names == {
        Path(c) / f"img{i:02d}.{'jpg' if i == 2 else 'png'}" for c in data.classes for i in range(3)
    }
    for split in (data.train, data.val):
        records = split.items.records
        names = [split.items.reader.path(int(r)).parent.name for r in records]
        assert [data.classes.index(name) for name in names] == split.labels.tolist()
    assert len(set(data.train.labels[:6].tolist())) > 1  # not class after class
    limited = load_dataset(f"folder:{imagenet_folder}?stream=1&workers=0", limit=22)
    assert len(limited.train) + len(limited.test) == 22

    (tmp_path / "train" / "ant").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "train" / "ant" / "0.png")
    (tmp_path / "val" / "owl").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "val" / "owl" / "0.png")
    with pytest.raises(NetshrinkError, match="class 'owl' is not in"):
        load_dataset(f"folder:{tmp_path}?stream=1")


def test_spec_options_and_errors(tmp_path, flat_folder):
    with pytest.raises(NetshrinkError, match="unknown option 'strem'"):
        load_dataset(f"folder:{flat_folder}?strem=1")
    with pytest.raises(NetshrinkError, match="stream must be 0 or 1"):
        load_dataset(f"folder:{flat_folder}?stream=yes")
    with pytest.raises(NetshrinkError, match="workers= applies only with stream=1"):
        load_dataset(f"folder:{flat_folder}?workers=2")
    with pytest.raises(NetshrinkError, match="workers must be an integer"):
        load_dataset(f"folder:{flat_folder}?stream=1&workers=-1")
    with pytest.raises(NetshrinkError, match="apply only to KIND:DIR"):
        load_dataset("mnist5k?stream=1")
    assert isinstance(load_dataset(f"folder:{flat_folder}?stream=0").train, ImageSplit)
    odd = tmp_path / "what?" / "x"  # a "?" without key=value pairs is part of the name
    odd.mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(odd / "0.png")
    assert load_dataset(
        f"folder:{odd.parent}?stream=1&workers=0", val_fraction=0, test_fraction=0
    ).classes == ["x"]
    assert load_dataset(f"folder:{odd.parent}", val_fraction=0, test_fraction=0).classes == ["x"]
    make_mnist_dir(tmp_path / "gz")
    path = tmp_path / "gz" / "train-images-idx3-ubyte"
    path.rename(path.with_name(path.name + ".gz"))
    with pytest.raises(NetshrinkError, match="needs the uncompressed file"):
        load_dataset(f"mnist:{tmp_path / 'gz'}?stream=1")
    split = load_dataset(f"folder:{flat_folder}?stream=1&workers=0").train
    with pytest.raises(NetshrinkError, match=r"no \.images tensor; use batches\(\)"):
        split.images  # noqa: B018


# ---- training --------------------------------------------------------------------------------


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


def test_training_on_a_stream_matches_training_in_memory(flat_folder):
    config = TrainConfig(epochs=2, batch_size=8, augment=True, seed=1)
    spec = f"folder:{flat_folder}"
    results, weights = [], []
    for data in (load_dataset(spec + "?stream=1&workers=1"), load_dataset(spec)):
        model = tiny_net()
        results.append(train(model, data, config, progress=False))
        weights.append(model.state_dict())
    assert results[0].metrics == results[1].metrics
    assert [row["train_loss"] for row in results[0].history] == [
        row["train_loss"] for row in results[1].history
    ]
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name
