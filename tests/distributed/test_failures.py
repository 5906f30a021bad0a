"""Failures end every process with one line and a non-zero status, leaving no output."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from netshrink.cli import main
from tests.distributed.helpers import (
    NETSHRINK,
    TRAIN,
    alive,
    children,
    closed_port,
    env,
    run,
    torchrun,
)


@pytest.mark.parametrize(
    "rank,addr",
    [(1, "127.0.0.1"), (0, "127.0.0.1"), (1, "10.255.255.1")],
    ids=["closed-port", "peer-never-joins", "unroutable-master"],
)
def test_an_unreachable_master_is_one_line(tmp_path, rank, addr):
    """Rank 1 finds no master (a closed port, an address nobody answers); a rank 0 whose
    peer never comes waits out NETSHRINK_DIST_TIMEOUT. Either way: one line, no folder."""
    variables = dict(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR=addr,
                     MASTER_PORT=str(closed_port()), NETSHRINK_DIST_TIMEOUT="3")  # fmt: skip
    started = time.perf_counter()
    done = run([NETSHRINK, "train", *TRAIN, "--out", "out"], tmp_path, timeout=60, **variables)
    seconds = time.perf_counter() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"netshrink: error: rank {rank} of 2: could not join"), lines
    assert "within 3 s" in lines[0]
    assert not (tmp_path / "out").exists()
    assert seconds < 30, f"took {seconds:.1f} s"


def test_a_rank_dying_stops_the_run(tmp_path):
    """SIGKILL one rank mid-run: torchrun stops the other and fails; nothing hangs."""
    command = torchrun(2, "train", *TRAIN, "--epochs", "20", "--out", "run")
    launcher = subprocess.Popen(
        command, cwd=tmp_path, env=env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (tmp_path / "run/model.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    workers = children(launcher.pid)
    assert len(workers) == 2, workers
    killed = time.perf_counter()
    os.kill(workers[1], signal.SIGKILL)
    try:
        _, stderr = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    seconds = time.perf_counter() - killed
    print(f"torchrun exited {seconds:.2f} s after a rank was killed")
    assert launcher.returncode != 0
    assert not any(alive(p) for p in workers)
    assert "ChildFailedError" in stderr or "failed" in stderr.lower()


def test_device_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code = main(["train", *TRAIN, "--out", str(tmp_path / "out"), "--device", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        "netshrink: error: --device cuda: no CUDA device (torch.cuda.is_available() is False)"
    ]
    assert not (tmp_path / "out").exists()


def test_device_names_are_checked(tmp_path, capsys):
    assert main(["train", *TRAIN, "--out", str(tmp_path / "o"), "--device", "tpu"]) == 2
    assert "expected auto, cpu, cuda or cuda:N" in capsys.readouterr().err


def test_sparse_engine_on_cuda_is_refused(tmp_path, capsys, monkeypatch):
    """As if there were a GPU: the sparse engine's kernels are CPU code."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    code = main(["eval", str(tmp_path / "x.nsz"), "--engine", "sparse", "--device", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        "netshrink: error: --device cuda: the sparse engine runs on the CPU only "
        "(use --engine dense on a GPU)"
    ]
