"""The Ray backend against the local engine: the same results, one cache for both,
failures and dependants, a missing extra and a dead address as one line, no leftover Ray
processes. One local Ray instance (2 CPUs) serves the whole module: it takes seconds to
start."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netshrink.errors import NetshrinkError
from netshrink.sweep import Trial, run_trials, run_trials_ray
from netshrink.sweep.parallel import code_fingerprint
from netshrink.sweep.ray_backend import MISSING_EXTRA, _task, ray_session
from tests.cli.helpers import one_line_error, run

ray = pytest.importorskip("ray")

FNS = "tests.sweep._trial_fns"
ROOT = Path(__file__).resolve().parents[2]


def _ray_processes() -> set[int]:
    """Pids of Ray's daemons and workers on this machine (pgrep: no psutil needed)."""
    pattern = "raylet|gcs_server|ray::|default_worker.py|log_monitor.py|dashboard/agent.py"
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return {int(pid) for pid in found.split()}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray instance for the module, started and stopped by the backend's own
    ray_session; afterwards no Ray process of ours is left."""
    before = _ray_processes()
    with ray_session(num_cpus=2):
        assert ray.cluster_resources()["CPU"] == 2
        yield
    deadline = time.monotonic() + 15
    while (left := _ray_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not left, f"Ray processes left behind: {sorted(left)}"


def _calls(trial_dir: Path) -> int:
    return len((trial_dir / "calls.txt").read_text().splitlines())


def _statuses(outcomes) -> dict[str, str]:
    return {key: outcome.status for key, outcome in outcomes.items()}


def _record(trial_dir: Path) -> dict:
    stored = json.loads((trial_dir / "result.json").read_text())
    stored.pop("seconds")  # the one field that differs between runs
    return stored


SQUARES = {"a": {"x": 2.0, "shape": (2, 3)}, "b": {"x": -1.5}, "c": {"x": 0.125, "shape": [4]}}


def test_ray_writes_what_the_local_engine_writes(tmp_path):
    trials = [Trial(key, f"{FNS}:square", kw) for key, kw in SQUARES.items()]
    local = run_trials(trials, tmp_path / "local", jobs=2, progress=False)
    remote = run_trials_ray(trials, tmp_path / "ray", jobs=2, progress=False)

    assert list(remote) == list(SQUARES) and set(_statuses(remote).values()) == {"done"}, remote
    for key in SQUARES:
        assert remote[key].result == local[key].result and remote[key].error is None
        # the same record, fingerprint and digest included: either engine can reuse it
        assert _record(tmp_path / "ray" / key) == _record(tmp_path / "local" / key)


@pytest.mark.parametrize("first, second", [("local", "ray"), ("ray", "local")])
def test_one_engine_reuses_what_the_other_ran(tmp_path, first, second, capsys):
    engines = {"local": run_trials, "ray": run_trials_ray}
    trials = [Trial(key, f"{FNS}:square", kw) for key, kw in SQUARES.items()]
    engines[first](trials, tmp_path, jobs=2, progress=False)
    again = engines[second](trials, tmp_path, jobs=2)

    assert set(_statuses(again).values()) == {"cached"}
    assert all(o.seconds == 0 for o in again.values())
    assert [_calls(tmp_path / key) for key in SQUARES] == [1, 1, 1]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  [")]
    assert lines == [f"  [{i}/3] {key}: cached" for i, key in enumerate(SQUARES, 1)]


def test_a_failed_trial_skips_its_dependants_and_stops_nothing(tmp_path, capsys):
    trials = [
        Trial("boom", f"{FNS}:fail", {"message": "bad value\nsecond line"}),
        Trial("after", f"{FNS}:square", {"x": 1.0}, depends=("boom",)),
        Trial("after2", f"{FNS}:square", {"x": 1.0}, depends=("after",)),
        Trial("ok", f"{FNS}:square", {"x": 4.0}),
    ]
    outcomes = run_trials_ray(trials, tmp_path, jobs=2)

    expected = {"boom": "failed", "after": "skipped", "after2": "skipped", "ok": "done"}
    assert _statuses(outcomes) == expected, outcomes
    assert outcomes["boom"].error == "ValueError: bad value" and outcomes["boom"].result is None
    assert outcomes["after"].error == "dependency 'boom' failed"
    assert outcomes["after2"].error == "dependency 'after' failed"
    assert outcomes["ok"].result == {"value": 16.0, "numel": 1}
    assert not (tmp_path / "after").exists()  # a skipped trial is never submitted

    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  [")]
    assert len(lines) == 4 and lines[-1].startswith("  [4/4] ")
    assert any(line.endswith("] boom: FAILED: ValueError: bad value") for line in lines)


def test_a_killed_worker_fails_its_trial_then_the_rerun_resumes_in_order(tmp_path):
    trials = [
        Trial("killer", f"{FNS}:die_once", {"value": 41}),
        Trial("reader", f"{FNS}:read_dependency", {"source": "killer"}, depends=("killer",)),
        Trial("ok", f"{FNS}:square", {"x": 2.0}),
    ]
    first = run_trials_ray(trials, tmp_path, jobs=2, threads_per_job=1, progress=False)
    assert _statuses(first) == {"killer": "failed", "reader": "skipped", "ok": "done"}
    assert first["killer"].error.startswith("its Ray worker died (")

    # the reader is submitted only once its dependency is done (die_once sleeps first)
    second = run_trials_ray(trials, tmp_path, jobs=2, progress=False)
    assert _statuses(second) == {"killer": "done", "reader": "done", "ok": "cached"}
    # 2 CPUs, 2 jobs: one thread per trial, as the local engine would set
    assert second["reader"].result == {"value": 42, "threads": 1}
    assert _calls(tmp_path / "killer") == 2 and _calls(tmp_path / "ok") == 1


def test_without_the_extra_the_backend_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(NetshrinkError, match=f"^{MISSING_EXTRA}$".replace("[", r"\[")):
        run_trials_ray([Trial("a", f"{FNS}:square", {"x": 1.0})], tmp_path / "out")
    out = tmp_path / "sweep"
    code, _, err = run(capsys, "sweep", "squeezenet", "--backend", "ray", "--out", out)
    one_line_error(code, err, MISSING_EXTRA)
    assert not out.exists() and not (tmp_path / "out").exists()


def test_ray_address_needs_the_ray_backend(tmp_path, capsys):
    out = tmp_path / "sweep"
    code, _, err = run(capsys, "sweep", "squeezenet", "--ray-address", "h:1", "--out", out)
    one_line_error(code, err, "--ray-address needs --backend ray")
    assert not out.exists()


@pytest.mark.parametrize("address", ["127.0.0.1:9", "no-such-host.invalid:6379", "headnode"])
def test_a_dead_address_is_one_line_soon_and_leaves_nothing(tmp_path, address):
    """In a fresh process: this one is connected to the module's instance already."""
    out = tmp_path / "sweep"
    argv = [sys.executable, "-m", "netshrink.cli", "sweep", "squeezenet", "--backend", "ray",
            "--ray-address", address, "--out", str(out)]  # fmt: skip
    before = _ray_processes()
    begun = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert time.monotonic() - begun < 60  # ray.init alone would retry for minutes
    one_line_error(done.returncode, done.stderr, address)
    assert done.stdout == "" and not out.exists()
    assert _ray_processes() - before == set()


