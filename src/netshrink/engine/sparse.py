"""The sparse engine: pruned, weight-shared layers run on sparse codebook kernels (EIE).

Deep Compression's models are mostly zeros, and the survivors take a few distinct values
(the codebook). Unpacked to dense fp32 they run no faster than the original: every zero is
still loaded and multiplied. This engine keeps each pruned ``Linear`` and ``Conv2d`` in
compressed-row form (:class:`netshrink.kernels.sparse.SparseRows`): per surviving weight a
column index (16 bits) and a codebook index (8 bits), the codebook looked up inside the
kernel as EIE does (Han et al. 2016, "EIE", §3). At batch 1 a layer is memory-bound, so
moving 3 bytes per survivor instead of 4 bytes per weight is the speed-up.

Per layer, at load time, the layout is chosen by density (nonzeros / weights): sparse at
or below :data:`MAX_DENSITY` for the layer's kind, dense fp32 above it, where the sparse
kernel's indexing costs more than the zeros it skips. The thresholds are the crossovers
``benchmarks/bench_engine.py`` measured at batch 1 (docs/engine.md has the figures).

- :func:`to_sparse` converts any model's pruned layers (their codebook, if the nonzeros take
  at most 256 distinct values, is recovered exactly from the weights);
- :func:`load_sparse` builds the model straight from an ``.nsz`` file: the stored nonzeros
  (positions and codebook symbols) go into the kernel's layout without a dense array.

Layers the kernels cannot run (dilation, padding modes other than zeros, string padding)
stay PyTorch dense and are named in the notes; binary layers are the packed engine's.
"""

from __future__ import annotations

import copy
import os
import warnings

import numpy as np
import torch
from torch import Tensor, nn

from netshrink.binarize import is_binary
from netshrink.engine.registry import Engine, EngineNote, register_engine
from netshrink.errors import NetshrinkError
from netshrink.kernels import sparse as kernels
from netshrink.layer_patterns import compressible_layers
from netshrink.nsz import NszFile, NszFormatError, load_into, read_nsz, skeleton

__all__ = ["MAX_DENSITY", "SparseConv2d", "SparseLinear", "load_sparse", "to_sparse"]

# Densest layer (nonzeros / weights) run sparse, by kind: the batch-1 crossovers measured
# by benchmarks/bench_engine.py on the project machines (docs/engine.md, "Crossovers").
# A fully connected layer of a million weights or more is memory-bound at batch 1 and
# gains up to about 30% density; smaller ones are dominated by the per-call cost, and the
# sparse convolutions lose to PyTorch's dense ones above a few per cent.
MAX_DENSITY = {"linear": 0.3, "small_linear": 0.08, "conv1x1": 0.15, "conv": 0.05}
_LARGE_LINEAR = 1 << 20  # weights: at and above, a layer is "linear", below "small_linear"


