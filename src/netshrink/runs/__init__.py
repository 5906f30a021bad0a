"""Runs: one whole job of the toolkit, from names and files to files on disk.

Each run lives in one module that the CLI, the survey and the sweeps all call:

- :mod:`~netshrink.runs.train`: train (or distill) a registry model into a run folder;
- :mod:`~netshrink.runs.compress`: Deep Compression with a recipe into an ``.nsz`` file;
- :mod:`~netshrink.runs.binarize`: binarize, fine-tune and pack a trained network;
- :mod:`~netshrink.runs.dsd`: Dense-Sparse-Dense training of a trained network;

and what they read and write: :mod:`~netshrink.runs.load` (a model meets the data, trained
files read back), :mod:`~netshrink.runs.checkpoint` and :mod:`~netshrink.runs.recipe`.
(``compress`` itself is ``netshrink.compress``: exported here it would hide its module.)
"""

from netshrink.runs.binarize import BinarizeRun, binarize_checkpoint, finetune_binary
from netshrink.runs.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from netshrink.runs.compress import (
    CompressResult,
    CompressSource,
    check_recipe,
    checkpoint_source,
    compress_run,
    model_source,
)
from netshrink.runs.dsd import DSDRun, dsd_checkpoint, dsd_run
from netshrink.runs.load import Trained, is_nsz, load_trained, resolve_model
from netshrink.runs.recipe import Recipe, load_recipe, parse_recipe, shipped_recipe
from netshrink.runs.train import RunResult, train_run

__all__ = [
    "BinarizeRun",
    "Checkpoint",
    "CompressResult",
    "CompressSource",
    "DSDRun",
    "Recipe",
    "RunResult",
    "Trained",
    "binarize_checkpoint",
    "check_recipe",
    "checkpoint_source",
    "compress_run",
    "dsd_checkpoint",
    "dsd_run",
    "finetune_binary",
    "is_nsz",
    "load_checkpoint",
    "load_recipe",
    "load_trained",
    "model_source",
    "parse_recipe",
    "resolve_model",
    "save_checkpoint",
    "shipped_recipe",
    "train_run",
]
