"""The distillation loss against a float64 NumPy reference and the paper's gradient limits."""

import numpy as np
import pytest
import torch

from netshrink.distill import distillation_loss, soft_cross_entropy, soft_targets


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _reference_loss(z, teachers, y, temperature, alpha):
    p = np.mean([_softmax(v / temperature) for v in teachers], axis=0)
    log_q = np.log(_softmax(z / temperature))
    soft = -(p * log_q).sum(axis=1).mean() * temperature**2
    hard = -np.log(_softmax(z)[np.arange(len(y)), y]).mean()
    return alpha * soft + (1 - alpha) * hard


@pytest.mark.parametrize("temperature", [1.0, 2.5, 20.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("num_teachers", [1, 3])
def test_loss_matches_float64_reference(temperature, alpha, num_teachers):
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (8, 10))
    teachers = [rng.normal(0, 3, (8, 10)) for _ in range(num_teachers)]
    y = rng.integers(0, 10, 8)
    targets = soft_targets([torch.tensor(v) for v in teachers], temperature)
    got = distillation_loss(torch.tensor(z), targets.double(), torch.tensor(y), temperature, alpha)
    want = _reference_loss(z, teachers, y, temperature, alpha)
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_ensemble_targets_average_probabilities_not_logits():
    a, b = torch.tensor([[4.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    got = soft_targets([a, b], 1.0)
    want = (_softmax(np.array([[4.0, 0.0]])) + 0.5) / 2
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    assert got.sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("temperature", [1.0, 4.0, 20.0])
def test_soft_gradient_is_T_times_q_minus_p(temperature):
    # ∂(T² · CE)/∂z = T · (q − p) per example (Hinton et al. §2.1), divided by the batch.
    rng = np.random.default_rng(1)
    z = torch.tensor(rng.normal(0, 2, (5, 7)), requires_grad=True)
    v = torch.tensor(rng.normal(0, 2, (5, 7)))
    p = soft_targets([v], temperature).double()
    (soft_cross_entropy(z, p, temperature) * temperature**2).backward()
    q = _softmax(z.detach().numpy() / temperature)
    want = temperature * (q - p.numpy()) / 5
    np.testing.assert_allclose(z.grad.numpy(), want, rtol=1e-9, atol=1e-12)


def test_high_temperature_gradient_matches_logits():
    # Paper eq. 3 with zero-mean logits: T · (q − p) → (z − v) / K as T grows.
    rng = np.random.default_rng(2)
    z = rng.normal(0, 1, (4, 10))
    v = rng.normal(0, 1, (4, 10))
    z -= z.mean(axis=1, keepdims=True)
    v -= v.mean(axis=1, keepdims=True)
    zt = torch.tensor(z, requires_grad=True)
    temperature = 1e4
    p = soft_targets([torch.tensor(v)], temperature).double()
    (soft_cross_entropy(zt, p, temperature) * temperature**2).backward()
    want = (z - v) / 10 / 4
    np.testing.assert_allclose(zt.grad.numpy(), want, rtol=1e-3, atol=1e-5)


def test_alpha_zero_is_plain_cross_entropy():
    z, y = torch.randn(6, 10), torch.randint(0, 10, (6,))
    p = torch.full((6, 10), 0.1)
    got = distillation_loss(z, p, y, 3.0, 0.0)
    assert torch.allclose(got, torch.nn.functional.cross_entropy(z, y))
