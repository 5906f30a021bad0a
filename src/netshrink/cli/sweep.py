"""``netshrink sweep``: a study's trials in parallel (here or on Ray), tabulated and plotted."""

from __future__ import annotations

import argparse
import sys

from netshrink.cli.common import positive_int

__all__ = ["add_sweep"]


def cmd_sweep(args: argparse.Namespace) -> int:
    import os

    from netshrink import distributed
    from netshrink.cli.common import given
    from netshrink.errors import NetshrinkError
    from netshrink.sweep import SweepConfig, parse_params, render_text, run_sweep

    if args.device is not None:
        device = distributed.resolve_device(args.device)  # one line if there is no such device
        if device.type != "cpu" and args.backend == "ray":
            raise NetshrinkError(f"--device {args.device}: the ray backend runs trials on CPUs")
        # Each trial is a process of its own: it reads the device from its environment.
        os.environ[distributed.DEVICE_ENV] = str(device)

    settings = given(args, {"seeds": "seeds", "data": "data", "epochs": "epochs", "limit": "limit"})
    config = SweepConfig(
        study=args.study,
        grid=parse_params(args.study, args.param),
        out=args.out or f"runs/sweep/{args.study}",
        **settings,
    )
    result = run_sweep(
        config,
        jobs=args.jobs,
        backend=args.backend,
        ray_address=args.ray_address,
        progress=not args.quiet,
    )
    print()
    print(render_text(result.rows))
    print(f"\nwrote {', '.join(str(p) for p in result.paths.values())}")
    if result.failed:
        print(
            f"netshrink: {len(result.failed)} of {len(result.outcomes)} trials did not finish; "
            "run the same command again to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


def add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep", help="a study's trials in parallel: SqueezeNet, distillation, Deep Compression"
    )
    p.add_argument("study", metavar="STUDY", help="squeezenet, distill or deep-compression")
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=V1,V2,...",
        help="values of one parameter (repeatable; the grid is their Cartesian product)",
    )  # fmt: skip
    p.add_argument(
        "--seeds",
        type=positive_int,
        help="seeds per configuration (squeezenet 1, distill 3, deep-compression 5)",
    )
    p.add_argument("--data", metavar="SPEC", help="default: mnist5k")
    p.add_argument(
        "--epochs",
        type=positive_int,
        help="training epochs (squeezenet 6, distill 30; deep-compression baselines 10 and 20)",
    )
    p.add_argument("--limit", type=positive_int, help="use at most N images (stratified)")
    p.add_argument("--jobs", type=positive_int, help="trials run at once (default: one per core)")
    p.add_argument("--out", metavar="DIR", help="default: runs/sweep/STUDY")
    p.add_argument(
        "--backend", choices=("local", "ray"), default="local",
        help="local: processes on this machine (default); ray: tasks on a Ray cluster "
        "(pip install 'netshrink[ray]'; DIR must be on a filesystem the nodes share)",
    )  # fmt: skip
    p.add_argument(
        "--ray-address", metavar="HOST:PORT",
        help="the Ray cluster's head (with --backend ray; default: a local Ray instance)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no per-trial progress lines")
    p.add_argument(
        "--device", metavar="DEVICE",
        help="where each trial trains: auto, cpu (the default), cuda or cuda:N (local backend)",
    )  # fmt: skip
    p.set_defaults(func=cmd_sweep)
