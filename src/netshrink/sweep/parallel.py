"""Run a sweep's trials in parallel processes, cache finished trials, survive failed ones.

A trial is a named call ``fn(trial_dir=out_dir/<key>, **kwargs)`` in a fresh (spawned)
process. Its JSON result lands in ``out_dir/<key>/result.json``; a later run with the same
``fn``, ``kwargs`` and code reuses it, so an interrupted sweep resumes by running it again.
A trial that raises, or whose process dies, is reported as failed and never stops the others;
resuming *within* a trial (checkpoints in its folder) is the trial function's job.

The record carries the code's fingerprint (:func:`code_fingerprint`: netshrink's version, a
hash of netshrink's ``.py`` sources and one of the trial function's module) and a SHA-256
of itself. A record that does not parse or fails its digest is "corrupt"; one whose
function, arguments or code differ is "stale"; either way the trial runs again and its
outcome's ``note`` says why.

``ray_backend.py`` runs the same trials on a Ray cluster with this module's cache, worker
code and scheduling (the functions below ``run_trials``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
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
from netshrink.version import __version__, sources_digest

__all__ = ["Trial", "TrialOutcome", "code_fingerprint", "run_trials", "trial_key"]

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
    note: str | None = None  # why a stored result was not reused ("stale: code changed")


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


@functools.cache
def _module_digest(module: str) -> str:
    """SHA-256 (16 hex digits) of ``module``'s source file, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
        source = Path(spec.origin).read_bytes() if spec and spec.origin else None
    except (ImportError, ValueError, OSError):
        source = None
    return "unknown" if source is None else hashlib.sha256(source).hexdigest()[:16]


def code_fingerprint(fn: str, *, fresh: bool = False) -> dict[str, str]:
    """What a cached result of ``fn`` ("module:function") depends on besides its kwargs:
    netshrink's version and sources (the trial functions call into them) and the trial
    function's module (which may live outside netshrink).

    The files are hashed once per process; ``fresh`` hashes them again, for a long-lived
    process (a Ray worker, a notebook) that must see edits made since it started."""
    module = fn.partition(":")[0]
    if fresh:
        sources, trial_module = sources_digest.__wrapped__(), _module_digest.__wrapped__(module)
    else:
        sources, trial_module = sources_digest(), _module_digest(module)
    return {"netshrink": __version__, "sources": sources, module: trial_module}


