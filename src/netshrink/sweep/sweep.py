"""``netshrink sweep``: plan a study's trials, run them in parallel, tabulate and plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from netshrink.atomic import atomic_write_text, ensure_dir
from netshrink.errors import NetshrinkError
from netshrink.sweep.parallel import TrialOutcome, run_trials
from netshrink.sweep.results import SweepRow, summarize, write_outputs
from netshrink.sweep.studies import SweepConfig, plan

__all__ = ["SweepResult", "run_sweep"]


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
    config: SweepConfig, *, jobs: int | None = None, progress: bool = True
) -> SweepResult:
    """Run every trial of ``config`` not already finished under ``config.out/trials``.

    ``jobs`` processes at once (default: one per core), each with its share of the cores'
    threads. Writes ``config.yaml``, ``results.json``, ``table.md`` and ``figure.png``.
    """
    if jobs is not None and jobs < 1:
        raise NetshrinkError(f"--jobs must be at least 1, got {jobs}")
    trials, groups = plan(config)  # bad values fail here, before the folder exists
    out = ensure_dir(config.out)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    outcomes = run_trials(trials, out / "trials", jobs=jobs, progress=progress)
    rows = summarize(groups, outcomes)
    return SweepResult(config, rows, outcomes, write_outputs(config, rows, outcomes))
