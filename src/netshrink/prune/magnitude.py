"""Magnitude pruning with a fixed mask, then retraining (Deep Compression, stage 1).

Han, Pool, Tran & Dally, "Learning both Weights and Connections for Efficient Neural
Networks", NeurIPS 2015, and Han, Mao & Dally, "Deep Compression", ICLR 2016, §2: remove the
weights of small magnitude layer by layer, then retrain the rest with the pruned weights
held at zero; repeating prune + retrain reaches higher sparsity at the same accuracy.

A pruned layer carries its mask as a non-persistent bool buffer ``weight_mask`` (True keeps
the weight), so ``state_dict`` is unchanged and a checkpoint of a pruned model loads into a
fresh model; :func:`restore_masks_` recovers the masks from the zeros. A gradient hook on
the weight zeroes the gradient of pruned weights, and :func:`apply_masks_` (passed to
``train`` as ``after_step``) re-zeros them after every optimizer step.
"""

from __future__ import annotations

import math
import numbers
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from netshrink import distributed
from netshrink.data import Dataset
from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers, match_patterns
from netshrink.primitives.masks import magnitude_mask, threshold_mask
from netshrink.train import TrainConfig, TrainResult, train

__all__ = [
    "PruneConfig",
    "apply_masks_",
    "layer_density",
    "masks",
    "prune_",
    "prune_and_retrain",
    "remove_masks_",
    "restore_masks_",
]

MASK = "weight_mask"
_HOOKS: weakref.WeakKeyDictionary[nn.Module, RemovableHandle] = weakref.WeakKeyDictionary()


def _check_number(what: str, pattern: Any, value: Any, low: float, high: float) -> float:
    if not isinstance(pattern, str) or not pattern:
        raise NetshrinkError(f"{what} pattern must be a non-empty string, got {pattern!r}")
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and abs(value) < 1e308  # an int like 10**400 has no float (nor a place here)
    if not (ok and math.isfinite(value) and low <= value < high):
        bounds = f"in [{low:g}, {high:g})" if math.isfinite(high) else f"finite and >= {low:g}"
        raise NetshrinkError(f"{what} for {pattern!r} must be {bounds}, got {value!r}")
    return float(value)


@dataclass
class PruneConfig:
    """Which layers to prune and how much; per-layer settings are ``{fnmatch pattern: value}``.

    ``sparsity``: the fraction of the layer's weights set to zero, in [0, 1), keeping the
    largest magnitudes. ``quality``: prune ``|w| <= q * std(w)`` with q >= 0 (Han et al.
    2015, §3.2). A layer matched by both mappings is an error; a layer matched by neither is
    left as it is. Biases are never pruned.
    """

    sparsity: dict[str, float] = field(default_factory=dict)
    quality: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for what in ("sparsity", "quality"):
            if not isinstance(getattr(self, what), dict):
                kind = type(getattr(self, what)).__name__
                raise NetshrinkError(f"{what} must be a mapping of layer patterns, got {kind}")
        self.sparsity = {
            p: _check_number("sparsity", p, v, 0.0, 1.0) for p, v in self.sparsity.items()
        }
        self.quality = {
            p: _check_number("quality", p, v, 0.0, math.inf) for p, v in self.quality.items()
        }
        both = [p for p in self.sparsity if p in self.quality]
        if both:
            raise NetshrinkError(f"pattern {both[0]!r} is given both a sparsity and a quality")
        if not self.sparsity and not self.quality:
            raise NetshrinkError("prune config needs at least one sparsity or quality pattern")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def scaled(self, fraction: float) -> PruneConfig:
        """The config with every sparsity and quality multiplied by ``fraction`` (in [0, 1])."""
        return PruneConfig(
            {p: s * fraction for p, s in self.sparsity.items()},
            {p: q * fraction for p, q in self.quality.items()},
        )


def resolve(model: nn.Module, config: PruneConfig) -> dict[str, tuple[str, float]]:
    """``{layer name: ("sparsity" | "quality", value)}`` for the layers ``config`` matches."""
    names = list(compressible_layers(model))
    by_sparsity = match_patterns(names, config.sparsity, what="sparsity")
    by_quality = match_patterns(names, config.quality, what="quality")
    for name in names:
        if name in by_sparsity and name in by_quality:
            raise NetshrinkError(
                f"layer {name!r} is matched by both a sparsity and a quality pattern"
            )
    settings = {n: ("sparsity", s) for n, s in by_sparsity.items()}
    settings.update({n: ("quality", q) for n, q in by_quality.items()})
    return {n: settings[n] for n in names if n in settings}


def _zero_masked_grad(module: nn.Module):
    module_ref = weakref.ref(module)  # no strong cycle through the parameter's hooks

    def hook(grad: torch.Tensor) -> torch.Tensor:
        owner = module_ref()
        mask = None if owner is None else owner._buffers.get(MASK)
        return grad if mask is None else grad.masked_fill(~mask, 0)

    return hook


def _set_mask_(module: nn.Module, mask: torch.Tensor) -> None:
    module.register_buffer(MASK, mask, persistent=False)
    with torch.no_grad():
        module.weight.masked_fill_(~mask, 0)  # masked_fill gives +0.0, never -0.0
    _ensure_hook(module)


def _ensure_hook(module: nn.Module) -> None:
    if module not in _HOOKS and module.weight.requires_grad:
        _HOOKS[module] = module.weight.register_hook(_zero_masked_grad(module))


