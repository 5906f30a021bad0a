"""``netshrink survey``: every method on the same data, and the report."""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

from netshrink.cli.common import add_device_flag, given, positive_int

__all__ = ["add_survey"]

# SurveyConfig field -> flag (defaults: netshrink.survey.SurveyConfig)
FIELDS = {
    "data": "data",
    "out": "out",
    "seed": "seed",
    "seeds": "seeds",
    "epochs": "epochs",
    "limit": "limit",
    "latency_repeats": "repeats",
    "only": "only",
}


def _epochs(n: int) -> str:
    return f"{n} epoch{'' if n == 1 else 's'}"


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def _cache_note(out: Path) -> str:
    """What ``out/runs`` (the training runs a re-run reuses) weighs, and that it may go."""
    files = [f for f in (out / "runs").rglob("*") if f.is_file()]
    if not files:
        return ""
    largest = max(files, key=lambda f: f.stat().st_size)
    total = sum(f.stat().st_size for f in files)
    return (
        f"cache: {out / 'runs'} holds {_mib(total)} of training checkpoints (largest: "
        f"{largest.relative_to(out)}, {_mib(largest.stat().st_size)}) that a re-run with the "
        "same --out reuses; the report does not need them: delete the folder to free the space"
    )


def cmd_survey(args: argparse.Namespace) -> int:
    from netshrink.atomic import folder_lock
    from netshrink.survey import (
        SurveyConfig,
        render_rows,
        render_table1,
        run_survey,
        write_report,
    )
    from netshrink.survey.report import peer_summary, quick_notice, runtime_summary
    from netshrink.survey.survey import select_entries

    config = SurveyConfig(
        quick=args.quick, table1=not args.no_table1, onnx=not args.no_onnx, **given(args, FIELDS)
    )
    select_entries(config)  # an unknown --only key or a --seeds it cannot honour: now
    if args.quiet:
        # Entries print their own progress lines (each training run's accuracy): silence
        # them all here rather than teach every entry about --quiet. Errors go to stderr.
        with folder_lock(config.out, "survey"):
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                result = run_survey(config, progress=False)
            paths = write_report(result)
        print(paths["html"])
        print(paths["json"])
        return 0
    if config.quick:
        print(
            f"--quick: a smoke test ({_epochs(config.train_epochs)}, at most {config.image_limit} "
            f"images, {config.repeats} latency repeats); its numbers are not results",
            flush=True,
        )
    with folder_lock(config.out, "survey"):  # two surveys never write one folder at once
        result = run_survey(config)
        paths = write_report(result)
    print()
    print(f"Table 2: methods compared on {config.data} (speed-ups vs each row's baseline)")
    print(render_rows(result.rows))
    if result.table1:
        print()
        print("Table 1: classic models at ImageNet shape (1000 classes)")
        print(render_table1(result.table1))
    print()
    for line in [*peer_summary(result.rows), *runtime_summary(result.rows)]:
        print(line)
    if notice := quick_notice(result):
        print(notice)
    if note := _cache_note(Path(config.out)):
        print(note)
    print(
        f"report: {paths['html']} (also results.json, results.csv, *.png) in {result.seconds:.0f} s"
    )
    return 0


def add_survey(sub) -> None:
    p = sub.add_parser("survey", help="run every method on the data and write the report")
    p.add_argument("--data", metavar="SPEC", help="default: mnist5k")
    p.add_argument("--out", metavar="DIR", help="default: runs/survey")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test, not results: 1 epoch on 1200 images (about 2.5 minutes on 2 cores)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--seeds", type=positive_int, metavar="N",
        help="seeds of the rows that fit the time budget (LeNet-5, MLPs; mean ± sd): "
        "default 3, 1 with --quick",
    )  # fmt: skip
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--limit", type=positive_int, help="use at most N images")
    p.add_argument("--repeats", type=positive_int, help="latency repeats per model")
    p.add_argument("--only", nargs="+", metavar="KEY", help="run only these entries")
    p.add_argument("--no-table1", action="store_true", help="skip the ImageNet-shape table")
    p.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime latency column")
    p.add_argument(
        "--quiet", action="store_true", help="print only errors and the paths of the report"
    )
    add_device_flag(p)
    p.set_defaults(func=cmd_survey)
