"""``compress --resume``: a run interrupted after any stage or prune round, then resumed,
writes the same ``.nsz`` file and record as the uninterrupted run (the reference)."""

import json
import signal
import subprocess
import sys
import time

import pytest

import netshrink.runs.compress as compress_module
from netshrink.errors import NetshrinkError
from netshrink.runs.compress import (
    STATE_FILE,
    checkpoint_source,
    compress,
    compress_run,
    resume_folder,
)
from netshrink.runs.recipe import parse_recipe
from netshrink.runs.train import train_run
from netshrink.train import TrainConfig
from tests.cli.helpers import one_line_error, run

LIMIT = 400
RECIPE = """
name: resume-test
stages:
  - prune:
      sparsity: {fc1: 0.9, fc2: 0.8, fc3: 0.5}
      rounds: 2
      retrain: {epochs: 1, lr: 0.0005}
  - quantize:
      fc_bits: 5
      finetune: {epochs: 1, lr: 0.0001}
  - encode: {fc_index_bits: 4}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("source")
    config = TrainConfig(epochs=1, batch_size=32, seed=3)
    train_run("lenet300_100", "digits", config, out, limit=LIMIT, progress=False)
    return out / "model.pt"


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("recipe") / "r.yaml"
    path.write_text(RECIPE)
    return path


def _compress(trained, path, *, resume=False):
    import yaml

    source = checkpoint_source(trained, limit=LIMIT)
    return compress_run(source, parse_recipe(yaml.safe_load(RECIPE)), path, progress=False,
                        resume=resume)  # fmt: skip


def _outputs(path):
    """The file's bytes and its record, as a finished run leaves them."""
    return path.read_bytes(), json.loads(path.with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def whole(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("whole") / "m.nsz"
    _compress(trained, path)
    assert not resume_folder(path).exists()
    return _outputs(path)


def _counting(monkeypatch, name, fail_on=None):
    """Count calls of compress's ``name``; raise KeyboardInterrupt on call ``fail_on``."""
    real = getattr(compress_module, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(name)
        if len(calls) == fail_on:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(compress_module, name, wrapper)
    return calls


# What stops the run (compress's function, which call of it), and what the resumed run
# still calls: (prune rounds retrained, layers shared, centroid fine-tunings).
CUTS = {
    "after prune round 1": ("train", 2, (1, 1, 1)),
    "after prune": ("share_weights_", 1, (0, 1, 1)),
    "after quantize": ("pack", 1, (0, 0, 0)),
}


@pytest.mark.parametrize("cut", list(CUTS))
def test_resume_after_each_stage_gives_the_same_file(cut, trained, whole, tmp_path, monkeypatch):
    name, call, left = CUTS[cut]
    path = tmp_path / "m.nsz"
    _counting(monkeypatch, name, fail_on=call)
    with pytest.raises(KeyboardInterrupt):
        _compress(trained, path)
    monkeypatch.undo()
    assert not path.exists() and (resume_folder(path) / STATE_FILE).is_file()

    calls = [_counting(monkeypatch, n) for n in ("train", "share_weights_", "finetune_shared")]
    _compress(trained, path, resume=True)
    assert tuple(map(len, calls)) == left  # finished work is not redone
    assert _outputs(path) == whole
    assert not resume_folder(path).exists()


def test_resume_after_sigkill_from_the_cli(capsys, trained, recipe_file, whole, tmp_path):
    path = tmp_path / "m.nsz"
    argv = ["compress", trained, "--recipe", recipe_file, "--limit", LIMIT, "--out", path,
            "--quiet"]  # fmt: skip
    state = resume_folder(path) / STATE_FILE
    child = subprocess.Popen([sys.executable, "-m", "netshrink.cli", *map(str, argv)])
    try:
        deadline = time.monotonic() + 60
        while not state.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()  # reaped: its lock is now stale, not held
    assert state.is_file() and not path.exists(), "the run was not killed mid-way"
    code, out, err = run(capsys, *argv, "--resume")
    assert code == 0, err
    assert _outputs(path) == whole
    assert not resume_folder(path).exists()


def test_refusals_and_starting_afresh(capsys, trained, recipe_file, whole, tmp_path, monkeypatch):
    path = tmp_path / "m.nsz"
    argv = ["compress", trained, "--recipe", recipe_file, "--limit", LIMIT, "--out", path,
            "--quiet"]  # fmt: skip
    one_line_error(*run(capsys, *argv, "--resume")[::2], "nothing to resume")
    assert list(tmp_path.iterdir()) == []  # the refusal leaves no folder behind

    _counting(monkeypatch, "share_weights_", fail_on=1)
    code, _, err = run(capsys, *argv)
    assert code == 130 and "--resume" in err  # told where the finished stages are
    monkeypatch.undo()
    saved = (resume_folder(path) / STATE_FILE).read_bytes()

    changed = tmp_path / "changed.yaml"
    changed.write_text(RECIPE.replace("fc_bits: 5", "fc_bits: 4"))
    other = [changed if a == recipe_file else a for a in argv]
    one_line_error(*run(capsys, *other, "--resume")[::2], "recipe.stages[1].quantize.fc_bits")
    other = [300 if a == LIMIT else a for a in argv]
    one_line_error(*run(capsys, *other, "--resume")[::2], "limit")
    assert (resume_folder(path) / STATE_FILE).read_bytes() == saved  # refusals keep it

    code, _, err = run(capsys, *argv)  # without --resume: a note, then a fresh run
    assert code == 0 and "starting afresh" in err
    assert _outputs(path) == whole
    assert not resume_folder(path).exists()


def test_the_python_api_needs_a_state_to_resume(trained, tmp_path):
    import yaml

    source = checkpoint_source(trained, limit=LIMIT)
    recipe = parse_recipe(yaml.safe_load(RECIPE))
    with pytest.raises(NetshrinkError, match="state_dir"):
        compress(source.trained.model, recipe, source.data, resume=True)
    with pytest.raises(NetshrinkError, match="nothing to resume"):
        compress(source.trained.model, recipe, source.data, state_dir=tmp_path / "s", resume=True)
    assert not (tmp_path / "s").exists()
