"""The trial cache: a matching result.json is reused; a corrupt, truncated or stale one
(function, arguments or code changed) runs again with a note saying why."""

import hashlib
import json
import re
from pathlib import Path

from netshrink.sweep import Trial, parallel, run_trials
from netshrink.version import __version__

FNS = "tests.sweep._trial_fns"
KWARGS = {"x": 3.0, "shape": (2, 2)}


def _calls(trial_dir) -> int:
    return len((trial_dir / "calls.txt").read_text().splitlines())


def test_damaged_or_stale_results_run_again_and_matching_ones_are_cached(tmp_path, capsys):
    keys = ("cached", "truncated", "code")
    trials = [Trial(key, f"{FNS}:square", KWARGS) for key in keys]
    out = tmp_path / "sweep"
    first = run_trials(trials, out, jobs=2, progress=False)
    assert {o.status for o in first.values()} == {"done"}
    record = json.loads((out / "cached" / "result.json").read_text())
    assert record["code"] == parallel.code_fingerprint(f"{FNS}:square")
    assert record["result"] == {"value": 9.0, "numel": 4}

    torn = out / "truncated" / "result.json"
    torn.write_text(torn.read_text()[:100])
    # "code": its record says the trial module's source was different
    stale = json.loads((out / "code" / "result.json").read_text())
    stale["code"][FNS] = "0" * 16
    stale["digest"] = parallel._digest(stale)
    (out / "code" / "result.json").write_text(json.dumps(stale))

    again = run_trials(trials, out, jobs=2)
    assert {key: (o.status, o.note) for key, o in again.items()} == {
        "cached": ("cached", None),
        "truncated": ("done", "corrupt result.json"),
        "code": ("done", f"stale: code changed ({FNS})"),
    }
    assert [_calls(out / key) for key in keys] == [1, 2, 2]
    assert [again[key].result for key in keys] == [record["result"]] * 3
    printed = capsys.readouterr().out
    note = r"code: done in \d+ s \(ran again: stale: code changed \(tests.sweep._trial_fns\)\)"
    assert re.search(note, printed) and "cached: cached\n" in printed


def test_every_kind_of_damage_or_staleness_is_named(tmp_path):
    trial = Trial("t", f"{FNS}:square", KWARGS)
    code = parallel.code_fingerprint(trial.fn)
    good = {"fn": trial.fn, "kwargs": {"x": 3.0, "shape": [2, 2]}, "code": code}
    good |= {"result": {"value": 9.0, "numel": 4}}
    good["digest"] = parallel._digest(good)

    def load(text, trial=trial, code=code):
        (tmp_path / "result.json").write_text(text)
        return parallel._load_result(trial, tmp_path, code)

    assert load(json.dumps(good)) == (good["result"], None)
    assert parallel._load_result(trial, tmp_path / "none", code) == (None, None)
    edited = json.dumps(good).replace('"value": 9.0', '"value": 8.0')  # still valid JSON
    old = {k: v for k, v in good.items() if k not in ("code", "digest")}
    other = Trial("t", f"{FNS}:square", {**KWARGS, "x": 4.0})
    assert [
        load("\x00\xff junk")[1],
        load('["a", "list"]')[1],
        load(json.dumps({**good, "result": [1]}))[1],
        load(edited)[1],
        load(json.dumps(old))[1],
        load(json.dumps(good), trial=other)[1],
        load(json.dumps(good), trial=Trial("t", f"{FNS}:fail", {"message": "m"}))[1],
        load(json.dumps(good), code={**code, "sources": "x"})[1],
        load(json.dumps(good), code={**code, "netshrink": "9"})[1],
    ] == [
        "corrupt result.json",
        "corrupt result.json",
        "corrupt result.json",
        "corrupt result.json (digest mismatch)",
        "stale: result.json has no code fingerprint",
        "stale: arguments changed",
        f"stale: function changed (was {FNS}:square)",
        "stale: code changed (netshrink sources)",
        f"stale: code changed (netshrink {__version__}, now 9)",
    ]
    (tmp_path / "result.json").write_bytes(b"\xff\xfe not UTF-8")
    assert parallel._load_result(trial, tmp_path, code) == (None, "corrupt result.json")


def test_the_fingerprint_follows_the_sources():
    code = parallel.code_fingerprint(f"{FNS}:square")
    assert code["netshrink"] == __version__ and len(code["sources"]) == 16
    source = (Path(__file__).parent / "_trial_fns.py").read_bytes()
    assert code[FNS] == hashlib.sha256(source).hexdigest()[:16]
    assert parallel.code_fingerprint("no.such.module:fn")["no.such.module"] == "unknown"
