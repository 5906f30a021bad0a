"""Trained quantization by weight sharing (Deep Compression, stage 2).

Han, Mao & Dally, "Deep Compression", ICLR 2016, §3: the weights of each layer are
clustered with k-means (linear initialization), every weight is replaced by its centroid,
and the centroids are fine-tuned while the assignments stay fixed.

Module surgery: a shared ``Conv2d``/``Linear`` loses its ``weight`` Parameter and gets a
Parameter ``codebook`` (K,) and a persistent integer buffer ``codes`` with the weight's
shape (0 = exact zero, s = ``codebook[s - 1]``; see :mod:`netshrink.quantize.codebook`).
A forward pre-hook materializes the weight on every call::

    forward:   W = concat([0], codebook)[codes]
    gradient:  dL/dcodebook[s - 1] = sum over {i : codes[i] = s} of dL/dW[i]

which is exactly the centroid gradient of Han et al. (Fig. 3): a centroid moves by the
summed gradients of its members, assignments never change, and code 0 (pruned weights)
is a constant zero, not a parameter. Biases stay float Parameters.

Outside a forward, ``module.weight`` is a detached tensor holding the weights of the last
forward (or of sharing / ``load_state_dict`` time): after an optimizer step it is stale
until the next forward. :func:`shared_layers` always reads the live codebook and codes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from netshrink import distributed
from netshrink.data import Dataset
from netshrink.errors import NetshrinkError
from netshrink.layer_patterns import compressible_layers, is_conv, match_patterns
from netshrink.quantize.codebook import SharedLayer, cluster_weights
from netshrink.train import TrainConfig, TrainResult, train

__all__ = [
    "WeightSharingConfig",
    "finetune_shared",
    "is_shared",
    "load_shared_",
    "share_weights_",
    "shared_layers",
    "unshare_weights_",
]

_INITS = ("linear", "density", "random")
_MASK = "weight_mask"  # netshrink.prune's mask buffer; the codes carry the mask once shared


def _check_bits(key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 16:
        raise NetshrinkError(f"quantize: {key} must be an integer in 1..16, got {value!r}")


@dataclass
class WeightSharingConfig:
    """Bits per layer and k-means settings of :func:`share_weights_`.

    ``bits`` maps layer-name patterns to code bits (first matching pattern wins); other
    layers get ``conv_bits`` (Conv2d) or ``fc_bits`` (Linear), the paper's 8 and 5 for
    AlexNet. A layer with b bits has K = 2**b - 1 centroids plus the zero code. Layers
    matching an ``exclude`` pattern stay float (exclusion wins over ``bits``). ``init`` and
    ``max_iter`` go to :func:`~netshrink.primitives.kmeans.kmeans_1d` (``seed`` for
    ``init="random"``); Lloyd iterations are cheap, so the default runs to convergence on
    layers of a million weights.
    """

    bits: dict[str, int] = field(default_factory=dict)
    conv_bits: int = 8
    fc_bits: int = 5
    exclude: list[str] = field(default_factory=list)
    init: str = "linear"
    max_iter: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.bits, dict):
            raise NetshrinkError(f"quantize: bits must be a mapping, got {self.bits!r}")
        for pattern, value in self.bits.items():
            if not isinstance(pattern, str) or not pattern:
                raise NetshrinkError(f"quantize: bits pattern must be a string, got {pattern!r}")
            _check_bits(f"bits[{pattern!r}]", value)
        _check_bits("conv_bits", self.conv_bits)
        _check_bits("fc_bits", self.fc_bits)
        exclude = self.exclude
        if not isinstance(exclude, list | tuple) or not all(
            isinstance(p, str) and p for p in exclude
        ):
            raise NetshrinkError(f"quantize: exclude must be a list of patterns, got {exclude!r}")
        if not isinstance(self.init, str) or self.init not in _INITS:
            raise NetshrinkError(
                f"quantize: init must be one of {', '.join(_INITS)}, got {self.init!r}"
            )
        for key, high in (("max_iter", 1_000_000), ("seed", 2**32 - 1)):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise NetshrinkError(f"quantize: {key} must be an integer, got {value!r}")
            low = 1 if key == "max_iter" else 0
            if not low <= value <= high:
                raise NetshrinkError(f"quantize: {key} must be in [{low}, {high:,}], got {value}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resolve_bits(model: nn.Module, config: WeightSharingConfig) -> dict[str, int]:
    """Bits of every layer ``config`` shares, by name; excluded layers are left out."""
    layers = compressible_layers(model)
    names = list(layers)
    excluded = match_patterns(names, dict.fromkeys(config.exclude, True), what="quantize exclude")
    bits = match_patterns(names, config.bits, what="quantize bits")
    return {
        name: bits.get(name, config.conv_bits if is_conv(layer) else config.fc_bits)
        for name, layer in layers.items()
        if name not in excluded
    }


def share_weights_(model: nn.Module, config: WeightSharingConfig) -> dict[str, SharedLayer]:
    """Cluster the weights of the selected layers and share them, in place (Han et al. §3).

    Each selected layer's nonzero weights are clustered by
    :func:`~netshrink.quantize.codebook.cluster_weights`; the layer then computes with its
    centroids (see the module docstring for the forward and the centroid gradient). A
    pruning mask (``weight_mask``) is dropped: pruned weights have code 0 and stay zero.
    Returns the clustering of each shared layer, with its k-means inertia. All patterns are
    resolved and no layer is shared already before anything changes.
    """
    plan = _resolve_bits(model, config)
    layers = compressible_layers(model)
    for name in plan:
        if is_shared(layers[name]):
            raise NetshrinkError(f"quantize: layer {name!r} is already weight-shared")
        if not bool(torch.isfinite(layers[name].weight).all()):
            raise NetshrinkError(f"quantize: layer {name!r} has NaN or infinite weights")
    result = {}
    for name, bits in plan.items():
        weight = layers[name].weight.detach().cpu().numpy()
        shared = cluster_weights(
            weight, bits, init=config.init, max_iter=config.max_iter, seed=config.seed
        )
        if distributed.world_size() > 1:
            shared = _agreed(name, shared)
        _install(layers[name], shared)
        result[name] = shared
    return result


def _agreed(name: str, shared: SharedLayer) -> SharedLayer:
    """Under torchrun, rank 0's codebook and codes on every rank. Every rank clustered the
    same weights with the same seed, so they agree already; the broadcast makes sure."""
    size = distributed.broadcast_(torch.tensor([len(shared.codebook)]))
    if int(size) != len(shared.codebook):
        raise NetshrinkError(
            f"quantize: layer {name!r} got {len(shared.codebook)} centroids on rank "
            f"{distributed.rank()} but {int(size)} on rank 0"
        )
    codebook = torch.from_numpy(np.array(shared.codebook, dtype=np.float32))
    codes = torch.from_numpy(shared.codes.astype(np.int32))
    distributed.broadcast_(codebook)
    distributed.broadcast_(codes)
    return SharedLayer(
        shared.bits, codebook.numpy(), codes.numpy().astype(np.uint16), shared.inertia
    )


def load_shared_(model: nn.Module, layers: dict[str, SharedLayer]) -> None:
    """Install given codebooks and codes into ``model``'s layers, in place.

    For rebuilding a fine-tunable shared model from stored data (an ``.nsz`` file). Layers
    may be float or shared already; each code tensor must have the layer's weight shape.
    """
    modules = compressible_layers(model)
    for name, layer in layers.items():
        if name not in modules:
            raise NetshrinkError(f"quantize: model has no Conv2d/Linear layer {name!r}")
        module = modules[name]
        shape = tuple(module.codes.shape if is_shared(module) else module.weight.shape)
        if layer.codes.shape != shape:
            raise NetshrinkError(
                f"quantize: codes of {name!r} have shape {layer.codes.shape}, "
                f"the layer's weight {shape}"
            )
    for name, layer in layers.items():
        _install(modules[name], layer)


def is_shared(module: nn.Module) -> bool:
    """Whether ``module`` computes with a shared codebook (see :func:`share_weights_`)."""
    return "codebook" in module._parameters and "codes" in module._buffers


def shared_layers(model: nn.Module) -> dict[str, SharedLayer]:
    """The current codebook and codes of every shared layer, by qualified name."""
    return {
        name: SharedLayer(
            bits=module.codebook_bits,
            codebook=module.codebook.detach().cpu().float().numpy().copy(),
            codes=module.codes.cpu().numpy().astype(np.uint16),
            inertia=module.codebook_inertia,
        )
        for name, module in model.named_modules()
        if is_shared(module)
    }


def unshare_weights_(model: nn.Module) -> None:
    """Turn every shared layer back into a float ``weight`` Parameter, in place.

    The weight holds exactly the materialized values, so the model computes the same
    outputs; it is trainable again in every entry (zeros included).
    """
    for module in model.modules():
        if is_shared(module):
            weight = _materialize(module).detach().clone()
            requires_grad = module.codebook.requires_grad
            _uninstall(module)
            _put_first(module._parameters, "weight", nn.Parameter(weight, requires_grad))


def finetune_shared(
    model: nn.Module, data: Dataset, train_config: TrainConfig, *, progress: bool = True
) -> TrainResult:
    """Fine-tune the centroids (and every float parameter) of a shared model (Han et al. §3.3).

    Plain :func:`netshrink.train.train`: the codebooks are Parameters, so the optimizer
    updates them with the summed member gradients. Layers left float but pruned keep their
    zeros (their masked weights are re-zeroed after each step).
    """
    if not any(is_shared(m) for m in model.modules()):
        raise NetshrinkError("quantize: the model has no weight-shared layer to fine-tune")
    return train(
        model,
        data,
        train_config,
        progress=progress,
        after_step=_rezero_pruned_,
        desc="fine-tune centroids",
    )


# Module surgery. The hooks are module-level functions that take the module as an argument,
# so copy.deepcopy (which copies hook dicts but not functions) leaves the copy's hooks
# working on the copy, and unsharing finds them by identity.


def _materialize(module: nn.Module) -> torch.Tensor:
    codebook = module.codebook
    table = torch.cat([codebook.new_zeros(1), codebook])  # (K + 1,): code 0 is the zero
    return table[module.codes.long()]  # backward: index_put with accumulate = sum per code


def _materialize_hook(module: nn.Module, args: tuple) -> None:
    module.weight = _materialize(module)


def _detach_hook(module: nn.Module, args: tuple, output: Any) -> None:
    # The forward has used the graph-connected weight; keep a detached one so the module
    # holds no autograd graph between steps and copy.deepcopy works.
    module.weight = module.weight.detach()


def _resize_hook(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    # A codebook of another size (K shrinks for layers with few distinct weights) loads too.
    incoming = state_dict.get(prefix + "codebook")
    if incoming is not None and incoming.shape != module.codebook.shape:
        module.codebook.data = module.codebook.data.new_empty(incoming.shape)
        needed = max(1, math.ceil(math.log2(incoming.shape[0] + 1)))
        module.codebook_bits = max(module.codebook_bits, needed)
    module.codebook_inertia = math.nan  # the clustering that produced these is unknown


def _refresh_hook(module: nn.Module, incompatible_keys: Any) -> None:
    with torch.no_grad():
        module.weight = _materialize(module)


_HOOKS = (_materialize_hook, _detach_hook, _resize_hook, _refresh_hook)


def _install(module: nn.Module, shared: SharedLayer) -> None:
    """Replace the ``weight`` Parameter (or an older codebook) by ``shared``'s codebook."""
    if is_shared(module):
        reference = module.codebook
        _uninstall(module)
    else:
        reference = module.weight
        del module.weight
    device, requires_grad = reference.device, reference.requires_grad
    if _MASK in module._buffers:
        delattr(module, _MASK)
    codebook = torch.from_numpy(np.array(shared.codebook, dtype=np.float32)).to(device)
    code_dtype = torch.int16 if shared.bits <= 15 else torch.int32
    codes = torch.from_numpy(shared.codes.astype(np.int32)).to(device, code_dtype)
    _put_first(module._parameters, "codebook", nn.Parameter(codebook, requires_grad))
    module.register_buffer("codes", codes)
    module.codebook_bits = shared.bits
    module.codebook_inertia = shared.inertia
    module.register_forward_pre_hook(_materialize_hook)
    module.register_forward_hook(_detach_hook)
    module.register_load_state_dict_pre_hook(_resize_hook)
    module.register_load_state_dict_post_hook(_refresh_hook)
    _refresh_hook(module, None)


def _uninstall(module: nn.Module) -> None:
    """Remove codebook, codes, hooks and the materialized weight of a shared module."""
    for hooks in (
        module._forward_pre_hooks,
        module._forward_hooks,
        module._load_state_dict_pre_hooks,
        module._load_state_dict_post_hooks,
    ):
        for key, hook in list(hooks.items()):
            if hook in _HOOKS or getattr(hook, "hook", None) in _HOOKS:
                del hooks[key]
                module._forward_hooks_always_called.pop(key, None)
    del module._parameters["codebook"]
    del module._buffers["codes"]
    for attribute in ("weight", "codebook_bits", "codebook_inertia"):
        module.__dict__.pop(attribute, None)


def _put_first(parameters: dict[str, Any], name: str, value: nn.Parameter) -> None:
    # Keep the weight's place (state_dict order: codebook or weight, then bias).
    rest = dict(parameters)
    parameters.clear()
    parameters[name] = value
    parameters.update(rest)


@torch.no_grad()
def _rezero_pruned_(model: nn.Module) -> None:
    for module in model.modules():
        mask = module._buffers.get(_MASK)
        if mask is not None and "weight" in module._parameters:
            module.weight.masked_fill_(~mask, 0)
