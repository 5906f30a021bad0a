"""The sparse engine: pruned, weight-shared layers run on sparse codebook kernels (EIE).

Deep Compression's models are mostly zeros, and the survivors take a few distinct values
(the codebook). Unpacked to dense fp32 they run no faster than the original: every zero is
still loaded and multiplied. This engine keeps each pruned ``Linear`` and ``Conv2d`` in
compressed-row form (:class:`netshrink.kernels.sparse.SparseRows`): per surviving weight a
column index (16 bits) and a codebook index (8 bits), the codebook looked up inside the
kernel as EIE does (Han et al. 2016, "EIE", §3). At batch 1 a layer is memory-bound, so
moving 3 bytes per survivor instead of 4 bytes per weight is the speed-up.

Per layer, at load time, the layout is chosen one of two ways:

- by density (nonzeros / weights, the default): sparse at or below :data:`MAX_DENSITY` for
  the layer's kind, dense fp32 above it, where the sparse kernel's indexing costs more than
  the zeros it skips. The thresholds are the crossovers ``benchmarks/bench_engine.py``
  measured at batch 1 (docs/engine.md has the figures);
- by measurement (``tune=True``, the ``auto`` engine's way): every layer at most
  :data:`TUNE_MAX_DENSITY` dense is timed both ways on this machine, at batch 1 on an input
  of the network's size with the current thread count, and runs the faster way. Where the
  crossover lies depends on the CPU, the thread count and the layer's shape, which a
  threshold per kind only approximates.

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
import statistics
import time
import warnings

import numpy as np
import torch
from torch import Tensor, fx, nn

from netshrink.binarize import is_binary
from netshrink.engine.graph import is_relu_node
from netshrink.engine.registry import Engine, EngineNote, register_engine
from netshrink.errors import NetshrinkError
from netshrink.kernels import sparse as kernels
from netshrink.layer_patterns import compressible_layers, foreign_forward
from netshrink.nsz import NszFile, NszFormatError, load_into, read_nsz, skeleton

__all__ = [
    "MAX_DENSITY",
    "TUNE_MAX_DENSITY",
    "SparseConv2d",
    "dense_copy",
    "SparseLinear",
    "load_sparse",
    "to_sparse",
]

# Densest layer (nonzeros / weights) run sparse, by kind: the batch-1 crossovers measured
# by benchmarks/bench_engine.py on the project machines (docs/engine.md, "Crossovers").
# A fully connected layer of a million weights or more is memory-bound at batch 1 and
# gains up to about 30% density; smaller ones are dominated by the per-call cost, and the
# sparse convolutions lose to PyTorch's dense ones above a few per cent.
MAX_DENSITY = {"linear": 0.3, "small_linear": 0.08, "conv1x1": 0.15, "conv": 0.05}
_LARGE_LINEAR = 1 << 20  # weights: at and above, a layer is "linear", below "small_linear"
# Densest layer timed by ``tune=True``: above it no kernel here won anywhere measured.
TUNE_MAX_DENSITY = 0.6
_TUNE_SECONDS = 0.25  # timing budget per layer and contender, after the warm-up
_TUNE_ROUNDS = (3, 15)  # fewest and most interleaved rounds per layer
_TUNE_MARGIN = 0.97  # sparse must take at most this fraction of the dense time


def _numpy(t: Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().float().contiguous().numpy().copy()


class SparseLinear(nn.Module):
    """Inference-only fully connected layer on sparse rows: ``y = W x + b``, W in CSR."""

    def __init__(self, weight: kernels.SparseRows, bias: np.ndarray | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.weight_rows, self.bias = weight, bias

    def forward(self, x: Tensor) -> Tensor:
        kernels.set_threads(torch.get_num_threads())
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
        kernels.set_threads(torch.get_num_threads())
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


class SparseChainLinear(nn.Module):
    """Consecutive :class:`SparseLinear` layers (each with or without a ReLU after it) run
    as one :class:`~netshrink.kernels.sparse.SparseChain`: at batch 1 one kernel call for
    all of them, zero inputs skipped (EIE); a larger batch runs them one by one."""

    def __init__(self, layers: list[SparseLinear], relus: list[bool]) -> None:
        super().__init__()
        self.chain = kernels.SparseChain(
            tuple(m.weight_rows for m in layers), tuple(m.bias for m in layers), tuple(relus)
        )
        self.out_features, self.in_features = self.chain.shape

    def forward(self, x: Tensor) -> Tensor:
        if x.shape == (1, self.in_features) and x.dtype == torch.float32 and x.is_contiguous():
            # the latency case, with as few tensor operations as it takes
            return torch.from_numpy(kernels.sparse_chain(x.detach().numpy(), self.chain))
        lead = x.shape[:-1]
        flat = x.detach().float().reshape(-1, self.in_features).contiguous().numpy()
        if flat.shape[0] == 1:
            out = kernels.sparse_chain(flat, self.chain)  # serial: no thread count to set
        else:
            kernels.set_threads(torch.get_num_threads())
            out = flat
            for rows, bias, relu in zip(self.chain.layers, self.chain.biases, self.chain.relus,
                                        strict=True):  # fmt: skip
                out = kernels.sparse_linear(out, rows, bias, relu=relu)
        return torch.from_numpy(out).reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        widths = [self.in_features] + [rows.shape[0] for rows in self.chain.layers]
        return f"{'-'.join(map(str, widths))}, relu={list(self.chain.relus)}"


def _chain_runs(net: nn.Module, members: set[str], prefix: str = ""):
    """The traced ``net`` and its runs of two or more fully connected layers named in
    ``members``, each feeding only the next (a ReLU between allowed): lists of
    ``(call node, ReLU after it, node whose output the run's output is)``; (None, []) when
    ``net`` does not trace with ``torch.fx``."""
    try:
        traced = fx.symbolic_trace(net)
    except Exception:  # noqa: BLE001 - control flow on values: no chains then
        return None, []
    modules = dict(traced.named_modules())

    def member(node):
        ok = node.op == "call_module" and prefix + node.target in members
        return ok and isinstance(modules[node.target], nn.Linear)

    runs, seen = [], set()
    for node in list(traced.graph.nodes):
        if node in seen or not member(node):
            continue
        run, tail = [], node
        while member(tail) and not (
            run and run[-1][3].out_features != modules[tail.target].in_features
        ):
            end, users = tail, list(tail.users)
            relu = len(users) == 1 and is_relu_node(users[0], modules)
            if relu:
                end, users = users[0], list(users[0].users)
            run.append((tail, relu, end, modules[tail.target]))
            seen.add(tail)
            if len(users) != 1:
                break
            tail = users[0]
        if len(run) >= 2:
            runs.append([(n, relu, end) for n, relu, end, _ in run])
    return traced, runs


def _chain_sequence(modules: list[nn.Module], relus: list[bool]):
    """The unchained contender: each layer as chosen, ReLUs between, called in turn."""

    def run(x: Tensor) -> Tensor:
        for module, relu in zip(modules, relus, strict=True):
            x = module(x)
            x = x.relu() if relu else x
        return x

    return run


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
    foreign = foreign_forward(layer)
    if foreign:
        return f"{foreign} has a forward of its own (the kernels would drop it)"
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


def _median_ms(contenders: dict[str, callable]) -> dict[str, float]:
    """Median milliseconds of each contender, interleaved rounds after one warm-up each."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    start = time.perf_counter()
    rounds = 0
    while rounds < _TUNE_ROUNDS[1]:
        order = list(contenders.items())
        for key, fn in order if rounds % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t)
        rounds += 1
        spent = time.perf_counter() - start
        if rounds >= _TUNE_ROUNDS[0] and spent > _TUNE_SECONDS * len(contenders):
            break
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def layer_inputs(
    model: nn.Module, names: list[str], input_size: tuple[int, ...]
) -> dict[str, torch.Size]:
    """The input shape of each named layer when ``model`` runs on one ``input_size`` image
    (batch 1). A skeleton on the meta device (no weights yet) runs on a meta input."""
    layers = dict(model.named_modules())
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    seen: dict[str, torch.Size] = {}

    def record(name: str):
        def hook(_module, args) -> None:  # returns None: the arguments go on unchanged
            seen.setdefault(name, args[0].shape)

        return hook

    hooks = [layers[name].register_forward_pre_hook(record(name)) for name in names]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_size, device=device))
    except Exception as exc:  # noqa: BLE001 - any failure: the size does not fit the net
        raise NetshrinkError(
            f"sparse engine: cannot run the network on input size "
            f"{'x'.join(map(str, input_size))} to time its layers ({exc})"
        ) from None
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def dense_copy(layer: nn.Module) -> nn.Module:
    """A CPU copy of ``layer`` (eval) for its dense timing: weights kept, or random where
    ``layer`` is a meta-device skeleton's (values do not change the time)."""
    twin = copy.deepcopy(layer)
    if any(p.is_meta for p in twin.parameters()):
        twin = twin.to_empty(device="cpu")
        with torch.no_grad():
            for param in twin.parameters():
                param.normal_(0.0, 0.01)
    return twin.eval()


