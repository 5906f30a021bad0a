"""The engine registry: names, aliases, bad names, and the CLI's view of it."""

import json

import pytest
import torch

import netshrink as ns
from netshrink.engine import Engine, get_engine, list_engines, prepare, register_engine
from netshrink.errors import NetshrinkError
from tests.cli.helpers import one_line_error, run


def test_built_in_engines_and_aliases():
    assert {"dense", "packed", "sparse", "fused", "onnxruntime", "auto"} <= set(list_engines())
    assert get_engine("ort") is get_engine("onnxruntime")
    assert "float" in list_engines(aliases=True)
    assert get_engine("float") is get_engine("dense")
    with pytest.raises(NetshrinkError, match="unknown engine 'tpu' .*dense"):
        get_engine("tpu")
    with pytest.raises(NetshrinkError, match="registered already"):
        register_engine(Engine("float", "clash", lambda model, warn=True: (model, [])))


def test_dense_engine_runs_the_model_as_it_is():
    torch.manual_seed(0)
    model = ns.create("lenet5").train()
    same, notes = prepare(model, "dense")
    assert same is model and not same.training and notes == []


def test_packed_engine_refuses_a_float_network():
    with pytest.raises(NetshrinkError, match="no binary layer"):
        prepare(ns.create("lenet5"), "packed")


def test_cli_lists_engines_and_refuses_an_unknown_one(capsys, tmp_path):
    code, text, _ = run(capsys, "engines")
    assert code == 0
    assert [line.split()[0] for line in text.splitlines()][:6] == [
        "dense", "packed", "sparse", "fused", "onnxruntime", "auto",
    ]  # fmt: skip
    assert "alias float" in text
    ckpt = tmp_path / "run"
    cfg = ("--epochs", "1", "--limit", "200", "--out", ckpt)
    assert run(capsys, "train", "lenet300_100", "--data", "digits", *cfg)[0] == 0
    code, _, err = run(capsys, "eval", ckpt / "model.pt", "--data", "digits", "--engine", "tpu")
    one_line_error(code, err, "unknown engine 'tpu'")
    code, text, err = run(
        capsys, "eval", ckpt / "model.pt", "--data", "digits", "--repeats", "2", "--json"
    )
    assert code == 0, err
    assert json.loads(text)["engine"] == "dense"
