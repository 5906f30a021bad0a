"""``netshrink models``, ``datasets``, ``engines`` and ``profile``: what is there, and what it
costs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from netshrink.cli.common import (
    add_device_flag,
    explicit_cuda,
    parse_input_size,
    positive_int,
    split_name,
)
from netshrink.errors import NetshrinkError

__all__ = ["add_datasets", "add_engines", "add_models", "add_profile"]


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


def cmd_engines(args: argparse.Namespace) -> int:
    from netshrink.engine import get_engine, list_engines

    for name in list_engines():
        engine = get_engine(name)
        aliases = f" (alias {', '.join(engine.aliases)})" if engine.aliases else ""
        print(f"{name:<8} {engine.summary}{aliases}")
    return 0


def _profile_model(text: str, args: argparse.Namespace):
    """``NAME[:k=v,...]`` → (label, model, input size)."""
    from netshrink.models import create, get_spec, parse_model_args
    from netshrink.runs.load import resolve_model

    name, pairs = split_name(text)
    spec = get_spec(name)
    model_args = parse_model_args(name, [*args.arg, *pairs])
    if args.num_classes is not None:
        if model_args.get("num_classes", args.num_classes) != args.num_classes:
            raise NetshrinkError(
                f"--num-classes {args.num_classes} contradicts num_classes="
                f"{model_args['num_classes']} given to {name}"
            )
        model_args["num_classes"] = args.num_classes
    size = spec.input_size
    if not size and not args.input:
        raise NetshrinkError(f"{name} is an external model: give its input size with --input")
    if args.input:
        dims = parse_input_size(args.input)
        size = dims if len(dims) == 3 else (spec.input_size[0], *dims)
    asked = tuple(size)
    model_args, size = resolve_model(name, size, model_args)
    if args.input and tuple(size) != asked:  # never profile another shape than asked for
        shown = "x".join(map(str, size))
        raise NetshrinkError(
            f"--input {args.input}: {name} takes {shown} inputs, not {'x'.join(map(str, asked))}"
        )
    label = name + (":" + ",".join(pairs) if pairs else "")
    return label, create(name, **model_args), size


def cmd_profile(args: argparse.Namespace) -> int:
    from netshrink.profile import (
        measure_side_by_side,
        profile,
        render_comparison,
        render_table,
    )

    if args.engine is not None and not args.latency:
        raise NetshrinkError("--engine times the model on an engine: it needs --latency")
    if args.latency and explicit_cuda(args):
        raise NetshrinkError(f"--device {args.device}: profile --latency times the CPU only")
    for flag, value in (("--batch-size", args.batch_size), ("--threads", args.threads)):
        if value is not None and not args.latency:
            raise NetshrinkError(f"{flag} sets how latency is measured: it needs --latency")
    args.batch_size = args.batch_size or [1]
    built = [_profile_model(text, args) for text in args.names]
    single = len(built) == 1
    engines = _on_engine(built, args.engine) if args.engine is not None else {}
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
    timed = _engine_latency(built, engines, args) if engines else []
    if args.json:
        data: Any = [p.to_dict() for p in profiles]
        for entry, (label, _, _) in zip(data, built, strict=True):
            if timed:
                entry["engine"] = [row for row in timed if row["model"] == label]
        print(json.dumps(data[0] if single else data, indent=2))
    else:
        print(render_table(profiles[0]) if single else render_comparison(profiles))
        for row in timed:
            print(
                f"{row['model']} batch {row['batch_size']}: {row['name']} engine "
                f"{row['engine_ms']:.3f} ms vs dense {row['dense_ms']:.3f} ms, speed-up "
                f"{row['speedup']:.2f}x ({row['layers_on_engine']}/{row['layers']} layers on it)"
            )
    return 0


def _on_engine(built, name: str) -> dict[str, tuple]:
    """Each model prepared on engine ``name`` (auto times its layers on the model's input
    size): label -> (network, notes)."""
    from netshrink.engine import get_engine, to_auto

    engine = get_engine(name)
    out = {}
    for label, model, size in built:
        model.eval()
        if engine.name == "auto":
            out[label] = to_auto(model, warn=False, input_size=size)
        else:
            out[label] = engine.prepare(model, warn=False)
    return out


def _engine_latency(built, engines, args) -> list[dict]:
    """Dense and engine latency of each model, timed side by side (interleaved)."""
    from netshrink.engine import get_engine
    from netshrink.profile import measure_side_by_side

    name = get_engine(args.engine).name
    rows = []
    for label, model, size in built:
        network, notes = engines[label]
        for b in args.batch_size:
            stats = measure_side_by_side(
                {"dense": (model, size), "engine": (network, size)},
                batch_size=b, threads=args.threads,
            )  # fmt: skip
            dense_ms, engine_ms = stats["dense"].median_ms, stats["engine"].median_ms
            rows.append(dict(model=label, name=name, batch_size=b, dense_ms=dense_ms,
                             engine_ms=engine_ms, speedup=dense_ms / engine_ms,
                             layers=len(notes),
                             layers_on_engine=sum(n.engine != "float" for n in notes)))  # fmt: skip
    return rows


def add_models(sub) -> None:
    p = sub.add_parser("models", help="list registered architectures")
    p.set_defaults(func=cmd_models)


def add_datasets(sub) -> None:
    p = sub.add_parser("datasets", help="list built-in datasets and the data spec forms")
    p.set_defaults(func=cmd_datasets)


def add_engines(sub) -> None:
    p = sub.add_parser("engines", help="list the inference engines of eval --engine")
    p.set_defaults(func=cmd_engines)


def add_profile(sub) -> None:
    p = sub.add_parser("profile", help="parameters, MACs, bytes and latency per layer")
    p.add_argument("names", nargs="+", metavar="NAME", help="model name, optionally NAME:k=v,k=v")
    p.add_argument("--input", help="input size CxHxW (default: the model's published input)")
    p.add_argument("--num-classes", type=positive_int)
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--latency", action="store_true", help="measure CPU latency")
    p.add_argument("--batch-size", type=positive_int, nargs="+", help="with --latency (default: 1)")
    p.add_argument("--threads", type=positive_int, help="with --latency")
    p.add_argument(
        "--engine", "--runtime", metavar="NAME", dest="engine",
        help="with --latency: also time each model on this inference engine or runtime "
        "(onnxruntime, fused, auto, ...), side by side with dense PyTorch",
    )  # fmt: skip
    p.add_argument("--json", action="store_true")
    add_device_flag(
        p, "counting runs anywhere; --latency times the CPU (auto and cpu; cuda is refused)"
    )
    p.set_defaults(func=cmd_profile)