def _measured(
    name: str,
    sparse: nn.Module,
    dense: nn.Module,
    shape: torch.Size,
    density: float,
    channels_last: bool = False,
) -> EngineNote:
    """Time ``sparse`` against ``dense`` on a random ``shape`` input (channels-last if
    ``channels_last`` and 4-D); the faster's note."""
    x = torch.randn(shape)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ms = _median_ms({"sparse": lambda: sparse(x), "dense": lambda: dense(x)})
    how = f"measured {ms['sparse']:.3g} ms sparse vs {ms['dense']:.3g} ms dense"
    if ms["sparse"] <= _TUNE_MARGIN * ms["dense"]:
        return EngineNote(name, "sparse", f"density {density:.3f}, {how}")
    return EngineNote(name, "float", f"density {density:.2f}, {how}")


def _candidate(name: str, layer: nn.Module, density: float | None, limits, tune: bool):
    """``(note, worth timing)``: the threshold's choice, or a layer for ``tune`` to time."""
    if tune and not _why_dense(layer) and density is not None:
        if density <= TUNE_MAX_DENSITY:
            return None, True
        return EngineNote(
            name, "float", f"density {density:.2f} above the {TUNE_MAX_DENSITY} timed at most"
        ), False  # fmt: skip
    return _choose(name, layer, density, limits), False


