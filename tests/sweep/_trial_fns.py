"""Trial functions for the engine tests, importable in a spawned process."""

import math
import os
import signal
import time
from pathlib import Path

import torch


def _count_call(trial_dir: Path) -> None:
    with open(trial_dir / "calls.txt", "a") as handle:
        handle.write("call\n")


def square(trial_dir: Path, x: float, shape: tuple[int, ...] = ()) -> dict:
    _count_call(trial_dir)
    return {"value": x * x, "numel": math.prod(shape)}


def fail(trial_dir: Path, message: str) -> dict:
    raise ValueError(message)


def die_once(trial_dir: Path, value: int) -> dict:
    """Kill its own process on the first call; on a later call write ``value.txt``."""
    _count_call(trial_dir)
    marker = trial_dir / "started"
    if not marker.exists():
        marker.touch()  # as a checkpoint would: the next call gets further
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5)  # an engine that ignored dependencies would start the reader meanwhile
    (trial_dir / "value.txt").write_text(str(value))
    return {"value": value}


def read_dependency(trial_dir: Path, source: str) -> dict:
    """Read the file a dependency wrote into its own folder (``trial_dir``'s sibling)."""
    value = int((trial_dir.parent / source / "value.txt").read_text())
    return {"value": value + 1, "threads": torch.get_num_threads()}
