"""Distillation training: teacher caching, ensembles, compatibility checks, and that soft
targets alone teach a student what the teacher knows."""

import math

import pytest
import torch

from netshrink.data import load_dataset
from netshrink.distill import DistillConfig, Ensemble, check_teachers, distill
from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.train import TrainConfig, evaluate, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", input_size=(1, 28, 28), seed=0)


@pytest.fixture(scope="module")
def teacher(digits):
    torch.manual_seed(0)
    model = create("mlp2x1200", hidden=256)
    train(model, digits, TrainConfig(epochs=4, seed=0), progress=False)
    return model.eval()


class _Counting(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def _student(seed=0):
    torch.manual_seed(seed)
    return create("mlp2x30")


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_temperature_must_be_positive(bad):
    with pytest.raises(NetshrinkError, match="temperature"):
        DistillConfig(temperature=bad)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan])
def test_alpha_must_lie_in_unit_interval(bad):
    with pytest.raises(NetshrinkError, match="alpha must lie in"):
        DistillConfig(alpha=bad)


def test_cached_targets_give_the_same_student_as_recomputing(digits, teacher):
    config = TrainConfig(epochs=2, seed=3)
    cached_teacher, live_teacher = _Counting(teacher), _Counting(teacher)
    a, b = _student(), _student()
    distill(a, [cached_teacher], digits, config, DistillConfig(4.0, 0.5), progress=False)
    distill(b, [live_teacher], digits, config, DistillConfig(4.0, 0.5, cache_teacher=False),
            progress=False)  # fmt: skip
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6, msg=name)
    steps = 2 * math.ceil(len(digits.train) / config.batch_size)
    evals = math.ceil(len(digits.val) / 256) + math.ceil(len(digits.test) / 256)
    # check (1 call) + the train split once in batches of 256 + the final teacher scores.
    assert cached_teacher.calls == 1 + math.ceil(len(digits.train) / 256) + evals
    assert live_teacher.calls == 1 + steps + evals


def test_augmented_inputs_are_not_cached(digits, teacher):
    counting = _Counting(teacher)
    config = TrainConfig(epochs=1, seed=0, augment=True)
    distill(_student(), [counting], digits, config, DistillConfig(2.0, 0.5), progress=False)
    assert counting.calls > math.ceil(len(digits.train) / config.batch_size)


def test_soft_targets_alone_teach_the_teacher_s_knowledge(digits, teacher):
    # α = 1: the student never sees a label, only the teacher's soft targets.
    student = _student(1)
    result = distill(
        student, [teacher], digits, TrainConfig(epochs=8, seed=1), DistillConfig(4.0, 1.0),
        progress=False,
    )  # fmt: skip
    teacher_top1 = evaluate(teacher, digits.test)["top1"]
    assert result.metrics["teacher_test_top1"] == pytest.approx(teacher_top1)
    assert teacher_top1 > 0.9
    assert result.metrics["test_top1"] > teacher_top1 - 0.06
    assert not teacher.training  # the fixture's teacher came in eval mode and stays so
    x = next(digits.test.batches(len(digits.test)))[0]
    with torch.no_grad():
        agree = (student.eval()(x).argmax(1) == teacher(x).argmax(1)).float().mean().item()
    assert agree > 0.9


def test_teachers_come_back_in_the_mode_they_came_in(digits):
    teacher = create("mlp2x1200", hidden=32).train()
    distill(_student(), [teacher], digits, TrainConfig(epochs=1), DistillConfig(), progress=False)
    assert teacher.training
    assert all(p.requires_grad for p in teacher.parameters())


def test_ensemble_scores_the_mean_of_probabilities(digits, teacher):
    other = create("mlp2x30")
    x = next(digits.test.batches(16))[0]
    with torch.no_grad():
        got = Ensemble([teacher, other])(x).exp()
        want = (teacher(x).softmax(1) + other(x).softmax(1)) / 2
    torch.testing.assert_close(got, want)


def test_teacher_with_other_classes_is_a_one_line_error(digits):
    with pytest.raises(NetshrinkError, match="teacher 1 predicts 5 classes but digits has 10"):
        check_teachers([create("mlp2x30", num_classes=5)], digits, _student())


def test_teacher_with_other_input_shape_is_a_one_line_error(digits):
    with pytest.raises(NetshrinkError, match="teacher 2 cannot take 1x28x28 inputs"):
        check_teachers([create("mlp2x30"), create("mlp2x30", in_chans=3)], digits)


def test_no_teacher_is_an_error(digits):
    with pytest.raises(NetshrinkError, match="at least one teacher"):
        check_teachers([], digits, _student())
