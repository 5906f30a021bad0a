"""What the commands share: the one-line-error parser, flags that map onto config
dataclasses, and the notes said on stderr.

Flags that map onto a config dataclass default to None, and only the flags given are
passed on, so the dataclass's defaults are the one source of truth.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, NoReturn, TypeVar

from netshrink.errors import NetshrinkError

__all__ = [
    "MODEL_HELP",
    "OneLineErrorParser",
    "TRUST_HELP",
    "add_binarize_flags",
    "add_device_flag",
    "add_model_flag",
    "add_train_flags",
    "binarize_config",
    "given",
    "devices_and_ranks",
    "non_negative_int",
    "positive_int",
    "model_skeleton",
    "parse_input_size",
    "say_float_layers",
    "split_name",
    "train_config",
    "trust_named_models",
    "with_given",
    "xnor_order_note",
]

T = TypeVar("T")


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _int_at_least(least: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"expected {what} integer, got {value}")
        return value

    parse.__name__ = f"{what} integer"  # argparse names the type in its messages
    return parse


positive_int = _int_at_least(1, "a positive")  # counts that must be at least 1
non_negative_int = _int_at_least(0, "a non-negative")  # 0 means "none" (e.g. no timing)


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


def split_name(text: str) -> tuple[str, list[str]]:
    """``"mobilenet_v1:width_mult=0.5,small_input=1"`` → name and its key=value pairs; an
    importable path keeps its colon: ``"pkg.mod:factory:depth=8"`` → ``"pkg.mod:factory"``."""
    head, sep, tail = text.rpartition(":")
    if not sep or "=" not in tail:
        return text, []
    return head, [p for p in tail.split(",") if p]


# ---------------------------------------------------------------------------- models

MODEL_HELP = (
    "the network's code, for a file made from an external model or one that names no "
    "architecture: package.module:factory (imported: only paths you name are) or a "
    "registry name; its arguments by --arg"
)


TRUST_HELP = (
    "the checkpoint's code when it was made from an external model: the "
    "package.module:factory it records (imported: only paths you name are)"
)


def add_model_flag(p: argparse.ArgumentParser, *, args_flag: bool = True) -> None:
    """``--model SPEC`` (and ``--arg KEY=VALUE``) for commands that read a trained file."""
    p.add_argument("--model", metavar="SPEC", help=MODEL_HELP)
    if args_flag:
        p.add_argument(
            "--arg", action="append", default=[], metavar="KEY=VALUE",
            help="argument of --model's factory (repeatable)",
        )  # fmt: skip


def trust_named_models(args: argparse.Namespace) -> None:
    """Allow the importable paths the user typed (model arguments, ``--model``,
    ``--student``) to be imported; a path only a file names stays untrusted."""
    texts = [getattr(args, key, None) for key in ("name", "model", "student")]
    texts += list(getattr(args, "names", None) or [])
    for text in texts:
        if isinstance(text, str) and ":" in text:
            from netshrink.models import is_external, trust_external

            name, _ = split_name(text)
            if is_external(name):
                trust_external(name)


def model_skeleton(args: argparse.Namespace, path: str | None = None):
    """The skeleton ``--model``/``--arg`` describe, or None where the file's own record
    will do: without ``--model``; with ``--model`` but no ``--arg`` when ``path`` names an
    architecture (the path is trusted, the file's arguments used)."""
    if args.model is None:
        if getattr(args, "arg", None):
            raise NetshrinkError("--arg gives --model's arguments: it needs --model")
        return None
    from netshrink.models import create, parse_model_args

    if not args.arg and path is not None and _names_architecture(path):
        return None
    return create(args.model, **parse_model_args(args.model, args.arg))


def _names_architecture(path: str) -> bool:
    from netshrink.runs.load import is_nsz

    if not is_nsz(path):
        return True  # a checkpoint always records its model
    from netshrink.nsz import read_nsz

    return read_nsz(path).model_name is not None


def given(args: argparse.Namespace, fields: dict[str, str]) -> dict[str, Any]:
    """``{field: value}`` of the flags the user gave; ``fields`` maps field → flag dest."""
    return {f: getattr(args, dest) for f, dest in fields.items() if getattr(args, dest) is not None}


def with_given(base: T, args: argparse.Namespace, fields: dict[str, str]) -> T:
    """``base`` (a config dataclass) with the fields of the flags given replaced."""
    return replace(base, **given(args, fields))


# ---------------------------------------------------------------------------- training

TRAIN_FIELDS = {
    name: name
    for name in (
        "epochs",
        "batch_size",
        "optimizer",
        "lr",
        "weight_decay",
        "schedule",
        "augment",
        "seed",
        "warmup_epochs",
        "clip_grad_norm",
    )
}


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """TrainConfig's flags (defaults: :class:`netshrink.train.TrainConfig`), and --limit."""
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--optimizer", choices=["sgd", "adam"])
    p.add_argument("--schedule", choices=["cosine", "step", "constant"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument(
        "--augment", action="store_true", default=None, help="light augmentation (±2 px shifts)"
    )
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--warmup-epochs", type=int, metavar="N", help="linear learning-rate warm-up (epochs)"
    )
    p.add_argument(
        "--clip-grad-norm", type=float, metavar="X", help="clip the gradients' L2 norm to X"
    )
    p.add_argument("--limit", type=positive_int, help="use at most N images (stratified)")


def train_config(args: argparse.Namespace):
    from netshrink.train import TrainConfig

    return TrainConfig(**given(args, TRAIN_FIELDS))


# ---------------------------------------------------------------------------- devices

DEVICE_HELP = (
    "auto (default: cuda if a GPU is there, else cpu), cpu, cuda or cuda:N; under torchrun "
    "each process takes cuda:LOCAL_RANK"
)


def add_device_flag(p: argparse.ArgumentParser, help: str = DEVICE_HELP) -> None:
    """``--device auto|cpu|cuda[:N]`` for commands that run a model."""
    p.add_argument("--device", metavar="DEVICE", help=help)


def explicit_cuda(args: argparse.Namespace) -> bool:
    """Whether the user asked for CUDA by name (not ``auto``)."""
    return str(getattr(args, "device", None) or "").strip().lower().startswith("cuda")


@contextlib.contextmanager
def devices_and_ranks(args: argparse.Namespace) -> Iterator[None]:
    """Around a command: its ``--device``, and under torchrun (``WORLD_SIZE`` > 1) the
    process group, joined first and left last. Ranks other than 0 print nothing on stdout
    (their files go nowhere: :mod:`netshrink.atomic`); all wait at the end until rank 0 is
    done, so its files exist when torchrun returns."""
    launched = int(os.environ.get("WORLD_SIZE", "1") or "1") > 1
    if not (launched or hasattr(args, "device")):
        yield
        return
    from torch.distributed import DistError

    from netshrink import distributed

    dev = distributed.use_device(getattr(args, "device", None) or "auto")
    try:
        distributed.init_from_env(dev)
        with contextlib.ExitStack() as stack:
            if not distributed.is_main():
                sink = stack.enter_context(open(os.devnull, "w"))
                stack.enter_context(contextlib.redirect_stdout(sink))
            yield
        distributed.barrier()
    except DistError as exc:  # a peer died or stopped answering
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise NetshrinkError(
            f"rank {distributed.rank()}: lost the other ranks of the run ({first})"
        ) from None
    finally:
        distributed.shutdown()
        distributed.use_device("cpu")  # in-process callers (tests) start afresh


# ---------------------------------------------------------------------------- binarization


def add_binarize_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--keep-real", action="append", default=[], metavar="PATTERN",
        help="layer-name pattern kept real-valued (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--binarize-all", action="store_true", help="binarize the first and last layers too"
    )
    p.add_argument("--no-input-scale", action="store_true", help="xnor: scale by alpha only, no K")


def binarize_config(args: argparse.Namespace, mode: str):
    from netshrink.binarize import BinarizeConfig

    return BinarizeConfig(
        mode=mode,
        exclude=args.keep_real,
        keep_first_last=not args.binarize_all,
        input_scale=not args.no_input_scale,
    )


def xnor_order_note(name: str, model_args: dict[str, Any]) -> None:
    """Say once when XNOR layers may see only non-negative inputs (after a ReLU)."""
    from netshrink.runs.binarize import lacks_xnor_order

    if lacks_xnor_order(name, model_args):
        print(
            f"note: {name} is not in XNOR-Net's block order (order=xnor): a binary layer "
            "whose inputs follow a ReLU only ever sees +1 signs (see docs/binary.md)",
            file=sys.stderr,
        )


def say_float_layers(engine: str, notes: list) -> None:
    """Name the layers an engine left to PyTorch float, once, on stderr."""
    fallback = [n for n in notes if n.engine == "float"]
    if fallback:
        listed = "; ".join(f"{n.layer} ({n.reason})" for n in fallback)
        print(f"note: {engine} engine runs {len(fallback)} layer(s) in PyTorch float: {listed}",
              file=sys.stderr)  # fmt: skip
