"""Study planning, parameter parsing, the summary's statistics and a trial that resumes."""

import importlib
import statistics

import pytest
import torch

from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.runs.checkpoint import load_checkpoint
from netshrink.sweep import Group, SweepConfig, TrialOutcome, parse_params, summarize
from netshrink.sweep.studies import plan
from netshrink.sweep.trials import train_trial


def test_parse_params_types_values_in_order():
    grid = parse_params("squeezenet", ["squeeze_ratio=0.125, 0.25,1", "bypass=none,complex"])
    assert grid == {"squeeze_ratio": [0.125, 0.25, 1.0], "bypass": ["none", "complex"]}
    assert parse_params("squeezenet", ["base_e=64,96"]) == {"base_e": [64, 96]}


@pytest.mark.parametrize(
    ("pairs", "needle"),
    [
        (["squeez_ratio=0.5"], "unknown sweep parameter 'squeez_ratio' for squeezenet (known:"),
        (["squeeze_ratio="], "sweep parameter 'squeeze_ratio' has an empty value list"),
        (["squeeze_ratio=,"], "has an empty value list"),
        (["squeeze_ratio"], "--param expects NAME=V1,V2,..."),
        (["squeeze_ratio=half"], "squeeze_ratio expects float values, got 'half'"),
        (["base_e=1.5"], "base_e expects int values"),
        (["bypass=full"], "bypass must be one of none, simple, complex, got 'full'"),
        (["init=xavier"], "init must be one of kaiming, lsuv, got 'xavier'"),
        (["pct3x3=0.5", "pct3x3=0.25"], "given twice"),
        (["pct3x3=0.5,0.5"], "repeats a value"),
    ],
)
def test_bad_params_are_one_line_errors(pairs, needle):
    with pytest.raises(NetshrinkError, match=None) as info:
        parse_params("squeezenet", pairs)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_unknown_study():
    with pytest.raises(NetshrinkError, match="unknown sweep study 'resnet'"):
        parse_params("resnet", [])


def test_squeezenet_plan_is_the_grid_times_seeds(tmp_path):
    config = SweepConfig(
        "squeezenet",
        {"squeeze_ratio": [0.25, 0.5], "bypass": ["none", "simple", "complex"]},
        seeds=2, out=str(tmp_path),
    )  # fmt: skip
    trials, groups = plan(config)
    assert len(trials) == 12 and len(groups) == 6
    assert groups[1].label == "squeeze_ratio=0.25, bypass=simple"
    assert groups[1].keys == (
        "squeeze_ratio=0.25,bypass=simple,seed=0",
        "squeeze_ratio=0.25,bypass=simple,seed=1",
    )
    first = trials[0].kwargs
    assert first["model"] == "squeezenet1_0"
    assert first["model_args"] == {"squeeze_ratio": 0.25, "bypass": "none"}
    assert first["train"]["epochs"] == 6 and first["train"]["seed"] == 0
    assert trials[1].kwargs["train"]["seed"] == 1


def test_squeezenet_init_reaches_the_model(tmp_path):
    grid = parse_params("squeezenet", ["bypass=complex", "init=kaiming,lsuv"])
    trials, groups = plan(SweepConfig("squeezenet", grid, out=str(tmp_path)))
    assert [g.label for g in groups] == [
        "bypass=complex, init=kaiming",
        "bypass=complex, init=lsuv",
    ]
    assert trials[1].kwargs["model_args"] == {"bypass": "complex", "init": "lsuv"}


def test_squeezenet_values_the_model_refuses_fail_before_running(tmp_path):
    out = tmp_path / "sweep"
    with pytest.raises(NetshrinkError, match="pct3x3 must lie in"):
        plan(SweepConfig("squeezenet", {"pct3x3": [0.5, 1.0]}, out=str(out)))
    assert not out.exists()


def test_distill_plan_teachers_students_and_dependencies(tmp_path):
    config = SweepConfig(
        "distill", {"student": ["mlp2x800", "mlp2x30"], "temperature": [2.0, 20.0]},
        seeds=3, out=str(tmp_path),
    )  # fmt: skip
    trials, groups = plan(config)
    by_key = {t.key: t for t in trials}
    assert len(trials) == 3 + 2 * 3 + 4 * 3
    assert [g.role for g in groups] == ["teacher", "alone", "alone"] + ["distilled"] * 4
    teacher = by_key["teacher,seed=1"]
    assert teacher.kwargs["model"] == "mlp2x1200" and teacher.kwargs["train"]["augment"]
    assert not by_key["alone,student=mlp2x30,seed=1"].kwargs["train"]["augment"]
    distilled = by_key["distilled,student=mlp2x30,temperature=20.0,alpha=0.9,seed=1"]
    assert distilled.depends == ("teacher,seed=1",)
    assert distilled.kwargs["teacher"] == "teacher,seed=1"  # a sibling trial folder
    assert distilled.kwargs["temperature"] == 20.0 and distilled.kwargs["alpha"] == 0.9


