"""Sweeps: a study's trials in parallel processes, cached on disk, tabulated and plotted.

Built-in studies (:data:`STUDIES`): ``squeezenet`` (design space and bypasses) and
``distill`` (Hinton et al.'s MNIST experiment).
"""

from netshrink.sweep.engine import Trial, TrialOutcome, run_trials, trial_key
from netshrink.sweep.report import SweepRow, render_markdown, render_text, summarize
from netshrink.sweep.runner import SweepResult, run_sweep
from netshrink.sweep.studies import STUDIES, Group, SweepConfig, get_study, parse_params

__all__ = [
    "STUDIES",
    "Group",
    "SweepConfig",
    "SweepResult",
    "SweepRow",
    "Trial",
    "TrialOutcome",
    "get_study",
    "parse_params",
    "render_markdown",
    "render_text",
    "run_sweep",
    "run_trials",
    "summarize",
    "trial_key",
]
