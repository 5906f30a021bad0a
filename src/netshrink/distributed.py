"""Data-parallel processes (torchrun) and the device netshrink computes on.

Launched by ``torchrun``, every process reads its place from the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and :func:`init_from_env`
joins them in one process group: gloo on CPU, nccl on CUDA. Without torchrun
(``WORLD_SIZE`` unset or 1) nothing is initialised and every helper here is the identity:
``rank() == 0``, ``world_size() == 1``, ``is_main()``, reductions return their input.

The base layer holds this module because :mod:`netshrink.atomic` asks :func:`is_main`
(only rank 0 writes files); it imports nothing of netshrink but the error type.
See docs/distributed.md.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator

import torch
import torch.distributed as dist

from netshrink.errors import NetshrinkError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DEVICE_ENV",
    "all_reduce_sum",
    "barrier",
    "broadcast_",
    "broadcast_tensors_",
    "device",
    "init_from_env",
    "is_distributed",
    "is_main",
    "rank",
    "resolve_device",
    "shutdown",
    "use_device",
    "world_size",
]

DEVICE_ENV = "NETSHRINK_DEVICE"  # a sweep trial's device (set by `netshrink sweep --device`)
DEFAULT_TIMEOUT_S = 60.0  # joining and every collective; NETSHRINK_DIST_TIMEOUT overrides
_DEVICE = torch.device("cpu")  # what the runs put models on (--device); see use_device


def is_distributed() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0, the one process that prints and writes files (any process when alone)."""
    return rank() == 0


def _env_int(key: str, default: int | None = None) -> int:
    text = os.environ.get(key)
    if text is None and default is not None:
        return default
    try:
        return int(text or "")
    except ValueError:
        raise NetshrinkError(f"{key}={text!r} is not an integer (set by torchrun)") from None


def _timeout_s() -> float:
    text = os.environ.get("NETSHRINK_DIST_TIMEOUT")
    if text is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e6:
        raise NetshrinkError(f"NETSHRINK_DIST_TIMEOUT={text!r}: expected seconds > 0")
    return value


def resolve_device(spec: str | None) -> torch.device:
    """``auto`` (or None): CUDA if there is a GPU, else CPU; ``cpu``; ``cuda`` or ``cuda:N``.
    Under torchrun, ``auto``/``cuda`` mean ``cuda:LOCAL_RANK`` (one GPU per process)."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if match is None:
        raise NetshrinkError(f"--device {spec}: expected auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise NetshrinkError(
            f"--device {spec}: no CUDA device (torch.cuda.is_available() is False)"
        )
    count = torch.cuda.device_count()
    index = int(match.group(1)) if match.group(1) else None
    if index is None:
        index = _env_int("LOCAL_RANK", 0) if _env_int("WORLD_SIZE", 1) > 1 else 0
    if index >= count:
        raise NetshrinkError(f"--device {spec}: cuda:{index} does not exist ({count} GPU(s))")
    return torch.device("cuda", index)


def use_device(spec: str | torch.device | None) -> torch.device:
    """Set (and return) the device the runs put their models on (``--device``)."""
    global _DEVICE
    _DEVICE = spec if isinstance(spec, torch.device) else resolve_device(spec)
    if _DEVICE.type == "cuda":
        torch.cuda.set_device(_DEVICE)
    return _DEVICE


def device() -> torch.device:
    """The device set by :func:`use_device` (CPU unless one was set)."""
    return _DEVICE


def init_from_env(dev: torch.device | None = None) -> bool:
    """Join torchrun's process group if launched with ``WORLD_SIZE > 1``; returns whether
    it did. gloo for CPU, nccl for CUDA; a master that cannot be reached, or peers that do
    not join, within ``NETSHRINK_DIST_TIMEOUT`` seconds (default 60) is a one-line error."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1 or is_distributed():
        return is_distributed()
    me = _env_int("RANK")
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(key):
            raise NetshrinkError(f"WORLD_SIZE={world} but {key} is not set: launch with torchrun")
    timeout = _timeout_s()
    dev = dev or device()
    backend = "nccl" if dev.type == "cuda" else "gloo"
    try:
        with _quiet_stderr():
            dist.init_process_group(
                backend,
                rank=me,
                world_size=world,
                timeout=datetime.timedelta(seconds=timeout),
                device_id=dev if dev.type == "cuda" else None,
            )
            dist.barrier()  # every rank is there, not only the store
    except Exception as exc:  # DistStoreError, DistNetworkError, RuntimeError ...
        shutdown()
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise NetshrinkError(
            f"rank {me} of {world}: could not join the process group at {where} within "
            f"{timeout:g} s ({first})"
        ) from None
    _watch_launcher(me)
    return True


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Drop what C++ writes to stderr inside (c10d logs each failed connection with a
    stack trace; the exception that follows says it in one line)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _watch_launcher(me: int) -> None:
    """Stop this rank when the process that launched it goes (torchrun killed outright):
    torchrun starts each rank in a session of its own, so nothing else would, and the rank
    would train on, or wait for its peers, alone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        print(f"netshrink: error: rank {me}: its launcher (process {parent}) is gone; "
              "stopping", file=sys.stderr, flush=True)  # fmt: skip
        os._exit(1)  # the main thread may sit in a collective that never returns

    threading.Thread(target=watch, name="netshrink-launcher-watch", daemon=True).start()


def shutdown() -> None:
    """Leave the process group (if any), so no process waits on this one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (e.g. until rank 0's files exist)."""
    if is_distributed():
        dist.barrier()


def _comm_device() -> torch.device:
    return (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else (torch.device("cpu"))
    )


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` (in place) with rank ``src``'s; any dtype, bool included."""
    if not is_distributed():
        return tensor
    wire = tensor.detach().to(_comm_device())
    if wire.dtype == torch.bool:  # not every backend carries bool, int16 or uint16
        wire = wire.to(torch.uint8)
    elif wire.dtype in (torch.int16, torch.uint16):
        wire = wire.to(torch.int32)
    wire = wire.contiguous()
    dist.broadcast(wire, src)
    with torch.no_grad():
        tensor.copy_(wire.to(tensor.device, tensor.dtype))
    return tensor


def broadcast_tensors_(tensors: Iterable[torch.Tensor], src: int = 0) -> None:
    for tensor in tensors:
        broadcast_(tensor, src)


def all_reduce_sum(values: list[float], op: str = "sum") -> list[float]:
    """Sum (or ``op="max"``) of ``values`` over the ranks, in float64."""
    if not is_distributed():
        return list(values)
    wire = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(wire, dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return wire.cpu().tolist()
