"""One training run from names: registry model + data spec + config → checkpoint folder.

:func:`train_run` is what ``netshrink train`` and ``netshrink distill``, the survey and the
sweeps call; how the model meets the data is :func:`netshrink.runs.load.resolve_model`.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from netshrink import distributed
from netshrink.atomic import atomic_write_text, ensure_dir
from netshrink.binarize import BinarizeConfig, binarize_
from netshrink.data import Dataset, load_dataset, native_input_size
from netshrink.distill import DistillConfig, check_teachers, distill
from netshrink.errors import NetshrinkError
from netshrink.models import create, get_spec
from netshrink.runs.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from netshrink.runs.load import check_output, load_trained, resolve_model
from netshrink.train import TrainConfig, train
from netshrink.version import __version__, sources_digest

__all__ = ["RunResult", "train_run"]

VERSION_KEY = "netshrink_version"  # in config.yaml: the netshrink that trained the run
SOURCES_KEY = "netshrink_sources"  # and a digest of its code (netshrink.version.sources_digest)
_UNFINISHED = "unfinished"  # a model.pt that --resume continues
_CHANGED = "its settings differ"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_teachers(
    paths: Sequence[str | os.PathLike[str]],
    input_size: tuple[int, int, int],
    student: str,
    out_dir: Path,
) -> tuple[list[nn.Module], list[dict[str, Any]]]:
    """Teacher models and what identifies them in the run's config (model and SHA-256,
    not the path: a moved folder still reuses its finished runs)."""
    models, records = [], []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            what = "is not a file" if path.exists() else "does not exist"
            raise NetshrinkError(f"teacher {path} {what}")
        if path.resolve() == (out_dir / "model.pt").resolve():
            raise NetshrinkError(f"teacher {path} is the run's own output; choose another --out")
        teacher = load_trained(path)
        if tuple(teacher.input_size) != tuple(input_size):
            got = "x".join(map(str, teacher.input_size))
            want = "x".join(map(str, input_size))
            raise NetshrinkError(
                f"teacher {path} takes {got} inputs but student {student} takes {want}"
            )
        models.append(teacher.model)
        records.append({"model": teacher.model_name, "sha256": _file_sha256(path)})
    return models, records


def _zip_damage(path: Path) -> str | None:
    """Why ``path`` (torch's zip format) is damaged, or None: ``torch.load`` ignores the
    archive's CRC-32s, so a flipped bit in the weights would load silently."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception:  # BadZipFile, EOFError, OSError, zlib.error ...: not a whole archive
        return "model.pt is truncated or not a checkpoint"
    return None if bad is None else f"model.pt is corrupt (CRC mismatch in {bad})"


def _as_json(value: Any) -> str:
    """Canonical JSON: tuples read back as lists, and NaN equals NaN."""
    return json.dumps(value, sort_keys=True, default=str)


def _finished_run(out: Path, resolved: dict[str, Any]) -> tuple[Checkpoint | None, str]:
    """The finished run in ``out`` if every file of it is whole, written by this netshrink
    for ``resolved``; else None and why not."""
    if damage := _zip_damage(out / "model.pt"):
        return None, damage
    try:
        ckpt = load_checkpoint(out / "model.pt")
    except NetshrinkError as exc:
        return None, f"model.pt does not load: {exc}"
    if ckpt.train_state is not None:
        return None, _UNFINISHED
    if ckpt.config != resolved:
        return None, _CHANGED
    try:
        written = yaml.safe_load((out / "config.yaml").read_text("utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        written = None
    if not isinstance(written, dict):
        return None, "config.yaml is missing or corrupt"
    try:
        record = json.loads((out / "metrics.json").read_text("utf-8"))
    except (OSError, ValueError):
        record = None
    if not isinstance(record, dict):
        return None, "metrics.json is missing or corrupt"
    if written.get(VERSION_KEY) != __version__:
        version = written.get(VERSION_KEY) or "of unknown version (no netshrink_version)"
        return None, f"stale: trained by netshrink {version}, this is {__version__}"
    if written.get(SOURCES_KEY) != sources_digest():
        return None, "stale: trained by other netshrink code (sources digest differs)"
    written = {k: v for k, v in written.items() if k not in (VERSION_KEY, SOURCES_KEY)}
    if isinstance(written.get("distill"), dict):  # the paths are for the reader only
        written["distill"] = {k: v for k, v in written["distill"].items() if k != "teacher_paths"}
    if _as_json(written) != _as_json(resolved):
        return None, "config.yaml does not match model.pt"
    if _as_json(record.get("metrics")) != _as_json(ckpt.metrics):
        return None, "metrics.json does not match model.pt"
    return ckpt, ""


@dataclass
class RunResult:
    checkpoint: Checkpoint
    out_dir: Path
    reused: bool  # True when a finished run with the same config was found


def train_run(
    model_name: str,
    data: str | Dataset,
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    model_args: dict[str, Any] | None = None,
    resume: bool = False,
    reuse: bool = False,
    overwrite: bool = False,
    limit: int | None = None,
    progress: bool = True,
    binarize: BinarizeConfig | None = None,
    teachers: Sequence[str | os.PathLike[str]] = (),
    distill_config: DistillConfig | None = None,
    input_size: tuple[int, int, int] | None = None,
) -> RunResult:
    """Train registry model ``model_name``; write model.pt, config.yaml, metrics.json to out_dir.

    ``input_size`` (C, H, W) trains at that size (the data resized to it) instead of the
    data's own; a model that cannot take it is an error.
    ``teachers`` (checkpoint or ``.nsz`` paths) make it a distillation run: the student
    learns from their averaged soft targets with ``distill_config`` (default
    :class:`DistillConfig`); teachers must take the student's input size and predict the
    data's classes. The config records each teacher's path and SHA-256.

    ``binarize`` trains a binary network from scratch (:func:`netshrink.binarize.binarize_`
    right after the model is built); in xnor mode, a model that offers XNOR-Net's block
    order (an ``order`` argument) gets ``order="xnor"`` unless the caller chose.
    ``resume=True`` continues an interrupted run from ``out_dir/model.pt``;
    ``reuse=True`` returns a finished run with the identical resolved config untouched, if
    its files are whole (model.pt's CRCs, config.yaml and metrics.json agreeing with it) and
    this netshrink version wrote them; else it trains again, from scratch, with a note.
    Otherwise an existing ``out_dir/model.pt`` is refused unless ``overwrite=True`` (files
    compressed from it would lose their source).
    """
    spec_text = data if isinstance(data, str) else data.spec
    native = native_input_size(spec_text) if isinstance(data, str) else data.input_size
    asked = None if input_size is None else tuple(int(d) for d in input_size)
    if asked is not None:  # the user's size: the data are brought to it
        native = asked
    model_args = dict(model_args or {})
    if (
        binarize is not None
        and binarize.mode == "xnor"
        and "order" in get_spec(model_name).defaults
    ):
        model_args.setdefault("order", "xnor")
    args, input_size = resolve_model(model_name, native, model_args)
    if asked is not None and asked != tuple(input_size):  # never train at another size
        shown = "x".join(map(str, input_size))
        raise NetshrinkError(
            f"--input {'x'.join(map(str, asked))}: {model_name} takes {shown} inputs"
        )
    if isinstance(data, Dataset) and data.input_size == input_size:
        dataset = data
    else:
        dataset = load_dataset(spec_text, input_size=input_size, seed=config.seed, limit=limit)
    external = get_spec(model_name).family == "external"
    if not external or "num_classes" in get_spec(model_name).defaults:
        args.setdefault("num_classes", dataset.num_classes)
    if args.get("num_classes", dataset.num_classes) != dataset.num_classes:
        raise NetshrinkError(
            f"{model_name} predicts {args['num_classes']} classes "
            f"but {spec_text} has {dataset.num_classes}"
        )
    if external:  # its code is the user's: build it for real and run one image
        probe = create(model_name, **args)
        check_output(probe, model_name, input_size, dataset.num_classes)
        if binarize is not None:
            binarize = binarize_(probe, binarize)
    else:
        with torch.device("meta"):  # check the arguments (and binary layers) weightlessly
            probe = create(model_name, **args)
            if binarize is not None:
                binarize = binarize_(probe, binarize)
    teacher_models: list[nn.Module] = []
    if teachers:
        distill_config = distill_config or DistillConfig()
        teacher_models, teacher_records = _load_teachers(
            teachers, input_size, model_name, Path(out_dir)
        )
        check_teachers(teacher_models, dataset)
    elif distill_config is not None:
        raise NetshrinkError("a distillation config needs at least one teacher")
    out = ensure_dir(out_dir)  # only once the model and data are known to be valid
    resolved = {
        "model": model_name,
        "model_args": args,
        "input_size": list(input_size),
        "data": spec_text,
        "limit": limit,
        "train": config.to_dict(),
    }
    if binarize is not None:
        resolved["binarize"] = binarize.to_dict()
    if teacher_models:
        resolved["distill"] = {**distill_config.to_dict(), "teachers": teacher_records}
    ckpt_path = out / "model.pt"
    if ckpt_path.exists() and not (resume or reuse or overwrite):
        raise NetshrinkError(
            f"{ckpt_path} exists: pass --overwrite to replace it, --resume to continue it, "
            "or another --out"
        )
    untrusted = False  # a damaged or stale model.pt: not resumed either
    if reuse and ckpt_path.exists():
        previous, why = _finished_run(out, resolved)
        if previous is not None:
            return RunResult(previous, out, reused=True)
        if why != _UNFINISHED:
            print(f"{ckpt_path}: not reused ({why}); training again", flush=True)
            untrusted = why != _CHANGED  # changed settings: --resume still says so

    torch.manual_seed(config.seed)  # initial weights depend only on the seed
    model = create(model_name, **args)
    if binarize is not None:
        binarize_(model, binarize)
    resume_state = None
    if resume and ckpt_path.exists() and not untrusted:
        previous = load_checkpoint(ckpt_path)
        if previous.config != resolved:
            raise NetshrinkError(
                f"cannot resume {ckpt_path}: it was trained with a different configuration"
            )
        if previous.train_state is None:
            print(f"{ckpt_path} is already finished; nothing to resume")
            return RunResult(previous, out, reused=True)
        model.load_state_dict(previous.state_dict)
        resume_state = previous.train_state
    model.to(distributed.device())  # --device (CPU unless set); checkpoints are CPU copies

    written = resolved
    if teacher_models:  # the paths are for the reader; runs are matched on the SHA-256
        paths = [str(Path(t).resolve()) for t in teachers]
        written = {**resolved, "distill": {**resolved["distill"], "teacher_paths": paths}}
    # a reuse by another version, or by changed code, retrains
    written = {**written, VERSION_KEY: __version__, SOURCES_KEY: sources_digest()}
    distributed.barrier()  # every rank has read --out before rank 0 writes into it
    atomic_write_text(out / "config.yaml", yaml.safe_dump(written, sort_keys=False))

    def save_epoch(state: dict[str, Any]) -> None:
        save_checkpoint(
            ckpt_path,
            Checkpoint(
                model_name,
                args,
                input_size,
                model.state_dict(),
                spec_text,
                {},
                resolved,
                train_state=state,
            ),
        )

    loop = dict(progress=progress, checkpoint=save_epoch, resume_state=resume_state)
    if teacher_models:
        result = distill(
            model, teacher_models, dataset, config, distill_config,
            desc=f"{model_name} (distill)", **loop,
        )  # fmt: skip
    else:
        result = train(model, dataset, config, desc=model_name, **loop)
    metrics = dict(result.metrics)
    metrics["train_seconds"] = result.seconds
    final = Checkpoint(
        model_name, args, input_size, model.state_dict(), spec_text, metrics, resolved
    )
    save_checkpoint(ckpt_path, final)
    atomic_write_text(
        out / "metrics.json", json.dumps({"metrics": metrics, "history": result.history}, indent=2)
    )
    distributed.barrier()  # rank 0's files exist before any rank goes on
    return RunResult(final, out, reused=False)
