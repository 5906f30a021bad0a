"""Pruning: remove the weights of small magnitude (Deep Compression, stage 1) and its kin.

- :func:`prune_` with a :class:`PruneConfig` prunes layers by magnitude (a sparsity or a
  threshold of q standard deviations); :func:`apply_masks_` keeps pruned weights at zero
  during retraining; :func:`prune_and_retrain` iterates the two (Han et al. 2015, 2016).
- :class:`GradualPruner` prunes during training on Zhu & Gupta's schedule (AGP).
- :func:`sensitivity_scan` measures per-layer tolerance and :func:`suggest_sparsity`
  turns it into per-layer targets.
- :func:`dsd_train` is Dense-Sparse-Dense training (Han et al. 2017).
"""

from netshrink.prune.dsd import DSDConfig, DSDResult, dsd_train
from netshrink.prune.gradual import GradualPruner, agp_sparsity
from netshrink.prune.magnitude import (
    PruneConfig,
    apply_masks_,
    layer_density,
    masks,
    prune_,
    prune_and_retrain,
    remove_masks_,
    restore_masks_,
)
from netshrink.prune.sensitivity import (
    SensitivityResult,
    plot_sensitivity,
    render_sensitivity,
    sensitivity_scan,
    suggest_sparsity,
)

__all__ = [
    "DSDConfig",
    "DSDResult",
    "GradualPruner",
    "PruneConfig",
    "SensitivityResult",
    "agp_sparsity",
    "apply_masks_",
    "dsd_train",
    "layer_density",
    "masks",
    "plot_sensitivity",
    "prune_",
    "prune_and_retrain",
    "remove_masks_",
    "render_sensitivity",
    "restore_masks_",
    "sensitivity_scan",
    "suggest_sparsity",
]
