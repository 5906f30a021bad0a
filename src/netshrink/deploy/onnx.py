"""ONNX export of a trained network, checked by onnxruntime before the file is written.

:func:`export_onnx` writes the network as it runs in float (an ``.nsz`` file's model
unpacked dense, binary layers as their float simulation):

1. BatchNorm folded into the ``Conv2d``/``Linear`` before it, found in a ``torch.fx``
   trace (a BatchNorm whose input has another reader, or a network whose forward does not
   trace, stays a BatchNorm: the report says which);
2. with ``codebook``, each layer whose weight takes at most 256 distinct values (a
   weight-shared layer, Deep Compression §3) is written as a ``uint8`` index tensor and its
   codebook, turned back into the weight by ``Gather`` at load (times the folded
   BatchNorm's per-channel scale, so folding keeps the codebook), which keeps the file
   close to the ``.nsz``'s size before Huffman coding; the other layers are dense fp32;
3. exported with PyTorch's TorchScript exporter (opset 17, a dynamic batch axis);
4. run by onnxruntime on ``samples`` (default: 8 random inputs of the given size) against
   the PyTorch network's outputs; the file is written (atomically) only when every output
   agrees within ``atol + rtol·|expected|`` (defaults 1e-4 and 1e-3: folding and ONNX's
   kernels round differently from PyTorch's).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.nn.utils import parametrize

from netshrink.atomic import atomic_write_bytes
from netshrink.errors import NetshrinkError
from netshrink.quantize import unshare_weights_

__all__ = [
    "CodebookConv2d",
    "CodebookLinear",
    "CodebookWeight",
    "ExportReport",
    "export_onnx",
    "onnx_bytes",
    "prepare_export",
    "session_module",
]

MAX_CODEBOOK = 256  # distinct weight values a uint8 index addresses
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and checked."""

    path: str
    file_bytes: int
    opset: int
    folded: list[str] = field(default_factory=list)  # BatchNorms folded into their layer
    kept_batch_norms: list[str] = field(default_factory=list)  # and why not, in notes
    codebook_layers: list[str] = field(default_factory=list)
    max_abs_diff: float = 0.0  # onnxruntime against PyTorch on the samples
    tolerance: tuple[float, float] = (1e-3, 1e-4)  # (rtol, atol)
    samples: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "file_bytes": self.file_bytes,
            "opset": self.opset,
            "folded": self.folded,
            "kept_batch_norms": self.kept_batch_norms,
            "codebook_layers": self.codebook_layers,
            "max_abs_diff": self.max_abs_diff,
            "rtol": self.tolerance[0],
            "atol": self.tolerance[1],
            "samples": self.samples,
            "notes": self.notes,
        }


class _Codebook(nn.Module):
    """A weight as ``codebook[codes]`` (times an optional per-output-channel ``scale``)."""

    def __init__(self, weight: Tensor, bias: Tensor | None, scale: Tensor | None) -> None:
        super().__init__()
        values, codes = torch.unique(weight.detach().float(), return_inverse=True)
        self.register_buffer("codebook", values.contiguous())  # (K,) float32, K <= 256
        self.register_buffer("codes", codes.to(torch.uint8))  # weight's shape
        self.register_buffer("scale", None if scale is None else scale.detach().float())
        self.register_buffer("bias", None if bias is None else bias.detach().float())

    def weight(self) -> Tensor:
        w = self.codebook[self.codes.long()]  # ONNX: Cast + Gather
        if self.scale is not None:
            w = w * self.scale.view(-1, *[1] * (w.dim() - 1))
        return w


