"""``netshrink train --binarize``, ``binarize``, ``eval --engine packed`` and ``inspect``."""

import json

import pytest
import torch

from netshrink.binarize import is_binary
from netshrink.cli import main
from netshrink.nsz import unpack
from netshrink.runs.checkpoint import load_checkpoint
from tests.cli.helpers import one_line_error, run


@pytest.fixture(scope="module")
def float_lenet5(tmp_path_factory):
    out = tmp_path_factory.mktemp("float")
    argv = ["train", "lenet5", "--arg", "order=xnor", "--data", "digits", "--epochs", "2"]
    assert main([str(a) for a in [*argv, "--out", out]]) == 0
    return out / "model.pt"


def test_train_binarize_from_scratch_records_and_rebuilds(capsys, tmp_path):
    out = tmp_path / "xnor"
    code, text, err = run(
        capsys, "train", "lenet5", "--data", "digits", "--epochs", "1", "--binarize", "xnor",
        "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert "xnor: binary layers conv2, fc1" in text
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt.model_args["order"] == "xnor"  # xnor picks the XNOR block order
    assert ckpt.binarize["layers"] == ["conv2", "fc1"] and ckpt.binarize["mode"] == "xnor"
    model = ckpt.build()
    assert [n for n, m in model.named_modules() if is_binary(m)] == ["conv2", "fc1"]


def test_binarize_finetunes_writes_checkpoint_and_1_bit_file(capsys, tmp_path, float_lenet5):
    out = tmp_path / "bwn"
    code, text, err = run(
        capsys, "binarize", float_lenet5, "--mode", "bwn", "--epochs", "1", "--quiet",
        "--out", out,
    )  # fmt: skip
    assert code == 0, err
    assert "binary layers conv2, fc1" in text and "float" in text and "binarized" in text
    for name in ("model.pt", "model.nsz", "config.yaml", "metrics.json"):
        assert (out / name).is_file()
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert {"float_top1", "binarized_top1", "test_top1", "file_bytes"} <= set(metrics)

    ckpt_model = load_checkpoint(out / "model.pt").build()
    file_model = unpack(out / "model.nsz")
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        a, b = ckpt_model(x), file_model(x)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert torch.equal(a.argmax(1), b.argmax(1))

    code, text, _ = run(capsys, "unpack", out / "model.nsz", "--out", out / "unpacked.pt")
    assert code == 0 and "binary layers kept binary" in text
    unpacked = load_checkpoint(out / "unpacked.pt").build()
    assert [n for n, m in unpacked.named_modules() if is_binary(m)] == ["conv2", "fc1"]
    with torch.no_grad():
        assert torch.equal(unpacked(x), b)

    code, text, _ = run(capsys, "inspect", out / "model.nsz", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(text)["layers"]}
    assert rows["fc1"]["encoding"] == "binary"
    assert 1.0 <= rows["fc1"]["bits_per_weight"] < 1.1  # 800 x 500 signs + 500 scales


def test_eval_packed_engine_matches_float_simulation(capsys, tmp_path, float_lenet5):
    out = tmp_path / "xnor"
    code, _, err = run(
        capsys, "binarize", float_lenet5, "--mode", "xnor", "--epochs", "1", "--quiet",
        "--out", out,
    )  # fmt: skip
    assert code == 0, err
    results = {}
    for source in ("model.pt", "model.nsz"):
        for engine in ("float", "packed"):
            code, text, err = run(
                capsys, "eval", out / source, "--data", "digits", "--engine", engine,
                "--repeats", "2", "--json",
            )  # fmt: skip
            assert code == 0, err
            results[source, engine] = json.loads(text)
    assert results["model.nsz", "packed"]["packed_layers"] == ["conv2", "fc1"]
    top1 = {k: v["top1"] for k, v in results.items()}
    assert top1["model.pt", "packed"] == top1["model.pt", "float"]
    assert top1["model.nsz", "packed"] == top1["model.nsz", "float"]


def test_packed_engine_says_once_when_layers_stay_float(capsys, tmp_path, float_lenet5):
    out = tmp_path / "bwn"
    assert main(["binarize", str(float_lenet5), "--mode", "bwn", "--epochs", "0",
                 "--quiet", "--out", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    code, text, err = run(
        capsys, "eval", out / "model.nsz", "--data", "digits", "--engine", "packed",
        "--repeats", "2",
    )  # fmt: skip
    assert code == 0
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "conv2" in notes[0] and "bwn" in notes[0]
    assert "packed engine" in text


def test_dsd_keeps_a_binary_network_binary(capsys, tmp_path, float_lenet5):
    out = tmp_path / "xnor"
    assert main(["binarize", str(float_lenet5), "--mode", "xnor", "--epochs", "0",
                 "--quiet", "--out", str(out)]) == 0  # fmt: skip
    code, _, err = run(
        capsys, "dsd", out / "model.pt", "--sparse-epochs", "1", "--redense-epochs", "1",
        "--limit", "200", "--out", tmp_path / "dsd",
    )  # fmt: skip
    assert code == 0, err
    model = load_checkpoint(tmp_path / "dsd" / "model.pt").build()
    assert [n for n, m in model.named_modules() if is_binary(m)] == ["conv2", "fc1"]


def test_xnor_on_a_network_without_the_xnor_block_order_says_so(capsys, tmp_path):
    code, _, err = run(
        capsys, "train", "lenet300_100", "--data", "digits", "--epochs", "1", "--limit", "200",
        "--binarize", "xnor", "--out", tmp_path / "mlp",
    )  # fmt: skip
    assert code == 0
    assert "note: lenet300_100 is not in XNOR-Net's block order" in err


def test_bad_input_is_one_line_exit_2(capsys, tmp_path, float_lenet5):
    code, _, err = run(
        capsys, "binarize", float_lenet5, "--mode", "xnor", "--keep-real", "*", "--out",
        tmp_path / "x",
    )  # fmt: skip
    one_line_error(code, err, "no eligible layer")
    assert not (tmp_path / "x").exists()  # nothing written
    code, _, err = run(capsys, "eval", float_lenet5, "--data", "digits", "--engine", "packed")
    one_line_error(code, err, "no binary layer")
    code, _, err = run(
        capsys, "binarize", float_lenet5, "--mode", "xnor", "--keep-real", "fc9",
        "--out", tmp_path / "y",
    )  # fmt: skip
    one_line_error(code, err, "'fc9' matches no Conv2d/Linear layer")
    code, _, err = run(
        capsys, "train", "lenet5", "--data", "digits", "--keep-real", "fc1", "--out",
        tmp_path / "z",
    )  # fmt: skip
    one_line_error(code, err, "need --binarize")
    code, _, err = run(
        capsys, "train", "lenet5", "--data", "digits", "--arg", "order=foo", "--out",
        tmp_path / "w",
    )  # fmt: skip
    one_line_error(code, err, "order must be one of")
    assert not (tmp_path / "w").exists()
