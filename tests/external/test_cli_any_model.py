"""A network netshrink did not write, through the command line: train, compress, eval,
inspect, unpack, each given the network's code as ``--model package.module:factory``."""

import json

import pytest
import torch

from netshrink.nsz import pack
from tests.cli.helpers import one_line_error, run
from tests.external.nets import odd_net

ODD = "tests.external.nets:odd_net"
RECIPE = """\
name: any-network
stages:
  - prune:
      sparsity: {"*": 0.6}
      retrain: {epochs: 1, lr: 0.001}
  - quantize:
      conv_bits: 6
      fc_bits: 5
      finetune: {epochs: 1, lr: 0.0002}
  - encode:
      huffman: true
"""


def test_an_external_network_through_train_compress_eval_inspect_unpack(capsys, tmp_path):
    code, _, err = run(
        capsys, "train", ODD, "--arg", "width=6", "--data", "digits", "--epochs", "1",
        "--out", tmp_path / "run",
    )  # fmt: skip
    assert code == 0, err
    ckpt = tmp_path / "run" / "model.pt"
    recipe = tmp_path / "any.yaml"
    recipe.write_text(RECIPE)
    nsz = tmp_path / "odd.nsz"
    compress = ("compress", ckpt, "--recipe", recipe, "--out", nsz, "--quiet")
    from netshrink.models import external  # a new process: nothing trusted yet

    external._TRUSTED.clear()
    code, _, err = run(capsys, *compress)
    one_line_error(code, err, f"pass --model {ODD}")
    assert not nsz.exists()
    code, text, err = run(capsys, *compress, "--model", ODD)
    assert code == 0, err
    assert "test top-1:" in text and "compression" in text and nsz.exists()
    external._TRUSTED.clear()
    code, text, err = run(capsys, "eval", nsz, "--data", "digits", "--model", ODD, "--json")
    assert code == 0, err
    result = json.loads(text)
    assert result["model"] == ODD and result["file_bytes"] == nsz.stat().st_size
    code, text, err = run(
        capsys, "eval", nsz, "--data", "digits", "--model", ODD, "--engine", "auto", "--json"
    )
    assert code == 0, err
    assert abs(json.loads(text)["top1"] - result["top1"]) <= 0.01
    code, text, err = run(capsys, "inspect", nsz, "--model", ODD)
    assert code == 0, err
    assert "tensors restored into tests.external.nets:odd_net" in text
    out = tmp_path / "unpacked.pt"
    code, _, err = run(capsys, "unpack", nsz, "--model", ODD, "--out", out)
    assert code == 0 and out.exists(), err
    code, text, err = run(capsys, "eval", out, "--data", "digits", "--model", ODD, "--json")
    assert code == 0, err
    assert json.loads(text)["top1"] == result["top1"]


