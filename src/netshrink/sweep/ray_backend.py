"""Run a sweep's trials on a Ray cluster: the trials, cache and outcomes of the local engine.

:func:`run_trials_ray` is :func:`netshrink.sweep.parallel.run_trials` with Ray tasks in
place of spawned processes. The driver (this process) reads the cache, submits a trial as
a task once its dependencies are done, and reads the ``result.json`` the task wrote into
the trial's folder. The task runs the local engine's worker code, so the record and its
fingerprint are the same and either engine reuses what the other wrote. The sweep folder
must therefore be on a filesystem every node shares, at the same path (NFS, a cluster
file system; one machine needs nothing). Ray is the optional ``ray`` extra, imported only
here and only when used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from netshrink.errors import NetshrinkError
from netshrink.sweep.parallel import (
    Trial,
    TrialOutcome,
    _check_graph,
    _check_parallelism,
    _ended,
    _fresh_trial_dir,
    _load_result,
    _recorder,
    _run_trial,
    _scan,
    _schedule,
    _stored_error,
    _terminate_as_interrupt,
    _write_error,
    code_fingerprint,
)

__all__ = ["MISSING_EXTRA", "local_cpus", "ray_session", "run_trials_ray"]

MISSING_EXTRA = "the ray backend needs the ray extra: pip install 'netshrink[ray]'"
CONNECT_TIMEOUT_S = 5.0  # a TCP connect to the head; ray.init itself retries for minutes


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise NetshrinkError(MISSING_EXTRA) from None
    return ray


def local_cpus(jobs: int | None) -> int:
    """CPUs of a local Ray instance: the machine's, or ``jobs`` when that is more (as the
    local engine, which starts ``jobs`` processes whatever the core count)."""
    return max(os.cpu_count() or 1, jobs or 1)


def _check_answers(address: str) -> None:
    """A one-line NetshrinkError unless something accepts TCP connections at ``address``:
    ray.init on a dead address retries for minutes, or ends the process."""
    if address == "auto":  # the cluster `ray start` left on this machine; ray.init says
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise NetshrinkError(f"Ray address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise NetshrinkError(f"no Ray cluster answers at {address}: {reason}") from None


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[None]:
    """Ray, connected for the block: to the cluster at ``address``, else to a new local
    instance with ``num_cpus`` CPUs (default: the machine's); shut down after, always.

    When Ray is already initialised in this process, that connection is used as it is and
    left open. A missing extra or an address nobody answers at is a one-line
    NetshrinkError, raised before anything is started.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield
        return
    if address is not None:
        _check_answers(address)
    try:
        if address is None:  # "local": not the cluster RAY_ADDRESS may name
            ray.init(
                address="local",
                num_cpus=num_cpus or local_cpus(None),
                include_dashboard=False,
                logging_level=logging.WARNING,
            )
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        ray.shutdown()
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NetshrinkError(f"could not connect to Ray at {address or 'local'}: {line}") from None
    try:
        yield
    finally:
        ray.shutdown()  # a local instance's raylet and workers go with it


def _task(
    fn: str, kwargs: dict[str, Any], trial_dir: str, threads: int, code: dict[str, str]
) -> tuple[bool, str]:
    """A Ray task: the local engine's worker, after checking this node runs the driver's
    code (else its result would be cached under a fingerprint it was not made by)."""
    host = socket.gethostname()
    here = code_fingerprint(fn, fresh=True)  # a worker runs many tasks: hash what is there now
    if here != code:
        changed = ", ".join(k for k in code if here.get(k) != code[k])
        _write_error(Path(trial_dir), f"the code on {host} differs from the driver's ({changed})")
        return False, host
    return _run_trial(fn, kwargs, trial_dir, threads, code), host


def _largest_node_cpus(ray: Any) -> int:
    cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    return max(1, int(max(cpus, default=1)))


def run_trials_ray(
    trials: Sequence[Trial],
    out_dir: str | os.PathLike[str],
    *,
    address: str | None = None,
    jobs: int | None = None,
    threads_per_job: int | None = None,
    progress: bool = True,
) -> dict[str, TrialOutcome]:
    """Run every trial not cached in ``out_dir`` as a Ray task, at most ``jobs`` at once.

    As :func:`~netshrink.sweep.parallel.run_trials`, on the cluster at ``address`` (or a
    local instance, or the Ray this process is connected to already; see
    :func:`ray_session`). ``jobs`` defaults to the cluster's CPUs and each trial gets
    ``threads_per_job`` threads (default CPUs / jobs), reserved as Ray CPUs so no node runs
    more threads than it has cores. ``out_dir`` must be shared by every node.
    """
    _check_parallelism(jobs, threads_per_job)
    ordered = _check_graph(trials)
    out = Path(out_dir).resolve()  # the workers' working directory is not ours
    codes, cached, notes = _scan(trials, out, fresh=True)  # as the workers will hash them
    outcomes: dict[str, TrialOutcome] = {}
    with ray_session(address, num_cpus=local_cpus(jobs)):
        ray = _import_ray()
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        jobs = max(1, min(jobs or cpus, len(trials) - len(cached)))
        threads = threads_per_job or max(1, cpus // jobs)
        # a trial never retries by itself: a crash is reported, and a rerun resumes it
        task = ray.remote(_task).options(
            num_cpus=min(threads, _largest_node_cpus(ray)), max_retries=0, name="netshrink trial"
        )
        out.mkdir(parents=True, exist_ok=True)
        running: dict[Any, tuple[Trial, float]] = {}

        def start(trial: Trial) -> None:
            trial_dir = _fresh_trial_dir(out, trial.key)
            ref = task.remote(trial.fn, trial.kwargs, str(trial_dir), threads, codes[trial.key])
            running[ref] = (trial, time.perf_counter())

        def collect() -> list[TrialOutcome]:
            ray.wait(list(running), num_returns=1)
            ready, _ = ray.wait(list(running), num_returns=len(running), timeout=0)
            return [outcome_of(ref, *running.pop(ref)) for ref in ready]

        def outcome_of(ref: Any, trial: Trial, begun: float) -> TrialOutcome:
            trial_dir = out / trial.key
            try:
                ok, host = ray.get(ref)
                lost = None
            except ray.exceptions.RayError as exc:  # the worker died (killed, out of memory)
                ok, host, lost = False, None, f"its Ray worker died ({type(exc).__name__})"
            result = _load_result(trial, trial_dir, codes[trial.key])[0] if ok else None
            error = None
            if result is None:
                error = _stored_error(trial_dir) or lost
                if error is None:
                    wrote = "result.json" if ok else "error.txt"
                    error = (
                        f"{host} wrote its {wrote}, but {trial_dir} does not hold it: the "
                        "sweep folder must be on a filesystem every Ray node shares"
                    )
            seconds = time.perf_counter() - begun
            return _ended(trial.key, result, error, seconds, notes.get(trial.key))

        restore = _terminate_as_interrupt()
        try:
            finish = _recorder(outcomes, len(trials), progress)
            _schedule(ordered, cached, jobs, start, collect, finish)
        finally:
            # interrupted or failed here: no task keeps writing into a trial folder
            restore()
            for ref in running:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
    return {t.key: outcomes[t.key] for t in trials}
