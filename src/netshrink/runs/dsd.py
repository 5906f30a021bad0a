"""Dense-Sparse-Dense runs (Han et al., ICLR 2017) from a trained network.

:func:`dsd_run` is the run the CLI and the survey share: the network's test metrics, then
its sparse and re-dense phases (:func:`netshrink.prune.dsd_train`); the dense phase is the
training the network already had. :func:`dsd_checkpoint` is ``netshrink dsd``: that run
from a file, written into a run folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from netshrink import distributed
from netshrink.atomic import atomic_write_text, ensure_dir
from netshrink.data import Dataset
from netshrink.nsz import binarize_header
from netshrink.prune import DSDConfig, DSDResult, dsd_train
from netshrink.runs.checkpoint import Checkpoint, refuse_existing, save_checkpoint
from netshrink.runs.load import Trained, load_trained
from netshrink.train import TrainConfig, evaluate

__all__ = ["FROM_TRAINED", "DSDRun", "dsd_checkpoint", "dsd_run"]

# DSD from a trained network: no dense phase (it was trained dense), short sparse and
# re-dense phases. ``netshrink dsd``'s defaults.
FROM_TRAINED = DSDConfig(dense_epochs=0, sparse_epochs=3, redense_epochs=3)


@dataclass
class DSDRun:
    model: nn.Module  # the network after DSD, eval mode (trained in place)
    before: dict[str, float]  # test metrics before DSD
    result: DSDResult

    @property
    def metrics(self) -> dict[str, float]:
        """Val and test metrics after the re-dense phase."""
        return self.result.redense.metrics


def dsd_run(
    model: nn.Module,
    data: Dataset,
    config: DSDConfig,
    train_config: TrainConfig,
    *,
    progress: bool = True,
) -> DSDRun:
    """Measure ``model`` on the test split, then train it sparse and dense again in place."""
    before = evaluate(model, data.test)
    result = dsd_train(model, data, config, train_config, progress=progress)
    return DSDRun(model.eval(), before, result)


def dsd_checkpoint(
    path: str | os.PathLike[str],
    config: DSDConfig,
    train_config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    data: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> tuple[Trained, DSDRun]:
    """``netshrink dsd``: DSD of the checkpoint or ``.nsz`` file at ``path`` on ``data``
    (default: its own); writes ``model.pt`` (a binary network stays binary) and
    ``metrics.json`` into ``out_dir``; an existing ``out_dir/model.pt`` is refused unless
    ``overwrite=True``."""
    refuse_existing(Path(out_dir) / "model.pt", overwrite)
    trained = load_trained(path)
    dataset = trained.load_data(data, limit=limit)
    distributed.barrier()  # every rank has checked --out before rank 0 writes into it
    out = ensure_dir(Path(out_dir))
    run = dsd_run(
        trained.model.to(distributed.device()), dataset, config, train_config, progress=progress
    )
    saved = {"train": train_config.to_dict(), "dsd": config.to_dict()}
    if binarize_header(run.model):  # a binary network stays binary
        saved["binarize"] = binarize_header(run.model)
    save_checkpoint(
        out / "model.pt",
        Checkpoint(trained.model_name, trained.model_args, tuple(trained.input_size),
                   run.model.state_dict(), dataset.spec, run.metrics, saved),
    )  # fmt: skip
    before = {f"test_{k}": v for k, v in run.before.items()}
    record = {"before": before, "dsd": run.result.to_dict(), "config": config.to_dict()}
    atomic_write_text(out / "metrics.json", json.dumps(record, indent=2, default=str))
    distributed.barrier()  # rank 0's files exist before any rank goes on
    return trained, run
