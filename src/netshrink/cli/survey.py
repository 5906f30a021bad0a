"""``netshrink survey``: every method on the same data, and the report."""

from __future__ import annotations

import argparse

from netshrink.cli.common import given

__all__ = ["add_survey"]

# SurveyConfig field -> flag (defaults: netshrink.survey.SurveyConfig)
FIELDS = {
    "data": "data",
    "out": "out",
    "seed": "seed",
    "epochs": "epochs",
    "limit": "limit",
    "latency_repeats": "repeats",
    "only": "only",
}


def cmd_survey(args: argparse.Namespace) -> int:
    from netshrink.survey import (
        SurveyConfig,
        render_rows,
        render_table1,
        run_survey,
        write_report,
    )

    config = SurveyConfig(quick=args.quick, table1=not args.no_table1, **given(args, FIELDS))
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
    print(
        f"report: {paths['html']} (also results.json, results.csv, *.png) in {result.seconds:.0f} s"
    )
    return 0


def add_survey(sub) -> None:
    p = sub.add_parser("survey", help="run every method on the data and write the report")
    p.add_argument("--data", metavar="SPEC", help="default: mnist5k")
    p.add_argument("--out", metavar="DIR", help="default: runs/survey")
    p.add_argument("--quick", action="store_true", help="small and fast (under 2 minutes)")
    p.add_argument("--seed", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--limit", type=int, help="use at most N images")
    p.add_argument("--repeats", type=int, help="latency repeats per model")
    p.add_argument("--only", nargs="+", metavar="KEY", help="run only these entries")
    p.add_argument("--no-table1", action="store_true", help="skip the ImageNet-shape table")
    p.set_defaults(func=cmd_survey)
