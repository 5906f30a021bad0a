"""The sweep engine: parallel trials match in-process calls; caching, failures, resuming."""

import json
import re
from pathlib import Path

import pytest

from netshrink.sweep import Trial, run_trials, trial_key
from tests.sweep import _trial_fns

FNS = "tests.sweep._trial_fns"


def _calls(trial_dir: Path) -> int:
    """How many times the trial function ran in ``trial_dir``."""
    return len((trial_dir / "calls.txt").read_text().splitlines())


def _statuses(outcomes) -> dict[str, str]:
    return {key: outcome.status for key, outcome in outcomes.items()}


def test_parallel_results_match_direct_calls_then_cache(tmp_path):
    kwargs = {"a": {"x": 2.0, "shape": (2, 3)}, "b": {"x": -1.5}, "c": {"x": 0.125, "shape": [4]}}
    trials = [Trial(key, f"{FNS}:square", kw) for key, kw in kwargs.items()]
    out = tmp_path / "sweep"

    outcomes = run_trials(trials, out, jobs=2, progress=False)

    assert list(outcomes) == ["a", "b", "c"] and set(_statuses(outcomes).values()) == {"done"}
    for key, kw in kwargs.items():
        (tmp_path / key).mkdir()
        expected = _trial_fns.square(trial_dir=tmp_path / key, **kw)
        assert outcomes[key].result == expected and outcomes[key].error is None
        stored = json.loads((out / key / "result.json").read_text())
        assert stored["result"] == expected and stored["fn"] == f"{FNS}:square"

    # same fn and kwargs (tuples included): nothing runs again
    again = run_trials(trials, out, jobs=2, progress=False)
    assert set(_statuses(again).values()) == {"cached"}
    assert [again[key].result for key in kwargs] == [outcomes[key].result for key in kwargs]
    assert all(again[key].seconds == 0 for key in kwargs)
    assert [_calls(out / key) for key in kwargs] == [1, 1, 1]

    # changed kwargs for "a", a torn result.json for "b": both run again, "c" stays cached
    trials[0] = Trial("a", f"{FNS}:square", {"x": 3.0, "shape": (2, 3)})
    (out / "b" / "result.json").write_text('{"fn": "tests.sweep')
    third = run_trials(trials, out, jobs=2, progress=False)
    assert _statuses(third) == {"a": "done", "b": "done", "c": "cached"}
    assert third["a"].result == {"value": 9.0, "numel": 6}
    assert third["b"].result == outcomes["b"].result
    assert [_calls(out / key) for key in kwargs] == [2, 2, 1]


def test_failed_trial_stops_nothing_and_skips_dependents(tmp_path, capsys):
    trials = [
        Trial("boom", f"{FNS}:fail", {"message": "bad value\nsecond line"}),
        Trial("after", f"{FNS}:square", {"x": 1.0}, depends=("boom",)),
        Trial("after2", f"{FNS}:square", {"x": 1.0}, depends=("after",)),
        Trial("ok", f"{FNS}:square", {"x": 4.0}),
    ]
    outcomes = run_trials(trials, tmp_path, jobs=2)

    expected = {"boom": "failed", "after": "skipped", "after2": "skipped", "ok": "done"}
    assert _statuses(outcomes) == expected
    assert outcomes["boom"].error == "ValueError: bad value" and outcomes["boom"].result is None
    assert outcomes["after"].error == "dependency 'boom' failed"
    assert outcomes["after2"].error == "dependency 'after' failed"
    assert outcomes["ok"].result == {"value": 16.0, "numel": 1}
    assert not (tmp_path / "after").exists()  # a skipped trial never starts

    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  [")]
    assert len(lines) == 4 and lines[-1].startswith("  [4/4] ")
    assert any(line.endswith("] boom: FAILED: ValueError: bad value") for line in lines)


def test_killed_trial_fails_then_resumes_on_rerun(tmp_path):
    trials = [
        Trial("killer", f"{FNS}:die_once", {"value": 41}),
        Trial("reader", f"{FNS}:read_dependency", {"source": "killer"}, depends=("killer",)),
        Trial("ok", f"{FNS}:square", {"x": 2.0}),
    ]
    first = run_trials(trials, tmp_path, jobs=2, threads_per_job=1, progress=False)

    assert _statuses(first) == {"killer": "failed", "reader": "skipped", "ok": "done"}
    assert first["killer"].error == "killed by signal 9"

    # the rerun runs only the unfinished trials; the reader starts after its dependency
    second = run_trials(trials, tmp_path, jobs=2, threads_per_job=1, progress=False)
    assert _statuses(second) == {"killer": "done", "reader": "done", "ok": "cached"}
    assert second["killer"].result == {"value": 41}
    assert second["reader"].result == {"value": 42, "threads": 1}
    assert _calls(tmp_path / "killer") == 2 and _calls(tmp_path / "ok") == 1
    assert not (tmp_path / "killer" / "error.txt").exists()


@pytest.mark.parametrize(
    "trials, needle",
    [
        ([Trial("a", "m:f", {}), Trial("a", "m:f", {})], "duplicate trial key 'a'"),
        ([Trial("a", "m:f", {}, depends=("z",))], "unknown trial 'z'"),
        (
            [
                Trial("a", "m:f", {}, depends=("c",)),
                Trial("b", "m:f", {}, depends=("a",)),
                Trial("c", "m:f", {}, depends=("b",)),
                Trial("d", "m:f", {}),
            ],
            "dependency cycle among trials ['a', 'b', 'c']",
        ),
    ],
)
def test_bad_trial_graphs_raise_before_running(tmp_path, trials, needle):
    with pytest.raises(ValueError, match="^[^\n]*$") as info:
        run_trials(trials, tmp_path / "out", progress=False)
    assert needle in str(info.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key", ["", "a/b", "../up", ".hidden", "with space", "_lead"])
def test_unsafe_trial_keys_raise(key):
    with pytest.raises(ValueError, match="file-name-safe"):
        Trial(key, "m:f", {})


BAD_FIELDS = [("no_colon", {}), ("m:", {}), ("m:f", {"x": object()}), ("m:f", {"trial_dir": 1})]


@pytest.mark.parametrize("fn, kwargs", BAD_FIELDS)
def test_bad_trial_fields_raise(fn, kwargs):
    with pytest.raises(ValueError):
        Trial("a", fn, kwargs)


@pytest.mark.parametrize("option", [{"jobs": 0}, {"threads_per_job": 0}])
def test_bad_parallelism_raises(tmp_path, option):
    with pytest.raises(ValueError, match="must be at least 1"):
        run_trials([Trial("a", "m:f", {})], tmp_path, **option)


def test_trial_key_formatting():
    params = {"squeeze_ratio": 0.25, "bypass": "simple"}
    assert trial_key(params, seed=1) == "squeeze_ratio=0.25,bypass=simple,seed=1"
    assert trial_key({"lr": 0.125}) != trial_key({"lr": 0.12})
    mixed = {"lr": 0.12, "wd": 1e-05, "n": 3, "on": True}
    assert trial_key(mixed) == "lr=0.12,wd=1e-05,n=3,on=True"
    assert trial_key({"x": 0.1 + 0.2}) == f"x={0.1 + 0.2!r}"  # round-trips, not rounded
    assert trial_key({}, seed=0) == "seed=0"
    for bad in ({"b": "a,b"}, {"b": "x=y"}, {"b": "a/b"}, {"b": [1, 2]}):
        with pytest.raises(ValueError, match=re.escape(repr(bad["b"]))):
            trial_key(bad)
