"""Options a command cannot honour are refused with one line, never ignored or coerced.

Each case here was found by trying the commands as a new user would (issue 15 §4): a value
accepted and then not used, a default silently substituted, an output silently replaced.
"""

from __future__ import annotations

import json

import pytest
import torch

from netshrink.cli import main
from tests.cli.helpers import one_line_error, run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    args = ["train", "lenet300_100", "--data", "digits", "--epochs", "1", "--limit", "400",
            "--quiet", "--out", out]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    return out / "model.pt"


@pytest.fixture(scope="module")
def nsz(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("nsz") / "m.nsz"
    args = ["compress", trained, "--recipe", "lenet300_100", "--data", "none", "--out", out,
            "--quiet"]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    return out


def usage_error(code, err, needle):
    """argparse's refusal: one line, exit 2, naming the option."""
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert needle in err, err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["profile", "lenet5", "--latency", "--batch-size", "0"], "--batch-size"),
        (["profile", "lenet5", "--latency", "--threads", "0"], "--threads"),
        (["profile", "lenet5", "--num-classes", "0"], "--num-classes"),
        (["profile", "lenet5", "--latency", "--batch-size", "two"], "'two'"),
        (["sweep", "squeezenet", "--jobs", "0"], "--jobs"),
        (["sweep", "squeezenet", "--seeds", "-1"], "--seeds"),
        (["survey", "--repeats", "0"], "--repeats"),
        (["survey", "--epochs", "0"], "--epochs"),
        (["dsd", "x.pt", "--sparse-epochs", "-1", "--out", "d"], "--sparse-epochs"),
        (["sensitivity", "x.pt", "--limit", "0", "--out", "d"], "--limit"),
        (["train", "lenet5", "--limit", "-5", "--out", "d"], "--limit"),
        (["train", "lenet5", "--batch-size", "0", "--out", "d"], "--batch-size"),
    ],
)
def test_counts_below_their_minimum_are_usage_errors(capsys, argv, needle):
    """Were ValueError tracebacks (profile, eval) or accepted (sweep --jobs 0)."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    usage_error(stop.value.code, capsys.readouterr().err, needle)


def test_eval_and_export_refuse_repeats_they_cannot_time(capsys, nsz, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["eval", str(nsz), "--repeats", "0"])
    usage_error(stop.value.code, capsys.readouterr().err, "--repeats")
    with pytest.raises(SystemExit) as stop:
        main(["export", str(nsz), "--format", "onnx", "--out", str(tmp_path / "m.onnx"),
              "--repeats", "-3"])  # fmt: skip
    usage_error(stop.value.code, capsys.readouterr().err, "--repeats")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("flag", [["--batch-size", "2"], ["--threads", "1"]])
def test_profile_refuses_latency_settings_without_latency(capsys, flag):
    """Were accepted and then unused: the profile printed had no latency at all."""
    one_line_error(*run(capsys, "profile", "lenet5", *flag)[::2], "needs --latency")


def test_profile_refuses_two_different_class_counts(capsys):
    code, _, err = run(capsys, "profile", "lenet5", "--num-classes", "3", "--arg", "num_classes=4")
    one_line_error(code, err, "--num-classes 3 contradicts num_classes=4")
    code, out, _ = run(capsys, "profile", "lenet5", "--num-classes", "4", "--arg", "num_classes=4")
    assert code == 0 and "fc" in out  # the same number twice is no contradiction


def test_train_refuses_a_seed_out_of_range_and_too_few_images_up_front(capsys, tmp_path):
    code, _, err = run(capsys, "train", "lenet300_100", "--data", "digits", "--seed", "-1",
                       "--epochs", "1", "--out", tmp_path / "a")  # fmt: skip
    one_line_error(code, err, "seed must be in [0, 2**32), got -1")  # was a ValueError
    # 5 images leave no test split: said before training, not after it.
    code, _, err = run(capsys, "train", "lenet300_100", "--data", "digits", "--limit", "5",
                       "--epochs", "1", "--quiet", "--out", tmp_path / "b")  # fmt: skip
    one_line_error(code, err, "split is empty (5 images in all)")
    assert not (tmp_path / "b" / "model.pt").exists()


def test_train_resume_needs_a_run_to_continue(capsys, tmp_path):
    """Was accepted and trained from scratch, as if --resume had not been given."""
    code, _, err = run(capsys, "train", "lenet300_100", "--data", "digits", "--epochs", "1",
                       "--resume", "--out", tmp_path / "new")  # fmt: skip
    one_line_error(code, err, "no run to continue")


def test_train_quiet_prints_no_progress(capsys, tmp_path):
    code, out, err = run(capsys, "train", "lenet300_100", "--data", "digits", "--epochs", "1",
                         "--limit", "200", "--quiet", "--out", tmp_path / "q")  # fmt: skip
    assert code == 0 and err == "" and "wrote" in out


def test_dsd_refuses_epochs_it_would_not_use_and_an_empty_schedule(capsys, tmp_path, trained):
    code, _, err = run(capsys, "dsd", trained, "--epochs", "3", "--out", tmp_path / "d")
    one_line_error(code, err, "--epochs is not used")
    code, _, err = run(capsys, "dsd", trained, "--sparse-epochs", "0", "--redense-epochs", "0",
                       "--out", tmp_path / "d")  # fmt: skip
    one_line_error(code, err, "both 0")
    assert not (tmp_path / "d").exists()


def test_dsd_binarize_and_sensitivity_never_replace_an_output_unasked(capsys, tmp_path, trained):
    """All three silently replaced an earlier run's files."""
    out = tmp_path / "old"
    out.mkdir()
    for name in ("model.pt", "sensitivity.json"):
        (out / name).write_text("an earlier run")
    common = ("--data", "digits", "--limit", "200", "--out", out)
    for argv in (
        ("dsd", trained, "--sparse-epochs", "1", "--redense-epochs", "1", *common),
        ("binarize", trained, "--mode", "bwn", "--epochs", "1", "--quiet", *common),
        ("sensitivity", trained, "--sparsities", "0", "0.5", *common),
    ):
        one_line_error(*run(capsys, *argv)[::2], "exists: pass --overwrite")
    assert (out / "model.pt").read_text() == "an earlier run"
    assert (out / "sensitivity.json").read_text() == "an earlier run"
    code, _, err = run(capsys, "dsd", trained, "--sparse-epochs", "1", "--redense-epochs", "1",
                       *common, "--overwrite")  # fmt: skip
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["dsd"]


