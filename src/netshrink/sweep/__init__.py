"""Sweeps: a study's trials in parallel processes (or on Ray), cached on disk, tabulated and
plotted.

Built-in studies (:data:`STUDIES`): ``squeezenet`` (design space and bypasses) and
``distill`` (Hinton et al.'s MNIST experiment).
"""

from netshrink.sweep.parallel import Trial, TrialOutcome, run_trials, trial_key
from netshrink.sweep.ray_backend import run_trials_ray  # imports ray only when called
from netshrink.sweep.results import SweepRow, render_markdown, render_text, summarize
from netshrink.sweep.studies import STUDIES, Group, SweepConfig, get_study, parse_params
from netshrink.sweep.sweep import SweepResult, run_sweep

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
    "run_trials_ray",
    "summarize",
    "trial_key",
]
