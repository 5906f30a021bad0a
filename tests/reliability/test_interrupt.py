"""SIGKILL real ``netshrink`` processes mid-run: no output is ever left half-written.

Each command runs in a work folder (tiny settings: the digits data, 300 images, one epoch)
and is killed at chosen moments: a delay into the run, or the instant the atomic writer's
temporary for an output appears. Every file left must then be the previous output byte for
byte (the run was replacing a finished one: ``--overwrite``/``--force``, or a command that
always replaces) or a whole new one that loads (``.nsz``, checkpoint, ONNX, JSON, YAML,
PNG...). The normal run kills each command as its main output is written; ``-m slow``
sweeps a dozen moments per command (delays across the run, each output's write) and prints
a summary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.outputs import COMMANDS, Reference, inspect_outputs, run_and_kill

# The output each command exists to write: the kill that matters most lands on its write.
MAIN_OUTPUT = {
    "train": "model.pt",
    "compress": "m.nsz",
    "binarize": "model.nsz",
    "distill": "model.pt",
    "export": "m.onnx",
    "survey": "report.html",
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_killed_run_leaves_only_old_or_whole_outputs(bench, name):
    # The instant its main output is being written, over a finished run's copy. A small
    # file's temporary can come and go between two polls (0.5 ms apart), and the run then
    # ends unkilled: try again, up to five runs, each of which must leave no partial file.
    for _ in range(5):
        outcome, found, work = bench.kill(name, previous=True, at_file=MAIN_OUTPUT[name])
        assert not found.partial, (outcome, found)
        if outcome.killed:
            break
    assert outcome.killed, outcome
    if name == "train":  # run again to the end: the temporary the kill left goes too
        run_and_kill(COMMANDS[name].argv(bench.src), work, work)
        again = inspect_outputs(work / COMMANDS[name].out, {})
        assert again.temporaries == [] and again.partial == [], (found, again)


def _kill_points(reference: Reference) -> list[dict]:
    """≥ 10 moments spread over a run: delays from just before its first write to its end,
    and the instant each of its outputs (and its n-th temporary) appears."""
    outcome = reference.outcome
    first = outcome.writes[0][0] if outcome.writes else outcome.seconds / 2
    start, end = 0.8 * first, 1.05 * outcome.seconds
    names = list(dict.fromkeys(Path(t).name[1:].rsplit(".", 3)[0] for _, t in outcome.writes))
    step = max(1, len(names) // 4)
    writes = [{"at_file": n} for n in names[::step][:4]]
    writes += [{"at_write": k} for k in sorted({1, max(1, len(outcome.writes) // 2)})]
    delays = max(6, 12 - len(writes))  # at least a dozen points in all
    points = [{"after": start + (end - start) * i / (delays - 1)} for i in range(delays)]
    points += writes
    return points


@pytest.mark.slow
def test_kill_sweep(bench, capsys):
    rows, partial = [], []
    for name, command in COMMANDS.items():
        reference = bench.reference(name)
        killed = temporaries = locks = 0
        points = _kill_points(reference)
        for i, when in enumerate(points):
            outcome, found, work = bench.kill(name, previous=i % 2 == 0, **when)
            killed += outcome.killed
            temporaries += len(found.temporaries)
            locks += len(found.locks)
            partial += [f"{name} {when}: {p}" for p in found.partial]
        # The last killed folder, run again to the end: what the kill left is gone.
        run_and_kill(command.argv(bench.src), work, work)
        after = inspect_outputs(work / command.out, {})
        partial += [f"{name} rerun: {p}" for p in after.partial]
        rows.append(
            f"{name:9} {len(points):6} {killed:7} {len(reference.outcome.writes):7} "
            f"{reference.outcome.seconds:6.1f} s {temporaries:5} {locks:5} "
            f"{len(after.temporaries) + len(after.locks):6} "
            f"{sum(p.startswith(name + ' ') for p in partial):8}"
        )
    with capsys.disabled():
        print("\nkill sweep: SIGKILL at points spread over each command's run")
        print("command   points  killed  writes*    run   .tmp  lock  rerun  partial")
        print("\n".join(rows))
        print("(* temporaries seen in the reference run; .tmp/lock: left by the kills, hidden;")
        print(" rerun: left after running the last killed folder again to the end)")
    assert not partial, partial
