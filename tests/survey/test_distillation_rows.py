"""Distillation and SqueezeNet bypass rows of the survey, and their figures."""

import pytest
import torch
import yaml

from netshrink.data import load_dataset
from netshrink.runs.checkpoint import load_checkpoint
from netshrink.train import evaluate

DISTILL = ("mlp_teacher", "mlp2x800_alone", "mlp2x800_distilled", "mlp2x30_alone",
           "mlp2x30_distilled")  # fmt: skip
BYPASS = ("squeezenet1_0_lsuv", "squeezenet1_0_bypass", "squeezenet1_0_bypass_complex")


@pytest.fixture(scope="module")
def rows(quick_survey):
    return {r["key"]: r for r in quick_survey.results["rows"]}


def test_distillation_rows_compare_students_with_the_teacher(rows):
    teacher = rows["mlp_teacher"]
    assert teacher["params"] == 2_395_210
    for key in DISTILL[1:]:
        row = rows[key]
        assert row["baseline"] == "mlp_teacher"
        assert row["compression_ratio"] == pytest.approx(teacher["size_bytes"] / row["size_bytes"])
    assert rows["mlp2x800_alone"]["params"] == rows["mlp2x800_distilled"]["params"] == 1_276_810
    assert rows["mlp2x30_distilled"]["params"] == 24_790
    assert "T=20" in rows["mlp2x800_distilled"]["method"]
    assert "the teacher scores" in rows["mlp2x800_distilled"]["notes"]


def test_distilled_run_records_its_teacher_and_its_accuracy_is_real(quick_survey, rows):
    runs = quick_survey.out / "runs"
    config = yaml.safe_load((runs / "mlp2x800_distilled_T20" / "config.yaml").read_text())
    (teacher,) = config["distill"]["teachers"]
    assert teacher["model"] == "mlp2x1200" and len(teacher["sha256"]) == 64
    assert config["distill"]["teacher_paths"] == [
        str((runs / "mlp_teacher" / "model.pt").resolve())
    ]
    assert config["distill"]["temperature"] == 20.0 and config["distill"]["alpha"] == 0.9
    assert config["train"]["augment"] is False  # teacher targets cached
    teacher_config = yaml.safe_load((runs / "mlp_teacher" / "config.yaml").read_text())
    assert teacher_config["train"]["augment"] is True  # the teacher's input jitter
    # The row's accuracy is the checkpoint's, evaluated again on the survey's test split.
    ckpt = load_checkpoint(runs / "mlp2x800_distilled_T20" / "model.pt")
    data = load_dataset(ckpt.data, input_size=ckpt.input_size, seed=0, limit=ckpt.config["limit"])
    assert evaluate(ckpt.build(), data.test)["top1"] == pytest.approx(
        rows["mlp2x800_distilled"]["top1"]
    )


def test_temperature_sweep_figure_has_every_run(quick_survey):
    figures = {f["key"]: f for f in quick_survey.results["figures"]}
    assert "distillation_temperature" in figures and "squeezenet_bypass" in figures
    for key in figures:
        assert (quick_survey.out / figures[key]["file"]).read_bytes()[:4] == b"\x89PNG"
    runs = quick_survey.out / "runs"
    for student in ("mlp2x800", "mlp2x30"):
        for t in ("1", "2", "4", "8", "20"):
            assert (runs / f"{student}_distilled_T{t}" / "model.pt").is_file()


def test_bypass_rows(rows):
    none, simple, complex_ = (rows[k] for k in BYPASS)
    assert none["baseline"] == "squeezenet1_0"
    assert none["params"] == rows["squeezenet1_0"]["params"]  # the init changes no shape
    assert simple["params"] == none["params"]  # identity shortcuts add nothing
    # Complex bypass: 1x1 convs (with bias) on fire2, 4, 6, 8 at 28x28 with 1 input channel.
    added = (96 * 128 + 128) + (128 * 256 + 256) + (256 * 384 + 384) + (384 * 512 + 512)
    assert complex_["params"] == none["params"] + added
    for row in (simple, complex_):
        assert row["baseline"] == "squeezenet1_0_lsuv"  # the same init, no bypass
        assert row["compression_ratio"] == pytest.approx(none["size_bytes"] / row["size_bytes"])
        assert torch.isfinite(torch.tensor(row["top1"]))
