"""The other training paths under two processes: binarize, distill and dsd each give (to the
tolerance of a tiny set) the one-process model, and write one whole output, from rank 0."""

from __future__ import annotations

import pytest

from netshrink.runs.checkpoint import load_checkpoint
from tests.distributed.helpers import NETSHRINK, TRAIN, run, torchrun

TOLERANCE = 0.05  # top-1 as a fraction; the runs differ by float summation order only
DATA = ["--data", "digits", "--limit", "900", "--batch-size", "32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher")
    done = run([NETSHRINK, "train", *TRAIN, "--epochs", "2", "--out", "t"], folder)
    assert done.returncode == 0, done.stderr
    return folder / "t" / "model.pt"


COMMANDS = {
    "binarize": lambda src: ["binarize", src, "--mode", "bwn", "--epochs", "1", "--quiet", *DATA],
    "distill": lambda src: [
        "distill",
        "--teacher",
        src,
        "--student",
        "mlp2x30",
        "--epochs",
        "1",
        "--quiet",
        "--temperature",
        "4",
        *DATA,
    ],  # fmt: skip
    "dsd": lambda src: ["dsd", src, "--sparse-epochs", "1", "--redense-epochs", "1", *DATA],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_training_path_under_two_processes_matches_one(trained, tmp_path, command):
    argv = [str(a) for a in COMMANDS[command](trained)]
    one = run([NETSHRINK, *argv, "--out", "one"], tmp_path)
    assert one.returncode == 0, one.stderr
    two = run(torchrun(2, *argv, "--out", "two"), tmp_path)
    assert two.returncode == 0, two.stderr
    a, b = load_checkpoint(tmp_path / "one/model.pt"), load_checkpoint(tmp_path / "two/model.pt")
    assert a.metrics["test_n"] == b.metrics["test_n"]  # sharded evaluation saw every image
    assert abs(a.metrics["test_top1"] - b.metrics["test_top1"]) <= TOLERANCE
    assert not list((tmp_path / "two").glob(".*.tmp"))  # no other rank's temporaries
