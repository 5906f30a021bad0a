"""``netshrink compress``, ``inspect`` and ``unpack``: Deep Compression and its files."""

from __future__ import annotations

import argparse
import json
import sys

from netshrink.cli.common import (
    add_device_flag,
    add_model_flag,
    model_skeleton,
    parse_input_size,
    positive_int,
)
from netshrink.errors import NetshrinkError

__all__ = ["add_compress", "add_inspect", "add_unpack"]


def _source(args: argparse.Namespace):
    """The model to compress (a trained file, or a registry model) and its data."""
    from netshrink.models import parse_model_args
    from netshrink.runs.compress import checkpoint_source, model_source

    if args.checkpoint is None and args.model is None:
        raise NetshrinkError("give a CHECKPOINT or --model NAME")
    if args.limit is not None and (args.data or "").lower() == "none":
        raise NetshrinkError("--limit chooses images of --data: it has no use with --data none")
    if args.checkpoint is not None:  # --model is then the checkpoint's code
        if args.input:
            raise NetshrinkError("--input goes with --model alone, not with a checkpoint")
        skeleton = model_skeleton(args, args.checkpoint)
        return checkpoint_source(args.checkpoint, args.data, limit=args.limit, model=skeleton)
    model_args = parse_model_args(args.model, args.arg)
    size = parse_input_size(args.input) if args.input else None
    return model_source(args.model, model_args, args.data, input_size=size, limit=args.limit)


def cmd_compress(args: argparse.Namespace) -> int:
    from pathlib import Path

    from netshrink.atomic import ensure_dir
    from netshrink.nsz import render_report
    from netshrink.runs.checkpoint import refuse_existing
    from netshrink.runs.compress import STATE_FILE, check_recipe, compress_run, resume_folder
    from netshrink.runs.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    out = Path(args.out)
    refuse_existing(out, args.overwrite)  # with --resume too: it is the same command
    ensure_dir(out.parent)
    source = _source(args)
    check_recipe(source.trained.model, recipe)
    saved = resume_folder(out) / STATE_FILE
    if saved.is_file() and not args.resume:
        print(f"note: {saved.parent} holds the finished stages of an interrupted run; starting "
              "afresh replaces them (pass --resume to continue them)", file=sys.stderr)  # fmt: skip
    try:
        result = compress_run(source, recipe, out, progress=not args.quiet, resume=args.resume)
    except KeyboardInterrupt:
        if saved.is_file():
            print(f"note: the finished stages are saved in {saved.parent}; the same command "
                  "with --resume continues from them", file=sys.stderr)  # fmt: skip
        raise
    stem = out.with_suffix("")
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(render_report(result.report))
    if result.baseline:
        before = 100 * result.baseline["test_top1"]
        after = 100 * result.metrics["test_top1"]
        print(
            f"test top-1: {before:.2f}% before, {after:.2f}% after ({after - before:+.2f} points)"
        )
    print(f"wrote {out} ({out.stat().st_size:,} bytes), {stem}.recipe.yaml, {stem}.json")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from netshrink.nsz import compression_report, load_into, read_nsz, render_report, skeleton

    if args.arg and args.model is None:
        raise NetshrinkError("--arg gives --model's arguments: it needs --model")
    nsz = read_nsz(args.file)
    report = compression_report(nsz)
    fits = None
    if args.model is not None:  # the file decoded into the user's module: it fits exactly
        model = model_skeleton(args, args.file) or skeleton(nsz)
        load_into(nsz, model)
        fits = f"{len(nsz.entries)} tensors restored into {args.model}"
    if args.json:
        print(json.dumps({**report.to_dict(), **({"fits": fits} if fits else {})}, indent=2))
    else:
        print(f"{args.file}: {report.model or 'unnamed architecture'}")
        print(render_report(report))
        if fits:
            print(fits)
    return 0


def cmd_unpack(args: argparse.Namespace) -> int:
    from pathlib import Path

    from netshrink.runs.checkpoint import refuse_existing
    from netshrink.runs.load import unpack_to_checkpoint

    out = Path(args.out)
    if out.suffix.lower() in (".nsz", ".onnx"):
        raise NetshrinkError(
            f"--out {out}: unpack writes a checkpoint (MODEL.pt), not {out.suffix}"
        )
    refuse_existing(out, args.overwrite)
    skeleton = model_skeleton(args, args.file)
    named = None if skeleton is None else (args.model, args.arg)
    ckpt = unpack_to_checkpoint(args.file, args.out, model=skeleton, named=named)
    kind = "binary layers kept binary" if ckpt.binarize else "dense fp32"
    print(f"wrote {args.out} ({ckpt.model_name}, {kind})")
    return 0


def add_compress(sub) -> None:
    p = sub.add_parser("compress", help="Deep Compression: run a recipe, write an .nsz file")
    p.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT")
    p.add_argument(
        "--model", metavar="SPEC",
        help="without a CHECKPOINT: compress this model, untrained or trained on --data; with "
        "one: the checkpoint's code (a registry name or package.module:factory)",
    )  # fmt: skip
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--input", help="model input CxHxW (with --model and --data none)")
    p.add_argument(
        "--recipe", required=True, metavar="FILE|NAME",
        help="a YAML recipe, or the name of a shipped one (lenet5, squeezenet1_0_table1, ...)",
    )  # fmt: skip
    p.add_argument("--data", metavar="SPEC", help="data for retraining, or 'none'")
    p.add_argument("--limit", type=positive_int, help="use at most N images (stratified)")
    p.add_argument("--out", required=True, metavar="FILE.nsz")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out (and its record)"
    )
    p.add_argument(
        "--resume", action="store_true",
        help="continue an interrupted run from its finished stages (saved in .FILE.nsz.resume/ "
        "beside --out); the same file as an uninterrupted run",
    )  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_flag(p)
    p.set_defaults(func=cmd_compress)


def add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="per-layer compression table of an .nsz file")
    p.add_argument("file", metavar="FILE.nsz")
    p.add_argument("--json", action="store_true")
    add_model_flag(p)
    p.set_defaults(func=cmd_inspect)


def add_unpack(sub) -> None:
    p = sub.add_parser("unpack", help="decode an .nsz file into a dense checkpoint")
    p.add_argument("file", metavar="FILE.nsz")
    p.add_argument("--out", required=True, metavar="MODEL.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_model_flag(p)
    p.set_defaults(func=cmd_unpack)
