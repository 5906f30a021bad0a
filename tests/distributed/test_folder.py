"""Training on an image folder streamed from disk: under two processes, and an ImageNet-style
folder (train/ and val/ of class sub-folders, JPEGs of mixed sizes) for a 3x224x224 model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from netshrink.runs.checkpoint import load_checkpoint
from tests.distributed.helpers import NETSHRINK, run, torchrun

CLASSES = 3


def _square(label: int, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Noise with a bright square in a corner chosen by the class: learnable in an epoch."""
    h, w = size
    img = rng.integers(0, 60, (h, w), dtype=np.uint8)
    top, left = (0, 0) if label == 0 else (0, w // 2) if label == 1 else (h // 2, 0)
    img[top : top + h // 2, left : left + w // 2] += 180
    return img


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    """folder:DIR layout: one sub-folder of 28x28 grey PNGs per class."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for label in range(CLASSES):
        (root / f"c{label}").mkdir()
        for i in range(40):
            Image.fromarray(_square(label, rng, (28, 28))).save(root / f"c{label}" / f"{i}.png")
    return root


def test_two_processes_train_on_a_streamed_folder_as_one_does(digits_folder, tmp_path):
    spec = f"folder:{digits_folder}?stream=1&workers=1"
    args = ["train", "lenet300_100", "--data", spec, "--epochs", "2", "--batch-size", "16",
            "--quiet"]  # fmt: skip
    one = run([NETSHRINK, *args, "--out", "one"], tmp_path)
    assert one.returncode == 0, one.stderr
    two = run(torchrun(2, *args, "--out", "two"), tmp_path)
    assert two.returncode == 0, two.stderr
    a, b = load_checkpoint(tmp_path / "one/model.pt"), load_checkpoint(tmp_path / "two/model.pt")
    assert b.data == spec and b.metrics["test_n"] == a.metrics["test_n"] == 24
    assert abs(a.metrics["test_top1"] - b.metrics["test_top1"]) <= 0.05  # 1 image of 24
    assert b.metrics["test_top1"] > 0.9  # the squares are easy: it learned, sharded


def test_an_imagenet_style_folder_trains_a_224_model(tmp_path):
    root = tmp_path / "inet"
    rng = np.random.default_rng(1)
    for split, count in (("train", 6), ("val", 2)):
        for label in range(CLASSES):
            folder = root / split / f"n0{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                h, w = (int(v) for v in rng.integers(230, 330, 2))
                grey = _square(label, rng, (h, w))
                Image.fromarray(np.stack([grey] * 3, -1)).save(folder / f"{i}.jpg", quality=90)
    spec = f"folder:{root}?stream=1"
    args = ["train", "squeezenet1_0", "--data", spec, "--input", "3x224x224", "--epochs", "1",
            "--batch-size", "9", "--quiet", "--out", "sq"]  # fmt: skip
    done = run([NETSHRINK, *args], tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    ckpt = load_checkpoint(tmp_path / "sq/model.pt")
    assert tuple(ckpt.input_size) == (3, 224, 224)
    assert ckpt.metrics["test_n"] == 2 * CLASSES  # val/ is the test split
    bad = run([NETSHRINK, "train", "lenet5", *args[2:-1], "l5"], tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().endswith("--input 3x224x224: lenet5 takes 3x28x28 inputs")
