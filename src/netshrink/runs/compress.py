"""Deep Compression end to end: run a recipe's stages on a model and pack the result.

Han, Mao, Dally (2016): prune (with retraining) → trained quantization (k-means weight
sharing with centroid fine-tuning) → Huffman-coded sparse storage. Each stage is a call
into the public API (:mod:`netshrink.prune`, :mod:`netshrink.quantize`,
:mod:`netshrink.nsz`); :func:`compress` only sequences them and records what each did.

:func:`compress_run` is the run ``netshrink compress`` and the survey make: compress, then
write the file with its resolved recipe and stage record beside it. What to compress comes
from :func:`checkpoint_source` (a trained file) or :func:`model_source` (a registry model).

Resuming: given a ``state_dir``, :func:`compress` saves the model after every finished stage
and prune round (``state.pt``: weights, masks, codebooks and codes, the torch RNG state and
the records so far, keyed by a fingerprint of everything that determines the result);
``resume=True`` continues from there. Every stage starts from the model alone (each
retraining seeds itself, shuffles by ``(seed, epoch)`` and builds a fresh optimizer), so the
resumed run writes the same file, byte for byte, as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netshrink import distributed
from netshrink.atomic import atomic_write_bytes, atomic_write_text, folder_lock
from netshrink.binarize import is_binary
from netshrink.data import Dataset, load_dataset, native_input_size
from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers, match_patterns
from netshrink.models import create, get_spec
from netshrink.nsz import CompressionReport, compression_report, pack, parse_nsz
from netshrink.prune import apply_masks_, layer_density, masks, prune_
from netshrink.prune.magnitude import set_masks_
from netshrink.quantize import SharedLayer, finetune_shared, load_shared_, share_weights_
from netshrink.runs.load import Trained, load_trained, resolve_model
from netshrink.runs.recipe import EncodeStage, PruneStage, QuantizeStage, Recipe
from netshrink.train import evaluate, train
from netshrink.version import __version__

__all__ = [
    "CompressResult",
    "CompressSource",
    "check_recipe",
    "checkpoint_source",
    "compress",
    "compress_run",
    "model_source",
    "resume_folder",
    "save_compress_record",
]


@dataclass
class CompressResult:
    model: nn.Module  # the pruned and weight-shared model (what the file holds)
    data: bytes  # the .nsz file
    report: CompressionReport
    baseline: dict[str, float] = field(default_factory=dict)  # metrics before compressing
    stages: list[dict[str, Any]] = field(default_factory=list)  # one record per stage

    @property
    def metrics(self) -> dict[str, float]:
        return self.stages[-1].get("metrics", {}) if self.stages else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "stages": self.stages,
            "metrics": self.metrics,
            "compression": self.report.to_dict(),
        }


def check_recipe(model: nn.Module, recipe: Recipe) -> None:
    """Resolve every layer pattern of ``recipe`` on ``model`` before any work is done, so a
    pattern that matches no layer fails at once (one-line error naming it)."""
    names = list(compressible_layers(model))
    binary = [n for n, m in model.named_modules() if is_binary(m)]
    if binary:
        raise NetshrinkError(
            f"compress: {', '.join(binary)} {'is' if len(binary) == 1 else 'are'} binary "
            "(1 bit per weight already): pruning and weight sharing do not apply"
        )
    for i, stage in enumerate(recipe.stages):
        where = f"recipe stages[{i}]"
        if isinstance(stage, PruneStage):
            match_patterns(names, stage.config.sparsity, what=f"{where} prune sparsity")
            match_patterns(names, stage.config.quality, what=f"{where} prune quality")
        elif isinstance(stage, QuantizeStage):
            match_patterns(names, stage.config.bits, what=f"{where} quantize bits")
            match_patterns(names, dict.fromkeys(stage.config.exclude, 0), what=f"{where} exclude")
        elif isinstance(stage, EncodeStage):
            match_patterns(names, stage.config.index_bits, what=f"{where} encode index_bits")


def _metrics(model: nn.Module, data: Dataset | None) -> dict[str, float]:
    if data is None:
        return {}
    out = {f"val_{k}": v for k, v in evaluate(model, data.val).items()}
    out.update({f"test_{k}": v for k, v in evaluate(model, data.test).items()})
    return out


def compress(
    model: nn.Module,
    recipe: Recipe,
    data: Dataset | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    model_name: str | None = None,
    model_args: dict[str, Any] | None = None,
    input_size: tuple[int, int, int] | None = None,
    metadata: dict[str, Any] | None = None,
    progress: bool = True,
    state_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    fingerprint: dict[str, Any] | None = None,
) -> CompressResult:
    """Run ``recipe`` on ``model`` (in place) and pack it; write ``path`` if given.

    With ``data=None`` nothing is retrained or evaluated: post-training compression of the
    weights at hand. The file is written atomically at the very end, so an interrupted
    run leaves no partial file.

    ``state_dir``: save the model there after every finished stage and prune round;
    ``resume=True`` continues from the last one saved, giving the same file and records as
    an uninterrupted run (pass ``model`` as the interrupted run received it, e.g. loaded
    afresh from its checkpoint: compressing changes it in place). The state is keyed by a
    fingerprint of the starting weights, the resolved recipe, the data, the header fields
    and the versions, plus ``fingerprint`` (what else identifies the run, e.g. the source
    file's SHA-256); resuming a run that differs is a one-line error naming what differs.
    The folder is removed once the file is written; two runs never share it
    (:func:`~netshrink.atomic.folder_lock`).
    """
    kwargs = dict(
        path=path, model_name=model_name, model_args=model_args, input_size=input_size,
        metadata=metadata, progress=progress,
    )  # fmt: skip
    if state_dir is None:
        if resume:
            raise NetshrinkError("compress: resume=True needs the state_dir to resume from")
        return _compress(model, recipe, data, None, **kwargs)
    return _compress_saving(model, recipe, data, Path(state_dir), resume, fingerprint, kwargs)


def _compress_saving(
    model: nn.Module,
    recipe: Recipe,
    data: Dataset | None,
    folder: Path,
    resume: bool,
    extra: dict[str, Any] | None,
    kwargs: dict[str, Any],
    then: Callable[[CompressResult], None] | None = None,
) -> CompressResult:
    """:func:`_compress` saving its stages in ``folder``; ``then(result)`` runs before the
    saved stages are dropped (compress_run writes the record there)."""
    with _holding(folder) as state:
        state.key = _fingerprint(model, recipe, data, kwargs, extra)
        state.resume = resume
        result = _compress(model, recipe, data, state, **kwargs)
        if then is not None:
            then(result)
        state.finish()
    return result


def _compress(
    model: nn.Module,
    recipe: Recipe,
    data: Dataset | None,
    state: _StageState | None,
    *,
    path: str | os.PathLike[str] | None,
    model_name: str | None,
    model_args: dict[str, Any] | None,
    input_size: tuple[int, int, int] | None,
    metadata: dict[str, Any] | None,
    progress: bool,
) -> CompressResult:
    check_recipe(model, recipe)
    saved = state.load(model, path) if state is not None and state.resume else None
    if saved is not None:
        baseline, records = saved["baseline"], saved["records"]
        start_stage, start_round = saved["next_stage"], saved["next_round"]
    else:
        baseline, records = _metrics(model, data), []
        start_stage, start_round = 0, 1

    def save(next_stage: int, next_round: int = 1) -> None:
        if state is not None:
            state.save(model, baseline, records, next_stage, next_round)

    for i, stage in enumerate(recipe.stages):
        if i < start_stage:
            continue
        if isinstance(stage, PruneStage):
            if data is not None and stage.retrain is not None:
                # prune_and_retrain's loop, here so that every round is a resume point.
                first = start_round if i == start_stage else 1
                for r in range(first, stage.rounds + 1):
                    prune_(model, stage.config.scaled(r / stage.rounds))
                    desc = f"prune {r}/{stage.rounds}" if stage.rounds > 1 else "prune"
                    train(model, data, stage.retraining(r), progress=progress,
                          after_step=apply_masks_, desc=desc)  # fmt: skip
                    if r < stage.rounds:
                        save(i, r + 1)
            else:
                prune_(model, stage.config)
            record: dict[str, Any] = {"stage": "prune", "density": layer_density(model)}
        elif isinstance(stage, QuantizeStage):
            layers = share_weights_(model, stage.config)
            if data is not None and stage.finetune is not None:
                finetune_shared(model, data, stage.finetune, progress=progress)
            record = {"stage": "quantize", "bits": {k: v.bits for k, v in layers.items()}}
        else:
            continue
        record["metrics"] = _metrics(model, data)
        records.append(record)
        save(i + 1)
    model.cpu()  # packing reads the tensors as NumPy arrays: CPU data
    if recipe.encode.float16:
        # Tensors stored raw lose precision in fp16: give the model exactly what the file
        # will hold, so the accuracy reported is the file's.
        _round_like_file_(model, pack(model, None, recipe.encode))
        records.append({"stage": "encode", "float16": True, "metrics": _metrics(model, data)})
    # The header keeps a little provenance; the full resolved recipe is written beside
    # the file by compress_run (every byte of the header counts against LeNet-size files).
    meta: dict[str, Any] = {"recipe": recipe.name, **(metadata or {})}
    final = records[-1].get("metrics") if records else None
    if final:
        meta["metrics"] = {k: final[k] for k in ("test_top1", "test_top5") if k in final}
        meta["baseline"] = {k: baseline[k] for k in ("test_top1", "test_top5") if k in baseline}
    blob = pack(
        model, path, recipe.encode, model_name=model_name, model_args=model_args,
        input_size=input_size, metadata=meta,
    )  # fmt: skip
    report = compression_report(parse_nsz(blob))
    return CompressResult(model, blob, report, baseline, records)


# Stage state: what a resumed run needs is the model after the last finished stage or
# round; each stage builds its own optimizer and seeds its own training, so nothing else.

STATE_FILE = "state.pt"
STATE_FORMAT = "netshrink-compress-state"
STATE_VERSION = 1


def resume_folder(path: str | os.PathLike[str]) -> Path:
    """Where :func:`compress_run` keeps the finished stages of a run writing ``path``:
    the hidden folder ``.NAME.resume/`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.resume")


def _sha256_tensors(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name, tensor in state.items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fingerprint(
    model: nn.Module,
    recipe: Recipe,
    data: Dataset | None,
    kwargs: dict[str, Any],
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    """Everything that determines the result, as plain JSON data (tuples become lists)."""
    key = {
        "netshrink": __version__,
        "torch": torch.__version__,
        "recipe": recipe.to_dict(),
        "data": data.spec if data is not None else "none",
        "model": {k: kwargs[k] for k in ("model_name", "model_args", "input_size")},
        "metadata": kwargs["metadata"] or {},
        "weights": _sha256_tensors(model.state_dict()),
        **(extra or {}),
    }
    return json.loads(json.dumps(key, default=str))


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Dotted paths of the leaves where ``old`` and ``new`` differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [*old, *(k for k in new if k not in old)]
        found: list[str] = []
        for k in keys:
            found += _differences(old.get(k), new.get(k), f"{where}.{k}" if where else str(k))
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        found = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            found += _differences(a, b, f"{where}[{i}]")
        return found
    return [] if old == new else [where]


@dataclass
class _StageState:
    """The state file of one run in ``folder`` (held under its lock)."""

    folder: Path
    key: dict[str, Any] = field(default_factory=dict)
    resume: bool = False

    @property
    def file(self) -> Path:
        return self.folder / STATE_FILE

    def save(
        self,
        model: nn.Module,
        baseline: dict[str, float],
        records: list[dict[str, Any]],
        next_stage: int,
        next_round: int,
    ) -> None:
        shared = {
            name: {"bits": int(m.codebook_bits), "inertia": float(m.codebook_inertia)}
            for name, m in model.named_modules()
            if "codebook" in m._parameters
        }
        payload = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "fingerprint": self.key,
            "next_stage": next_stage,
            "next_round": next_round,
            "baseline": baseline,
            "records": records,
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "masks": {k: v.detach().cpu().clone() for k, v in masks(model).items()},
            "shared": shared,
            "training": model.training,
            "rng": torch.get_rng_state(),
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        atomic_write_bytes(self.file, buffer.getvalue())

    def load(self, model: nn.Module, path: str | os.PathLike[str] | None) -> dict[str, Any]:
        """The saved state, put into ``model``; one-line errors when there is none, it
        cannot be read or its fingerprint differs."""
        what = path if path is not None else self.folder
        if not self.file.is_file():
            done = f"; {path} is already written" if path and Path(path).exists() else ""
            raise NetshrinkError(
                f"nothing to resume for {what}: no saved stages in {self.folder}{done}"
            )
        try:
            saved = torch.load(self.file, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a bad file
            first = (str(exc).strip().splitlines() or ["unreadable"])[0][:200]
            raise NetshrinkError(
                f"cannot resume {what}: {self.file} is unreadable: {first}"
            ) from None
        if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
            raise NetshrinkError(f"cannot resume {what}: {self.file} is not a compress state")
        if saved.get("version") != STATE_VERSION:
            raise NetshrinkError(
                f"cannot resume {what}: {self.file} has version {saved.get('version')}; "
                f"this netshrink reads version {STATE_VERSION}"
            )
        differ = _differences(saved["fingerprint"], self.key)
        if differ:
            named = ", ".join(differ[:3]) + (f" and {len(differ) - 3} more" if differ[3:] else "")
            raise NetshrinkError(
                f"cannot resume {what}: its saved stages were made with a different {named} "
                "(run without --resume to start afresh)"
            )
        _restore_(model, saved)
        return saved

    def finish(self) -> None:
        """The run's output is written: its saved stages are no longer needed."""
        if distributed.is_main():  # rank 0's file: the other ranks never wrote one
            self.file.unlink(missing_ok=True)


def _restore_(model: nn.Module, saved: dict[str, Any]) -> None:
    """Put the saved model state into ``model`` (the freshly loaded source): codebooks and
    codes first (they replace the weight Parameter), then every tensor, then the masks."""
    state = saved["state_dict"]
    shared = saved["shared"]
    load_shared_(
        model,
        {
            name: SharedLayer(
                info["bits"],
                state[f"{name}.codebook"].numpy(),
                state[f"{name}.codes"].to(torch.int32).numpy(),
                info["inertia"],
            )
            for name, info in shared.items()
        },
    )
    model.load_state_dict(state)
    modules = dict(model.named_modules())
    for name, info in shared.items():
        modules[name].codebook_inertia = info["inertia"]  # load_state_dict forgets it
    devices = {name: modules[name].weight.device for name in saved["masks"]}
    set_masks_(model, {name: m.to(devices[name]) for name, m in saved["masks"].items()})
    model.train(saved["training"])
    torch.set_rng_state(saved["rng"])


@contextlib.contextmanager
def _holding(folder: Path) -> Iterator[_StageState]:
    """The run's state in ``folder``, locked; the folder goes once nothing is saved in it
    (the run finished, or stopped before its first stage ended with nothing to resume)."""
    with folder_lock(folder, "compress"):
        state = _StageState(folder)
        try:
            yield state
        finally:
            if distributed.is_main() and not state.file.exists():
                shutil.rmtree(folder, ignore_errors=True)


@torch.no_grad()
def _round_like_file_(model: nn.Module, blob: bytes) -> None:
    """Copy the decoded value of every tensor stored raw in fp16 back into ``model``."""
    nsz = parse_nsz(blob)
    state = model.state_dict()
    for i, entry in enumerate(nsz.entries):
        if entry["encoding"] == "raw" and entry["storage"] == "float16":
            state[entry["name"]].copy_(torch.from_numpy(nsz.tensor(i)))


@dataclass
class CompressSource:
    """What to compress: the network with its registry identity, and the retraining data
    (None: post-training compression of the weights at hand), loaded with ``limit``."""

    trained: Trained
    data: Dataset | None
    limit: int | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        """What the file's header records of the source."""
        return {"data": self.data.spec if self.data is not None else "", "seed": self.trained.seed}


def checkpoint_source(
    path: str | os.PathLike[str],
    data: str | None = None,
    *,
    limit: int | None = None,
    model: nn.Module | None = None,
) -> CompressSource:
    """A trained checkpoint or ``.nsz`` file, with ``data`` (default: the data it was
    trained on; ``"none"``: no retraining); ``model``: the skeleton to load it into
    (:func:`~netshrink.runs.load.load_trained`)."""
    trained = load_trained(path, model=model)
    spec = data if data is not None else (trained.data or "none")
    dataset = None if spec == "none" else trained.load_data(spec, limit=limit)
    return CompressSource(trained, dataset, limit)


def model_source(
    name: str,
    model_args: dict[str, Any] | None = None,
    data: str | None = None,
    *,
    input_size: tuple[int, ...] | None = None,
    limit: int | None = None,
) -> CompressSource:
    """Registry model ``name`` with seed-0 weights: sized to ``data`` when given (its
    classes and channels), else to ``input_size`` ((C, H, W) or (H, W); default the
    model's published input)."""
    model_args = dict(model_args or {})
    dataset = None
    if data and data != "none":
        if input_size is not None:
            raise NetshrinkError("--input sets the model's input only with --data none")
        model_args, size = resolve_model(name, native_input_size(data), model_args)
        dataset = load_dataset(data, input_size=size, seed=0, limit=limit)
        model_args.setdefault("num_classes", dataset.num_classes)
    else:
        size = get_spec(name).input_size
        if input_size is not None:
            size = tuple(input_size) if len(input_size) == 3 else (size[0], *input_size)
            model_args.setdefault("in_chans", size[0])
    torch.manual_seed(0)
    model = create(name, **model_args)
    trained = Trained(model, name, model_args, tuple(size), "", 0)
    return CompressSource(trained, dataset, limit)


def save_compress_record(
    stem: str | os.PathLike[str], recipe: Recipe, result: CompressResult
) -> None:
    """``STEM.recipe.yaml`` (the resolved recipe) and ``STEM.json`` (stages, metrics, the
    per-layer table) beside a compressed file."""
    atomic_write_text(f"{stem}.recipe.yaml", recipe.to_yaml())
    atomic_write_text(f"{stem}.json", json.dumps(result.to_dict(), indent=2))


def compress_run(
    source: CompressSource,
    recipe: Recipe,
    path: str | os.PathLike[str],
    *,
    progress: bool = True,
    resume: bool = False,
) -> CompressResult:
    """Compress ``source.trained.model`` (in place) with ``recipe``; write ``path`` and
    its record (:func:`save_compress_record`).

    The finished stages are saved in :func:`resume_folder` until the file and its record
    are written; ``resume=True`` continues an interrupted run from them (see
    :func:`compress`; the fingerprint adds the source file's SHA-256 and ``source.limit``).
    Without it a run starts afresh, and its first finished stage replaces what is saved.
    """
    path = Path(path)
    trained = source.trained
    kwargs = dict(
        path=path, model_name=trained.model_name, model_args=trained.model_args,
        input_size=trained.input_size, metadata=source.metadata, progress=progress,
    )  # fmt: skip
    from_file = trained.path and Path(trained.path).is_file()
    extra = {"source": _sha256_file(trained.path) if from_file else "", "limit": source.limit}

    def record(result: CompressResult) -> None:
        save_compress_record(path.with_suffix(""), recipe, result)

    trained.model.to(distributed.device())
    distributed.barrier()  # every rank has checked its input before rank 0 writes
    result = _compress_saving(
        trained.model, recipe, source.data, resume_folder(path), resume, extra, kwargs, record
    )
    distributed.barrier()  # rank 0's file and record exist before any rank reads them
    return result
