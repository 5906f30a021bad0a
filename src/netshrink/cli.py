"""The ``netshrink`` command line. It only parses flags and calls the public API."""

from __future__ import annotations

import os

# Idle OpenMP threads that sleep add ~8 ms wake-up stalls to multi-threaded torch on
# small machines; spinning threads avoid it. Must be set before torch starts OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from typing import Any, NoReturn  # noqa: E402

from netshrink.errors import NetshrinkError  # noqa: E402

__all__ = ["main", "parse_input_size"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_input_size(text: str) -> tuple[int, ...]:
    """``"3x224x224"`` → (3, 224, 224); ``"224x224"`` or ``"224"`` → (H, W)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) == 1:
        dims = (dims[0], dims[0])
    if len(dims) not in (2, 3) or any(d < 1 or d > 65536 for d in dims):
        raise NetshrinkError(
            f"malformed --input {text!r}: expected CxHxW, HxW or S (e.g. 3x224x224)"
        )
    return dims


def _split_name(text: str) -> tuple[str, list[str]]:
    """``"mobilenet_v1:width_mult=0.5,small_input=1"`` → name and its key=value pairs."""
    name, _, rest = text.partition(":")
    return name, [p for p in rest.split(",") if p]


# ---------------------------------------------------------------------------- commands


def cmd_models(args: argparse.Namespace) -> int:
    from netshrink.models import get_spec, list_models

    print(f"{'name':<16} {'family':<12} {'input':<11} {'params':>13} {'MACs':>16}  paper")
    for name in list_models():
        spec = get_spec(name)
        params = spec.published.get("params")
        macs = spec.published.get("macs")
        print(
            f"{name:<16} {spec.family:<12} {'x'.join(map(str, spec.input_size)):<11} "
            f"{params or 0:>13,} {macs or 0:>16,}  {spec.paper}"
        )
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from netshrink.data import list_datasets

    print("\n".join(list_datasets()))
    return 0


def _profile_model(text: str, args: argparse.Namespace):
    from netshrink.models import create, get_spec, parse_model_args
    from netshrink.runner import resolve_model

    name, pairs = _split_name(text)
    spec = get_spec(name)
    model_args = parse_model_args(name, [*args.arg, *pairs])
    if args.num_classes is not None:
        model_args["num_classes"] = args.num_classes
    size = spec.input_size
    if args.input:
        dims = parse_input_size(args.input)
        size = dims if len(dims) == 3 else (spec.input_size[0], *dims)
    model_args, size = resolve_model(name, size, model_args)
    label = name + (":" + ",".join(pairs) if pairs else "")
    return label, create(name, **model_args), size


def cmd_profile(args: argparse.Namespace) -> int:
    from netshrink.profile import (
        measure_side_by_side,
        profile,
        render_comparison,
        render_table,
    )

    built = [_profile_model(text, args) for text in args.names]
    single = len(built) == 1
    profiles = [
        profile(
            model,
            size,
            name=label,
            latency=args.latency and single,
            batch_sizes=args.batch_size,
            threads=args.threads,
            per_layer_latency=args.latency and single,
        )
        for label, model, size in built
    ]
    if args.latency and not single:
        # Several models: time them side by side so machine noise hits all alike.
        named = {str(i): (model, size) for i, (_, model, size) in enumerate(built)}
        for b in args.batch_size:
            stats = measure_side_by_side(named, batch_size=b, threads=args.threads)
            for i, prof in enumerate(profiles):
                prof.latency[b] = stats[str(i)]
    if args.json:
        data: Any = [p.to_dict() for p in profiles]
        print(json.dumps(data[0] if single else data, indent=2))
    elif single:
        print(render_table(profiles[0]))
    else:
        print(render_comparison(profiles))
    return 0


def _train_config(args: argparse.Namespace):
    from netshrink.train import TrainConfig

    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        augment=args.augment,
        seed=args.seed,
    )


def _binarize_config(args: argparse.Namespace, mode: str):
    from netshrink.binarize import BinarizeConfig

    return BinarizeConfig(
        mode=mode,
        exclude=args.keep_real,
        keep_first_last=not args.binarize_all,
        input_scale=not args.no_input_scale,
    )


def _xnor_order_note(name: str, model_args: dict) -> None:
    """Say once when XNOR layers may see only non-negative inputs (after a ReLU)."""
    from netshrink.models import get_spec

    if "order" not in get_spec(name).defaults or model_args.get("order", "standard") != "xnor":
        print(
            f"note: {name} is not in XNOR-Net's block order (order=xnor): a binary layer "
            "whose inputs follow a ReLU only ever sees +1 signs (see docs/binary.md)",
            file=sys.stderr,
        )


def cmd_train(args: argparse.Namespace) -> int:
    from netshrink.models import parse_model_args
    from netshrink.runner import train_run

    if not args.binarize and (args.keep_real or args.binarize_all or args.no_input_scale):
        raise NetshrinkError("--keep-real, --binarize-all and --no-input-scale need --binarize")
    model_args = parse_model_args(args.name, args.arg)
    run = train_run(
        args.name,
        args.data,
        _train_config(args),
        args.out,
        model_args=model_args,
        resume=args.resume,
        limit=args.limit,
        binarize=_binarize_config(args, args.binarize) if args.binarize else None,
    )
    m = run.checkpoint.metrics
    if args.binarize == "xnor":
        _xnor_order_note(args.name, run.checkpoint.model_args)
    if run.checkpoint.binarize:
        layers = run.checkpoint.binarize["layers"]
        print(f"{args.binarize}: binary layers {', '.join(layers)}")
    print(
        f"{args.name}: val top-1 {m['val_top1']:.4f}, test top-1 {m['test_top1']:.4f} "
        f"(n={m['test_n']}); wrote {run.out_dir / 'model.pt'}"
    )
    return 0


def _load_any(path: str):
    """A checkpoint or an .nsz file → (model, name, args, input_size, data spec, seed)."""
    from netshrink.runner import load_trained

    t = load_trained(path)
    return t.model, t.model_name, t.model_args, t.input_size, t.data, t.seed


def _check_classes(path: str, model_args: dict, spec: str, data) -> None:
    model_classes = model_args.get("num_classes")
    if model_classes is not None and model_classes != data.num_classes:
        raise NetshrinkError(
            f"{path} predicts {model_classes} classes but {spec} has {data.num_classes}"
        )


def _packed(model, quiet: bool = False):
    """The model on the packed engine; fallbacks said once, on stderr."""
    from netshrink.binarize.packed import to_packed

    packed, notes = to_packed(model, warn=False)
    fallback = [n for n in notes if n.engine == "float"]
    if fallback and not quiet:
        listed = "; ".join(f"{n.layer} ({n.reason})" for n in fallback)
        print(f"note: packed engine runs {len(fallback)} binary layer(s) in float: {listed}",
              file=sys.stderr)  # fmt: skip
    return packed, notes


def cmd_eval(args: argparse.Namespace) -> int:
    from netshrink.data import load_dataset
    from netshrink.profile import measure_latency
    from netshrink.train import evaluate

    model, name, model_args, input_size, _, seed = _load_any(args.checkpoint)
    data = load_dataset(args.data, input_size=input_size, seed=seed)
    _check_classes(args.checkpoint, model_args, args.data, data)
    notes = []
    if args.engine == "packed":
        model, notes = _packed(model, quiet=args.json)
    result: dict[str, Any] = evaluate(model, data.test)
    latency = measure_latency(model, input_size, batch_size=1, repeats=args.repeats)
    result.update(model=name, data=args.data, split="test", latency_ms=latency.median_ms)
    result["engine"] = args.engine
    if notes:
        result["packed_layers"] = [n.layer for n in notes if n.engine == "packed"]
        result["float_layers"] = {n.layer: n.reason for n in notes if n.engine == "float"}
    from netshrink.runner import is_nsz

    if is_nsz(args.checkpoint):
        result["file_bytes"] = os.path.getsize(args.checkpoint)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        top5 = f", top-5 {result['top5']:.4f}" if "top5" in result else ""
        print(
            f"{name} on {args.data} (test, n={result['n']}): "
            f"top-1 {result['top1']:.4f}{top5}; latency {result['latency_ms']:.2f} ms "
            f"(batch 1, {args.engine} engine)"
        )
    return 0


def cmd_binarize(args: argparse.Namespace) -> int:
    from pathlib import Path

    import yaml

    from netshrink._atomic import atomic_write_bytes, atomic_write_text, ensure_dir
    from netshrink.binarize import binarize_
    from netshrink.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from netshrink.data import load_dataset
    from netshrink.nsz import pack
    from netshrink.train import evaluate, train

    ckpt = load_checkpoint(args.checkpoint)
    if ckpt.binarize:
        raise NetshrinkError(f"{args.checkpoint} is a binary network already")
    model = ckpt.build()
    spec = args.data or ckpt.data
    if not spec:
        raise NetshrinkError("--data is required: the checkpoint records no data spec")
    train_config = _train_config(args)
    data = load_dataset(spec, input_size=ckpt.input_size, seed=train_config.seed, limit=args.limit)
    _check_classes(args.checkpoint, ckpt.model_args, spec, data)
    resolved = binarize_(model, _binarize_config(args, args.mode))  # checks before any output
    if args.mode == "xnor":
        _xnor_order_note(ckpt.model_name, ckpt.model_args)
    out = ensure_dir(Path(args.out))
    model.eval()
    # Evaluate the float network, then the same weights binarized, before fine-tuning.
    before = {f"float_{k}": v for k, v in evaluate(ckpt.build(), data.test).items()}  # test split
    before.update({f"binarized_{k}": v for k, v in evaluate(model, data.test).items()})
    result = train(model, data, train_config, progress=not args.quiet, desc=f"{args.mode}")
    metrics = {**before, **result.metrics, "train_seconds": result.seconds}
    config = {
        "source": str(args.checkpoint),
        "data": spec,
        "limit": args.limit,
        "train": train_config.to_dict(),
        "binarize": resolved.to_dict(),
    }
    data_bytes = pack(  # built before anything is written: a failure leaves no half output
        model.eval(),
        None,
        model_name=ckpt.model_name,
        model_args=ckpt.model_args,
        input_size=ckpt.input_size,
        metadata={"data": spec, "seed": train_config.seed, "metrics": dict(result.metrics),
                  "binarize": resolved.to_dict()},
    )  # fmt: skip
    save_checkpoint(
        out / "model.pt",
        Checkpoint(ckpt.model_name, ckpt.model_args, ckpt.input_size, model.state_dict(), spec,
                   dict(result.metrics), config),
    )  # fmt: skip
    atomic_write_bytes(out / "model.nsz", data_bytes)
    dense_bytes = sum(t.numel() * 4 for t in model.state_dict().values())
    metrics.update(file_bytes=len(data_bytes), dense_bytes=dense_bytes)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_text(
        out / "metrics.json", json.dumps({"metrics": metrics, "history": result.history}, indent=2)
    )
    print(f"{args.mode}: binary layers {', '.join(resolved.layers)}")
    print(
        f"{ckpt.model_name}: test top-1 {100 * before['float_top1']:.2f}% float, "
        f"{100 * before['binarized_top1']:.2f}% binarized, "
        f"{100 * result.metrics['test_top1']:.2f}% after {train_config.epochs} epochs; "
        f"{dense_bytes:,} B fp32 -> {len(data_bytes):,} B .nsz "
        f"({dense_bytes / len(data_bytes):.1f}x); wrote {out / 'model.pt'}, {out / 'model.nsz'}"
    )
    return 0


def _compress_source(args: argparse.Namespace):
    """The model to compress, its registry identity, and the data (or None)."""
    import torch

    from netshrink.data import load_dataset, native_input_size
    from netshrink.models import create, get_spec, parse_model_args
    from netshrink.runner import resolve_model

    if (args.checkpoint is None) == (args.model is None):
        raise NetshrinkError("give either a CHECKPOINT or --model NAME")
    if args.checkpoint is not None:
        if args.arg or args.input:
            raise NetshrinkError("--arg and --input go with --model, not with a checkpoint")
        model, name, model_args, input_size, ckpt_data, seed = _load_any(args.checkpoint)
        spec = args.data if args.data is not None else (ckpt_data or "none")
        data = None
        if spec != "none":
            data = load_dataset(spec, input_size=input_size, seed=seed, limit=args.limit)
            _check_classes(args.checkpoint, model_args, spec, data)
        return model, name, dict(model_args), tuple(input_size), data, spec, seed
    name = args.model
    model_args = parse_model_args(name, args.arg)
    spec = args.data or "none"
    data = None
    if spec != "none":
        if args.input:
            raise NetshrinkError("--input sets the model's input only with --data none")
        model_args, input_size = resolve_model(name, native_input_size(spec), model_args)
        data = load_dataset(spec, input_size=input_size, seed=0, limit=args.limit)
        model_args.setdefault("num_classes", data.num_classes)
    else:
        input_size = get_spec(name).input_size
        if args.input:
            dims = parse_input_size(args.input)
            input_size = dims if len(dims) == 3 else (input_size[0], *dims)
            model_args.setdefault("in_chans", input_size[0])
    torch.manual_seed(0)
    model = create(name, **model_args)
    return model, name, model_args, tuple(input_size), data, spec, 0


def cmd_compress(args: argparse.Namespace) -> int:
    from pathlib import Path

    from netshrink._atomic import atomic_write_text, ensure_dir
    from netshrink.deep_compression import check_recipe, compress
    from netshrink.nsz import render_report
    from netshrink.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    out = Path(args.out)
    ensure_dir(out.parent)
    model, name, model_args, input_size, data, spec, seed = _compress_source(args)
    check_recipe(model, recipe)
    result = compress(
        model,
        recipe,
        data,
        path=out,
        model_name=name,
        model_args=model_args,
        input_size=input_size,
        metadata={"data": "" if spec == "none" else spec, "seed": seed},
        progress=not args.quiet,
    )
    stem = out.with_suffix("")
    atomic_write_text(f"{stem}.recipe.yaml", recipe.to_yaml())
    atomic_write_text(f"{stem}.json", json.dumps(result.to_dict(), indent=2))
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
    from netshrink.nsz import compression_report, read_nsz, render_report

    report = compression_report(read_nsz(args.file))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"{args.file}: {report.model or 'unnamed architecture'}")
        print(render_report(report))
    return 0


def cmd_unpack(args: argparse.Namespace) -> int:
    from netshrink.checkpoint import Checkpoint, save_checkpoint
    from netshrink.nsz import read_nsz

    nsz = read_nsz(args.file)
    model, name, model_args, input_size, data, seed = _load_any(args.file)
    metrics = nsz.metadata.get("metrics", {})
    ckpt = Checkpoint(
        model_name=name,
        model_args=model_args,
        input_size=tuple(input_size),
        state_dict=model.state_dict(),
        data=data,
        metrics=metrics if isinstance(metrics, dict) else {},
        config={"train": {"seed": seed}, "unpacked_from": str(args.file)},
    )
    if nsz.header.get("binarize"):  # binary layers stay binary (their weights are ±α)
        ckpt.config["binarize"] = nsz.header["binarize"]
    save_checkpoint(args.out, ckpt)
    kind = "binary layers kept binary" if ckpt.binarize else "dense fp32"
    print(f"wrote {args.out} ({name}, {kind})")
    return 0


def _model_and_data(args: argparse.Namespace):
    """The checkpoint's model and the data it is evaluated on (``--data``, else its own)."""
    from netshrink.data import load_dataset

    model, name, model_args, input_size, ckpt_data, seed = _load_any(args.checkpoint)
    spec = args.data or ckpt_data
    if not spec:
        raise NetshrinkError("--data is required: the checkpoint records no data spec")
    data = load_dataset(spec, input_size=input_size, seed=seed, limit=args.limit)
    _check_classes(args.checkpoint, model_args, spec, data)
    return model, name, model_args, input_size, spec, data


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from pathlib import Path

    from netshrink._atomic import atomic_write_text, ensure_dir
    from netshrink.prune import (
        plot_sensitivity,
        render_sensitivity,
        sensitivity_scan,
        suggest_sparsity,
    )
    from netshrink.train import evaluate

    model, name, model_args, input_size, spec, data = _model_and_data(args)
    out = ensure_dir(Path(args.out))
    result = sensitivity_scan(
        model, lambda m: evaluate(m, data.val)["top1"], sparsities=args.sparsities
    )
    suggestion = suggest_sparsity(result, args.max_drop)
    atomic_write_text(
        out / "sensitivity.json",
        json.dumps(
            {**result.to_dict(), "max_drop": args.max_drop, "suggested": suggestion}, indent=2
        ),
    )
    plot_sensitivity(result, out / "sensitivity.png")
    print(render_sensitivity(result, args.max_drop))
    print(f"wrote {out / 'sensitivity.json'} and {out / 'sensitivity.png'}")
    return 0


def cmd_dsd(args: argparse.Namespace) -> int:
    from pathlib import Path

    from netshrink._atomic import atomic_write_text, ensure_dir
    from netshrink.checkpoint import Checkpoint, save_checkpoint
    from netshrink.nsz.file import binarize_header
    from netshrink.prune import DSDConfig, dsd_train
    from netshrink.train import evaluate

    model, name, model_args, input_size, spec, data = _model_and_data(args)
    out = ensure_dir(Path(args.out))
    config = DSDConfig(
        sparsity=args.sparsity,
        dense_epochs=0,
        sparse_epochs=args.sparse_epochs,
        redense_epochs=args.redense_epochs,
        redense_lr_scale=args.redense_lr_scale,
    )
    train_config = _train_config(args)
    before = {f"test_{k}": v for k, v in evaluate(model, data.test).items()}
    result = dsd_train(model, data, config, train_config)
    metrics = result.redense.metrics
    saved = {"train": train_config.to_dict(), "dsd": config.to_dict()}
    if binarize_header(model):  # a binary network stays binary
        saved["binarize"] = binarize_header(model)
    save_checkpoint(
        out / "model.pt",
        Checkpoint(name, model_args, tuple(input_size), model.state_dict(), spec, metrics, saved),
    )
    record = {"before": before, "dsd": result.to_dict(), "config": config.to_dict()}
    atomic_write_text(out / "metrics.json", json.dumps(record, indent=2, default=str))
    print(
        f"{name}: test top-1 {100 * before['test_top1']:.2f}% before DSD, "
        f"{100 * result.sparse.metrics['test_top1']:.2f}% sparse, "
        f"{100 * metrics['test_top1']:.2f}% after; wrote {out / 'model.pt'}"
    )
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from netshrink.distill import DistillConfig
    from netshrink.models import parse_model_args
    from netshrink.runner import train_run

    config = DistillConfig(temperature=args.temperature, alpha=args.alpha)
    run = train_run(
        args.student,
        args.data,
        _train_config(args),
        args.out,
        model_args=parse_model_args(args.student, args.arg),
        resume=args.resume,
        limit=args.limit,
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


def cmd_sweep(args: argparse.Namespace) -> int:
    from netshrink.sweep import SweepConfig, parse_params, render_text, run_sweep

    config = SweepConfig(
        study=args.study,
        grid=parse_params(args.study, args.param),
        seeds=args.seeds,
        data=args.data,
        epochs=args.epochs,
        limit=args.limit,
        out=args.out or f"runs/sweep/{args.study}",
    )
    result = run_sweep(config, jobs=args.jobs, progress=not args.quiet)
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


def cmd_survey(args: argparse.Namespace) -> int:
    from netshrink.survey import (
        SurveyConfig,
        render_rows,
        render_table1,
        run_survey,
        write_report,
    )

    config = SurveyConfig(
        data=args.data,
        out=args.out,
        quick=args.quick,
        seed=args.seed,
        epochs=args.epochs,
        limit=args.limit,
        latency_repeats=args.repeats,
        table1=not args.no_table1,
        only=tuple(args.only or ()),
    )
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


# ---------------------------------------------------------------------------- parser


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="adam")
    p.add_argument("--schedule", choices=["cosine", "step", "constant"], default="cosine")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--augment", action="store_true", help="light augmentation (±2 px shifts)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="use at most N images (stratified)")


