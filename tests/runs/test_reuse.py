"""Reusing a finished training run (``train_run(reuse=True)``, as the survey does): a whole
run is returned untouched; a damaged or stale one is trained again, with a note."""

import json
import shutil
import struct
import zipfile

import pytest
import torch
import yaml

from netshrink.runs import train as runner
from netshrink.runs.checkpoint import load_checkpoint
from netshrink.train import TrainConfig
from netshrink.version import __version__

CONFIG = TrainConfig(epochs=1, batch_size=64, seed=0)
RUN = dict(limit=200, progress=False)


def _flip_a_weight_byte(path) -> None:
    """Flip one byte inside the largest tensor's data (not the zip's bookkeeping)."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack(
        "<HH", data[info.header_offset + 26 : info.header_offset + 30]
    )
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _stale_version(run) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    config[runner.VERSION_KEY] = "0.0.1"
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _other_code(run) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    config[runner.SOURCES_KEY] = "0" * 16  # the same version, edited sources
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _metrics_of_another_run(run) -> None:
    record = json.loads((run / "metrics.json").read_text())
    record["metrics"]["test_top1"] = 1.0
    (run / "metrics.json").write_text(json.dumps(record))


DAMAGE = {
    "flipped weight": (
        lambda run: _flip_a_weight_byte(run / "model.pt"),
        "model.pt is corrupt (CRC mismatch in",
    ),
    "truncated model.pt": (
        lambda run: (run / "model.pt").write_bytes((run / "model.pt").read_bytes()[:5000]),
        "model.pt is truncated",
    ),
    "config.yaml missing": (lambda run: (run / "config.yaml").unlink(), "config.yaml is missing"),
    "config.yaml junk": (lambda run: (run / "config.yaml").write_text("a: [b"), "config.yaml is"),
    "metrics.json torn": (
        lambda run: (run / "metrics.json").write_text('{"metrics": {"te'),
        "metrics.json is missing or corrupt",
    ),
    "metrics of another run": (_metrics_of_another_run, "metrics.json does not match"),
    "other code": (_other_code, "stale: trained by other netshrink code"),
    "another netshrink": (
        _stale_version,
        f"stale: trained by netshrink 0.0.1, this is {__version__}",
    ),
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("reuse") / "run"
    first = runner.train_run("lenet300_100", "digits", CONFIG, out, **RUN)
    assert not first.reused
    assert yaml.safe_load((out / "config.yaml").read_text())[runner.VERSION_KEY] == __version__
    return out, first.checkpoint


def test_a_whole_run_is_reused_untouched(finished, capsys):
    out, ckpt = finished
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = runner.train_run("lenet300_100", "digits", CONFIG, out, reuse=True, **RUN)
    assert again.reused and again.checkpoint.metrics == ckpt.metrics
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert "not reused" not in capsys.readouterr().out


def test_torch_load_alone_misses_a_flipped_weight(finished, tmp_path):
    out, ckpt = finished
    shutil.copy(out / "model.pt", tmp_path / "model.pt")
    _flip_a_weight_byte(tmp_path / "model.pt")
    flipped = load_checkpoint(tmp_path / "model.pt")  # loads, silently wrong
    assert any(not torch.equal(v, flipped.state_dict[k]) for k, v in ckpt.state_dict.items())


# with resume too where model.pt itself still loads (resume must not take it either)
@pytest.mark.parametrize(
    ("kind", "resume"),
    [(kind, False) for kind in DAMAGE] + [("flipped weight", True), ("another netshrink", True)],
)
def test_a_damaged_or_stale_run_is_trained_again(finished, tmp_path, capsys, kind, resume):
    damage, note = DAMAGE[kind]
    out, ckpt = finished
    run = tmp_path / "run"
    shutil.copytree(out, run)
    damage(run)
    again = runner.train_run(
        "lenet300_100", "digits", CONFIG, run, reuse=True, resume=resume, **RUN
    )
    assert not again.reused
    printed = capsys.readouterr().out
    assert f"{run / 'model.pt'}: not reused (" in printed and note in printed
    # trained from scratch with the same seed: the undamaged run's weights, files whole again
    for key, value in ckpt.state_dict.items():
        assert torch.equal(value, again.checkpoint.state_dict[key]), key
    assert runner.train_run("lenet300_100", "digits", CONFIG, run, reuse=True, **RUN).reused


def test_without_reuse_a_damaged_run_is_refused_as_before(finished, tmp_path):
    out, _ = finished
    run = tmp_path / "run"
    shutil.copytree(out, run)
    _stale_version(run)
    with pytest.raises(runner.NetshrinkError, match="exists: pass --overwrite"):
        runner.train_run("lenet300_100", "digits", CONFIG, run, **RUN)
