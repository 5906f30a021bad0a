"""Count parameters, MACs and activation sizes per layer with forward hooks.

Convention (docs/reference papers.md, "Counting convention"): one multiply-accumulate = 1.
Conv MACs = C_out·H_out·W_out·(C_in/groups)·kH·kW, Linear MACs = in·out. Bias adds,
BatchNorm, activations, pooling, shuffles and residual adds count 0 MACs. Parameters are
weights + biases + BatchNorm γ/β; running statistics are buffers and are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from netshrink.profile.records import LayerProfile

__all__ = ["FP32_BYTES", "count_layers", "count_macs", "count_params", "profiled_modules"]

FP32_BYTES = 4

# Modules that move or drop data but compute nothing worth a row in a profile.
_PLUMBING: tuple[type[nn.Module], ...] = (
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.Flatten,
    nn.Unflatten,
)


def layer_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """MACs of one call of ``module`` for the whole batch it was called with."""
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        # Every input element is scattered onto a kernel window of each output channel
        # in its group.
        kernel = math.prod(module.kernel_size)
        return inputs[0].numel() * (module.out_channels // module.groups) * kernel
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = math.prod(module.kernel_size)
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def profiled_modules(model: nn.Module) -> dict[nn.Module, str]:
    """Modules that get a row: leaves that are not plumbing, and any module that owns
    parameters directly (so that the rows' parameters always add up to the model's)."""
    chosen: dict[nn.Module, str] = {}
    for name, module in model.named_modules():
        is_leaf = next(module.children(), None) is None
        owns_params = next(module.parameters(recurse=False), None) is not None
        if owns_params or (is_leaf and not isinstance(module, _PLUMBING)):
            chosen[module] = name or type(module).__name__
    return chosen


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module in eval mode and restore each one's own flag afterwards (a model
    may deliberately keep, say, frozen BatchNorm in eval while the rest trains)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def example_input(model: nn.Module, input_size: tuple[int, ...], batch_size: int) -> torch.Tensor:
    """A random input on the model's device and float dtype, drawn from a private
    generator so that profiling does not advance the global RNG of a training run."""
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None else torch.float32
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((batch_size, *input_size), generator=generator, dtype=dtype)
    return x.to(device)


def _tensors(output: object) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in _tensors(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in _tensors(item)]
    return []


@dataclass
class _Tally:
    output_shape: tuple[int, ...] = ()
    macs: int = 0
    activation_elems: int = 0


def count_layers(
    model: nn.Module, input_size: tuple[int, int, int]
) -> list[tuple[nn.Module, LayerProfile]]:
    """Run one batch-1 forward pass (eval mode, no grad) and return a row per profiled module,
    in order of first call; modules never called come last with an empty output shape.

    The model is left as it was: hooks are removed and training flags restored.
    """
    chosen = profiled_modules(model)
    tallies: dict[nn.Module, _Tally] = {}  # insertion order = order of first call

    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        tally = tallies.setdefault(module, _Tally())
        tensors = _tensors(output)
        if not tensors:
            return
        if not tally.output_shape:
            tally.output_shape = tuple(tensors[0].shape[1:])
        # Batch size is 1, so whole-tensor counts are per-sample counts.
        tally.macs += layer_macs(module, inputs, tensors[0])
        tally.activation_elems += sum(t.numel() for t in tensors)

    handles = [module.register_forward_hook(hook) for module in chosen]
    try:
        with eval_mode(model), torch.no_grad():
            model(example_input(model, input_size, batch_size=1))
    finally:
        for handle in handles:
            handle.remove()

    order = list(tallies) + [m for m in chosen if m not in tallies]
    seen: set[int] = set()  # a shared parameter is counted in the first row using it
    rows = []
    for module in order:
        tally = tallies.get(module, _Tally())
        params = 0
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                params += p.numel()
        row = LayerProfile(
            name=chosen[module],
            type=type(module).__name__,
            output_shape=tally.output_shape,
            params=params,
            macs=tally.macs,
            weight_bytes=params * FP32_BYTES,
            activation_bytes=tally.activation_elems * FP32_BYTES,
        )
        rows.append((module, row))
    return rows


def count_params(model: nn.Module) -> int:
    """Number of parameters; ``model.parameters()`` yields a shared parameter once."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """MACs of one forward pass of one sample of shape ``input_size`` (C, H, W)."""
    return sum(row.macs for _, row in count_layers(model, input_size))
