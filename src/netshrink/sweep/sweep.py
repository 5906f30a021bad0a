"""``netshrink sweep``: plan a study's trials, run them in parallel, tabulate and plot."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from netshrink.atomic import atomic_write_text, ensure_dir
from netshrink.errors import NetshrinkError
from netshrink.sweep.parallel import TrialOutcome, run_trials
from netshrink.sweep.results import SweepRow, summarize, write_outputs
from netshrink.sweep.studies import SweepConfig, plan

__all__ = ["BACKENDS", "SweepResult", "run_sweep"]

BACKENDS = ("local", "ray")  # processes on this machine; tasks on a Ray cluster


@dataclass
class SweepResult:
    config: SweepConfig
    rows: list[SweepRow]
    outcomes: dict[str, TrialOutcome]
    paths: dict[str, Path]

    @property
    def failed(self) -> list[TrialOutcome]:
        return [o for o in self.outcomes.values() if o.status in ("failed", "skipped")]


def run_sweep(
    config: SweepConfig,
    *,
    jobs: int | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run every trial of ``config`` not already finished under ``config.out/trials``.

    ``jobs`` trials at once (default: one per core), each with its share of the cores'
    threads: processes on this machine (``backend="local"``), or tasks on the Ray cluster
    at ``ray_address`` or a local Ray instance (``"ray"``; ``config.out`` must then be on
    a filesystem the nodes share). Writes ``config.yaml``, ``results.json``, ``table.md``
    and ``figure.png``.
    """
    if backend not in BACKENDS:
        raise NetshrinkError(f"unknown sweep backend {backend!r} (known: {', '.join(BACKENDS)})")
    if ray_address is not None and backend != "ray":
        raise NetshrinkError("--ray-address needs --backend ray")
    if jobs is not None and jobs < 1:
        raise NetshrinkError(f"--jobs must be at least 1, got {jobs}")
    trials, groups = plan(config)  # bad values fail here, before the folder exists
    session = contextlib.nullcontext()
    if backend == "ray":
        from netshrink.sweep import ray_backend

        # connect first: a missing extra or a dead address fails before the folder exists
        session = ray_backend.ray_session(ray_address, num_cpus=ray_backend.local_cpus(jobs))
    with session:
        out = ensure_dir(config.out)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        if backend == "ray":
            outcomes = ray_backend.run_trials_ray(
                trials, out / "trials", address=ray_address, jobs=jobs, progress=progress
            )
        else:
            outcomes = run_trials(trials, out / "trials", jobs=jobs, progress=progress)
    rows = summarize(groups, outcomes)
    return SweepResult(config, rows, outcomes, write_outputs(config, rows, outcomes))
