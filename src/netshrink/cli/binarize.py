"""``netshrink binarize``: BWN / XNOR-Net from a float checkpoint, fine-tuned and packed."""

from __future__ import annotations

import argparse

from netshrink.cli.common import (
    TRUST_HELP,
    add_binarize_flags,
    add_device_flag,
    add_train_flags,
    binarize_config,
    train_config,
    xnor_order_note,
)

__all__ = ["add_binarize"]


def cmd_binarize(args: argparse.Namespace) -> int:
    from netshrink.runs.binarize import binarize_checkpoint

    config = train_config(args)

    def note(source, resolved) -> None:  # before fine-tuning starts
        if args.mode == "xnor":
            xnor_order_note(source.model_name, source.model_args)

    done = binarize_checkpoint(
        args.checkpoint,
        binarize_config(args, args.mode),
        config,
        args.out,
        data=args.data,
        limit=args.limit,
        progress=not args.quiet,
        on_resolved=note,
        overwrite=args.overwrite,
    )
    run, out = done.run, done.out_dir
    print(f"{args.mode}: binary layers {', '.join(run.resolved.layers)}")
    print(
        f"{done.source.model_name}: test top-1 {100 * done.float_metrics['top1']:.2f}% float, "
        f"{100 * run.binarized['top1']:.2f}% binarized, "
        f"{100 * run.training.metrics['test_top1']:.2f}% after {config.epochs} epochs; "
        f"{run.dense_bytes:,} B fp32 -> {len(run.nsz):,} B .nsz "
        f"({run.dense_bytes / len(run.nsz):.1f}x); wrote {out / 'model.pt'}, {out / 'model.nsz'}"
    )
    return 0


def add_binarize(sub) -> None:
    p = sub.add_parser("binarize", help="BWN / XNOR-Net: binarize a checkpoint and fine-tune it")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--mode", choices=["bwn", "xnor"], required=True)
    p.add_argument("--data", metavar="SPEC", help="default: the checkpoint's data")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_binarize_flags(p)
    add_train_flags(p)
    p.add_argument("--model", metavar="SPEC", help=TRUST_HELP)
    add_device_flag(p)
    p.set_defaults(func=cmd_binarize)