def test_a_file_that_names_no_architecture_takes_the_users_skeleton(capsys, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "bare.nsz"
    pack(odd_net(width=4).eval(), path, input_size=(1, 28, 28))
    code, _, err = run(capsys, "eval", path, "--data", "digits")
    one_line_error(code, err, "pass the model skeleton")
    code, _, err = run(capsys, "eval", path, "--data", "digits", "--model", ODD)
    one_line_error(code, err, "has shape (4, 1, 3, 3) in the file, (8, 1, 3, 3) in the model")
    code, text, err = run(
        capsys, "eval", path, "--data", "digits", "--model", ODD, "--arg", "width=4"
    )
    assert code == 0, err
    assert text.startswith(f"{ODD} on digits")
    code, _, err = run(capsys, "unpack", path, "--out", tmp_path / "x.pt")
    one_line_error(code, err, "pass the model skeleton")
    assert not (tmp_path / "x.pt").exists()


def test_bad_model_paths_get_one_line_and_write_nothing(capsys, tmp_path):
    out = tmp_path / "run"
    cases = {
        "nosuch_pkg.nets:build": "no module named 'nosuch_pkg'",
        "tests.external.nets:missing": "has no attribute 'missing'",
        "tests.external.nets:broken_net": "raised ValueError: this factory always fails",
        "tests.external.nets:not_a_module": "returned int, not a torch nn.Module",
        "tests.external.nets:plain_net": "fails on a 1x8x8 input",  # digits are 8x8
        "tests.external:nets:odd_net": "malformed model path",
    }
    for spec, needle in cases.items():
        code, _, err = run(capsys, "train", spec, "--data", "digits", "--out", out)
        one_line_error(code, err, needle)
        assert not out.exists()
    code, _, err = run(capsys, "train", ODD, "--arg", "depth=3", "--data", "digits", "--out", out)
    one_line_error(code, err, "unknown argument 'depth'")
    code, _, err = run(capsys, "eval", tmp_path / "none.pt", "--data", "digits", "--arg", "a=1")
    one_line_error(code, err, "--arg gives --model's arguments")


def test_profile_takes_an_external_network(capsys):
    code, text, err = run(capsys, "profile", ODD + ":width=4", "--input", "1x28x28", "--json")
    assert code == 0, err
    torch.manual_seed(0)
    assert json.loads(text)["params"] == sum(p.numel() for p in odd_net(width=4).parameters())


EFFNET = "efficientnet_pytorch:EfficientNet.from_name"
EFFNET_ARGS = (
    "--arg", "model_name=efficientnet-b0", "--arg", "in_channels=1", "--arg", "num_classes=10",
    "--arg", "image_size=8", "--arg", "width_coefficient=0.25", "--arg", "depth_coefficient=0.25",
)  # fmt: skip


def test_a_pypi_network_from_training_to_onnxruntime(capsys, tmp_path):
    """The issue's chain on a network netshrink did not write (efficientnet-pytorch):
    train → prune → quantize → .nsz → eval → ONNX export → onnxruntime, from the CLI."""
    pytest.importorskip("efficientnet_pytorch")
    model = (EFFNET, *EFFNET_ARGS)
    code, _, err = run(capsys, "train", *model, "--data", "digits", "--epochs", "1",
                       "--out", tmp_path / "run")  # fmt: skip
    assert code == 0, err
    recipe = tmp_path / "any.yaml"
    recipe.write_text(RECIPE)
    nsz = tmp_path / "eff.nsz"
    code, text, err = run(capsys, "compress", tmp_path / "run" / "model.pt", "--recipe", recipe,
                          "--out", nsz, "--quiet", "--model", *model)  # fmt: skip
    assert code == 0, err
    assert "test top-1:" in text and f"wrote {nsz}" in text
    code, text, err = run(capsys, "eval", nsz, "--data", "digits", "--model", *model, "--json")
    assert code == 0, err
    dense = json.loads(text)
    assert dense["file_bytes"] == nsz.stat().st_size and 0 <= dense["top1"] <= 1
    code, text, err = run(capsys, "eval", nsz, "--data", "digits", "--model", *model,
                          "--engine", "onnxruntime", "--json")  # fmt: skip
    assert code == 0, err
    assert abs(json.loads(text)["top1"] - dense["top1"]) <= 0.01  # same network, other runtime
    sizes = {}
    for flag in ((), ("--codebook",)):
        out = tmp_path / f"eff{'-codebook' if flag else ''}.onnx"
        code, text, err = run(capsys, "export", nsz, "--format", "onnx", "--out", out, *flag,
                              "--model", *model, "--repeats", "3", "--json")  # fmt: skip
        assert code == 0, err
        report = json.loads(text)
        assert report["file_bytes"] == out.stat().st_size and report["onnxruntime_ms"] > 0
        sizes[bool(flag)] = report["file_bytes"]
    assert sizes[True] < sizes[False] / 2  # weight-shared layers as uint8 codes + Gather
    code, _, err = run(capsys, "export", nsz, "--format", "onnx", "--out", out, "--model", *model)
    one_line_error(code, err, "exists")
