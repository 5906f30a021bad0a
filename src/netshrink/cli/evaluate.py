"""``netshrink eval``: accuracy and latency of a trained file on one of the engines."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from netshrink.cli.common import (
    add_device_flag,
    add_model_flag,
    explicit_cuda,
    model_skeleton,
    positive_int,
    say_float_layers,
)
from netshrink.errors import NetshrinkError

__all__ = ["add_eval"]


def cmd_eval(args: argparse.Namespace) -> int:
    from netshrink import distributed
    from netshrink.engine import get_engine
    from netshrink.profile import measure_latency
    from netshrink.runs.load import is_nsz, load_on_engine
    from netshrink.train import evaluate

    engine = get_engine(args.engine)
    if engine.name != "dense":  # the other engines are CPU kernels
        if explicit_cuda(args):
            raise NetshrinkError(
                f"--device {args.device}: the {engine.name} engine runs on the CPU only "
                "(use --engine dense on a GPU)"
            )
        distributed.use_device("cpu")
    skeleton = model_skeleton(args, args.checkpoint)
    trained, notes = load_on_engine(args.checkpoint, engine.name, warn=False, model=skeleton)
    spec = args.data or trained.data or "mnist5k"
    data = trained.load_data(spec)
    if not args.json and spec != trained.data:
        _say_other_data(args.checkpoint, trained, spec)
    model = trained.model
    if not args.json:
        say_float_layers(engine.name, notes)
    result: dict[str, Any] = evaluate(model.to(distributed.device()), data.test)
    model.cpu()  # latency is the CPU's (batch 1)
    latency = measure_latency(model, trained.input_size, batch_size=1, repeats=args.repeats)
    label = args.model or trained.model_name
    result.update(model=label, data=spec, split="test",
                  latency_ms=latency.median_ms, engine=engine.name)  # fmt: skip
    for kind in dict.fromkeys(n.engine for n in notes if n.engine != "float"):
        result[f"{kind}_layers"] = [n.layer for n in notes if n.engine == kind]
    if notes:
        result["float_layers"] = {n.layer: n.reason for n in notes if n.engine == "float"}
    if is_nsz(args.checkpoint):
        result["file_bytes"] = os.path.getsize(args.checkpoint)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        top5 = f", top-5 {result['top5']:.4f}" if "top5" in result else ""
        print(
            f"{label} on {spec} (test, n={result['n']}): "
            f"top-1 {result['top1']:.4f}{top5}; latency {result['latency_ms']:.2f} ms "
            f"(batch 1, {engine.name} engine)"
        )
    return 0


def _say_other_data(path: str, trained, spec: str) -> None:
    """Data other than the file was trained on is the user's choice; say what it means
    for the images (brought to the network's input size) so no resize goes unseen."""
    from netshrink.data import native_input_size

    native, size = tuple(native_input_size(spec)), tuple(trained.input_size)
    resized = "" if native == size else (
        f"its {'x'.join(map(str, native))} images are resized to {'x'.join(map(str, size))}"
    )  # fmt: skip
    if trained.data:
        text = f"{path} was trained on {trained.data}, evaluated on {spec}"
        print(f"note: {text}{'; ' + resized if resized else ''}", file=sys.stderr)
    elif resized:
        print(f"note: {path} records no training data; {spec}: {resized}", file=sys.stderr)


def add_eval(sub) -> None:
    p = sub.add_parser("eval", help="accuracy and latency of a checkpoint or .nsz file")
    p.add_argument("checkpoint", metavar="CHECKPOINT|FILE.nsz")
    p.add_argument(
        "--data", metavar="SPEC", help="default: the data the file was trained on, else mnist5k"
    )
    p.add_argument("--repeats", type=positive_int, default=20, help="latency repeats")
    p.add_argument(
        "--engine", default="dense", metavar="NAME",
        help="inference engine: dense (PyTorch float), sparse (pruned layers on sparse codebook "
        "kernels), packed (XNOR layers on bit-packed popcount kernels), fused (BatchNorm folded, "
        "shuffles fused), auto (each layer on the fastest that runs it), onnxruntime (the peer); "
        "`netshrink engines` lists them",
    )  # fmt: skip
    p.add_argument("--json", action="store_true")
    add_device_flag(p, "where accuracy is measured: auto, cpu, cuda[:N] (dense engine only; "
                    "latency is always the CPU's)")  # fmt: skip
    add_model_flag(p)
    p.set_defaults(func=cmd_eval)
