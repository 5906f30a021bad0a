"""Two real ``netshrink`` processes on one output at once: one wins, cleanly.

Files are replaced by rename (netshrink.atomic), so two writers of one path leave one
whole file, never a mix of both; a survey takes its folder's lock, so a second survey on
the same folder stops at once with one line.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.reliability.outputs import RECIPE, inspect_outputs, netshrink

EXPORT = "export {model} --format onnx --force --repeats 0 --opset {opset} --out {out}"
COMPRESS = "compress {model} --recipe {recipe} --data digits --limit 300 --overwrite --quiet"
SURVEY = "survey --quick --out s --only lenet5 --no-table1 --no-onnx --limit 300 --repeats 2"


def _together(*argvs: list[str], cwd: Path) -> list[tuple[int, str]]:
    """Start every command at once; (exit code, stderr) of each."""
    processes = [
        subprocess.Popen(a, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for a in argvs
    ]
    return [(p.wait(300), p.stderr.read().decode()) for p in processes]


def test_two_exports_to_one_file_leave_one_of_them_whole(bench, tmp_path):
    model = bench.src / "run" / "model.pt"
    # Two different files of one network, opset 17 and 13 (each export is deterministic).
    solo = {}
    for opset in (17, 13):
        argv = EXPORT.format(model=model, opset=opset, out=f"{opset}.onnx").split()
        subprocess.run(netshrink(*argv), cwd=tmp_path, check=True, stdout=subprocess.DEVNULL)
        solo[opset] = (tmp_path / f"{opset}.onnx").read_bytes()
    assert solo[17] != solo[13]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "m.onnx").write_bytes(b"an older file, replaced by --force")
    argvs = [EXPORT.format(model=model, opset=o, out="out/m.onnx").split() for o in solo]
    done = _together(*map(lambda a: netshrink(*a), argvs), cwd=tmp_path)
    assert [code for code, _ in done] == [0, 0], done
    assert (tmp_path / "out" / "m.onnx").read_bytes() in solo.values()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m.onnx"]


def test_two_compress_runs_to_one_file_leave_one_whole_file_and_its_record(bench, tmp_path):
    # Two recipes that give files of different sizes: the record must be the file's own.
    (tmp_path / "a.yaml").write_text(RECIPE)
    (tmp_path / "b.yaml").write_text(RECIPE.replace("fc_bits: 4", "fc_bits: 2"))
    model = bench.src / "run" / "model.pt"
    argvs = [COMPRESS.format(model=model, recipe=r).split() for r in ("a.yaml", "b.yaml")]
    done = _together(*(netshrink(*a, "--out", "out/m.nsz") for a in argvs), cwd=tmp_path)
    codes = sorted(code for code, _ in done)
    # Both finish, or the second finds the first's run in progress and stops with one line.
    assert codes in ([0, 0], [0, 2]), done
    for code, err in done:
        if code == 2:
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    out = tmp_path / "out"
    found = inspect_outputs(out, {})
    assert not found.partial and not found.temporaries, found
    record = json.loads((out / "m.json").read_text())
    assert record["compression"]["file_bytes"] == (out / "m.nsz").stat().st_size


def test_a_second_survey_on_the_same_folder_stops_with_one_line(bench, tmp_path):
    argv = netshrink(*SURVEY.split(), "--quiet")
    (ok, _), (refused, err) = sorted(_together(argv, argv, cwd=tmp_path))
    assert (ok, refused) == (0, 2), err
    assert len(err.strip().splitlines()) == 1 and "another survey is running in s" in err, err
    found = inspect_outputs(tmp_path / "s", {})
    assert not found.partial and not found.temporaries and not found.locks, found
    assert (tmp_path / "s" / "report.html").is_file()
