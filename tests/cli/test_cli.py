"""The command line: outputs, and one-line errors with exit code 2 for bad input."""

import json
import subprocess
import sys

import pytest

from netshrink.cli import main, parse_input_size
from netshrink.errors import NetshrinkError
from tests.cli.helpers import one_line_error


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("netshrink")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def test_models_lists_the_registry(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    for name in ("lenet5", "squeezenet1_0", "mobilenet_v1", "shufflenet_v1", "vgg16"):
        assert name in out


def test_profile_json_matches_published_counts(capsys):
    code, out, _ = run(capsys, "profile", "squeezenet1_0", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["model"] == "squeezenet1_0"
    assert data["input"] == [3, 224, 224]
    # papers.md: SqueezeNet 1.0 at 224, 1000 classes.
    assert data["params"] == 1_248_424
    assert data["macs"] == 818_924_576
    assert data["weight_bytes"] == 4 * 1_248_424
    assert {"name", "macs", "params"} <= set(data["layers"][0])


def test_profile_args_input_and_comparison(capsys):
    code, out, _ = run(capsys, "profile", "mobilenet_v1", "--arg", "width_mult=0.5", "--json")
    assert code == 0
    macs = json.loads(out)["macs"]
    assert round(macs / 1e6) == 149  # MobileNet Table 6, alpha 0.5
    code, out, _ = run(capsys, "profile", "mobilenet_v1", "--input", "3x160x160", "--json")
    assert abs(json.loads(out)["macs"] / 1e6 - 290) < 1  # Table 7, 160 px: "290"
    code, out, _ = run(capsys, "profile", "alexnet", "squeezenet1_0", "mobilenet_v1:width_mult=0.5")
    assert code == 0
    for name in ("alexnet", "squeezenet1_0", "mobilenet_v1:width_mult=0.5"):
        assert name in out
    code, out, _ = run(
        capsys,
        "profile",
        "lenet5",
        "--input",
        "1x28x28",
        "--num-classes",
        "10",
        "--latency",
        "--json",
    )
    assert code == 0 and json.loads(out)["latency"]


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["profile", "squeezenet1_0x"], ["unknown model", "did you mean 'squeezenet1_0'"]),
        (["profile", "lenet5", "--input", "28by28"], ["malformed --input"]),
        (["profile", "lenet5", "--arg", "depth=3"], ["unknown argument 'depth'"]),
        (["profile", "lenet5", "--arg", "novalue"], ["malformed --arg"]),
        (["profile", "mobilenet_v1", "--arg", "width_mult=wide"], ["width_mult", "float"]),
        (["train", "lenet5", "--data", "nosuch", "--out", "x"], ["unknown dataset"]),
        (["train", "lenet5", "--data", "mnist:/does/not/exist", "--out", "x"], ["/does/not/exist"]),
        (["eval", "/no/such/model.pt", "--data", "digits"], ["does not exist"]),
        (["survey", "--only", "nosuch"], ["unknown survey entry"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, tmp_path, monkeypatch, argv, needles):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "x").exists()


def test_parse_input_size():
    assert parse_input_size("3x224x224") == (3, 224, 224)
    assert parse_input_size("32") == (32, 32)
    with pytest.raises(NetshrinkError):
        parse_input_size("3x0x5")


def test_train_then_eval_and_errors(capsys, tmp_path):
    out = tmp_path / "run"
    code, text, _ = run(
        capsys,
        "train",
        "lenet300_100",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--limit",
        "300",
        "--out",
        str(out),
    )
    assert code == 0, text
    assert {"model.pt", "metrics.json", "config.yaml"} <= {p.name for p in out.iterdir()}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    code, text, _ = run(
        capsys, "eval", str(out / "model.pt"), "--data", "digits", "--json", "--repeats", "3"
    )
    assert code == 0
    result = json.loads(text)
    assert 0.0 <= result["top1"] <= 1.0 and result["n"] > 0 and result["latency_ms"] > 0

    # Output folder that cannot be created: a one-line error, nothing written.
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(capsys, "train", "lenet5", "--data", "digits", "--out", str(blocker / "o"))
    assert_one_line_error(code, err, "cannot create output folder")

    # Resuming with another architecture's checkpoint in the folder.
    code, _, err = run(
        capsys,
        "train",
        "lenet5",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--limit",
        "300",
        "--out",
        str(out),
        "--resume",
    )
    assert_one_line_error(code, err, "different configuration")


def test_console_script_exit_code_and_stderr(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "netshrink.cli", "profile", "alexnett"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "netshrink: error: unknown model 'alexnett'; did you mean 'alexnet'? "
        "(see `netshrink models`)"
    )


def test_profile_times_a_model_on_an_engine_beside_dense(capsys):
    code, out, _ = run(capsys, "profile", "lenet5", "--latency", "--engine", "fused", "--json")
    assert code == 0
    engine = json.loads(out)["engine"]
    assert len(engine) == 1 and engine[0]["name"] == "fused" and engine[0]["batch_size"] == 1
    assert engine[0]["dense_ms"] > 0 and engine[0]["engine_ms"] > 0
    assert engine[0]["speedup"] == pytest.approx(engine[0]["dense_ms"] / engine[0]["engine_ms"])
    assert 0 < engine[0]["layers_on_engine"] <= engine[0]["layers"]
    code, out, err = run(capsys, "profile", "lenet5", "--engine", "fused")
    assert code == 2 and "needs --latency" in err and out == ""


def test_version_and_bare_netshrink_print_what_the_tool_is(capsys):
    import netshrink

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"netshrink {netshrink.__version__}"
    assert main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: netshrink") and "survey" in out and "export" in out


def test_data_defaults_to_mnist5k_and_eval_to_the_files_own(capsys, tmp_path):
    out = tmp_path / "run"
    code, text, err = run(
        capsys, "train", "lenet300_100", "--epochs", "1", "--limit", "200", "--out", str(out)
    )
    assert code == 0, err
    assert "data: mnist5k" in (out / "config.yaml").read_text()
    code, text, err = run(capsys, "eval", str(out / "model.pt"), "--repeats", "2", "--json")
    assert code == 0, err
    assert json.loads(text)["data"] == "mnist5k"


def test_distill_defaults_to_the_documented_temperature_and_alpha():
    from netshrink.cli import build_parser

    args = build_parser().parse_args(["distill", "--teacher", "t.pt", "--student", "mlp2x30",
                                      "--out", "o"])  # fmt: skip
    assert (args.temperature, args.alpha, args.data) == (20.0, 0.9, "mnist5k")


def test_a_recipe_key_error_lists_every_key_valid_there():
    from netshrink.runs.recipe import parse_recipe

    bad = {"stages": [{"prune": {"sparsity": {"*": 0.5}, "retrian": {"epochs": 1}}}]}
    with pytest.raises(NetshrinkError, match=r"prune.retrian \(known: final_retrain, quality, "
                       r"retrain, rounds, sparsity\)"):  # fmt: skip
        parse_recipe(bad)
    bad = {"stages": [{"quantize": {"fine_tune": {}}}]}
    with pytest.raises(NetshrinkError, match=r"known: bits, conv_bits, exclude, fc_bits, "
                       r"finetune, init"):  # fmt: skip
        parse_recipe(bad)


def test_train_refuses_zero_epochs_and_an_existing_run_without_overwrite(capsys, tmp_path):
    out = tmp_path / "l3"
    base = ("train", "lenet300_100", "--data", "digits", "--limit", "200", "--out", str(out))
    code, _, err = run(capsys, *base, "--epochs", "0")
    one_line_error(code, err, "--epochs must be at least 1, got 0")
    assert not out.exists()
    code, _, err = run(capsys, *base, "--epochs", "1", "--seed", "0")
    assert code == 0, err
    first = (out / "model.pt").read_bytes()
    code, _, err = run(capsys, *base, "--epochs", "1", "--seed", "1")
    one_line_error(code, err, "model.pt exists: pass --overwrite to replace it")
    assert (out / "model.pt").read_bytes() == first  # untouched
    code, _, err = run(capsys, *base, "--epochs", "1", "--resume", "--overwrite")
    one_line_error(code, err, "pick one")
    code, _, err = run(capsys, *base, "--epochs", "1", "--seed", "1", "--overwrite")
    assert code == 0, err
    assert (out / "model.pt").read_bytes() != first


@pytest.mark.parametrize("size", ["1x32x32", "5x28"])
def test_profile_refuses_an_input_size_the_model_does_not_take(capsys, size):
    code, _, err = run(capsys, "profile", "lenet5", "--input", size)
    one_line_error(code, err, f"--input {size}: lenet5 takes 1x28x28 inputs")


def test_profile_honours_an_input_size_the_model_takes(capsys):
    code, text, err = run(capsys, "profile", "lenet5", "--input", "3x28x28", "--json")
    assert code == 0, err
    assert json.loads(text)["input"] == [3, 28, 28]