class CodebookConv2d(_Codebook):
    """``Conv2d`` (zero padding) whose weight is gathered from a codebook at run time."""

    def __init__(self, conv: nn.Conv2d, weight: Tensor, bias: Tensor | None, scale) -> None:
        super().__init__(weight, bias, scale)
        self.stride, self.padding = conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(
            x, self.weight(), self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class CodebookLinear(_Codebook):
    """``Linear`` whose weight is gathered from a codebook at run time."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight(), self.bias)


class CodebookWeight(nn.Module):
    """A parametrization (``torch.nn.utils.parametrize``) that makes a layer's ``weight``
    ``codebook[codes]``: for ``Conv2d``/``Linear`` subclasses with a ``forward`` of their
    own (a convolution that pads itself), whose forward this module keeps. The original
    dense weight is not read, so the exporter leaves it out of the file."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        values, codes = torch.unique(weight.detach().float(), return_inverse=True)
        self.register_buffer("codebook", values.contiguous())
        self.register_buffer("codes", codes.to(torch.uint8))

    def forward(self, original: Tensor) -> Tensor:
        return self.codebook[self.codes.long()]


def _bn_terms(bn: nn.Module) -> tuple[Tensor, Tensor]:
    """``(scale, shift)`` of an eval BatchNorm, in float64."""
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale, beta - mean * scale


def _plain(layer: nn.Module) -> bool:
    """A plain ``Conv2d`` (zero padding) or ``Linear``: one this module can rewrite."""
    if type(layer) is nn.Linear:
        return True
    return type(layer) is nn.Conv2d and layer.padding_mode == "zeros"


def _distinct(weight: Tensor) -> int:
    return int(torch.unique(weight.detach()).numel())


def _rewrite(layer: nn.Module, bn: nn.Module | None, codebook: bool) -> nn.Module:
    """``layer`` (with ``bn`` folded in) as a dense or codebook layer."""
    weight = layer.weight.detach().float()
    bias = None if layer.bias is None else layer.bias.detach().double()
    scale = shift = None
    if bn is not None:
        scale, shift = _bn_terms(bn)
        bias = shift if bias is None else bias * scale + shift
    if codebook and _distinct(weight) <= MAX_CODEBOOK:
        bias = None if bias is None else bias.float()
        if isinstance(layer, nn.Linear):
            return CodebookLinear(weight, bias, None if scale is None else scale.float())
        return CodebookConv2d(layer, weight, bias, None if scale is None else scale.float())
    out = copy.deepcopy(layer)
    with torch.no_grad():
        if scale is not None:
            shape = (-1, *[1] * (weight.dim() - 1))
            out.weight.copy_((weight.double() * scale.view(shape)).float())
        if bias is not None:
            if out.bias is None:
                out.bias = nn.Parameter(torch.zeros(weight.shape[0]))
            out.bias.copy_(bias.float())
    return out


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


def prepare_export(model: nn.Module, *, fold: bool = True, codebook: bool = False):
    """The network to export (an eval copy: BatchNorm folded, codebook layers), and the
    report's lists ``(folded, kept, codebook_layers, notes)``."""
    model = copy.deepcopy(model).eval()
    unshare_weights_(model)  # live weight sharing (codebook + hooks) to plain weights
    folded: list[str] = []
    kept: list[str] = []
    notes: list[str] = []
    pairs: dict[str, str] = {}  # layer -> the BatchNorm folded into it
    has_bn = any(isinstance(m, _BATCH_NORMS) for m in model.modules())
    if fold and has_bn:
        try:
            graph = fx.Tracer().trace(model)
        except Exception as exc:  # control flow on values: no folding, said so
            first = (str(exc).strip().splitlines() or [""])[0][:120]
            notes.append(f"BatchNorm not folded: the forward does not trace ({first})")
            graph = None
        modules = dict(model.named_modules())
        for node in graph.nodes if graph is not None else []:
            bn = modules.get(node.target) if node.op == "call_module" else None
            if not isinstance(bn, _BATCH_NORMS):
                continue
            source = node.args[0] if len(node.args) == 1 else None
            layer = modules.get(source.target) if isinstance(source, fx.Node) else None
            ok = (
                source is not None
                and source.op == "call_module"
                and _plain(layer)
                and len(source.users) == 1
                and bn.track_running_stats
                and bn.running_mean is not None
                and bn.num_features == layer.weight.shape[0]
                and source.target not in pairs
            )
            if ok:
                pairs[source.target] = node.target
            else:
                kept.append(node.target)
    parametrized: list[str] = []
    for name, layer in list(model.named_modules()):
        if not name or not isinstance(layer, nn.Conv2d | nn.Linear):
            continue
        if not _plain(layer):  # its own forward: keep it, gather only the weight
            if codebook and _distinct(layer.weight) <= MAX_CODEBOOK:
                weight = layer.weight.detach().float()
                parametrize.register_parametrization(layer, "weight", CodebookWeight(weight))
                parametrized.append(name)
            continue
        bn_name = pairs.get(name)
        bn = modules[bn_name] if bn_name is not None else None
        if bn is None and not codebook:
            continue
        new = _rewrite(layer, bn, codebook)
        _set(model, name, new)
        if bn_name is not None:
            _set(model, bn_name, nn.Identity())
            folded.append(bn_name)
    codebook_layers = [n for n, m in model.named_modules() if isinstance(m, _Codebook)]
    codebook_layers += parametrized
    if kept:
        notes.append(
            f"{len(kept)} BatchNorm(s) kept (input read elsewhere or not a plain layer's "
            f"output): {', '.join(kept[:5])}"
        )
    return model, folded, kept, codebook_layers, notes


class _Session(nn.Module):
    """An onnxruntime session behind a module's call (float32 tensors in and out)."""

    def __init__(self, data: bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        super().__init__()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def forward(self, x: Tensor) -> Tensor:
        (out,) = self.session.run(["output"], {"input": x.detach().float().numpy()})
        return torch.from_numpy(out)


def session_module(data: bytes, threads: int | None = None) -> nn.Module:
    """ONNX bytes (as :func:`export_onnx` writes them) as a module that runs onnxruntime."""
    return _Session(data, threads)


@contextlib.contextmanager
def _quiet_native_output():
    """Discard what C++ writes to stdout and stderr meanwhile: torch's TorchScript exporter
    logs the whole graph there on a failed export (its ONNX log is always on in 2.13), and
    the one-line error says what went wrong."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def _export_bytes(model: nn.Module, example: Tensor, opset: int, constant_folding: bool) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), _quiet_native_output():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
        try:
            torch.onnx.export(
                model, (example,), buffer, dynamo=False, opset_version=opset,
                do_constant_folding=constant_folding, input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )  # fmt: skip
        except Exception as exc:  # unsupported operators and the like: one line
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise NetshrinkError(f"ONNX export failed: {type(exc).__name__}: {first}") from None
    return buffer.getvalue()


def onnx_bytes(
    model: nn.Module,
    input_size: tuple[int, ...],
    *,
    codebook: bool = False,
    opset: int = 17,
    samples: Tensor | None = None,
    rtol: float = 1e-3,
    atol: float = 1e-4,
) -> tuple[bytes, ExportReport]:
    """What :func:`export_onnx` would write, in memory: the checked ONNX bytes and the
    report (its ``path`` empty). Run them with :func:`session_module`."""
    import onnxruntime as ort

    if len(input_size) != 3:
        raise NetshrinkError(f"export: input size must be (C, H, W), got {tuple(input_size)}")
    net, folded, kept, codebook_layers, notes = prepare_export(model, codebook=codebook)
    if samples is None:
        generator = torch.Generator().manual_seed(0)
        samples = torch.randn(8, *input_size, generator=generator)
    reference = copy.deepcopy(model).eval()
    with torch.no_grad():
        want = reference(samples).float().numpy()
    # constant folding would turn each Gather back into a dense fp32 initializer
    data = _export_bytes(net, samples[:1], opset, constant_folding=not codebook_layers)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        (got,) = session.run(["output"], {"input": samples.float().numpy()})
    except Exception as exc:  # onnxruntime cannot load or run what was exported
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise NetshrinkError(f"onnxruntime cannot run the exported model: {first}") from None
    diff = float(np.abs(got - want).max()) if want.size else 0.0
    if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=atol):
        raise NetshrinkError(
            f"onnxruntime's outputs differ from PyTorch's by up to {diff:.3g} "
            f"(allowed {atol:g} + {rtol:g}·|y|); nothing written"
        )
    report = ExportReport(
        "", len(data), opset, folded, kept, codebook_layers, diff, (rtol, atol),
        int(samples.shape[0]), notes,
    )  # fmt: skip
    return data, report


def export_onnx(
    model: nn.Module,
    input_size: tuple[int, ...],
    path: str | os.PathLike[str] | None,
    *,
    codebook: bool = False,
    opset: int = 17,
    samples: Tensor | None = None,
    rtol: float = 1e-3,
    atol: float = 1e-4,
    overwrite: bool = False,
) -> ExportReport:
    """Export ``model`` (see the module docstring) for ``input_size`` (C, H, W) to
    ``path`` (None: check only), verified by onnxruntime on ``samples`` first.

    An existing ``path`` is refused unless ``overwrite``; a network onnxruntime disagrees
    with, or one the exporter cannot write, is an error and nothing is written.
    """
    if path is not None and os.path.exists(path) and not overwrite:
        raise NetshrinkError(f"{path} exists; pass --force (overwrite=True) to replace it")
    data, report = onnx_bytes(
        model, input_size, codebook=codebook, opset=opset, samples=samples, rtol=rtol, atol=atol
    )
    if path is not None:
        atomic_write_bytes(path, data)
        report.path = str(path)
    return report
