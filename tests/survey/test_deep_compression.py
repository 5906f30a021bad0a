"""Deep Compression and DSD rows of the survey: the files, the paper's densities, figures."""

import pytest
import torch
import yaml

from netshrink.data import load_dataset
from netshrink.errors import NetshrinkError
from netshrink.nsz import compression_report, read_nsz, unpack
from netshrink.runs.recipe import SHIPPED
from netshrink.survey import SurveyConfig, SurveyContext
from netshrink.train import evaluate

COMPRESSED = ("lenet5_pruned", "lenet5_pq", "lenet5_dc", "squeezenet1_0_dc")
# SqueezeNet paper, Table 1: weights kept (a sample of the layers).
SQUEEZENET_KEPT = {
    "features.conv1": 1.0,
    "features.fire2.squeeze": 1.0,
    "features.fire3.expand3x3": 0.33,
    "features.fire6.expand1x1": 0.5,
    "features.fire9.expand3x3": 0.3,
    "classifier.conv10": 0.2,
}


@pytest.fixture(scope="module")
def rows(quick_survey):
    return {r["key"]: r for r in quick_survey.results["rows"]}


def _density(path):
    return {r.name: r.density for r in compression_report(read_nsz(path)).layers}


def test_compressed_rows_are_their_files(quick_survey, rows):
    folder = quick_survey.out / "deep_compression"
    for key in COMPRESSED:
        row, base = rows[key], rows[rows[key]["baseline"]]
        assert row["size_bytes"] == (folder / f"{key}.nsz").stat().st_size, key
        assert row["compression_ratio"] == pytest.approx(base["size_bytes"] / row["size_bytes"])
        assert row["compression_ratio"] > 1, key
        assert row["approach"] == "weights" and row["targets_speed"]  # on the auto engine
        assert "layers sparse" in row["notes"]
        for suffix in (".json", ".txt", ".recipe.yaml"):
            assert (folder / f"{key}{suffix}").stat().st_size > 0, (key, suffix)
    assert rows["squeezenet1_0_dc"]["baseline"] == "alexnet"
    # Each stage shrinks the file: P > P+Q > P+Q+H (Deep Compression, Fig. 1).
    sizes = [rows[k]["size_bytes"] for k in ("lenet5", "lenet5_pruned", "lenet5_pq", "lenet5_dc")]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4


def _recipe(name):
    return yaml.safe_load((SHIPPED / f"{name}.yaml").read_text())["stages"]


def test_pruned_layers_have_the_recipes_densities(quick_survey):
    folder = quick_survey.out / "deep_compression"
    # LeNet-5 follows the shipped recipe (tuned on mnist5k away from the paper's Table 3).
    kept = {k: 1 - v for k, v in _recipe("lenet5")[0]["prune"]["sparsity"].items()}
    for key in ("lenet5_pruned", "lenet5_dc"):
        assert _density(folder / f"{key}.nsz") == pytest.approx(kept, abs=1e-3), key
    squeezenet = _density(folder / "squeezenet1_0_dc.nsz")
    assert {k: squeezenet[k] for k in SQUEEZENET_KEPT} == pytest.approx(SQUEEZENET_KEPT, abs=5e-3)


def test_huffman_is_lossless_and_metrics_are_of_the_unpacked_model(quick_survey, rows):
    folder = quick_survey.out / "deep_compression"
    pq, dc = unpack(folder / "lenet5_pq.nsz"), unpack(folder / "lenet5_dc.nsz")
    for name, tensor in pq.state_dict().items():
        assert torch.equal(tensor, dc.state_dict()[name]), name
    assert rows["lenet5_pq"]["top1"] == rows["lenet5_dc"]["top1"]
    # Re-measure on the survey's test split, loaded here independently.
    config = quick_survey.results["config"]
    data = load_dataset(
        config["data"], input_size=(1, 28, 28), seed=config["seed"], limit=config["image_limit"]
    )
    assert evaluate(dc, data.test)["top1"] == rows["lenet5_dc"]["top1"]


def test_retraining_scales_with_the_survey(quick_survey):
    # A recipe's epochs * train_epochs / 4 (the full survey's epochs), rounded down, at most
    # train_epochs; below one epoch, no retraining.
    train_epochs = quick_survey.results["config"]["train_epochs"]
    folder = quick_survey.out / "deep_compression"
    for name, key in (("lenet5", "lenet5_dc"), ("squeezenet1_0_table1", "squeezenet1_0_dc")):
        shipped = _recipe(name)
        used = yaml.safe_load((folder / f"{key}.recipe.yaml").read_text())["stages"]
        for stage, kind, part in ((0, "prune", "retrain"), (1, "quantize", "finetune")):
            epochs = shipped[stage][kind][part]["epochs"]
            expected = min(epochs * train_epochs // 4, train_epochs)
            scaled = used[stage][kind][part]
            assert (scaled["epochs"] if scaled else 0) == expected, (name, part)


def test_dsd_row_is_dense(rows):
    dsd, base = rows["lenet5_dsd"], rows["lenet5"]
    assert dsd["params"] == base["params"] and dsd["compression_ratio"] == 1.0
    assert 0.0 <= dsd["top1"] <= 1.0


def test_figures_are_listed_and_embedded(quick_survey):
    figures = {f["key"]: f for f in quick_survey.results["figures"]}
    assert set(figures) >= {
        "lenet5_weight_histogram",
        "lenet5_density",
        "lenet5_sensitivity",
        "lenet5_fc1_codebook",
        "squeezenet1_0_density",
    }
    for figure in figures.values():
        assert figure["title"] in quick_survey.html
        assert (quick_survey.out / figure["file"]).read_bytes().startswith(b"\x89PNG")


def test_figures_need_a_unique_plain_key(tmp_path):
    ctx = SurveyContext(SurveyConfig(out=str(tmp_path)))
    ctx.add_figure("a_figure", "A", b"\x89PNG")
    with pytest.raises(NetshrinkError, match="twice"):
        ctx.add_figure("a_figure", "A again", b"\x89PNG")
    with pytest.raises(ValueError, match="file name"):
        ctx.add_figure("../escape", "B", b"\x89PNG")
