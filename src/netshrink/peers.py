"""What a user would pick instead of netshrink: PyTorch's own ways to shrink a network.

Each peer takes a trained float network and returns a :class:`PeerModel`: the network as
the peer runs it, the bytes of the file a user of that peer ships (a ``torch.save`` state
dict, the form those tools write), and a note on what was done. The survey and
``benchmarks/bench_peers.py`` put them beside netshrink's Deep Compression file on the same
trained network and data split.

- ``torch_prune``: ``torch.nn.utils.prune`` global L1 (magnitude) pruning of every
  ``Conv2d``/``Linear`` weight at one sparsity, optionally retrained with the masks held,
  then made permanent. Its state dict stays dense: the zeros are stored.
- ``int8_dynamic``: ``torch.ao.quantization.quantize_dynamic``: ``Linear`` weights int8,
  activations quantized on the fly; convolutions stay fp32.
- ``int8_static``: FX graph mode post-training quantization (``prepare_fx``/``convert_fx``
  with the default qconfig of the current quantized engine, x86 or qnnpack), calibrated on
  a few training batches; BatchNorm is folded and convolutions run int8.
- ``fp16``: weights stored as float16, cast back to float32 to run (CPU float16
  convolutions are slower than float32 ones).
- ``zstd``: the fp32 state dict compressed losslessly with Zstandard.

These are PyTorch 2.13's ``torch.ao.quantization`` APIs; its successor, ``torchao``, is not
installed here (it does not install beside this torch without pulling another one).
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import zstandard
from torch import nn
from torch.nn.utils import prune as torch_prune_utils

from netshrink.data import ImageSplit
from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers

__all__ = [
    "CALIBRATION_IMAGES",
    "PEERS",
    "PeerModel",
    "calibration_batches",
    "fp16_storage",
    "int8_dynamic",
    "int8_static",
    "saved_size",
    "torch_prune",
    "weight_sparsity",
    "zstd_checkpoint",
]

PEERS = ("torch_prune", "int8_dynamic", "int8_static", "fp16", "zstd")
CALIBRATION_IMAGES = 256  # training images the int8 static observers see, by default


@dataclass
class PeerModel:
    key: str  # one of PEERS
    method: str  # what a row calls it
    model: nn.Module  # the network as the peer runs it (eval mode)
    size_bytes: int  # the file a user of this peer ships
    notes: str


def _state_bytes(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def saved_size(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: what the peers' users ship."""
    return len(_state_bytes(model))


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of zeros over every compressible (``Conv2d``/``Linear``) weight."""
    layers = compressible_layers(model).values()
    zeros = sum(int((m.weight == 0).sum()) for m in layers)
    return zeros / sum(m.weight.numel() for m in layers)


def calibration_batches(split: ImageSplit, images: int = CALIBRATION_IMAGES) -> list[torch.Tensor]:
    """The first batches of ``split`` (64 images each) up to at least ``images``: what
    :func:`int8_static` calibrates on."""
    batches, seen = [], 0
    for x, _ in split.batches(64):
        batches.append(x)
        seen += x.shape[0]
        if seen >= images:
            break
    return batches


def _float_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).float().eval()


def torch_prune(
    model: nn.Module, sparsity: float, retrain: Callable[[nn.Module], object] | None = None
) -> PeerModel:
    """``torch.nn.utils.prune.global_unstructured`` (L1) at ``sparsity`` over every
    compressible weight, ``retrain(model)`` with the masks in place (their forward hooks
    zero the pruned weights in every step), then ``prune.remove``."""
    if not 0.0 <= sparsity < 1.0:
        raise NetshrinkError(f"torch_prune: sparsity must be in [0, 1), got {sparsity}")
    pruned = _float_copy(model)
    layers = compressible_layers(pruned)
    if not layers:
        raise NetshrinkError("torch_prune: the model has no Conv2d or Linear layer to prune")
    params = [(m, "weight") for m in layers.values()]
    torch_prune_utils.global_unstructured(
        params, pruning_method=torch_prune_utils.L1Unstructured, amount=sparsity
    )
    if retrain is not None:
        retrain(pruned)
    for module, name in params:
        torch_prune_utils.remove(module, name)
    pruned.eval()
    kept = sum(int(m.weight.count_nonzero()) for m in layers.values())
    total = sum(m.weight.numel() for m in layers.values())
    how = "retrained with its masks" if retrain is not None else "no retraining"
    notes = (
        f"torch.nn.utils.prune global L1 at {100 * sparsity:.1f}% sparsity ({how}); "
        f"{100 * kept / total:.1f}% of the weights kept. Its saved state dict is dense fp32: "
        "the zeros are stored, so the file does not shrink."
    )
    # Global L1 ranks every layer's weights together: a layer of small weights can empty.
    if empty := [n for n, m in layers.items() if not bool(m.weight.count_nonzero())]:
        notes += f" Global L1 left no weight in {', '.join(empty)}."
    return PeerModel("torch_prune", "torch.nn.utils.prune", pruned, saved_size(pruned), notes)


def int8_dynamic(model: nn.Module) -> PeerModel:
    """``quantize_dynamic`` of the ``Linear`` layers to int8 (convolutions stay fp32)."""
    from torch.ao.quantization import quantize_dynamic

    float_model = _float_copy(model)
    linear = sum(isinstance(m, nn.Linear) for m in float_model.modules())
    if not linear:
        raise NetshrinkError("int8_dynamic: the model has no Linear layer (it quantizes those)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        quantized = quantize_dynamic(float_model, {nn.Linear}, dtype=torch.qint8).eval()
    notes = (
        f"torch.ao.quantization.quantize_dynamic: {linear} Linear "
        f"layer{'s' if linear > 1 else ''} int8, activations quantized per batch; "
        "convolutions stay fp32."
    )
    return PeerModel(
        "int8_dynamic", "PyTorch int8 dynamic", quantized, saved_size(quantized), notes
    )


def int8_static(
    model: nn.Module, calibration: Iterable[torch.Tensor], backend: str | None = None
) -> PeerModel:
    """FX graph mode static int8 quantization, calibrated on the ``calibration`` inputs.

    ``backend``: the quantized engine (``torch.backends.quantized.engine`` when None); the
    engine must stay the current one when the result runs.
    """
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    backend = backend or torch.backends.quantized.engine
    if backend not in torch.backends.quantized.supported_engines:
        raise NetshrinkError(
            f"int8_static: quantized engine {backend!r} is not supported here "
            f"(supported: {', '.join(torch.backends.quantized.supported_engines)})"
        )
    batches = list(calibration)
    if not batches:
        raise NetshrinkError("int8_static: needs at least one calibration batch")
    float_model = _float_copy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation and observer notices
        try:
            prepared = prepare_fx(float_model, get_default_qconfig_mapping(backend), (batches[0],))
        except Exception as exc:  # torch.fx raises many kinds on untraceable code
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise NetshrinkError(
                f"int8_static: torch.fx cannot trace {type(model).__name__} "
                f"({type(exc).__name__}: {first})"
            ) from exc
        with torch.no_grad():
            for x in batches:
                prepared(x)
        quantized = convert_fx(prepared).eval()
    n = sum(x.shape[0] for x in batches)
    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    has_bn = any(isinstance(m, norms) for m in float_model.modules())
    folded = "BatchNorm folded, " if has_bn else ""
    notes = (
        f"torch.ao FX static int8 ({backend} engine), calibrated on {n} training images; "
        f"{folded}convolutions and Linear layers int8."
    )
    return PeerModel("int8_static", "PyTorch int8 static (FX)", quantized, saved_size(quantized),
                     notes)  # fmt: skip


def fp16_storage(model: nn.Module) -> PeerModel:
    """Weights stored as float16; the network that runs is float32 with those weights."""
    half = _float_copy(model).half()
    size = saved_size(half)
    runs = half.float().eval()
    notes = (
        "State dict saved in float16 (half the bytes); cast back to float32 to run, as CPU "
        "float16 convolutions are slower."
    )
    return PeerModel("fp16", "fp16 storage", runs, size, notes)


def zstd_checkpoint(model: nn.Module, level: int = 19) -> PeerModel:
    """The fp32 state dict compressed with Zstandard at ``level`` (lossless)."""
    float_model = _float_copy(model)
    raw = _state_bytes(float_model)
    packed = zstandard.ZstdCompressor(level=level).compress(raw)
    if zstandard.ZstdDecompressor().decompress(packed) != raw:  # lossless, or not shipped
        raise NetshrinkError("zstd_checkpoint: the compressed state dict does not round-trip")
    notes = (
        f"The fp32 state dict ({len(raw):,} bytes) through zstd level {level}: lossless, "
        "so accuracy and speed are the baseline's."
    )
    return PeerModel("zstd", "zstd of the fp32 checkpoint", float_model, len(packed), notes)