def _digest(record: Mapping[str, Any]) -> str:
    body = {k: record.get(k) for k in ("fn", "kwargs", "code", "result")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _load_result(
    trial: Trial, trial_dir: Path, code: Mapping[str, str]
) -> tuple[dict[str, Any] | None, str | None]:
    """The result stored for exactly this ``fn``, ``kwargs`` and ``code``, or None and
    why not (None when there is no result.json)."""
    try:
        stored = json.loads((trial_dir / _RESULT).read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError):  # torn or junk bytes, not UTF-8
        return None, "corrupt result.json"
    if not isinstance(stored, dict) or not isinstance(stored.get("result"), dict):
        return None, "corrupt result.json"
    if not isinstance(stored.get("code"), dict):
        return None, "stale: result.json has no code fingerprint"
    if stored.get("digest") != _digest(stored):
        return None, "corrupt result.json (digest mismatch)"
    if stored.get("fn") != trial.fn:
        return None, f"stale: function changed (was {stored.get('fn')})"
    # a JSON round trip makes tuples lists, as they were stored
    if stored.get("kwargs") != json.loads(json.dumps(trial.kwargs)):
        return None, "stale: arguments changed"
    if stored["code"] != dict(code):
        changed = [k for k in code if stored["code"].get(k) != code[k]]
        if changed and changed[0] == "netshrink":
            was = stored["code"].get("netshrink")
            return None, f"stale: code changed (netshrink {was}, now {code['netshrink']})"
        what = "netshrink sources" if not changed or changed[0] == "sources" else changed[0]
        return None, f"stale: code changed ({what})"
    return stored["result"], None


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


def _run_trial(
    fn: str, kwargs: dict[str, Any], trial_dir: str, threads: int, code: dict[str, str]
) -> bool:
    """In a trial's own process: set thread counts, call ``fn``, write result.json (True)
    or a one-line error.txt (False). Both engines' workers run this."""
    import torch

    from netshrink import distributed

    torch.set_num_threads(threads)
    with contextlib.suppress(ImportError):
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    start = time.perf_counter()
    try:
        distributed.use_device(os.environ.get(distributed.DEVICE_ENV) or "cpu")
        module, _, name = fn.partition(":")
        result = getattr(importlib.import_module(module), name)(trial_dir=Path(trial_dir), **kwargs)
        if not isinstance(result, dict):
            raise TypeError(f"{fn} returned {type(result).__name__}, not a dict")
        record = {"fn": fn, "kwargs": kwargs, "code": code, "result": result}
        # the digest is of the record as a reader parses it back (tuples become lists)
        record = json.loads(json.dumps(record))
        record |= {"digest": _digest(record), "seconds": time.perf_counter() - start}
        text = json.dumps(record, indent=2)
        atomic_write_text(Path(trial_dir) / _RESULT, text + "\n")
    except Exception as exc:
        traceback.print_exc()  # the full story on stderr; the outcome gets one line
        _write_error(Path(trial_dir), f"{type(exc).__name__}: {exc}")
        return False
    return True


def _write_error(trial_dir: Path, message: str) -> None:
    atomic_write_text(trial_dir / _ERROR, message.splitlines()[0] + "\n")


def _child(
    fn: str, kwargs: dict[str, Any], trial_dir: str, threads: int, code: dict[str, str]
) -> None:
    """Spawned process: :func:`_run_trial`, exit code 1 when the trial failed."""
    _exit_with_parent()
    if not _run_trial(fn, kwargs, trial_dir, threads, code):
        sys.exit(1)


def _stored_error(trial_dir: Path) -> str | None:
    """The trial's error.txt, if its worker got to write one."""
    with contextlib.suppress(OSError):
        return (trial_dir / _ERROR).read_text().strip()
    return None


def _failure(code: int | None, trial_dir: Path) -> str:
    stored = _stored_error(trial_dir)
    if stored is not None:
        return stored
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
    _check_parallelism(jobs, threads_per_job)
    ordered = _check_graph(trials)
    out = ensure_dir(out_dir)
    codes, cached, notes = _scan(trials, out)
    cpus = os.cpu_count() or 1
    jobs = max(1, min(jobs or cpus, len(trials) - len(cached)))
    threads = threads_per_job or max(1, cpus // jobs)
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    outcomes: dict[str, TrialOutcome] = {}
    running: dict[Any, tuple[Trial, multiprocessing.process.BaseProcess, float]] = {}

    def start(trial: Trial) -> None:
        trial_dir = _fresh_trial_dir(out, trial.key)
        args = (trial.fn, trial.kwargs, str(trial_dir), threads, codes[trial.key])
        process = context.Process(target=_child, args=args, name=f"trial {trial.key}")
        process.start()
        running[process.sentinel] = (trial, process, time.perf_counter())

    def collect() -> list[TrialOutcome]:
        ended = []
        for sentinel in wait(list(running)):
            trial, process, begun = running.pop(sentinel)
            process.join()
            trial_dir = out / trial.key
            result = None
            if process.exitcode == 0:
                result, _ = _load_result(trial, trial_dir, codes[trial.key])
            error = None if result is not None else _failure(process.exitcode, trial_dir)
            seconds = time.perf_counter() - begun
            ended.append(_ended(trial.key, result, error, seconds, notes.get(trial.key)))
            process.close()
        return ended

    restore = _terminate_as_interrupt()
    try:
        _schedule(ordered, cached, jobs, start, collect, _recorder(outcomes, len(trials), progress))
    finally:
        # KeyboardInterrupt, SIGTERM/SIGHUP or any error here: no orphaned trial processes
        restore()
        _stop([process for _, process, _ in running.values()])
    return {t.key: outcomes[t.key] for t in trials}


# --- what both engines share (this one and ray_backend.py) --------------------------------


def _check_parallelism(jobs: int | None, threads_per_job: int | None) -> None:
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if threads_per_job is not None and threads_per_job < 1:
        raise ValueError(f"threads_per_job must be at least 1, got {threads_per_job}")


def _scan(
    trials: Sequence[Trial], out: Path, *, fresh: bool = False
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, Any]], dict[str, str]]:
    """Each trial's code fingerprint (``fresh``: see :func:`code_fingerprint`), the results
    cached in ``out`` and why the others that have a result.json are not reused. Reads
    only; ``out`` need not exist."""
    fingerprints = {fn: code_fingerprint(fn, fresh=fresh) for fn in {t.fn for t in trials}}
    codes = {t.key: fingerprints[t.fn] for t in trials}
    stored = {t.key: _load_result(t, out / t.key, codes[t.key]) for t in trials}
    cached = {key: result for key, (result, _) in stored.items() if result is not None}
    notes = {key: note for key, (_, note) in stored.items() if note is not None}
    return codes, cached, notes


