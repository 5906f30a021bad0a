"""Write files so that readers never see half of one: temporary name, then rename."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from netshrink.errors import NetshrinkError

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "ensure_dir", "folder_lock"]


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents); a one-line error if it cannot be made or written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NetshrinkError(f"cannot create output folder {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise NetshrinkError(f"output folder {path} is not writable")
    return path


def _writer() -> bool:
    """Whether this process writes files: always, except on torchrun's ranks other than 0."""
    from netshrink.distributed import is_main  # lazy: torch loads only when writing

    return is_main()


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _remove_dead_temporaries(path: Path) -> None:
    """Remove ``.NAME.PID.*.tmp`` beside ``path`` left by writers killed mid-write (their
    process is gone); a live writer's temporary, or one of unknown origin, is kept."""
    prefix = f".{path.name}."
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
                continue
            pid = entry.name[len(prefix) :].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    ``path`` is left as it was. The file gets the mode the user's umask gives any new file
    (``mkstemp``'s 0600 would otherwise survive the rename); it is fsynced before the
    rename and the folder after it. A process killed outright (SIGKILL, power loss) leaves
    only its hidden temporary ``.NAME.PID.*.tmp``, which the next write of ``path`` removes.

    Under torchrun only rank 0 writes: on the other ranks the handle is a sink
    (``os.devnull``) and ``path`` is left alone, so every run's outputs are rank 0's.
    """
    if not _writer():
        with open(os.devnull, mode) as sink:
            yield sink
        return
    path = Path(path)
    ensure_dir(path.parent)
    prefix = f".{path.name}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _remove_dead_temporaries(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def _holder(fd: int) -> str:
    """`` (process N)`` from a lock file's contents, or nothing if it has none yet."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode().strip() or "0")
        if pid:
            return f" (process {pid})"
    return ""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold ``folder/.netshrink.lock`` while the block runs, so two runs never write one
    folder at once: a second one stops with a one-line error naming the first's process.

    The lock is the kernel's (``flock``), taken without waiting: it is exclusive even when
    runs start at the same instant, and a killed holder's lock goes with its process (the
    file it leaves is taken over). The file holds the holder's process id, for the message.
    Under torchrun only rank 0 takes it (the ranks of one run are one writer).
    """
    if not _writer():
        yield
        return
    path = ensure_dir(folder) / ".netshrink.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise NetshrinkError(
                f"another {what} is running in {folder}{holder}; wait for it or use another --out"
            ) from None
        # The previous holder removes the file before it lets go: if it did so between our
        # open and our lock, we hold a file no one else will open; start again.
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)