def compute_masks(
    layers: dict[str, nn.Module], settings: dict[str, tuple[str, float]]
) -> dict[str, torch.Tensor]:
    """New masks for ``settings`` (see :func:`resolve`), ANDed with the existing masks."""
    new = {}
    for name, (kind, value) in settings.items():
        weight = layers[name].weight.detach()
        values = weight.float().cpu().numpy()
        previous = layers[name]._buffers.get(MASK)
        previous = None if previous is None else previous.cpu().numpy()
        try:
            if kind == "sparsity":
                keep = magnitude_mask(values, value, previous=previous)
            else:
                keep = threshold_mask(values, value)
                keep = keep if previous is None else keep & previous
        except ValueError as exc:
            raise NetshrinkError(f"cannot prune layer {name!r}: {exc}") from None
        if not keep.any() and values.any():  # a layer of no weights cuts the network there
            raise NetshrinkError(
                f"pruning layer {name!r} to {kind} {value:g} keeps none of its {values.size} "
                "weights: the network would output the same for every input; prune it less"
            )
        new[name] = torch.from_numpy(keep).to(weight.device)
    return new


def set_masks_(model: nn.Module, new_masks: dict[str, torch.Tensor]) -> dict[str, float]:
    """Install ``{layer name: bool mask}`` and zero the pruned weights; returns densities."""
    layers = compressible_layers(model)
    for name, mask in new_masks.items():
        _set_mask_(layers[name], mask)
    return {name: _fraction(mask) for name, mask in new_masks.items()}


def _fraction(keep: torch.Tensor) -> float:
    return int(keep.sum()) / keep.numel()  # exact count, no float32 mean


def prune_(model: nn.Module, config: PruneConfig) -> dict[str, float]:
    """Prune the matched layers by weight magnitude, in place; returns density per layer.

    Masks come from the current weights: :func:`~netshrink.primitives.masks.magnitude_mask`
    for a ``sparsity``, :func:`~netshrink.primitives.masks.threshold_mask` for a ``quality``.
    They are ANDed with any existing mask, so pruning is cumulative and a sparsity is the
    fraction of the whole layer (weights pruned earlier count as the smallest). Density is
    the fraction of weights kept. Patterns and weights are checked before anything changes.
    """
    settings = resolve(model, config)
    return set_masks_(model, _agreed(compute_masks(compressible_layers(model), settings)))


def _agreed(new_masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Under torchrun, rank 0's masks on every rank. Each rank computed the same masks from
    the same weights; the broadcast makes sure (a float tie could break differently)."""
    for mask in new_masks.values():
        distributed.broadcast_(mask)
    return new_masks


def apply_masks_(model: nn.Module) -> None:
    """Set pruned weights to exactly zero in every module with a ``weight_mask``.

    Pass as ``train(..., after_step=apply_masks_)``: optimizer momentum and weight decay
    would otherwise move pruned weights away from zero.
    """
    with torch.no_grad():
        for module in model.modules():
            mask = module._buffers.get(MASK)
            if mask is not None:
                module.weight.masked_fill_(~mask, 0)
                _ensure_hook(module)  # copy.deepcopy drops tensor hooks


def restore_masks_(model: nn.Module) -> dict[str, float]:
    """Recreate masks from ``weight != 0`` for every layer with a zero weight.

    For a model loaded from a checkpoint of a pruned model (masks are not saved). Returns
    the density of each layer given a mask.
    """
    found = {}
    for name, module in compressible_layers(model).items():
        keep = module.weight.detach() != 0
        if not keep.all():
            found[name] = keep
    return set_masks_(model, found)


def remove_masks_(model: nn.Module) -> None:
    """Make pruning permanent: drop masks and gradient hooks; the zeros stay in the weights."""
    for module in model.modules():
        if MASK in module._buffers:
            delattr(module, MASK)
        handle = _HOOKS.pop(module, None)
        if handle is not None:
            handle.remove()


def masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The live ``weight_mask`` buffers by module name (True keeps the weight)."""
    return {
        name: module._buffers[MASK]
        for name, module in model.named_modules()
        if module._buffers.get(MASK) is not None
    }


def layer_density(model: nn.Module) -> dict[str, float]:
    """Fraction of nonzero weights of every Conv2d/Linear layer (biases not counted)."""
    return {
        name: _fraction(module.weight.detach() != 0)
        for name, module in compressible_layers(model).items()
    }


def prune_and_retrain(
    model: nn.Module,
    data: Dataset,
    config: PruneConfig,
    train_config: TrainConfig,
    *,
    rounds: int = 1,
    progress: bool = True,
) -> list[TrainResult]:
    """Iterative pruning (Han et al. 2015, §3.3): ``rounds`` times prune, then retrain.

    Round r of R prunes to r/R of each target sparsity (for a quality: q·r/R), then trains
    ``train_config.epochs`` epochs with the masks enforced after every step. Returns one
    :class:`~netshrink.train.TrainResult` per round.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise NetshrinkError(f"rounds must be an integer >= 1, got {rounds!r}")
    resolve(model, config)  # pattern errors before any change
    results = []
    for r in range(1, rounds + 1):
        prune_(model, config.scaled(r / rounds))
        desc = f"prune {r}/{rounds}" if rounds > 1 else "prune"
        results.append(
            train(model, data, train_config, progress=progress, after_step=apply_masks_, desc=desc)
        )
    return results
