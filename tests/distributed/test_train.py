"""Two gloo processes on the CPU against one: the same global batch gives the same model
(to float rounding: the gradients are summed in another order), its checkpoint loads in a
single process, and a killed run resumes to the same end."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import torch

from netshrink.data import load_dataset
from netshrink.runs.checkpoint import load_checkpoint
from netshrink.train import evaluate
from tests.distributed.helpers import NETSHRINK, TRAIN, alive, children, env, run, torchrun

EPOCHS = ["--epochs", "3"]
TOLERANCE = 0.02  # top-1, as a fraction: 2 points (measured: 0; the weights agree to 1e-6)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A one-process and a two-process run of the same configuration."""
    folder = tmp_path_factory.mktemp("runs")
    started = time.perf_counter()
    one = run([NETSHRINK, "train", *TRAIN, *EPOCHS, "--out", "one"], folder)
    assert one.returncode == 0, one.stderr
    two = run(torchrun(2, "train", *TRAIN, *EPOCHS, "--out", "two"), folder)
    assert two.returncode == 0, two.stderr
    print(f"1 + 2 process runs: {time.perf_counter() - started:.1f} s")
    return folder


def test_two_processes_train_the_one_process_model(runs):
    one, two = load_checkpoint(runs / "one/model.pt"), load_checkpoint(runs / "two/model.pt")
    for key in ("val_top1", "test_top1"):
        assert abs(one.metrics[key] - two.metrics[key]) <= TOLERANCE, key
    assert one.metrics["test_n"] == two.metrics["test_n"]  # sharded evaluation saw every image
    for name, weight in one.state_dict.items():  # no BatchNorm: only the summation order differs
        torch.testing.assert_close(two.state_dict[name], weight, rtol=0, atol=1e-4)


def test_a_distributed_checkpoint_loads_in_one_process(runs):
    ckpt = load_checkpoint(runs / "two/model.pt")
    assert ckpt.train_state is None
    data = load_dataset("digits", input_size=tuple(ckpt.input_size), seed=0, limit=900)
    test = evaluate(ckpt.build(), data.test)  # one process: the whole split
    assert test["top1"] == ckpt.metrics["test_top1"]
    assert test["n"] == ckpt.metrics["test_n"]


def test_resume_after_the_launcher_is_killed(runs, tmp_path):
    """SIGKILL torchrun once epoch 1's checkpoint exists: its ranks (each in a session of
    their own) stop by themselves; --resume then ends where the uninterrupted run did."""
    command = torchrun(2, "train", *TRAIN, *EPOCHS, "--out", "run")
    launcher = subprocess.Popen(command, cwd=tmp_path, env=env(), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    ckpt_path, workers = tmp_path / "run/model.pt", []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and launcher.poll() is None:
        workers = workers or children(launcher.pid)
        if ckpt_path.exists():
            break
        time.sleep(0.005)
    assert ckpt_path.exists(), "no checkpoint was written"
    os.killpg(launcher.pid, signal.SIGKILL)
    launcher.wait()
    assert load_checkpoint(ckpt_path).train_state is not None, "killed too late"
    deadline = time.monotonic() + 10  # the ranks notice within 0.5 s
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers and not any(alive(p) for p in workers), "ranks outlived their launcher"

    resumed = run(torchrun(2, "train", *TRAIN, *EPOCHS, "--out", "run", "--resume"), tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    final, whole = load_checkpoint(ckpt_path), load_checkpoint(runs / "two/model.pt")
    for name, weight in whole.state_dict.items():
        assert torch.equal(final.state_dict[name], weight), name
