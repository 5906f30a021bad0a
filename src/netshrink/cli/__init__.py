"""The ``netshrink`` command line. It only parses flags and calls the public API.

One module per command group, each with its commands' handlers and parsers:
:mod:`~netshrink.cli.info` (models, datasets, engines, profile), :mod:`~netshrink.cli.train`
(train, distill), :mod:`~netshrink.cli.binarize`, :mod:`~netshrink.cli.evaluate` (eval),
:mod:`~netshrink.cli.compress` (compress, inspect, unpack), :mod:`~netshrink.cli.export`,
:mod:`~netshrink.cli.prune`
(sensitivity, dsd), :mod:`~netshrink.cli.sweep` and :mod:`~netshrink.cli.survey`; what they
share is in :mod:`~netshrink.cli.common`. A new command is an ``add_<command>(sub)`` in its
group's module, listed in :data:`COMMANDS`.
"""

from __future__ import annotations

import os

# Idle OpenMP threads that sleep add ~8 ms wake-up stalls to multi-threaded torch on
# small machines; spinning threads avoid it. Must be set before torch starts OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import argparse  # noqa: E402
import sys  # noqa: E402

from netshrink.cli import (  # noqa: E402
    binarize,
    compress,
    evaluate,
    export,
    info,
    prune,
    survey,
    sweep,
    train,
)
from netshrink.cli.common import (  # noqa: E402
    OneLineErrorParser,
    devices_and_ranks,
    parse_input_size,
    trust_named_models,
)
from netshrink.errors import NetshrinkError  # noqa: E402
from netshrink.version import __version__  # noqa: E402

__all__ = ["COMMANDS", "build_parser", "main", "parse_input_size"]

# In the order ``netshrink --help`` lists them.
COMMANDS = [
    info.add_models,
    info.add_datasets,
    info.add_engines,
    info.add_profile,
    train.add_train,
    binarize.add_binarize,
    train.add_distill,
    sweep.add_sweep,
    evaluate.add_eval,
    compress.add_compress,
    compress.add_inspect,
    compress.add_unpack,
    export.add_export,
    prune.add_sensitivity,
    prune.add_dsd,
    survey.add_survey,
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="netshrink",
        description="Compress and accelerate CNNs, and measure the result honestly.",
    )
    parser.add_argument("--version", action="version", version=f"netshrink {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=OneLineErrorParser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `netshrink`: what it can do, not only an error
        parser.print_help()
        return 2
    try:
        trust_named_models(args)
        with devices_and_ranks(args):  # --device; torchrun's process group
            return args.func(args)
    except NetshrinkError as exc:
        print(f"netshrink: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("netshrink: interrupted", file=sys.stderr)
        return 130
