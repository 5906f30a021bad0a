"""Run a sweep's trials in parallel processes, cache finished trials, survive failed ones.

A trial is a named call ``fn(trial_dir=out_dir/<key>, **kwargs)`` in a fresh (spawned)
process. Its JSON result lands in ``out_dir/<key>/result.json``; a later run with the same
``fn`` and ``kwargs`` reuses it, so an interrupted sweep resumes by running it again. A
trial that raises, or whose process dies, is reported as failed and never stops the others;
resuming *within* a trial (checkpoints in its folder) is the trial function's job.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from netshrink.atomic import atomic_write_text, ensure_dir

__all__ = ["Trial", "TrialOutcome", "run_trials", "trial_key"]

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.,=+-]*")
_KEY_PART = re.compile(r"[A-Za-z0-9_.+-]+")  # a name or value in trial_key: no ',' or '='
_OK = ("done", "cached")
_RESULT, _ERROR = "result.json", "error.txt"


@dataclass(frozen=True)
class Trial:
    """One call ``fn(trial_dir=..., **kwargs)``; ``fn`` is ``"package.module:function"``."""

    key: str
    fn: str
    kwargs: dict[str, Any]
    depends: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _KEY.fullmatch(self.key):
            raise ValueError(f"trial key {self.key!r} is not a plain file-name-safe stem")
        module, _, name = self.fn.partition(":")
        if not module or not name:
            raise ValueError(f"trial {self.key}: fn {self.fn!r} is not 'package.module:function'")
        if "trial_dir" in self.kwargs:
            raise ValueError(f"trial {self.key}: 'trial_dir' is set by the engine, not kwargs")
        try:
            json.dumps(self.kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"trial {self.key}: kwargs are not JSON-serialisable: {exc}") from None
        object.__setattr__(self, "depends", tuple(self.depends))


@dataclass
class TrialOutcome:
    key: str
    status: str  # "done" (ran now), "cached", "failed" or "skipped" (a dependency failed)
    result: dict[str, Any] | None
    error: str | None  # one line, for failed and skipped trials
    seconds: float  # wall time of this run; 0 for cached and skipped trials


def trial_key(params: Mapping[str, Any], seed: int | None = None) -> str:
    """A trial key from parameters in their given order, then the seed.

    ``{"squeeze_ratio": 0.25, "bypass": "simple"}`` with seed 1 gives
    ``"squeeze_ratio=0.25,bypass=simple,seed=1"``. Floats print with ``repr`` (the shortest
    round-trip form), so 0.125 and 0.12 stay apart.
    """
    items = list(params.items()) + ([("seed", seed)] if seed is not None else [])
    parts = []
    for name, value in items:
        # float() first: repr of a NumPy float is "np.float64(...)"
        text = repr(float(value)) if isinstance(value, float) else str(value)
        if not _KEY_PART.fullmatch(str(name)) or not _KEY_PART.fullmatch(text):
            raise ValueError(f"trial_key: {name}={value!r} has characters unsafe in a key")
        parts.append(f"{name}={text}")
    key = ",".join(parts)
    if not _KEY.fullmatch(key):
        raise ValueError(f"trial_key: {key!r} is not a plain file-name-safe stem")
    return key


def _check_graph(trials: Sequence[Trial]) -> list[Trial]:
    """Trials in an order where each comes after its dependencies (stable); ValueError else."""
    by_key: dict[str, Trial] = {}
    for trial in trials:
        if trial.key in by_key:
            raise ValueError(f"duplicate trial key {trial.key!r}")
        by_key[trial.key] = trial
    for trial in trials:
        for dep in trial.depends:
            if dep not in by_key:
                raise ValueError(f"trial {trial.key!r} depends on unknown trial {dep!r}")
    ordered: list[Trial] = []
    placed: set[str] = set()
    while len(ordered) < len(trials):
        ready = [t for t in trials if t.key not in placed and placed.issuperset(t.depends)]
        if not ready:
            stuck = sorted(t.key for t in trials if t.key not in placed)
            raise ValueError(f"dependency cycle among trials {stuck}")
        ordered += ready
        placed.update(t.key for t in ready)
    return ordered


def _load_result(trial: Trial, trial_dir: Path) -> dict[str, Any] | None:
    """The result stored for exactly this ``fn`` and ``kwargs``, or None."""
    try:
        stored = json.loads((trial_dir / _RESULT).read_text())
    except (OSError, ValueError):
        return None
    # a JSON round trip makes tuples lists, as they were stored
    same = isinstance(stored, dict) and stored.get("fn") == trial.fn
    same = same and stored.get("kwargs") == json.loads(json.dumps(trial.kwargs))
    result = stored.get("result") if same else None
    return result if isinstance(result, dict) else None


def _exit_with_parent() -> None:
    """A daemon thread: end this trial when the sweep's process dies (even by SIGKILL),
    so no orphan keeps writing into a trial folder that a rerun will use."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def _child(fn: str, kwargs: dict[str, Any], trial_dir: str, threads: int) -> None:
    """Spawned process: set thread counts, call ``fn``, write result.json or error.txt."""
    _exit_with_parent()
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(ImportError):
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    start = time.perf_counter()
    try:
        module, _, name = fn.partition(":")
        result = getattr(importlib.import_module(module), name)(trial_dir=Path(trial_dir), **kwargs)
        if not isinstance(result, dict):
            raise TypeError(f"{fn} returned {type(result).__name__}, not a dict")
        record = {"fn": fn, "kwargs": kwargs, "result": result}
        text = json.dumps(record | {"seconds": time.perf_counter() - start}, indent=2)
        atomic_write_text(Path(trial_dir) / _RESULT, text + "\n")
    except Exception as exc:
        traceback.print_exc()  # the full story on stderr; the outcome gets one line
        lines = f"{type(exc).__name__}: {exc}".splitlines()
        atomic_write_text(Path(trial_dir) / _ERROR, lines[0] + "\n")
        sys.exit(1)