def test_a_compressed_file_given_for_a_checkpoint_is_named_as_such(capsys, tmp_path, nsz):
    """Was "it pickles Python objects": wrong, and no hint of what to do."""
    code, _, err = run(capsys, "binarize", nsz, "--mode", "bwn", "--out", tmp_path / "b")
    one_line_error(code, err, "is a compressed .nsz file, not a checkpoint: `netshrink unpack")


def test_a_damaged_checkpoint_dict_is_one_line(capsys, tmp_path, trained):
    payload = torch.load(trained, weights_only=True)
    del payload["state_dict"]
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    one_line_error(*run(capsys, "eval", bad)[::2], "its 'state_dict' is missing")


def test_eval_on_other_data_says_the_images_are_resized(capsys, trained, nsz):
    """Was silent: an accuracy near chance printed for data the file never saw."""
    code, _, err = run(capsys, "eval", trained, "--data", "mnist5k", "--repeats", "2")
    assert code == 0 and "note: " in err
    assert err.strip().endswith("was trained on digits, evaluated on mnist5k")  # both 28x28
    code, _, err = run(capsys, "eval", nsz, "--data", "digits", "--repeats", "2")
    assert code == 0
    assert "records no training data; digits: its 1x8x8 images are resized to 1x28x28" in err
    code, _, err = run(capsys, "eval", trained, "--repeats", "2")
    assert code == 0 and "note" not in err


def test_compress_and_unpack_never_replace_a_file_unasked(capsys, tmp_path, trained, nsz):
    """Both silently replaced an existing file (a compressed model, a trained checkpoint)."""
    out = tmp_path / "m.nsz"
    out.write_bytes(b"an earlier file")
    argv = ("compress", trained, "--recipe", "lenet300_100", "--data", "none", "--quiet",
            "--out", out)  # fmt: skip
    one_line_error(*run(capsys, *argv)[::2], "m.nsz exists: pass --overwrite")
    assert out.read_bytes() == b"an earlier file"
    code, _, err = run(capsys, *argv, "--overwrite")
    assert code == 0, err
    assert out.read_bytes() == nsz.read_bytes()  # the same recipe on the same weights
    previous = tmp_path / "model.pt"
    previous.write_bytes(b"a trained model")
    one_line_error(*run(capsys, "unpack", nsz, "--out", previous)[::2], "exists: pass --overwrite")
    assert previous.read_bytes() == b"a trained model"
    assert run(capsys, "unpack", nsz, "--out", previous, "--overwrite")[0] == 0
    assert torch.load(previous, weights_only=True)["model_name"] == "lenet300_100"


def test_unpack_refuses_an_output_name_of_another_format(capsys, tmp_path, nsz):
    """Was accepted: a checkpoint written under a .nsz name."""
    one_line_error(*run(capsys, "unpack", nsz, "--out", tmp_path / "x.nsz")[::2], "not .nsz")
    assert not (tmp_path / "x.nsz").exists()


def test_options_that_would_go_unused_are_refused(capsys, tmp_path, trained, nsz):
    # --limit picks images of --data: with no data it was accepted and ignored.
    code, _, err = run(capsys, "compress", trained, "--recipe", "lenet300_100", "--data",
                       "none", "--limit", "100", "--out", tmp_path / "x.nsz")  # fmt: skip
    one_line_error(code, err, "--limit chooses images of --data")
    # --arg gives --model's arguments: inspect accepted it alone and ignored it.
    one_line_error(*run(capsys, "inspect", nsz, "--arg", "num_classes=3")[::2], "needs --model")
