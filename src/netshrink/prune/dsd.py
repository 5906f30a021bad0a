"""Dense-Sparse-Dense training: prune as a regularizer, then restore the pruned weights.

Han, Pool, Narang, Mao, Gong, Tang, Elsen, Vajda, Paluri, Tran, Catanzaro & Dally,
"DSD: Dense-Sparse-Dense Training for Deep Neural Networks", ICLR 2017 (arXiv:1607.04381),
§2: (1) train dense; (2) prune every layer but the first conv by magnitude (30% sparsity in
their experiments) and retrain under the mask; (3) remove the mask, so the pruned weights
restart from zero, and retrain all weights at a lower learning rate. The result is dense
again (no compression) and usually more accurate than the dense model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from torch import nn

from netshrink.data import Dataset
from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers
from netshrink.prune.magnitude import (
    apply_masks_,
    compute_masks,
    layer_density,
    remove_masks_,
    set_masks_,
)
from netshrink.train import TrainConfig, TrainResult, train

__all__ = ["DSDConfig", "DSDResult", "dsd_train"]


@dataclass
class DSDConfig:
    """The three phases of DSD; ``train_config`` supplies everything else."""

    sparsity: float = 0.3  # of each pruned layer in the sparse phase (Han et al. 2017: 30%)
    dense_epochs: int = 5  # 0 skips it, e.g. when starting from a trained checkpoint
    sparse_epochs: int = 5
    redense_epochs: int = 5
    redense_lr_scale: float = 0.1  # re-dense learning rate = train_config.lr * this
    keep_first_conv: bool = True  # the paper does not prune the first convolution

    def __post_init__(self) -> None:
        ok = isinstance(self.sparsity, int | float) and not isinstance(self.sparsity, bool)
        if not (ok and 0.0 <= self.sparsity < 1.0):
            raise NetshrinkError(f"DSD sparsity must be in [0, 1), got {self.sparsity!r}")
        for name in ("dense_epochs", "sparse_epochs", "redense_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise NetshrinkError(f"DSD {name} must be an integer >= 0, got {value!r}")
        scale = self.redense_lr_scale
        if not (isinstance(scale, int | float) and scale > 0 and math.isfinite(scale)):
            raise NetshrinkError(f"DSD redense_lr_scale must be a positive number, got {scale!r}")
        if not isinstance(self.keep_first_conv, bool):
            raise NetshrinkError(
                f"DSD keep_first_conv must be true or false, got {self.keep_first_conv!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DSDResult:
    """One training result per phase (``dense`` is None when skipped) and the sparse
    phase's density per layer (1.0 for the layers left dense)."""

    dense: TrainResult | None
    sparse: TrainResult
    redense: TrainResult
    sparse_density: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dense": None if self.dense is None else asdict(self.dense),
            "sparse": asdict(self.sparse),
            "redense": asdict(self.redense),
            "sparse_density": dict(self.sparse_density),
        }


def dsd_layers(model: nn.Module, keep_first_conv: bool) -> list[str]:
    """The layers DSD prunes: every Conv2d/Linear layer, less the first Conv2d if asked."""
    layers = compressible_layers(model)
    first_conv = next((n for n, m in layers.items() if isinstance(m, nn.Conv2d)), None)
    return [n for n in layers if not (keep_first_conv and n == first_conv)]


def dsd_train(
    model: nn.Module,
    data: Dataset,
    config: DSDConfig,
    train_config: TrainConfig,
    *,
    progress: bool = True,
) -> DSDResult:
    """Dense → sparse → dense training of ``model`` in place (Han et al. 2017, §2).

    Each phase is a :func:`~netshrink.train.train` run with ``train_config`` and that
    phase's epochs (a fresh optimizer and schedule per phase). The sparse phase prunes to
    ``config.sparsity`` by magnitude and keeps the pruned weights at zero; the re-dense
    phase drops all masks (including any the model had before) and trains at
    ``lr * redense_lr_scale``.
    """
    dense = None
    if config.dense_epochs > 0:
        dense_config = replace(train_config, epochs=config.dense_epochs)
        dense = train(model, data, dense_config, progress=progress, desc="DSD dense")

    names = dsd_layers(model, config.keep_first_conv)
    settings = {name: ("sparsity", config.sparsity) for name in names}
    set_masks_(model, compute_masks(compressible_layers(model), settings))
    sparse_config = replace(train_config, epochs=config.sparse_epochs)
    sparse = train(
        model, data, sparse_config, progress=progress, after_step=apply_masks_, desc="DSD sparse"
    )
    sparse_density = layer_density(model)

    remove_masks_(model)
    redense_config = replace(
        train_config,
        epochs=config.redense_epochs,
        lr=train_config.lr * config.redense_lr_scale,
    )
    redense = train(model, data, redense_config, progress=progress, desc="DSD re-dense")
    return DSDResult(dense, sparse, redense, sparse_density)