def _fresh_trial_dir(out: Path, key: str) -> Path:
    """The trial's folder, without the result or error of an earlier run."""
    trial_dir = ensure_dir(out / key)
    for stale in (_RESULT, _ERROR):
        (trial_dir / stale).unlink(missing_ok=True)
    return trial_dir


def _ended(
    key: str, result: dict[str, Any] | None, error: str | None, seconds: float, note: str | None
) -> TrialOutcome:
    """The outcome of a trial that ran: done with ``result``, else failed with ``error``."""
    if result is not None:
        return TrialOutcome(key, "done", result, None, seconds, note)
    return TrialOutcome(key, "failed", None, error, seconds, note)


def _recorder(
    outcomes: dict[str, TrialOutcome], total: int, progress: bool
) -> Callable[[TrialOutcome], None]:
    """A function that stores an outcome in ``outcomes`` and prints its progress line."""

    def finish(outcome: TrialOutcome) -> None:
        outcomes[outcome.key] = outcome
        if progress:
            if outcome.status == "done":
                note = f"done in {outcome.seconds:.0f} s"
            elif outcome.status == "cached":
                note = "cached"
            else:
                note = f"{outcome.status.upper()}: {outcome.error}"
            if outcome.note:
                note += f" (ran again: {outcome.note})"
            print(f"  [{len(outcomes)}/{total}] {outcome.key}: {note}", flush=True)

    return finish


def _schedule(
    ordered: Sequence[Trial],
    cached: Mapping[str, dict[str, Any]],
    jobs: int,
    start: Callable[[Trial], None],
    collect: Callable[[], list[TrialOutcome]],
    finish: Callable[[TrialOutcome], None],
) -> None:
    """Settle every trial of ``ordered`` (dependencies first): skipped when a dependency
    failed, cached, or ``start``-ed once its dependencies are done, at most ``jobs`` at
    once. ``collect()`` waits until at least one started trial ends and returns their
    outcomes; ``finish`` records each outcome."""
    settled: dict[str, str] = {}  # key -> status
    in_flight = 0

    def settle(outcome: TrialOutcome) -> None:
        settled[outcome.key] = outcome.status
        finish(outcome)

    pending = list(ordered)
    while pending or in_flight:
        # topological order: a dependency is settled before its dependents are looked at
        for trial in list(pending):
            if not all(dep in settled for dep in trial.depends):
                continue
            failed = [dep for dep in trial.depends if settled[dep] not in _OK]
            if failed:
                error = f"dependency {failed[0]!r} failed"
                settle(TrialOutcome(trial.key, "skipped", None, error, 0.0))
            elif trial.key in cached:
                settle(TrialOutcome(trial.key, "cached", cached[trial.key], None, 0.0))
            elif in_flight < jobs:
                start(trial)
                in_flight += 1
            else:
                continue
            pending.remove(trial)
        if in_flight:
            for outcome in collect():
                in_flight -= 1
                settle(outcome)


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