def _decide(
    net: nn.Module,
    candidates: dict[str, tuple[nn.Module, float | None, callable]],
    limits: dict[str, float],
    tune: bool,
    input_size: tuple[int, ...] | None,
    dense_twin=None,
    channels_last: bool = False,
) -> tuple[nn.Module, list[EngineNote], dict[str, nn.Module]]:
    """``net`` (a ``torch.fx`` copy where layers were chained), each candidate layer's note,
    and the sparse modules of those that run sparse one by one.

    ``candidates`` maps a layer name to ``(layer, density, build)``, ``build()`` making its
    sparse module. ``tune`` times the layers on ``input_size`` (``net`` runs once to get
    their inputs) against ``dense_twin(layer)`` (default: a copy of the layer); without
    ``tune`` the density thresholds decide.
    """
    dense_twin = dense_twin or dense_copy
    if tune and input_size is None:
        raise NetshrinkError("sparse engine: timing the layers (tune) needs the input size")
    notes, chosen, timed, inputs = [], {}, set(), {}
    for name, (layer, density, build) in candidates.items():
        note, worth = _candidate(name, layer, density, limits, tune)
        if worth:
            timed.add(name)
        notes.append(note)
        if note is not None and note.engine == "sparse":
            chosen[name] = build()
    if timed:
        inputs = layer_inputs(net, list(timed), tuple(input_size))
        for i, (name, (layer, density, build)) in enumerate(candidates.items()):
            if name not in timed:
                continue
            if name not in inputs:  # never called by forward: nothing to gain
                notes[i] = EngineNote(name, "float", "not run by the network's forward")
                continue
            sparse = build()
            dense = dense_twin(layer)
            notes[i] = _measured(name, sparse, dense, inputs[name], density, channels_last)
            if notes[i].engine == "sparse":
                chosen[name] = sparse
    net = _chain(net, candidates, limits, notes, chosen, tune, dense_twin, inputs)
    return net, notes, chosen


