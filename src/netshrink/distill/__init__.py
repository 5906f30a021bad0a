"""Knowledge distillation (Hinton et al. 2015): soft targets at temperature T."""

from netshrink.distill.distill import (
    DistillConfig,
    Ensemble,
    check_teachers,
    distill,
    teacher_targets,
)
from netshrink.distill.loss import distillation_loss, soft_cross_entropy, soft_targets

__all__ = [
    "DistillConfig",
    "Ensemble",
    "check_teachers",
    "distill",
    "distillation_loss",
    "soft_cross_entropy",
    "soft_targets",
    "teacher_targets",
]
