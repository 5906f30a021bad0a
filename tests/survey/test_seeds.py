"""Multi-seed survey rows: the further seeds' runs, their mean ± sd, single-seed marks."""

import hashlib
import json
import statistics

import pytest

from netshrink.cli import main
from netshrink.runs.checkpoint import load_checkpoint
from netshrink.runs.load import load_trained
from netshrink.survey import SurveyConfig, list_entries
from netshrink.survey.report import render_rows
from netshrink.survey.survey import run_survey
from netshrink.train import evaluate


def test_every_multi_seed_entry_builds_only_on_multi_seed_entries_or_trains_its_own():
    multi = {e.key for e in list_entries() if e.multi_seed}
    assert {"lenet5", "lenet5_bwn", "lenet5_xnor", "lenet5_pruned", "lenet5_pq", "lenet5_dc",
            "mlp2x800_alone", "mlp2x800_distilled", "mlp2x30_distilled"} <= multi  # fmt: skip
    entries = {e.key: e for e in list_entries()}
    for key in multi:  # a row's spread is against a baseline with one, or one shared by all
        base = entries[entries[key].baseline]
        assert base.multi_seed or base.key in base.shared_runs, key


def test_further_seeds_students_learn_from_the_first_seeds_teacher(tmp_path):
    config = SurveyConfig(out=str(tmp_path), quick=True, seeds=2, limit=300,
                          only=("mlp2x800_distilled",), table1=False, onnx=False,
                          latency_repeats=2)  # fmt: skip
    result = run_survey(config, progress=False)
    rows = {r.key: r for r in result.rows}
    assert len(rows["mlp2x800_distilled"].top1_seeds) == 2
    assert len(rows["mlp_teacher"].top1_seeds) == 1  # trained once, shared
    seed1 = tmp_path / "seeds" / "seed1" / "runs"
    assert not (seed1 / "mlp_teacher").exists()
    student = load_checkpoint(seed1 / "mlp2x800_distilled_T20" / "model.pt")
    assert student.config["train"]["seed"] == 1
    teacher = (tmp_path / "runs" / "mlp_teacher" / "model.pt").read_bytes()
    (recorded,) = student.config["distill"]["teachers"]
    assert recorded["sha256"] == hashlib.sha256(teacher).hexdigest()


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    out = tmp_path_factory.mktemp("seeds")
    config = SurveyConfig(out=str(out), quick=True, seeds=2, only=("lenet5", "lenet5_fp16"),
                          table1=False, onnx=False, latency_repeats=2)  # fmt: skip
    return out, run_survey(config, progress=False)


def test_further_seeds_are_trained_and_averaged(two_seeds):
    out, result = two_seeds
    rows = {r.key: r for r in result.rows}
    lenet5 = rows["lenet5"]
    assert lenet5.seeds == [0, 1] and len(lenet5.top1_seeds) == 2
    first = load_checkpoint(out / "runs" / "lenet5" / "model.pt")
    second = load_checkpoint(out / "seeds" / "seed1" / "runs" / "lenet5" / "model.pt")
    assert first.config["train"]["seed"] == 0 and second.config["train"]["seed"] == 1
    assert lenet5.top1_seeds == [first.metrics["test_top1"], second.metrics["test_top1"]]
    assert lenet5.top1 == pytest.approx(statistics.fmean(lenet5.top1_seeds))
    assert lenet5.top1_std == pytest.approx(statistics.stdev(lenet5.top1_seeds))
    # The second seed's accuracy is its network's: evaluated afresh.
    trained = load_trained(out / "seeds" / "seed1" / "runs" / "lenet5" / "model.pt")
    data = trained.load_data(limit=1200)  # the quick survey's images
    assert evaluate(trained.model, data.test)["top1"] == pytest.approx(lenet5.top1_seeds[1])
    fp16 = rows["lenet5_fp16"]  # not multi-seed: one value, said so
    assert len(fp16.top1_seeds) == 1 and fp16.top1_std is None and fp16.seeds == [0]
    table = render_rows(result.rows)
    assert f"{100 * lenet5.top1:.2f} ± {100 * lenet5.top1_std:.2f} (2 seeds)" in table
    assert f"{100 * fp16.top1:.2f} (1 seed)" in table


def test_results_record_every_seed(two_seeds):
    _, result = two_seeds
    record = json.loads(json.dumps(result.to_dict()))
    row = next(r for r in record["rows"] if r["key"] == "lenet5")
    assert row["top1_seeds"] == result.rows[0].top1_seeds and row["top1_std"] is not None
    assert record["config"]["seed_list"] == [0, 1]


def test_seeds_with_no_multi_seed_row_selected_is_refused(capsys, tmp_path):
    code = main(["survey", "--only", "squeezenet1_1", "--seeds", "3", "--out",
                 str(tmp_path / "s")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--seeds 3: none of the selected rows" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--seeds", "0"], "argument --seeds: expected a positive integer, got 0"),
        (["--seeds", "101"], "--seeds must be in [1, 100], got 101"),
    ],
)
def test_bad_seed_counts_are_one_line_errors(capsys, tmp_path, argv, needle):
    try:
        code = main(["survey", "--quick", "--out", str(tmp_path / "s"), *argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()
