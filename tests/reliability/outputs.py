"""What the interruption tests share: the commands they run, a SIGKILL at a chosen moment,
and a check that every file a killed run left behind is whole."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# ``.NAME.PID.RANDOM.tmp``: the hidden temporary of netshrink.atomic, renamed over NAME
# once whole. No reader looks at it; the next write of NAME removes a dead writer's one.
TEMPORARY = re.compile(r"\..+\.tmp")
LOCK = ".netshrink.lock"  # the survey's folder lock: a killed holder's file is taken over

RECIPE = """
stages:
  - prune:
      sparsity: {conv1: 0.3, conv2: 0.8, fc1: 0.9, fc2: 0.8}
      retrain: {epochs: 1, lr: 0.001}
  - quantize:
      conv_bits: 6
      fc_bits: 4
      finetune: {epochs: 1, lr: 0.0002}
  - encode: {huffman: true}
"""
TINY = "--data digits --limit 300 --epochs 1"  # 300 of the 8x8 digits: seconds per run


def netshrink(*args: object) -> list[str]:
    """The command line of a real ``netshrink`` process."""
    return [sys.executable, "-m", "netshrink.cli", *map(str, args)]


@dataclass(frozen=True)
class Command:
    """A CLI command, run in a work folder; it writes under ``out`` there, and reads its
    inputs from ``{src}``: a folder holding a trained LeNet-5 ``run/model.pt`` and ``r.yaml``."""

    name: str
    args: str
    out: str  # the output folder inside the work folder

    def argv(self, src: Path) -> list[str]:
        words = self.args.replace("{tiny}", TINY).split()
        return netshrink(*(w.replace("{src}", str(src)) for w in words))


COMMANDS = {
    c.name: c
    for c in [
        Command("train", "train lenet5 {tiny} --out run --overwrite", "run"),
        Command(
            "compress",
            "compress {src}/run/model.pt --recipe {src}/r.yaml --data digits --limit 300 "
            "--out c/m.nsz --overwrite --quiet",
            "c",
        ),
        Command(
            "binarize",
            "binarize {src}/run/model.pt --mode xnor {tiny} --out b --overwrite --quiet",
            "b",
        ),
        Command(
            "distill",
            "distill --teacher {src}/run/model.pt --student lenet5 {tiny} --out d "
            "--overwrite --quiet",
            "d",
        ),
        Command(
            "export",
            "export {src}/run/model.pt --format onnx --out e/m.onnx --force --repeats 0",
            "e",
        ),
        Command(
            "survey",
            "survey --quick --out s --only lenet5 --no-table1 --no-onnx --limit 300 "
            "--repeats 2 --quiet",
            "s",
        ),
    ]
}


# --- is a file whole? -------------------------------------------------------------------


def _nsz(path: Path) -> None:
    from netshrink.nsz import parse_nsz

    parse_nsz(path.read_bytes())


def _checkpoint(path: Path) -> None:
    """A netshrink checkpoint; in a hidden ``.NAME.resume/`` folder, compress's saved
    stages (a torch file of tensors): a cut one fails to load either way."""
    import torch

    from netshrink.runs.checkpoint import load_checkpoint

    if path.parent.name.endswith(".resume"):
        torch.load(path, map_location="cpu", weights_only=True)
    else:
        load_checkpoint(path)


def _onnx(path: Path) -> None:
    import onnx

    onnx.checker.check_model(onnx.load(path))


def _png(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as image:
        image.load()  # decodes every row: a cut file fails here
    if not path.read_bytes().endswith(b"IEND\xaeB`\x82"):
        raise ValueError("no IEND chunk")


def _yaml(path: Path) -> None:
    import yaml

    if not isinstance(yaml.safe_load(path.read_text()), dict):
        raise ValueError("not a mapping")


def _csv(path: Path) -> None:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    if not rows or any(len(row) != len(rows[0]) for row in rows):
        raise ValueError("ragged rows")


def _ends_with(tail: str) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        if not path.read_text().rstrip().endswith(tail):
            raise ValueError(f"does not end with {tail!r}")

    return check


def _newline(path: Path) -> None:
    if not path.read_text().endswith("\n"):
        raise ValueError("no final newline")


VALIDATORS: dict[str, Callable[[Path], None]] = {
    ".nsz": _nsz,
    ".pt": _checkpoint,
    ".onnx": _onnx,
    ".json": lambda p: json.loads(p.read_text()),
    ".yaml": _yaml,
    ".png": _png,
    ".csv": _csv,
    ".html": _ends_with("</html>"),
    ".txt": _newline,
}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative path → bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@dataclass
class Inspection:
    partial: list[str] = field(default_factory=list)  # a file neither the old one nor whole
    temporaries: list[str] = field(default_factory=list)  # hidden .tmp left by the kill
    locks: list[str] = field(default_factory=list)


def inspect_outputs(folder: Path, previous: dict[str, bytes]) -> Inspection:
    """Each file under ``folder`` is the ``previous`` one byte for byte, or a whole new one
    (it parses); a hidden temporary or lock file is listed apart."""
    found = Inspection()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = str(path.relative_to(folder))
        if TEMPORARY.fullmatch(path.name):
            found.temporaries.append(rel)
            continue
        if path.name == LOCK:
            found.locks.append(rel)
            continue
        if previous.get(rel) == path.read_bytes():
            continue
        check = VALIDATORS.get(path.suffix)
        try:
            if check is None:
                raise ValueError("a file of no known kind")
            check(path)
        except Exception as exc:  # noqa: BLE001 - any failure to read means not whole
            found.partial.append(f"{rel}: {type(exc).__name__}: {exc}"[:200])
    return found


# --- run, and kill at a moment ----------------------------------------------------------


@dataclass
class Outcome:
    killed: bool  # False: it finished before the kill point
    seconds: float  # when it was killed or ended
    writes: list[tuple[float, str]]  # (seconds, temporary) each time a new one was seen
    returncode: int | None


def _temporaries(folder: Path) -> list[str]:
    names = []
    for root, _, files in os.walk(folder):
        names += [os.path.join(root, f) for f in files if TEMPORARY.fullmatch(f)]
    return names


def run_and_kill(
    argv: list[str],
    cwd: Path,
    watch: Path,
    *,
    after: float | None = None,
    at_write: int | None = None,
    at_file: str | None = None,
    timeout: float = 300,
) -> Outcome:
    """Run ``argv`` in ``cwd``; SIGKILL it ``after`` seconds, or as soon as the
    ``at_write``-th temporary file of the atomic writer appears under ``watch``, or one for
    the file named ``at_file`` (the moment that output is being written); or never (all
    None: it runs to the end, and must succeed)."""
    process = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,  # its own group: the kill reaches any child it started
    )  # fmt: skip
    start = time.monotonic()
    seen: set[str] = set()
    writes: list[tuple[float, str]] = []
    while process.poll() is None:
        now = time.monotonic() - start
        for name in _temporaries(watch) if watch.exists() else []:
            if name not in seen:
                seen.add(name)
                writes.append((now, os.path.relpath(name, watch)))
        due = (after is not None and now >= after) or (at_write and len(writes) >= at_write)
        if at_file and any(Path(name).name.startswith(f".{at_file}.") for name in seen):
            due = True
        if due:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            process.stderr.close()
            return Outcome(True, now, writes, None)
        if now > timeout:
            os.killpg(process.pid, signal.SIGKILL)
            raise TimeoutError(f"{argv} ran over {timeout} s")
        time.sleep(0.0005)
    err = process.stderr.read().decode()
    process.stderr.close()
    if process.returncode != 0:  # a run that ends before its kill point must succeed
        raise AssertionError(f"{argv} failed ({process.returncode}): {err[-2000:]}")
    return Outcome(False, time.monotonic() - start, writes, process.returncode)


# --- the bench: reference runs and kill points ----------------------------------------


@dataclass
class Reference:
    work: Path  # a work folder holding one complete run's outputs
    outcome: Outcome  # how long it took and when it wrote what


class Bench:
    """The reference runs (measured once per session) and the kill points."""

    def __init__(self, root: Path):
        self.root = root
        self.references: dict[str, Reference] = {}
        self.count = 0
        self.src = self.reference("train").work  # run/model.pt, the others' input

    def reference(self, name: str) -> Reference:
        if name not in self.references:
            work = self.root / "reference" / name
            work.mkdir(parents=True)
            (work / "r.yaml").write_text(RECIPE)
            src = work if name == "train" else self.src
            outcome = run_and_kill(COMMANDS[name].argv(src), work, work)
            self.references[name] = Reference(work, outcome)
        return self.references[name]

    def kill(self, name: str, *, previous: bool, **when) -> tuple[Outcome, Inspection, Path]:
        """Run ``name`` in a new work folder (holding a copy of the reference outputs if
        ``previous``), kill it ``when`` (see run_and_kill) and inspect its outputs."""
        command, reference = COMMANDS[name], self.reference(name)
        self.count += 1
        work = self.root / "kills" / f"{name}-{self.count}"
        work.mkdir(parents=True)
        out = work / command.out
        before: dict[str, bytes] = {}
        if previous:
            shutil.copytree(reference.work / command.out, out)
            before = snapshot(out)
        outcome = run_and_kill(command.argv(self.src), work, work, **when)
        found = inspect_outputs(out, before) if out.exists() else Inspection()
        return outcome, found, work