def _numpy(t: Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().float().contiguous().numpy().copy()


class SparseLinear(nn.Module):
    """Inference-only fully connected layer on sparse rows: ``y = W x + b``, W in CSR."""

    def __init__(self, weight: kernels.SparseRows, bias: np.ndarray | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.weight_rows, self.bias = weight, bias

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x = x.detach().float().reshape(-1, self.in_features).contiguous()  # (N, K)
        out = kernels.sparse_linear(x.numpy(), self.weight_rows, self.bias)  # (N, M)
        return torch.from_numpy(out).reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"density={self.weight_rows.density:.3f}, {_values(self.weight_rows)}"
        )


class SparseConv2d(nn.Module):
    """Inference-only convolution on sparse rows (zero padding, dilation 1, any groups)."""

    def __init__(
        self,
        weight: kernels.SparseRows,
        bias: np.ndarray | None,
        in_chans: int,
        kernel_size: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
        groups: int,
    ) -> None:
        super().__init__()
        self.out_chans, self.in_chans = weight.shape[0], in_chans
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.groups = groups
        self.weight_rows, self.bias = weight, bias

    def forward(self, x: Tensor) -> Tensor:
        x = x.detach().float().contiguous()  # (N, C, H, W)
        out = kernels.sparse_conv2d(
            x.numpy(), self.weight_rows, self.in_chans, self.kernel_size, self.stride,
            self.padding, self.groups, self.bias,
        )  # fmt: skip
        return torch.from_numpy(out)  # (N, O, Ho, Wo)

    def extra_repr(self) -> str:
        return (
            f"{self.in_chans}, {self.out_chans}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, groups={self.groups}, "
            f"density={self.weight_rows.density:.3f}, {_values(self.weight_rows)}"
        )


def _values(rows: kernels.SparseRows) -> str:
    if rows.codebook is None:
        return "fp32 values"
    return f"codebook of {rows.codebook.size}"


def _kind(layer: nn.Module) -> str:
    if isinstance(layer, nn.Linear):
        return "linear" if layer.weight.numel() >= _LARGE_LINEAR else "small_linear"
    return "conv1x1" if tuple(layer.kernel_size) == (1, 1) else "conv"


def _why_dense(layer: nn.Conv2d | nn.Linear) -> str:
    """Why the kernels cannot run ``layer`` (empty when they can)."""
    if isinstance(layer, nn.Linear):
        return ""
    if tuple(layer.dilation) != (1, 1):
        return f"dilation={tuple(layer.dilation)} (the kernels run dilation 1)"
    if isinstance(layer.padding, str):
        return f"padding={layer.padding!r} (the kernels take explicit padding)"
    if layer.padding_mode != "zeros":
        return f"padding_mode={layer.padding_mode!r} (the kernels pad with zeros)"
    return ""


def _module(layer: nn.Conv2d | nn.Linear, rows: kernels.SparseRows, bias) -> nn.Module:
    if isinstance(layer, nn.Linear):
        return SparseLinear(rows, bias)
    return SparseConv2d(
        rows, bias, layer.in_channels, tuple(layer.kernel_size), tuple(layer.stride),
        tuple(layer.padding), layer.groups,
    )  # fmt: skip


def _choose(name: str, layer: nn.Module, density: float | None, limits) -> EngineNote:
    """Sparse or dense for one layer, and why (``density`` None: cannot be read sparse)."""
    reason = _why_dense(layer)
    if reason:
        return EngineNote(name, "float", reason)
    if density is None:
        return EngineNote(name, "float", "stored dense in the file")
    kind = _kind(layer)
    if density > limits[kind]:
        return EngineNote(
            name, "float", f"density {density:.2f} above the {kind} crossover {limits[kind]:.2f}"
        )
    return EngineNote(name, "sparse", f"density {density:.3f}")


def _limits(max_density: dict[str, float] | None) -> dict[str, float]:
    limits = dict(MAX_DENSITY)
    for kind, value in (max_density or {}).items():
        if kind not in MAX_DENSITY:
            raise NetshrinkError(f"sparse engine: unknown layer kind {kind!r} (known: "
                                 f"{', '.join(MAX_DENSITY)})")  # fmt: skip
        if not 0.0 <= value <= 1.0:
            raise NetshrinkError(f"sparse engine: max density must be in 0..1, got {value}")
        limits[kind] = float(value)
    return limits


def _warn(notes: list[EngineNote], warn: bool) -> None:
    dense = [n for n in notes if n.engine == "float"]
    if warn and dense:
        warnings.warn(
            f"sparse engine: {len(dense)} layer(s) run dense "
            f"({'; '.join(f'{n.layer}: {n.reason}' for n in dense)})",
            stacklevel=3,
        )


def to_sparse(
    model: nn.Module,
    *,
    warn: bool = True,
    max_density: dict[str, float] | None = None,
) -> tuple[nn.Module, list[EngineNote]]:
    """A copy of ``model`` (eval mode) with its pruned layers on the sparse kernels.

    Every ``Linear`` and ``Conv2d`` (binary layers excepted) whose density is at most
    ``max_density[kind]`` (default :data:`MAX_DENSITY`; kinds ``linear``,
    ``small_linear``, ``conv1x1``, ``conv``) is replaced by a :class:`SparseLinear` /
    :class:`SparseConv2d`; the others stay dense and get a note saying why (with
    ``warn``, one ``UserWarning``).
    """
    limits = _limits(max_density)
    out = copy.deepcopy(model).eval()
    notes = []
    for name, layer in compressible_layers(out).items():
        if is_binary(layer):
            continue
        weight = layer.weight.detach().cpu().float()
        note = _choose(name, layer, float((weight != 0).float().mean()), limits)
        notes.append(note)
        if note.engine == "sparse":
            rows = kernels.sparse_rows(weight.reshape(weight.shape[0], -1).numpy())
            _replace(out, name, _module(layer, rows, _numpy(layer.bias)))
    _warn(notes, warn)
    return out, notes


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, module)


