"""Loading a checkpoint never runs code from it, and says so in one line."""

import pickle

import pytest
import torch

from netshrink.cli import main
from netshrink.errors import NetshrinkError
from netshrink.models import create
from netshrink.runs.checkpoint import load_checkpoint


class Payload:
    """Unpickling this would create ``marker``: the test that it never happens."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": Payload(marker)}, handle)
    with pytest.raises(NetshrinkError) as err:
        load_checkpoint(path)
    assert "never loads" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_a_whole_module_save_gets_netshrinks_own_line(tmp_path, capsys):
    path = tmp_path / "whole.pt"
    torch.save(create("lenet5"), path)
    assert main(["eval", str(path), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "\x1b" not in err
    assert "is not a netshrink checkpoint: it pickles Python objects" in err
    assert "model.state_dict()" in err


def test_every_torch_load_in_the_package_is_weights_only():
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src" / "netshrink"
    calls = []
    for file in src.rglob("*.py"):
        for number, line in enumerate(file.read_text().splitlines(), 1):
            if "torch.load(" in line:
                calls.append((file.name, number, "weights_only=True" in line))
            assert "pickle.load" not in line, f"{file.name}:{number} unpickles"
    assert calls and all(ok for *_, ok in calls), calls


def test_a_checkpoint_with_nan_weights_is_refused_naming_the_tensor(tmp_path, capsys):
    from netshrink.runs.checkpoint import Checkpoint, save_checkpoint

    model = create("lenet5")
    state = model.state_dict()
    state["fc2.weight"][3, 4] = float("nan")
    path = tmp_path / "nan.pt"
    save_checkpoint(path, Checkpoint("lenet5", {}, (1, 28, 28), state, "digits"))
    assert main(["eval", str(path), "--data", "digits"]) == 2
    err = capsys.readouterr().err
    assert "fc2.weight holds NaN or infinite values" in err and len(err.splitlines()) == 1