def _time_chain(chain: nn.Module, one_by_one, x: Tensor) -> dict[str, float]:
    with torch.no_grad():
        return _median_ms({"chain": lambda: chain(x), "alone": lambda: one_by_one(x)})


def _chain(net, candidates, limits, notes, chosen, tune, dense_twin, inputs):
    """``net`` with runs of small fully connected layers as :class:`SparseChainLinear`,
    ``notes`` and ``chosen`` updated in place. The runs are found with ``torch.fx`` in the
    largest modules that trace (the network, or else its children, recursively); a module
    with a chain becomes its traced copy.

    A run's members: layers with fewer than ``SERIAL_NNZ`` nonzeros, at most
    :data:`TUNE_MAX_DENSITY` dense when timing (each run then timed chained against its
    layers as chosen one by one) or within the ``linear`` crossover otherwise.
    """
    limit = TUNE_MAX_DENSITY if tune else limits["linear"]
    members = {
        name
        for name, (layer, density, _) in candidates.items()
        if isinstance(layer, nn.Linear) and density is not None and density <= limit
        and density * layer.weight.numel() < kernels.SERIAL_NNZ
    }  # fmt: skip
    if len(members) < 2:
        return net
    context = (candidates, notes, chosen, tune, dense_twin, inputs, [0])
    return _chain_module(net, "", members, context)


def _chain_module(module: nn.Module, prefix: str, members: set[str], context) -> nn.Module:
    traced, runs = _chain_runs(module, members, prefix)
    if traced is None:
        for name, child in list(module.named_children()):
            if next(child.children(), None) is not None:
                setattr(module, name, _chain_module(child, f"{prefix}{name}.", members, context))
        return module
    applied = [_chain_run(traced, prefix, run, context) for run in runs]
    if not any(applied):
        return module
    traced.graph.eliminate_dead_code()
    traced.delete_all_unused_submodules()  # the chained layers' dense weights go
    traced.recompile()
    return traced


def _chain_run(traced: fx.GraphModule, prefix: str, run, context) -> bool:
    """Chain one run in ``traced`` if it pays (always, without timing); whether it did."""
    candidates, notes, chosen, tune, dense_twin, inputs, count = context
    names = [prefix + node.target for node, _, _ in run]
    relus = [relu for _, relu, _ in run]
    layers = [chosen[n] if n in chosen else candidates[n][2]() for n in names]
    if len({m.weight_rows.codebook is None for m in layers}) != 1:
        return False  # codebook and float32 layers do not share one chain
    chain = SparseChainLinear(layers, relus)
    how = "chained"
    if tune:
        x = torch.randn(inputs[names[0]])
        alone = [chosen[n] if n in chosen else dense_twin(candidates[n][0]) for n in names]
        ms = _time_chain(chain, _chain_sequence(alone, relus), x)
        if ms["chain"] > _TUNE_MARGIN * ms["alone"]:
            return False
        how = f"chained: measured {ms['chain']:.3g} ms vs {ms['alone']:.3g} ms one by one"
    target = f"sparse_chain{count[0]}"
    count[0] += 1
    traced.add_submodule(target, chain)
    last = run[-1][2]
    with traced.graph.inserting_after(last):
        node = traced.graph.call_module(target, (run[0][0].args[0],))
    last.replace_all_uses_with(node)
    order = list(candidates)
    for name in names:
        chosen.pop(name, None)
        density = candidates[name][1]
        notes[order.index(name)] = EngineNote(
            name, "sparse", f"density {density:.3f}, {how} ({prefix}{target})"
        )
    return True