def test_the_cli_sweeps_on_ray_then_reuses_the_trials_locally(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", "squeezenet", "--param", "squeeze_ratio=0.25", "--epochs", "1",
            "--limit", "100", "--jobs", "2", "--out", out]  # fmt: skip
    code, text, err = run(capsys, *argv, "--backend", "ray")
    assert code == 0, err + text
    assert text.count(": done in") == 1 and "squeeze_ratio=0.25" in text
    rows = json.loads((out / "results.json").read_text())["rows"]
    code, text, err = run(capsys, *argv)
    assert code == 0, err
    assert text.count(": cached") == 1 and ": done in" not in text
    assert json.loads((out / "results.json").read_text())["rows"] == rows


def test_the_ray_extra_is_declared_and_make_test_installs_it():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'ray = ["ray>=2.9"]' in pyproject
    assert "'.[dev,ray]'" in (ROOT / "Makefile").read_text()


def test_a_node_with_other_code_refuses_the_trial(tmp_path):
    """The task's own check, called here as a node would: a result made by other code
    than the driver's would be cached under the wrong fingerprint."""
    fn = f"{FNS}:square"
    driver = {**code_fingerprint(fn), "sources": "0" * 16}
    ok, host = _task(fn, {"x": 1.0}, str(tmp_path), 1, driver)
    assert not ok and not (tmp_path / "result.json").exists()
    error = (tmp_path / "error.txt").read_text()
    assert error == f"the code on {host} differs from the driver's (sources)\n"
