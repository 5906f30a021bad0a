"""``netshrink export``: a trained file written for a standard runtime (ONNX)."""

from __future__ import annotations

import argparse
import json

from netshrink.cli.common import add_model_flag, model_skeleton, non_negative_int

__all__ = ["add_export"]


def cmd_export(args: argparse.Namespace) -> int:
    from netshrink.deploy import export_onnx
    from netshrink.deploy.onnx import session_module
    from netshrink.profile import measure_latency_interleaved
    from netshrink.runs.load import load_trained

    skeleton = model_skeleton(args, args.file)
    trained = load_trained(args.file, model=skeleton)
    report = export_onnx(
        trained.model, trained.input_size, args.out, codebook=args.codebook,
        opset=args.opset, overwrite=args.force,
    )  # fmt: skip
    result = report.to_dict()
    if args.repeats:  # batch-1 latency, onnxruntime beside PyTorch on the same input
        with open(args.out, "rb") as handle:
            runtime = session_module(handle.read())
        ort_ms, torch_ms = (
            s.median_ms
            for s in measure_latency_interleaved(
                [runtime, trained.model], tuple(trained.input_size), repeats=args.repeats
            )
        )
        result.update(onnxruntime_ms=ort_ms, pytorch_ms=torch_ms)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    folded = f"{len(report.folded)} BatchNorm folded" if report.folded else "no BatchNorm folded"
    print(
        f"wrote {args.out} ({report.file_bytes:,} bytes, opset {report.opset}; {folded}; "
        f"{len(report.codebook_layers)} codebook layer(s))"
    )
    print(
        f"onnxruntime agrees with PyTorch on {report.samples} inputs: max |diff| "
        f"{report.max_abs_diff:.2g} (allowed {report.tolerance[1]:g} + {report.tolerance[0]:g}|y|)"
    )
    if args.repeats:
        print(
            f"batch-1 latency: onnxruntime {result['onnxruntime_ms']:.3f} ms, PyTorch "
            f"{result['pytorch_ms']:.3f} ms (medians of {args.repeats}, interleaved)"
        )
    for note in report.notes:
        print(f"note: {note}")
    return 0


def add_export(sub) -> None:
    p = sub.add_parser("export", help="write a checkpoint or .nsz file as ONNX, checked")
    p.add_argument("file", metavar="CHECKPOINT|FILE.nsz")
    p.add_argument("--format", required=True, choices=["onnx"], help="the runtime format")
    p.add_argument("--out", required=True, metavar="MODEL.onnx")
    p.add_argument(
        "--codebook", action="store_true",
        help="weight-shared layers as uint8 indices + codebook (Gather), about 4x smaller",
    )  # fmt: skip
    p.add_argument("--opset", type=int, default=17, choices=range(13, 21), metavar="N")
    p.add_argument("--force", "--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument(
        "--repeats", type=non_negative_int, default=20,
        help="time onnxruntime and PyTorch at batch 1 this many times (0: do not time)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true")
    add_model_flag(p)
    p.set_defaults(func=cmd_export)