def _add_binarize_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--keep-real", action="append", default=[], metavar="PATTERN",
        help="layer-name pattern kept real-valued (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--binarize-all", action="store_true", help="binarize the first and last layers too"
    )
    p.add_argument("--no-input-scale", action="store_true", help="xnor: scale by alpha only, no K")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="netshrink",
        description="Compress and accelerate CNNs, and measure the result honestly.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("models", help="list registered architectures")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("datasets", help="list built-in datasets and the data spec forms")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("profile", help="parameters, MACs, bytes and latency per layer")
    p.add_argument("names", nargs="+", metavar="NAME", help="model name, optionally NAME:k=v,k=v")
    p.add_argument("--input", help="input size CxHxW (default: the model's published input)")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--latency", action="store_true", help="measure CPU latency")
    p.add_argument("--batch-size", type=int, nargs="+", default=[1])
    p.add_argument("--threads", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("train", help="train a registered model")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--data", required=True, metavar="SPEC")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in DIR")
    p.add_argument(
        "--binarize", choices=["bwn", "xnor"], help="train a binary network (XNOR-Net) from scratch"
    )
    _add_binarize_flags(p)
    _add_train_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("binarize", help="BWN / XNOR-Net: binarize a checkpoint and fine-tune it")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--mode", choices=["bwn", "xnor"], required=True)
    p.add_argument("--data", metavar="SPEC", help="default: the checkpoint's data")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_binarize_flags(p)
    _add_train_flags(p)
    p.set_defaults(func=cmd_binarize)

    p = sub.add_parser(
        "distill", help="knowledge distillation: train a student on teachers' soft targets"
    )
    p.add_argument(
        "--teacher", action="append", required=True, metavar="CHECKPOINT",
        help="teacher checkpoint or .nsz (repeat for an ensemble: soft targets are averaged)",
    )  # fmt: skip
    p.add_argument("--student", required=True, metavar="NAME", help="registered model")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data", required=True, metavar="SPEC")
    p.add_argument("--temperature", type=float, required=True, metavar="T", help="T > 0")
    p.add_argument(
        "--alpha", type=float, required=True, metavar="A",
        help="weight of the soft-target term, in [0, 1] (the hard-label term gets 1 - A)",
    )  # fmt: skip
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_train_flags(p)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser(
        "sweep", help="a study's trials in parallel: SqueezeNet design space, distillation"
    )
    p.add_argument("study", metavar="STUDY", help="squeezenet or distill")
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=V1,V2,...",
        help="values of one parameter (repeatable; the grid is their Cartesian product)",
    )  # fmt: skip
    p.add_argument("--seeds", type=int, help="seeds per configuration (squeezenet 1, distill 3)")
    p.add_argument("--data", default="mnist5k", metavar="SPEC")
    p.add_argument("--epochs", type=int, help="training epochs (squeezenet 6, distill 30)")
    p.add_argument("--limit", type=int, help="use at most N images (stratified)")
    p.add_argument("--jobs", type=int, help="trials run at once (default: one per core)")
    p.add_argument("--out", metavar="DIR", help="default: runs/sweep/STUDY")
    p.add_argument("--quiet", action="store_true", help="no per-trial progress lines")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("eval", help="accuracy and latency of a checkpoint or .nsz file")
    p.add_argument("checkpoint", metavar="CHECKPOINT|FILE.nsz")
    p.add_argument("--data", required=True, metavar="SPEC")
    p.add_argument("--repeats", type=int, default=20, help="latency repeats")
    p.add_argument(
        "--engine",
        choices=["float", "packed"],
        default="float",
        help="packed: binary XNOR layers on the bit-packed popcount kernels",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("compress", help="Deep Compression: run a recipe, write an .nsz file")
    p.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT")
    p.add_argument("--model", metavar="NAME", help="compress a registered model instead")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--input", help="model input CxHxW (with --model and --data none)")
    p.add_argument("--recipe", required=True, metavar="FILE")
    p.add_argument("--data", metavar="SPEC", help="data for retraining, or 'none'")
    p.add_argument("--limit", type=int, help="use at most N images (stratified)")
    p.add_argument("--out", required=True, metavar="FILE.nsz")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("inspect", help="per-layer compression table of an .nsz file")
    p.add_argument("file", metavar="FILE.nsz")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("unpack", help="decode an .nsz file into a dense checkpoint")
    p.add_argument("file", metavar="FILE.nsz")
    p.add_argument("--out", required=True, metavar="MODEL.pt")
    p.set_defaults(func=cmd_unpack)

    p = sub.add_parser("sensitivity", help="per-layer accuracy against pruning sparsity")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--data", metavar="SPEC", help="default: the checkpoint's data")
    p.add_argument("--limit", type=int, help="use at most N images (stratified)")
    p.add_argument(
        "--sparsities", type=float, nargs="+",
        default=[0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
    )  # fmt: skip
    p.add_argument("--max-drop", type=float, default=1.0, help="accuracy budget, points")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=cmd_sensitivity)

    p = sub.add_parser("dsd", help="Dense-Sparse-Dense training of a trained checkpoint")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--data", metavar="SPEC", help="default: the checkpoint's data")
    p.add_argument("--sparsity", type=float, default=0.3)
    p.add_argument("--sparse-epochs", type=int, default=3)
    p.add_argument("--redense-epochs", type=int, default=3)
    p.add_argument("--redense-lr-scale", type=float, default=0.1)
    _add_train_flags(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=cmd_dsd)

    p = sub.add_parser("survey", help="run every method on the data and write the report")
    p.add_argument("--data", default="mnist5k", metavar="SPEC")
    p.add_argument("--out", default="runs/survey", metavar="DIR")
    p.add_argument("--quick", action="store_true", help="small and fast (under 2 minutes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int)
    p.add_argument("--limit", type=int, help="use at most N images")
    p.add_argument("--repeats", type=int, help="latency repeats per model")
    p.add_argument("--only", nargs="+", metavar="KEY", help="run only these entries")
    p.add_argument("--no-table1", action="store_true", help="skip the ImageNet-shape table")
    p.set_defaults(func=cmd_survey)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NetshrinkError as exc:
        print(f"netshrink: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("netshrink: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