def _failure(code: int | None, trial_dir: Path) -> str:
    with contextlib.suppress(OSError):
        return (trial_dir / _ERROR).read_text().strip()
    if code is not None and code < 0:
        return f"killed by signal {-code}"
    return f"exited with code {code}"


def _stop(processes: list[multiprocessing.process.BaseProcess]) -> None:
    """Terminate, give a few seconds to exit, then kill."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()


def run_trials(
    trials: Sequence[Trial],
    out_dir: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    threads_per_job: int | None = None,
    progress: bool = True,
) -> dict[str, TrialOutcome]:
    """Run every trial not cached in ``out_dir``, at most ``jobs`` processes at once.

    A trial starts once all its dependencies are done or cached, and is skipped if one
    failed. Returns the outcome of every trial, in input order.
    """
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if threads_per_job is not None and threads_per_job < 1:
        raise ValueError(f"threads_per_job must be at least 1, got {threads_per_job}")
    ordered = _check_graph(trials)
    out = ensure_dir(out_dir)
    cached = {t.key: r for t in trials if (r := _load_result(t, out / t.key)) is not None}
    cpus = os.cpu_count() or 1
    jobs = max(1, min(jobs or cpus, len(trials) - len(cached)))
    threads = threads_per_job or max(1, cpus // jobs)
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools

    outcomes: dict[str, TrialOutcome] = {}
    running: dict[Any, tuple[Trial, multiprocessing.process.BaseProcess, float]] = {}

    def finish(outcome: TrialOutcome) -> None:
        outcomes[outcome.key] = outcome
        if progress:
            if outcome.status == "done":
                note = f"done in {outcome.seconds:.0f} s"
            elif outcome.status == "cached":
                note = "cached"
            else:
                note = f"{outcome.status.upper()}: {outcome.error}"
            print(f"  [{len(outcomes)}/{len(trials)}] {outcome.key}: {note}", flush=True)

    pending = list(ordered)
    restore = _terminate_as_interrupt()
    try:
        while pending or running:
            # topological order: a dependency is settled before its dependents are looked at
            for trial in list(pending):
                if not all(dep in outcomes for dep in trial.depends):
                    continue
                failed = [dep for dep in trial.depends if outcomes[dep].status not in _OK]
                if failed:
                    error = f"dependency {failed[0]!r} failed"
                    finish(TrialOutcome(trial.key, "skipped", None, error, 0.0))
                elif trial.key in cached:
                    finish(TrialOutcome(trial.key, "cached", cached[trial.key], None, 0.0))
                elif len(running) < jobs:
                    trial_dir = ensure_dir(out / trial.key)
                    for stale in (_RESULT, _ERROR):
                        (trial_dir / stale).unlink(missing_ok=True)
                    args = (trial.fn, trial.kwargs, str(trial_dir), threads)
                    process = context.Process(target=_child, args=args, name=f"trial {trial.key}")
                    process.start()
                    running[process.sentinel] = (trial, process, time.perf_counter())
                else:
                    continue
                pending.remove(trial)
            for sentinel in wait(list(running)) if running else []:
                trial, process, start = running.pop(sentinel)
                process.join()
                seconds = time.perf_counter() - start
                trial_dir = out / trial.key
                result = _load_result(trial, trial_dir) if process.exitcode == 0 else None
                if result is not None:
                    finish(TrialOutcome(trial.key, "done", result, None, seconds))
                else:
                    error = _failure(process.exitcode, trial_dir)
                    finish(TrialOutcome(trial.key, "failed", None, error, seconds))
                process.close()
    finally:
        # KeyboardInterrupt, SIGTERM/SIGHUP or any error here: no orphaned trial processes
        restore()
        _stop([process for _, process, _ in running.values()])
    return {t.key: outcomes[t.key] for t in trials}


def _terminate_as_interrupt() -> Callable[[], None]:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt while trials run (main thread only);
    returns the function that puts the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