@pytest.mark.parametrize(
    ("grid", "needle"),
    [
        ({"temperature": [4.0, 0.0]}, "temperature must be > 0"),
        ({"alpha": [1.2]}, "alpha must lie in [0, 1]"),
        ({"student": ["mlp2x80"]}, "unknown model 'mlp2x80'"),
    ],
)
def test_distill_bad_values(tmp_path, grid, needle):
    with pytest.raises(NetshrinkError) as info:
        plan(SweepConfig("distill", grid, out=str(tmp_path)))
    assert needle in str(info.value)


def test_summary_statistics_and_gap_closed():
    def done(top1):
        return TrialOutcome("k", "done", {"test_top1": top1, "test_n": 1000, "params": 7}, None, 1)

    tops = {
        "teacher": [0.98, 0.97, 0.975],
        "alone": [0.95, 0.94, 0.955],
        "dist": [0.97, 0.96, 0.96],
    }
    outcomes = {f"{name},{i}": done(t) for name, ts in tops.items() for i, t in enumerate(ts)}
    outcomes["dist,2"] = TrialOutcome("dist,2", "failed", None, "boom", 1)
    groups = [
        Group("teacher", "teacher", {"student": "t"}, ("teacher,0", "teacher,1", "teacher,2")),
        Group("alone", "alone", {"student": "s"}, ("alone,0", "alone,1", "alone,2")),
        Group("dist", "distilled", {"student": "s"}, ("dist,0", "dist,1", "dist,2")),
    ]
    teacher, alone, dist = summarize(groups, outcomes)
    want = [100 * (1 - t) for t in tops["alone"]]
    assert alone.error_mean == pytest.approx(statistics.fmean(want))
    assert alone.error_std == pytest.approx(statistics.stdev(want))
    assert dist.seeds_ok == 2 and dist.seeds == 3  # the failed seed is left out, and said
    teacher_err = statistics.fmean(100 * (1 - t) for t in tops["teacher"])
    dist_err = statistics.fmean([3.0, 4.0])
    gap = (alone.error_mean - dist_err) / (alone.error_mean - teacher_err)
    assert dist.gap_closed == pytest.approx(gap)
    assert teacher.gap_closed is None and alone.gap_closed is None


def test_interrupted_trial_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    train_module = importlib.import_module("netshrink.train")  # ns.train is the function

    kwargs = {
        "model": "lenet300_100", "model_args": {}, "data": "digits", "limit": 300,
        "train": {"epochs": 2, "seed": 0, "batch_size": 32},
    }  # fmt: skip
    train_trial(tmp_path / "whole", **kwargs)
    real = train_module._epoch_generator

    def dies_in_epoch_two(seed, epoch):
        if epoch == 1:
            raise KeyboardInterrupt  # the process is stopped after epoch 1's checkpoint
        return real(seed, epoch)

    monkeypatch.setattr(train_module, "_epoch_generator", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train_trial(tmp_path / "cut", **kwargs)
    assert load_checkpoint(tmp_path / "cut" / "model.pt").train_state["epoch"] == 1
    monkeypatch.setattr(train_module, "_epoch_generator", real)
    result = train_trial(tmp_path / "cut", **kwargs)
    whole = load_checkpoint(tmp_path / "whole" / "model.pt")
    cut = load_checkpoint(tmp_path / "cut" / "model.pt")
    for name, tensor in whole.state_dict.items():
        assert torch.equal(tensor, cut.state_dict[name]), name
    assert result["params"] == sum(p.numel() for p in create("lenet300_100").parameters())


def test_changed_settings_restart_a_trial_instead_of_failing(tmp_path):
    kwargs = {
        "model": "lenet300_100", "model_args": {}, "data": "digits", "limit": 300,
        "train": {"epochs": 1, "seed": 0, "batch_size": 32},
    }  # fmt: skip
    train_trial(tmp_path, **kwargs)
    kwargs["train"]["epochs"] = 2
    train_trial(tmp_path, **kwargs)
    assert load_checkpoint(tmp_path / "model.pt").config["train"]["epochs"] == 2


def test_distill_student_of_another_input_size_fails_before_running(tmp_path):
    from tests.data.test_data import make_cifar_dir

    make_cifar_dir(tmp_path / "cifar")
    config = SweepConfig(
        "distill", {"student": ["squeezenet1_1"]}, data=f"cifar10:{tmp_path / 'cifar'}",
        out=str(tmp_path / "out"),
    )  # fmt: skip
    with pytest.raises(NetshrinkError, match="student squeezenet1_1 takes 3x32x32 inputs but"):
        plan(config)


@pytest.mark.parametrize(
    ("settings", "needle"),
    [({"data": "nosuch"}, "nosuch"), ({"limit": 0}, "--limit must be >= 50")],
)
def test_bad_data_or_limit_fail_before_running(tmp_path, settings, needle):
    with pytest.raises(NetshrinkError, match=needle):
        plan(SweepConfig("squeezenet", {"bypass": ["none"]}, out=str(tmp_path), **settings))
