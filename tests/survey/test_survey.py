"""`netshrink survey --quick`: end to end on the embedded data, outputs and reuse."""

import csv

import pytest

from netshrink.cli import main
from netshrink.models import create
from netshrink.profile import count_macs, count_params
from netshrink.survey import list_entries


def test_quick_survey_writes_every_output(survey_dir, quick_survey):
    for name in (
        "report.html",
        "results.json",
        "results.csv",
        "survey.yaml",
        "accuracy_vs_size.png",
        "accuracy_vs_macs.png",
        "speedup_theoretical_vs_measured.png",
    ):
        assert (survey_dir / name).stat().st_size > 0, name
    figures = quick_survey.results["figures"]
    for figure in figures:  # contributed by entries: written and embedded after the plots
        assert (survey_dir / figure["file"]).read_bytes().startswith(b"\x89PNG"), figure
    assert quick_survey.html.count("data:image/png;base64,") == 3 + len(figures)
    assert not list(survey_dir.glob("*.tmp")) and not list(survey_dir.glob(".*.tmp"))


def test_rows_are_measured_not_declared(survey_dir, quick_survey):
    data = quick_survey.results
    rows = {r["key"]: r for r in data["rows"]}
    assert set(rows) == {e.key for e in list_entries() if e.quick}
    base = rows["alexnet"]
    assert base["compression_ratio"] == 1.0 and base["speedup_theoretical"] == 1.0
    for row in rows.values():
        assert 0.0 <= row["top1"] <= 1.0
        assert all(v > 0 for v in row["latency_ms"].values())
        assert set(row["latency_ms"]) == {"1", "64"}
    # Recount SqueezeNet's row independently: small stem on 1x28x28, 10 classes.
    sq = create("squeezenet1_0", num_classes=10, in_chans=1, small_input=True)
    assert rows["squeezenet1_0"]["params"] == count_params(sq)
    assert rows["squeezenet1_0"]["macs"] == count_macs(sq, (1, 28, 28))
    ratio = base["size_bytes"] / rows["squeezenet1_0"]["size_bytes"]
    assert rows["squeezenet1_0"]["compression_ratio"] == pytest.approx(ratio)
    assert rows["squeezenet1_0"]["speedup_theoretical"] == pytest.approx(
        base["macs"] / rows["squeezenet1_0"]["macs"]
    )
    # Table 1 at ImageNet shape carries the published counts.
    t1 = {r["model"]: r for r in data["table1"]}
    assert t1["vgg16"]["params"] == 138_357_544
    assert t1["alexnet"]["macs"] == 714_188_480
    with open(survey_dir / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)


def test_rerun_reuses_finished_training(survey_dir, capsys):
    ckpt = survey_dir / "runs" / "squeezenet1_0" / "model.pt"
    before = ckpt.stat().st_mtime_ns
    assert (
        main(
            [
                "survey",
                "--quick",
                "--out",
                str(survey_dir),
                "--only",
                "squeezenet1_0",
                "--no-table1",
                "--repeats",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "reused" in out
    assert ckpt.stat().st_mtime_ns == before
