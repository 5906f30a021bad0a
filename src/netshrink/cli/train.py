"""``netshrink train`` and ``netshrink distill``: one training run into a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from netshrink.cli.common import (
    add_binarize_flags,
    add_device_flag,
    add_train_flags,
    binarize_config,
    parse_input_size,
    train_config,
    xnor_order_note,
)
from netshrink.errors import NetshrinkError

__all__ = ["add_distill", "add_train"]


def _training(args: argparse.Namespace):
    """The run's TrainConfig; ``--epochs 0`` would write an untrained model: refused."""
    config = train_config(args)
    if config.epochs < 1:
        raise NetshrinkError(f"--epochs must be at least 1, got {config.epochs}")
    if args.resume and args.overwrite:
        raise NetshrinkError(
            "--resume continues the run in --out, --overwrite replaces it: pick one"
        )
    if args.resume and not (Path(args.out) / "model.pt").is_file():
        raise NetshrinkError(f"--resume: there is no run to continue in {args.out} (no model.pt)")
    return config


INPUT_HELP = (
    "train at this input size (e.g. 3x224x224): the images are resized to it; default: the "
    "data's own size, as the model takes it"
)


def _input(args: argparse.Namespace) -> tuple[int, int, int] | None:
    if args.input is None:
        return None
    dims = parse_input_size(args.input)
    if len(dims) != 3:
        raise NetshrinkError(f"--input {args.input}: give CxHxW (e.g. 3x224x224)")
    return dims


def cmd_train(args: argparse.Namespace) -> int:
    from netshrink.models import parse_model_args
    from netshrink.runs.train import train_run

    if not args.binarize and (args.keep_real or args.binarize_all or args.no_input_scale):
        raise NetshrinkError("--keep-real, --binarize-all and --no-input-scale need --binarize")
    run = train_run(
        args.name,
        args.data,
        _training(args),
        args.out,
        model_args=parse_model_args(args.name, args.arg),
        resume=args.resume,
        overwrite=args.overwrite,
        limit=args.limit,
        input_size=_input(args),
        progress=not args.quiet,
        binarize=binarize_config(args, args.binarize) if args.binarize else None,
    )
    m = run.checkpoint.metrics
    if args.binarize == "xnor":
        xnor_order_note(args.name, run.checkpoint.model_args)
    if run.checkpoint.binarize:
        layers = run.checkpoint.binarize["layers"]
        print(f"{args.binarize}: binary layers {', '.join(layers)}")
    print(
        f"{args.name}: val top-1 {m['val_top1']:.4f}, test top-1 {m['test_top1']:.4f} "
        f"(n={m['test_n']}); wrote {run.out_dir / 'model.pt'}"
    )
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from netshrink.distill import DistillConfig
    from netshrink.models import parse_model_args
    from netshrink.runs.train import train_run

    config = DistillConfig(temperature=args.temperature, alpha=args.alpha)
    run = train_run(
        args.student,
        args.data,
        _training(args),
        args.out,
        model_args=parse_model_args(args.student, args.arg),
        resume=args.resume,
        overwrite=args.overwrite,
        limit=args.limit,
        input_size=_input(args),
        progress=not args.quiet,
        teachers=args.teacher,
        distill_config=config,
    )
    m = run.checkpoint.metrics
    who = "teacher" if len(args.teacher) == 1 else f"ensemble of {len(args.teacher)} teachers"
    print(
        f"{who}: test top-1 {m['teacher_test_top1']:.4f}; "
        f"{args.student} distilled at T={config.temperature:g}, alpha={config.alpha:g}: "
        f"test top-1 {m['test_top1']:.4f} (n={m['test_n']}); wrote {run.out_dir / 'model.pt'}"
    )
    return 0


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a registered model")
    p.add_argument("name", metavar="NAME", help="registry name or package.module:factory")
    p.add_argument("--data", default="mnist5k", metavar="SPEC", help="default: mnist5k")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--input", metavar="CxHxW", help=INPUT_HELP)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in DIR")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--binarize", choices=["bwn", "xnor"], help="train a binary network (XNOR-Net) from scratch"
    )
    add_binarize_flags(p)
    add_train_flags(p)
    add_device_flag(p)
    p.set_defaults(func=cmd_train)


def add_distill(sub) -> None:
    p = sub.add_parser(
        "distill", help="knowledge distillation: train a student on teachers' soft targets"
    )
    p.add_argument(
        "--teacher", action="append", required=True, metavar="CHECKPOINT",
        help="teacher checkpoint or .nsz (repeat for an ensemble: soft targets are averaged)",
    )  # fmt: skip
    p.add_argument("--student", required=True, metavar="NAME", help="registered model")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data", default="mnist5k", metavar="SPEC", help="default: mnist5k")
    p.add_argument(
        "--temperature", type=float, default=20.0, metavar="T",
        help="T > 0 (default 20, Hinton et al.'s MNIST setting)",
    )  # fmt: skip
    p.add_argument(
        "--alpha", type=float, default=0.9, metavar="A",
        help="weight of the soft-target term, in [0, 1] (the hard-label term gets 1 - A; "
        "default 0.9)",
    )  # fmt: skip
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--input", metavar="CxHxW", help=INPUT_HELP)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in DIR")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_train_flags(p)
    add_device_flag(p)
    p.set_defaults(func=cmd_distill)
