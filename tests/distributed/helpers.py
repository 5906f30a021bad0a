"""Launching netshrink as torchrun would: the console script under ``torchrun --no-python``
(the form docs/distributed.md shows), or one rank by hand with torchrun's variables."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
NETSHRINK = str(BIN / "netshrink")
TORCHRUN = str(BIN / "torchrun")
# digits: 1,797 8x8 images, so a run takes seconds; one thread per rank on a small machine
TRAIN = ["lenet300_100", "--data", "digits", "--limit", "900", "--batch-size", "32", "--quiet"]


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    out.update({"OMP_NUM_THREADS": "1", "NETSHRINK_DIST_TIMEOUT": "30", **extra})
    return out


def torchrun(nproc: int, *args: str) -> list[str]:
    """``torchrun --standalone --nproc-per-node N --no-python netshrink ARGS``."""
    return [TORCHRUN, "--standalone", f"--nproc-per-node={nproc}", "--no-python", NETSHRINK,
            *args]  # fmt: skip


def run(command: list[str], cwd: Path, timeout: float = 120, **extra: str):
    return subprocess.run(
        command, cwd=cwd, env=env(**extra), capture_output=True, text=True, timeout=timeout
    )


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
