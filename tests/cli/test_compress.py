"""``netshrink compress | inspect | eval FILE.nsz | unpack | sensitivity`` from the CLI."""

import json

import pytest

from netshrink.cli import main
from tests.cli.helpers import one_line_error, run

RECIPE = """
name: test
stages:
  - prune:
      sparsity: {fc1: 0.9, fc2: 0.8, fc3: 0.5}
      retrain: {epochs: 1, lr: 0.0005}
  - quantize:
      fc_bits: 5
      finetune: {epochs: 1, lr: 0.0001}
  - encode: {fc_index_bits: 4}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    args = ["train", "lenet300_100", "--data", "digits", "--epochs", "2", "--out", out]
    assert main([str(a) for a in args]) == 0
    return out / "model.pt"


def test_compress_inspect_eval_unpack(capsys, tmp_path, trained):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    nsz = tmp_path / "out" / "m.nsz"
    code, out, err = run(capsys, "compress", trained, "--recipe", recipe, "--out", nsz, "--quiet")
    assert code == 0, err
    assert "fc1" in out and "compression" in out and "test top-1" in out
    assert (tmp_path / "out" / "m.recipe.yaml").is_file()
    record = json.loads((tmp_path / "out" / "m.json").read_text())
    assert record["compression"]["file_bytes"] == nsz.stat().st_size

    code, out, _ = run(capsys, "inspect", nsz, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["file_bytes"] == nsz.stat().st_size
    assert report["dense_bytes"] == 4 * 266_610  # LeNet-300-100, papers.md
    assert report["ratio"] == pytest.approx(report["dense_bytes"] / report["file_bytes"])
    assert [row["name"] for row in report["layers"]] == ["fc1", "fc2", "fc3"]
    assert report["layers"][0]["density"] == pytest.approx(0.1, abs=1e-3)

    code, out, _ = run(capsys, "eval", nsz, "--data", "digits", "--json", "--repeats", "3")
    assert code == 0
    from_file = json.loads(out)
    unpacked = tmp_path / "u.pt"
    assert run(capsys, "unpack", nsz, "--out", unpacked)[0] == 0
    code, out, _ = run(capsys, "eval", unpacked, "--data", "digits", "--json", "--repeats", "3")
    from_ckpt = json.loads(out)
    assert set(from_ckpt) <= set(from_file)
    assert from_file["top1"] == from_ckpt["top1"] == pytest.approx(record["metrics"]["test_top1"])


def test_compress_a_registered_model_without_data(capsys, tmp_path):
    nsz = tmp_path / "s.nsz"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages: [{prune: {sparsity: {'*': 0.5}}}, {quantize: {conv_bits: 4}}]")
    code, out, err = run(capsys, "compress", "--model", "lenet5", "--input", "1x28x28",
                         "--recipe", recipe, "--data", "none", "--out", nsz, "--quiet")  # fmt: skip
    assert code == 0, err
    assert "test top-1" not in out  # no data: nothing evaluated
    code, out, _ = run(capsys, "inspect", nsz)
    assert code == 0 and "lenet5" in out


def test_bad_input_gets_one_line_errors_and_leaves_no_file(capsys, tmp_path, trained, monkeypatch):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.replace("fc3: 0.5", "fc9: 0.5"))
    nsz = tmp_path / "m.nsz"
    one_line_error(*run(capsys, "compress", trained, "--recipe", recipe, "--out", nsz)[::2], "fc9")
    recipe.write_text(RECIPE.replace("fc_bits: 5", "fc_bits: 17"))
    one_line_error(*run(capsys, "compress", trained, "--recipe", recipe, "--out", nsz)[::2], "17")
    recipe.write_text(RECIPE)
    code, _, err = run(capsys, "compress", "--recipe", recipe, "--out", nsz)
    one_line_error(code, err, "CHECKPOINT or --model")

    # Interrupted while compressing: no .nsz, no temporary file left behind; only the
    # finished stages, kept for --resume (tests/runs/test_compress_resume.py).
    import netshrink.runs.compress as compress_module

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(compress_module, "share_weights_", interrupt)
    code, _, err = run(capsys, "compress", trained, "--recipe", recipe, "--out", nsz, "--quiet")
    assert code == 130
    assert sorted(tmp_path.iterdir()) == [tmp_path / ".m.nsz.resume", recipe]
    assert [p.name for p in (tmp_path / ".m.nsz.resume").iterdir()] == ["state.pt"]

    bad = tmp_path / "bad.nsz"
    bad.write_bytes(b"\x89NSZ\r\n\x1a\n\x01\x00\x00\x00garbage")
    one_line_error(*run(capsys, "inspect", bad)[::2], "bad.nsz")
    one_line_error(*run(capsys, "eval", bad, "--data", "digits")[::2], "bad.nsz")


def test_sensitivity_writes_table_json_and_plot(capsys, tmp_path, trained):
    out = tmp_path / "sens"
    code, text, err = run(capsys, "sensitivity", trained, "--data", "digits",
                          "--sparsities", "0", "0.5", "0.9", "--out", out)  # fmt: skip
    assert code == 0, err
    data = json.loads((out / "sensitivity.json").read_text())
    assert set(data["suggested"]) == {"fc1", "fc2", "fc3"}
    assert (out / "sensitivity.png").stat().st_size > 0
    assert "fc1" in text


def test_sensitivity_max_drop_is_in_points(capsys, tmp_path, trained):
    def suggested(points):
        out = tmp_path / f"sens{points}"
        code, _, err = run(capsys, "sensitivity", trained, "--data", "digits", "--sparsities",
                           "0", "0.5", "0.99", "--max-drop", points, "--out", out)  # fmt: skip
        assert code == 0, err
        data = json.loads((out / "sensitivity.json").read_text())
        return data, data["suggested"]

    data, strict = suggested("0")
    assert data["max_drop"] == 0
    # Independently: with a zero budget, a layer's suggestion keeps the baseline's accuracy.
    for layer, sparsity in strict.items():
        curve = dict(zip(data["sparsities"], data["accuracy"][layer], strict=True))
        assert sparsity == 0.0 or curve[sparsity] >= data["baseline"] - 1e-9, layer
    _, loose = suggested("100")  # any accuracy is within 100 points: the highest sparsity
    assert set(loose.values()) == {0.99}
    code, _, err = run(capsys, "sensitivity", trained, "--data", "digits", "--max-drop", "500",
                       "--out", tmp_path / "bad")  # fmt: skip
    assert code == 2 and "percentage points (0-100), got 500" in err
    assert not (tmp_path / "bad").exists()


def test_dsd_from_the_cli(capsys, tmp_path, trained):
    out = tmp_path / "dsd"
    code, text, err = run(capsys, "dsd", trained, "--data", "digits", "--sparse-epochs", "1",
                          "--redense-epochs", "1", "--out", out)  # fmt: skip
    assert code == 0, err
    record = json.loads((out / "metrics.json").read_text())
    assert record["dsd"]["sparse_density"]["fc1"] == pytest.approx(0.7, abs=1e-3)
    assert "after" in text and (out / "model.pt").is_file()
    code, _, err = run(capsys, "dsd", trained, "--sparsity", "1.5", "--out", out)
    one_line_error(code, err, "sparsity")