def load_sparse(
    source: str | os.PathLike[str] | NszFile,
    *,
    model: nn.Module | None = None,
    warn: bool = True,
    max_density: dict[str, float] | None = None,
) -> tuple[nn.Module, list[EngineNote]]:
    """The network an ``.nsz`` file holds, its pruned layers built sparse from the file.

    The stored nonzeros of each ``shared`` (codebook) or ``sparse`` weight go straight
    into the kernel's layout; no dense copy of those layers is made. Layers stored dense,
    or denser than the crossover, are decoded dense. ``model`` is a skeleton of the
    user's own architecture when the file names no registered one (as in ``unpack``).
    """
    limits = _limits(max_density)
    nsz = source if isinstance(source, NszFile) else read_nsz(source)
    where = "" if isinstance(source, NszFile) else f"{source}: "
    try:
        net = model if model is not None else skeleton(nsz)
        index = {entry["name"]: i for i, entry in enumerate(nsz.entries)}
        notes, built = [], {}
        for name, layer in compressible_layers(net).items():
            i = index.get(f"{name}.weight")
            if is_binary(layer) or i is None:
                continue
            stored = nsz.nonzeros(i)
            numel = layer.weight.numel()
            density = None if stored is None else stored.positions.size / max(numel, 1)
            note = _choose(name, layer, density, limits)
            notes.append(note)
            if note.engine == "sparse":
                built[name] = (layer, _rows(stored, layer))
        taken = set()
        for name, (layer, rows) in built.items():
            bias = index.get(f"{name}.bias")
            _replace(net, name, _module(layer, rows, None if bias is None else nsz.tensor(bias)))
            taken.update({f"{name}.weight", f"{name}.bias"})
        load_into(nsz, net, taken=taken)
    except NszFormatError as exc:
        raise NszFormatError(f"{where}{exc}") from None
    _warn(notes, warn)
    return net, notes


def _rows(stored, layer: nn.Module) -> kernels.SparseRows:
    shape = (layer.weight.shape[0], layer.weight[0].numel())
    if stored.positions.size and int(stored.positions[-1]) >= shape[0] * shape[1]:
        raise NszFormatError(f"weight of {type(layer).__name__} has positions beyond {shape}")
    if stored.codebook is not None and stored.codebook.size > 256:  # wider than 8-bit codes
        return kernels.sparse_rows_from_positions(
            shape, stored.positions, stored.codebook[stored.symbols], None
        )
    values = stored.symbols if stored.codebook is not None else stored.values
    return kernels.sparse_rows_from_positions(shape, stored.positions, values, stored.codebook)


register_engine(
    Engine(
        "sparse",
        "pruned layers on sparse codebook kernels (EIE), dense where denser than the crossover",
        to_sparse,
        load=load_sparse,
    )
)
