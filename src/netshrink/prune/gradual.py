"""Gradual pruning during training: the automated gradual pruner (AGP).

Zhu & Gupta, "To prune, or not to prune: exploring the efficacy of pruning for model
compression", 2017 (arXiv:1710.01878), §3: sparsity rises from s_i to s_f over n pruning
steps of Δt optimizer steps each, fast at first (many redundant weights) and slowly near
the end, while training goes on and the network recovers between pruning steps.
"""

from __future__ import annotations

from torch import nn

from netshrink import distributed
from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers
from netshrink.prune.magnitude import PruneConfig, apply_masks_, compute_masks, resolve, set_masks_

__all__ = ["GradualPruner", "agp_sparsity"]


def agp_sparsity(
    step: int,
    final_sparsity: float,
    start_step: int,
    end_step: int,
    initial_sparsity: float = 0.0,
) -> float:
    """Sparsity at ``step`` of Zhu & Gupta's schedule (eq. 1)::

        s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_end - t_0)) ** 3

    with t clipped to [t_0, t_end]: s_i before the start, s_f after the end.
    """
    if not 0.0 <= initial_sparsity <= final_sparsity < 1.0:
        raise NetshrinkError(
            "need 0 <= initial sparsity <= final sparsity < 1, "
            f"got {initial_sparsity!r} and {final_sparsity!r}"
        )
    if not end_step > start_step:
        raise NetshrinkError(f"end step {end_step} must be after start step {start_step}")
    progress = min(max((step - start_step) / (end_step - start_step), 0.0), 1.0)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class GradualPruner:
    """Prune to the AGP sparsity every ``frequency`` optimizer steps; use as ``after_step``.

    ``train(model, data, cfg, after_step=GradualPruner(model, config, 0, 1000, 100))``:
    the pruner counts its calls as optimizer steps (``self.step``, the first call is step 1);
    at steps ``start_step + k * frequency`` within [start_step, end_step], and at
    ``end_step`` itself, each layer of ``config.sparsity`` is pruned by magnitude to
    ``agp_sparsity(step, its sparsity, start_step, end_step)``; after every step the masks
    are re-applied. From ``end_step`` on each layer has its final sparsity. Only sparsity
    targets are supported (a quality threshold has no schedule). The step count is not
    saved in checkpoints: set ``self.step`` when resuming.
    """

    def __init__(
        self,
        model: nn.Module,
        config: PruneConfig,
        start_step: int,
        end_step: int,
        frequency: int,
    ) -> None:
        if config.quality:
            raise NetshrinkError(
                "gradual pruning takes sparsity patterns only, got quality patterns "
                f"{list(config.quality)}"
            )
        if not (_is_int(start_step) and start_step >= 0):
            raise NetshrinkError(f"start step must be an integer >= 0, got {start_step!r}")
        if not (_is_int(end_step) and end_step > start_step):
            raise NetshrinkError(f"end step must be an integer > {start_step}, got {end_step!r}")
        if not (_is_int(frequency) and frequency >= 1):
            raise NetshrinkError(f"frequency must be an integer >= 1, got {frequency!r}")
        self.targets = {name: value for name, (_, value) in resolve(model, config).items()}
        self.start_step, self.end_step, self.frequency = start_step, end_step, frequency
        self.step = 0

    def sparsity_at(self, step: int) -> dict[str, float]:
        """The target sparsity of every layer at ``step``."""
        return {
            name: agp_sparsity(step, final, self.start_step, self.end_step)
            for name, final in self.targets.items()
        }

    def __call__(self, model: nn.Module) -> None:
        self.step += 1
        step = self.step
        on_schedule = (step - self.start_step) % self.frequency == 0 or step == self.end_step
        if self.start_step <= step <= self.end_step and on_schedule:
            settings = {name: ("sparsity", s) for name, s in self.sparsity_at(step).items()}
            new = compute_masks(compressible_layers(model), settings)
            for mask in new.values():  # under torchrun: rank 0's masks on every rank
                distributed.broadcast_(mask)
            set_masks_(model, new)
        apply_masks_(model)
