"""``netshrink models``, ``datasets``, ``engines`` and ``profile``: what is there, and what it
costs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from netshrink.cli.common import parse_input_size, split_name

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
    p.add_argument("--num-classes", type=int)
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--latency", action="store_true", help="measure CPU latency")
    p.add_argument("--batch-size", type=int, nargs="+", default=[1])
    p.add_argument("--threads", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profile)