def to_sparse(
    model: nn.Module,
    *,
    warn: bool = True,
    max_density: dict[str, float] | None = None,
    tune: bool = False,
    input_size: tuple[int, ...] | None = None,
    dense_twin=None,
    channels_last: bool = False,
) -> tuple[nn.Module, list[EngineNote]]:
    """A copy of ``model`` (eval mode) with its pruned layers on the sparse kernels.

    Every ``Linear`` and ``Conv2d`` (binary layers excepted) whose density is at most
    ``max_density[kind]`` (default :data:`MAX_DENSITY`; kinds ``linear``,
    ``small_linear``, ``conv1x1``, ``conv``) is replaced by a :class:`SparseLinear` /
    :class:`SparseConv2d`; with ``tune``, instead, every layer at most
    :data:`TUNE_MAX_DENSITY` dense is timed both ways on a batch-1 ``input_size`` (C, H, W)
    input and the faster kept (the dense contender: ``dense_twin(layer)``, by default a copy
    of the layer; the auto engine passes the fused layer it runs, and ``channels_last``
    inputs as the fused network has). The others stay dense and get a note saying why (with
    ``warn``, one ``UserWarning``).
    """
    limits = _limits(max_density)
    out = copy.deepcopy(model).eval()
    candidates = {}
    for name, layer in compressible_layers(out).items():
        if is_binary(layer):
            continue
        weight = layer.weight.detach().cpu().float()

        def build(layer=layer, weight=weight):
            rows = kernels.sparse_rows(weight.reshape(weight.shape[0], -1).numpy())
            return _module(layer, rows, _numpy(layer.bias))

        candidates[name] = (layer, float((weight != 0).float().mean()), build)
    out, notes, chosen = _decide(
        out, candidates, limits, tune, input_size, dense_twin, channels_last
    )
    for name, module in chosen.items():
        _replace(out, name, module)
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
    tune: bool = False,
    input_size: tuple[int, ...] | None = None,
    dense_twin=None,
    channels_last: bool = False,
) -> tuple[nn.Module, list[EngineNote]]:
    """The network an ``.nsz`` file holds, its pruned layers built sparse from the file.

    The stored nonzeros of each ``shared`` (codebook) or ``sparse`` weight go straight
    into the kernel's layout; no dense copy of those layers is made. Layers stored dense,
    or denser than the crossover, are decoded dense. ``model`` is a skeleton of the
    user's own architecture when the file names no registered one (as in ``unpack``).
    ``tune`` times the candidate layers instead (see :func:`to_sparse`) on ``input_size``,
    by default the one the file records.
    """
    limits = _limits(max_density)
    nsz = source if isinstance(source, NszFile) else read_nsz(source)
    where = "" if isinstance(source, NszFile) else f"{source}: "
    try:
        net = model if model is not None else skeleton(nsz)
        index = {entry["name"]: i for i, entry in enumerate(nsz.entries)}
        candidates = {}
        for name, layer in compressible_layers(net).items():
            i = index.get(f"{name}.weight")
            if is_binary(layer) or i is None:
                continue
            bias = index.get(f"{name}.bias")
            for leaf, j, param in (("weight", i, layer.weight), ("bias", bias, layer.bias)):
                found = None if j is None else tuple(nsz.entries[j]["shape"])
                want = None if param is None else tuple(param.shape)
                if found != want:  # load_into's check, which skips the layers built here
                    raise NetshrinkError(
                        f"tensor {name}.{leaf} has shape {found} in the file, {want} in the model"
                    )
            stored = nsz.nonzeros(i)
            numel = layer.weight.numel()
            density = None if stored is None else stored.positions.size / max(numel, 1)

            def build(layer=layer, stored=stored, bias=bias):
                rows = _rows(stored, layer)
                return _module(layer, rows, None if bias is None else nsz.tensor(bias))

            candidates[name] = (layer, density, build)
        size = input_size if input_size is not None else nsz.input_size
        net, notes, chosen = _decide(
            net, candidates, limits, tune, size if tune else None, dense_twin, channels_last
        )
        for name, module in chosen.items():
            _replace(net, name, module)
        built = [n.layer for n in notes if n.engine == "sparse"]  # alone or in a chain
        load_into(nsz, net, taken={f"{name}.{t}" for name in built for t in ("weight", "bias")})
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
