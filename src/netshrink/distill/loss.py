"""The distillation objective as pure functions (Hinton, Vinyals & Dean 2015, §2).

With student logits z, teacher logits v and temperature T, the soft targets are
p = softmax(v / T) (for an ensemble: the mean of each teacher's p) and the student's
softened prediction is q = softmax(z / T). The loss is

    L = α · T² · CE(p, q) + (1 − α) · CE(y, softmax(z))

with CE(p, q) = −Σ_k p_k log q_k averaged over the batch. The soft term's gradient is
∂(T² · CE)/∂z_k = T · (q_k − p_k): without the T² factor it would shrink as 1/T, so the
factor keeps the two terms' relative weight when T changes (§2). For T large against the
logits, and logits of zero mean per example, T · (q_k − p_k) → (z_k − v_k) / K: matching
soft targets becomes matching logits (§2.1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["distillation_loss", "soft_cross_entropy", "soft_targets"]


def _wide(v: Tensor) -> torch.dtype:
    # float64 logits keep float64 (reference tests); anything narrower works in float32.
    return torch.float64 if v.dtype == torch.float64 else torch.float32


def soft_targets(teacher_logits: Sequence[Tensor], temperature: float) -> Tensor:
    """Mean over teachers of softmax(v / T): (B, K) probabilities (an ensemble's targets)."""
    if not teacher_logits:
        raise ValueError("need at least one teacher's logits")
    probs = [F.softmax(v / temperature, dim=1, dtype=_wide(v)) for v in teacher_logits]
    return torch.stack(probs).mean(dim=0)  # (B, K)


def soft_cross_entropy(student_logits: Tensor, targets: Tensor, temperature: float) -> Tensor:
    """CE(p, softmax(z / T)) = −Σ_k p_k log softmax(z / T)_k, averaged over the batch."""
    log_q = F.log_softmax(student_logits / temperature, dim=1)  # (B, K)
    return -(targets * log_q).sum(dim=1).mean()


def distillation_loss(
    student_logits: Tensor, targets: Tensor, labels: Tensor, temperature: float, alpha: float
) -> Tensor:
    """α · T² · CE(p, softmax(z / T)) + (1 − α) · CE(y, softmax(z)) (see the module doc)."""
    soft = soft_cross_entropy(student_logits, targets, temperature) * temperature**2
    if alpha == 1.0:
        return soft  # no hard term: labels are not needed
    return alpha * soft + (1.0 - alpha) * F.cross_entropy(student_logits, labels)
