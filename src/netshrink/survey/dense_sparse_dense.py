"""The survey row of Dense-Sparse-Dense training (Han et al., ICLR 2017).

DSD retrains the trained LeNet-5 baseline sparse (30%, first convolution kept), then dense
again at a tenth of the learning rate, each phase for the survey's epochs: its dense
phase is the baseline's own training. The result is a dense network; the row is about
accuracy. Output: ``<out>/deep_compression/lenet5_dsd.json`` (phases and metrics).
"""

from __future__ import annotations

import copy
import json

from netshrink.atomic import atomic_write_text
from netshrink.prune import DSDConfig
from netshrink.runs.dsd import dsd_run
from netshrink.survey.context import SurveyContext
from netshrink.survey.deep_compression import metrics_on_test, out_folder, trained_row
from netshrink.survey.registry import Measured, SurveyEntry, register_entry

__all__: list[str] = []


def _run_lenet5_dsd(ctx: SurveyContext) -> Measured:
    """DSD from the trained baseline: its dense phase is the baseline's training."""
    source = trained_row(ctx, "lenet5")
    epochs = ctx.config.train_epochs
    config = DSDConfig(sparsity=0.3, dense_epochs=0, sparse_epochs=epochs, redense_epochs=epochs)
    train_config = ctx.train_config(**source.train_overrides)
    model = copy.deepcopy(source.model)
    run = dsd_run(model, source.data, config, train_config, progress=ctx.progress)
    record = {"config": config.to_dict(), "train": train_config.to_dict(),
              "before": run.before, **run.result.to_dict()}  # fmt: skip
    atomic_write_text(out_folder(ctx) / "lenet5_dsd.json", json.dumps(record, indent=2))
    metrics = metrics_on_test(run.model, source.data)
    print(f"  lenet5_dsd: test top-1 {metrics['test_top1']:.4f}", flush=True)
    notes = (
        f"Dense-Sparse-Dense from the baseline: sparse phase at 30% (first conv kept) and "
        f"re-dense phase at lr/10, {epochs} epochs each. The result is dense: it aims at "
        "accuracy, not size or speed."
    )
    return Measured(model, source.input_size, metrics, notes=notes)


register_entry(
    SurveyEntry(
        key="lenet5_dsd",
        method="LeNet-5 DSD",
        approach="weights",
        targets_speed=False,
        baseline="lenet5",
        run=_run_lenet5_dsd,
    )
)
