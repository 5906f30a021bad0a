"""``netshrink sensitivity`` and ``netshrink dsd``: pruning a trained network."""

from __future__ import annotations

import argparse
import json

from netshrink.cli.common import (
    TRUST_HELP,
    add_device_flag,
    add_train_flags,
    non_negative_int,
    positive_int,
    train_config,
    with_given,
)
from netshrink.errors import NetshrinkError

__all__ = ["add_dsd", "add_sensitivity"]


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from pathlib import Path

    from netshrink import distributed
    from netshrink.atomic import atomic_write_text, ensure_dir
    from netshrink.prune import (
        plot_sensitivity,
        render_sensitivity,
        sensitivity_scan,
        suggest_sparsity,
    )
    from netshrink.runs.checkpoint import refuse_existing
    from netshrink.runs.load import load_trained
    from netshrink.train import evaluate

    if not 0 <= args.max_drop <= 100:
        raise NetshrinkError(
            f"--max-drop is a top-1 budget in percentage points (0-100), got {args.max_drop:g}"
        )
    max_drop = args.max_drop / 100  # the scan's accuracies are fractions
    refuse_existing(Path(args.out) / "sensitivity.json", args.overwrite)
    trained = load_trained(args.checkpoint)
    trained.model.to(distributed.device())
    data = trained.load_data(args.data, limit=args.limit)
    distributed.barrier()  # every rank has checked for an existing scan before rank 0 writes
    out = ensure_dir(Path(args.out))
    sparsities = {"sparsities": args.sparsities} if args.sparsities else {}
    result = sensitivity_scan(trained.model, lambda m: evaluate(m, data.val)["top1"], **sparsities)
    suggestion = suggest_sparsity(result, max_drop)
    record = {**result.to_dict(), "max_drop": max_drop, "suggested": suggestion}
    atomic_write_text(out / "sensitivity.json", json.dumps(record, indent=2))
    plot_sensitivity(result, out / "sensitivity.png")
    print(render_sensitivity(result, max_drop))
    print(f"suggested: the highest sparsity per layer within {args.max_drop:g} points of top-1")
    print(f"wrote {out / 'sensitivity.json'} and {out / 'sensitivity.png'}")
    return 0


DSD_FIELDS = {
    "sparsity": "sparsity",
    "sparse_epochs": "sparse_epochs",
    "redense_epochs": "redense_epochs",
    "redense_lr_scale": "redense_lr_scale",
}


def cmd_dsd(args: argparse.Namespace) -> int:
    from pathlib import Path

    from netshrink.runs.dsd import FROM_TRAINED, dsd_checkpoint

    if args.epochs is not None:  # TrainConfig's field, which DSD's phases replace
        raise NetshrinkError(
            "dsd: the phases' lengths are --sparse-epochs and --redense-epochs; --epochs is not "
            "used"
        )
    config = with_given(FROM_TRAINED, args, DSD_FIELDS)
    if config.sparse_epochs == config.redense_epochs == 0:
        raise NetshrinkError("dsd: --sparse-epochs and --redense-epochs are both 0: no training")
    trained, run = dsd_checkpoint(
        args.checkpoint,
        config,
        train_config(args),
        args.out,
        data=args.data,
        limit=args.limit,
        overwrite=args.overwrite,
    )
    print(
        f"{trained.model_name}: test top-1 {100 * run.before['top1']:.2f}% before DSD, "
        f"{100 * run.result.sparse.metrics['test_top1']:.2f}% sparse, "
        f"{100 * run.metrics['test_top1']:.2f}% after; wrote {Path(args.out) / 'model.pt'}"
    )
    return 0


def add_sensitivity(sub) -> None:
    p = sub.add_parser("sensitivity", help="per-layer accuracy against pruning sparsity")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--data", metavar="SPEC", help="default: the checkpoint's data")
    p.add_argument("--limit", type=positive_int, help="use at most N images (stratified)")
    p.add_argument(
        "--sparsities", type=float, nargs="+", help="default: 0, 0.25, 0.5, 0.6 ... 0.95"
    )
    p.add_argument(
        "--max-drop", type=float, default=1.0,
        help="top-1 budget of the suggestions, in percentage points (default 1)",
    )  # fmt: skip
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="replace a scan in DIR")
    p.add_argument("--model", metavar="SPEC", help=TRUST_HELP)
    add_device_flag(p)
    p.set_defaults(func=cmd_sensitivity)


def add_dsd(sub) -> None:
    p = sub.add_parser("dsd", help="Dense-Sparse-Dense training of a trained checkpoint")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--data", metavar="SPEC", help="default: the checkpoint's data")
    # Defaults: netshrink.runs.dsd.FROM_TRAINED (sparsity 0.3, 3 + 3 epochs, lr/10).
    p.add_argument("--sparsity", type=float, help="of each pruned layer in the sparse phase")
    p.add_argument("--sparse-epochs", type=non_negative_int)
    p.add_argument("--redense-epochs", type=non_negative_int)
    p.add_argument("--redense-lr-scale", type=float, help="re-dense lr = --lr * this")
    add_train_flags(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in DIR")
    p.add_argument("--model", metavar="SPEC", help=TRUST_HELP)
    add_device_flag(p)
    p.set_defaults(func=cmd_dsd)
