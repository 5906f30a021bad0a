"""``netshrink distill``: one teacher or an ensemble, what the run records, bad input."""

import json

import pytest
import torch
import yaml

from netshrink.cli import main
from netshrink.models import create
from netshrink.runs.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tests.cli.helpers import one_line_error, run


def _train_teacher(out, seed):
    argv = ["train", "mlp2x1200", "--arg", "hidden=128", "--data", "digits", "--epochs", "2",
            "--seed", seed, "--out", out]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    return out / "model.pt"


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    return [_train_teacher(root / f"t{seed}", seed) for seed in (0, 1)]


def _distill(capsys, out, teachers, *extra):
    flags = [x for t in teachers for x in ("--teacher", t)]
    return run(
        capsys, "distill", *flags, "--student", "mlp2x30", "--data", "digits",
        "--epochs", "1", "--quiet", "--out", out, *extra,
    )  # fmt: skip


def test_distill_one_teacher_writes_a_run_that_records_it(capsys, tmp_path, teachers):
    out = tmp_path / "student"
    code, text, err = _distill(capsys, out, teachers[:1], "--temperature", "4", "--alpha", "0.7")
    assert code == 0, err
    assert "teacher: test top-1" in text and "distilled at T=4, alpha=0.7" in text
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["distill"]["temperature"] == 4.0 and config["distill"]["alpha"] == 0.7
    (record,) = config["distill"]["teachers"]
    assert record["model"] == "mlp2x1200" and len(record["sha256"]) == 64
    assert config["distill"]["teacher_paths"] == [str(teachers[0].resolve())]
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    teacher = load_checkpoint(teachers[0])
    assert metrics["teacher_test_top1"] == pytest.approx(teacher.metrics["test_top1"])
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt.model_name == "mlp2x30"
    assert ckpt.config["distill"]["teachers"] == config["distill"]["teachers"]
    assert ckpt.build()(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_distill_from_an_ensemble(capsys, tmp_path, teachers):
    out = tmp_path / "student"
    code, text, err = _distill(capsys, out, teachers, "--temperature", "2", "--alpha", "1")
    assert code == 0, err
    assert "ensemble of 2 teachers" in text
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["distill"]["teacher_paths"] == [str(t.resolve()) for t in teachers]


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--temperature", "0", "--alpha", "0.5"], "temperature must be > 0, got 0.0"),
        (["--temperature", "-2", "--alpha", "0.5"], "temperature must be > 0"),
        (["--temperature", "2", "--alpha", "1.5"], "alpha must lie in [0, 1], got 1.5"),
        (["--temperature", "2", "--alpha", "-0.1"], "alpha must lie in [0, 1]"),
    ],
)
def test_bad_settings_are_one_line_errors_and_write_nothing(capsys, tmp_path, teachers, flags,
                                                             needle):  # fmt: skip
    out = tmp_path / "never"
    code, _, err = _distill(capsys, out, teachers[:1], *flags)
    one_line_error(code, err, needle)
    assert not out.exists()


def _fake_teacher(path, **args):
    model = create("mlp2x30", **args)
    size = (args.get("in_chans", 1), 28, 28)
    save_checkpoint(path, Checkpoint("mlp2x30", args, size, model.state_dict(), "digits", {}, {}))
    return path


def test_teacher_with_other_class_count_is_a_one_line_error(capsys, tmp_path):
    teacher = _fake_teacher(tmp_path / "five.pt", num_classes=5)
    out = tmp_path / "never"
    code, _, err = _distill(capsys, out, [teacher], "--temperature", "2", "--alpha", "0.5")
    one_line_error(code, err, "teacher 1 predicts 5 classes but digits has 10")
    assert not out.exists()


def test_teacher_with_other_input_shape_is_a_one_line_error(capsys, tmp_path):
    teacher = _fake_teacher(tmp_path / "rgb.pt", in_chans=3)
    out = tmp_path / "never"
    code, _, err = _distill(capsys, out, [teacher], "--temperature", "2", "--alpha", "0.5")
    one_line_error(code, err, "takes 3x28x28 inputs but student mlp2x30 takes 1x28x28")
    assert not out.exists()


def test_missing_teacher_file_is_a_one_line_error(capsys, tmp_path):
    code, _, err = _distill(
        capsys, tmp_path / "x", [tmp_path / "nope.pt"], "--temperature", "2", "--alpha", "0.5"
    )
    one_line_error(code, err, "nope.pt does not exist")


def test_student_with_other_class_count_is_a_one_line_error(capsys, tmp_path, teachers):
    out = tmp_path / "never"
    code, _, err = _distill(
        capsys, out, teachers[:1], "--arg", "num_classes=5", "--temperature", "2", "--alpha", "0.5"
    )
    one_line_error(code, err, "mlp2x30 predicts 5 classes but digits has 10")
    assert not out.exists()


def test_teacher_cannot_be_the_run_s_own_output(capsys, tmp_path, teachers):
    code, _, err = _distill(
        capsys, teachers[0].parent, teachers[:1], "--temperature", "2", "--alpha", "0.5"
    )
    one_line_error(code, err, "is the run's own output")


def test_moved_teacher_is_matched_by_content_and_the_run_reused(capsys, tmp_path, teachers):
    import shutil

    out = tmp_path / "student"
    flags = ("--temperature", "2", "--alpha", "0.5")
    assert _distill(capsys, out, teachers[:1], *flags)[0] == 0
    moved = tmp_path / "elsewhere.pt"
    shutil.copy(teachers[0], moved)
    before = (out / "model.pt").stat().st_mtime_ns
    code, _, err = run(
        capsys, "distill", "--teacher", moved, "--student", "mlp2x30", "--data", "digits",
        "--epochs", "1", "--quiet", "--out", out, "--resume", *flags,
    )  # fmt: skip
    assert code == 0, err
    assert (out / "model.pt").stat().st_mtime_ns == before  # finished run kept, not retrained
