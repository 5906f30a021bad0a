"""The fused inference engine: BatchNorm folded, ReLU fused, channels-last, 1x1 convs as GEMMs.

:func:`to_fused` returns a copy of any network (eval mode) that computes the same function
with fewer, faster kernels on CPU, so that compact architectures get closer to their
theoretical (MAC) speed-up:

- **BatchNorm folding**: a BatchNorm that only reads a conv's (or fully connected
  layer's) output is folded into its weights and bias, ``W' = W·γ/√(σ²+ε)``,
  ``b' = (b - μ)·γ/√(σ²+ε) + β``, computed in float64 and cast back (Ioffe & Szegedy 2015
  at inference; every BN of MobileNet v1 and ShuffleNet v1).
- **ReLU fusion**: a ReLU that only reads a layer's output runs in place on it.
- **Channels-last**: the network runs on NHWC tensors (the input is converted once). On
  this CPU PyTorch's NCHW ``max_pool2d`` was ~10x slower than on channels-last, and its
  depthwise convolutions 2-17x slower (batch 1, 1 thread).
- **1x1 convolutions as GEMMs**: a channels-last image is already a (pixels, channels)
  matrix, so a 1x1 conv is one ``addmm`` (one ``baddbmm`` over the groups of a grouped
  1x1 conv), instead of PyTorch's slow grouped/channels-last convolution paths.
- **Channel shuffle eliminated** (ShuffleNet, Zhang et al. 2018 §3.1): a grouped GEMM's
  result has to be copied from (groups, pixels, C/g) into channels-last order anyway;
  that copy writes it straight in shuffled order, so the shuffle costs nothing.

Blocks of the registered architectures (``ShuffleUnit``, ``DepthwiseSeparable``) are
replaced by fused blocks; anything else is traced with ``torch.fx`` (a module whose
forward does not trace is handled child by child; ``nn.Sequential`` in place), so the
folding applies to any network of ``Conv2d``/``Linear``/``BatchNorm``/``ReLU``. Other
layers stay as they are (binary layers, the sparse and packed engines' layers). A numba
depthwise kernel (NCHW, reading a shuffled input through a channel map) was measured and
not kept: it was 2-10x slower than PyTorch's channels-last depthwise convolution.
Outputs match the plain network within float32 rounding (different summation order),
not to the bit.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from netshrink.engine.graph import is_relu_node
from netshrink.engine.registry import Engine, EngineNote, register_engine
from netshrink.models.mobilenet import DepthwiseSeparable
from netshrink.models.shufflenet import ShuffleUnit

__all__ = [
    "FusedConv2d", "FusedDepthwiseSeparable", "FusedLinear", "FusedShuffleUnit",
    "fold_batch_norm", "fuse_layer", "to_fused",
]  # fmt: skip

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def fold_batch_norm(weight: Tensor, bias: Tensor | None, bn: nn.modules.batchnorm._BatchNorm):
    """``(W', b')`` of a layer followed by ``bn`` (eval statistics), in float64, cast back."""
    dtype = weight.dtype
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)  # (O,)
    bias = torch.zeros_like(mean) if bias is None else bias.double()
    folded = weight.double() * scale.view(-1, *[1] * (weight.dim() - 1))
    return folded.to(dtype), ((bias - mean) * scale + beta).to(dtype)


def _foldable(bn: nn.Module, chans: int) -> bool:
    return (
        isinstance(bn, _BATCH_NORMS)
        and bn.track_running_stats
        and bn.running_mean is not None
        and bn.num_features == chans
    )


def _is_pointwise(conv: nn.Conv2d) -> bool:
    return (
        tuple(conv.kernel_size) == (1, 1)
        and tuple(conv.stride) == (1, 1)
        and conv.padding in ((0, 0), "valid")
        and conv.padding_mode == "zeros"
    )


class FusedConv2d(nn.Module):
    """A convolution with folded BatchNorm and optional in-place ReLU, on channels-last input.

    A 1x1, stride-1 conv runs as a GEMM on the (pixels, channels) view of the image
    (``baddbmm`` per group when grouped), writing its output channels in
    ``channel_shuffle`` order when ``shuffle`` is set; any other conv is ``F.conv2d``.
    """

    def __init__(
        self, conv: nn.Conv2d, bn: nn.Module | None = None, relu: bool = False, shuffle=False
    ) -> None:
        super().__init__()
        weight, bias = conv.weight.detach(), conv.bias
        bias = None if bias is None else bias.detach()
        if bn is not None:
            weight, bias = fold_batch_norm(weight, bias, bn)
        if bias is None:
            bias = torch.zeros(conv.out_channels, dtype=weight.dtype)
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.groups, self.relu, self.shuffle = conv.groups, relu, shuffle
        self.out_chans = conv.out_channels
        self.pointwise = _is_pointwise(conv) and conv.padding_mode == "zeros"
        if conv.padding_mode != "zeros":
            raise ValueError("FusedConv2d pads with zeros only")
        if shuffle and not (self.pointwise and self.groups > 1):
            raise ValueError("shuffle needs a grouped 1x1 convolution")
        if self.pointwise:
            g, per_group = self.groups, self.out_chans // self.groups
            # (g, C_in/g, O/g): x @ W^T per group; (g, 1, O/g): the bias broadcast over pixels
            weight = weight.view(g, per_group, -1).transpose(1, 2).contiguous()
            bias = bias.view(g, 1, per_group)
        else:
            weight = weight.contiguous(memory_format=torch.channels_last)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        if not self.pointwise:
            out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                           self.groups)  # fmt: skip
            return out.relu_() if self.relu else out
        n, c, h, w = x.shape
        pixels = x.permute(0, 2, 3, 1).reshape(n * h * w, c)  # a view when x is channels-last
        if self.groups == 1:
            out = torch.addmm(self.bias[0], pixels, self.weight[0])  # (NHW, O)
            if self.relu:
                out.relu_()
        else:
            g = self.groups
            pixels = pixels.view(-1, g, c // g).transpose(0, 1)  # (g, NHW, C/g), strided
            out = torch.baddbmm(self.bias, pixels, self.weight)  # (g, NHW, O/g)
            if self.relu:
                out.relu_()
            # To channels-last: channel j*(O/g) + k is group j's k-th output; shuffled,
            # channel k*g + j (channel_shuffle), in the same one copy.
            out = out.permute(1, 2, 0) if self.shuffle else out.permute(1, 0, 2)
            out = out.reshape(n * h * w, self.out_chans)
        return out.view(n, h, w, self.out_chans).permute(0, 3, 1, 2)  # (N, O, H, W) NHWC

    def extra_repr(self) -> str:
        kind = "gemm" if self.pointwise else "conv"
        return f"{kind}, groups={self.groups}, relu={self.relu}, shuffle={self.shuffle}"


class FusedLinear(nn.Module):
    """A fully connected layer with folded BatchNorm1d and optional in-place ReLU."""

    def __init__(self, linear: nn.Linear, bn: nn.Module | None = None, relu: bool = False):
        super().__init__()
        weight = linear.weight.detach()
        bias = None if linear.bias is None else linear.bias.detach()
        if bn is not None:
            weight, bias = fold_batch_norm(weight, bias, bn)
        if bias is None:
            bias = torch.zeros(linear.out_features, dtype=weight.dtype)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        out = F.linear(x, self.weight, self.bias)
        return out.relu_() if self.relu else out


class FusedDepthwiseSeparable(nn.Module):
    """MobileNet's block: depthwise conv + BN + ReLU, pointwise GEMM + BN + ReLU, folded."""

    def __init__(self, block: DepthwiseSeparable) -> None:
        super().__init__()
        self.depthwise = FusedConv2d(block.depthwise, block.bn_depthwise, relu=True)
        self.pointwise = FusedConv2d(block.pointwise, block.bn_pointwise, relu=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class FusedShuffleUnit(nn.Module):
    """ShuffleNet's unit with its three BNs folded and its channel shuffle eliminated:
    gconv1's GEMM writes its output in shuffled order (see :class:`FusedConv2d`)."""

    def __init__(self, unit: ShuffleUnit) -> None:
        super().__init__()
        shuffle = unit.shuffle and unit.groups > 1
        self.stride = unit.stride
        if shuffle and unit.gconv1.groups == unit.groups:  # the GEMM's copy shuffles
            self.gconv1 = FusedConv2d(unit.gconv1, unit.bn1, relu=True, shuffle=True)
        else:  # an ungrouped first conv (stage 2's first unit): its filters reordered
            self.gconv1 = FusedConv2d(unit.gconv1, unit.bn1, relu=True)
            if shuffle:
                _shuffle_filters(self.gconv1, unit.groups)
        self.dwconv = FusedConv2d(unit.dwconv, unit.bn2)
        self.gconv2 = FusedConv2d(unit.gconv2, unit.bn3)
        self.shortcut = unit.shortcut

    def forward(self, x: Tensor) -> Tensor:
        out = self.gconv2(self.dwconv(self.gconv1(x)))  # (B, branch_out, H/s, W/s)
        if self.stride == 2:
            return torch.cat([self.shortcut(x), out], dim=1).relu_()  # (B, out, H/2, W/2)
        return out.add_(x).relu_()  # (B, out, H, W)


def _shuffle_filters(conv: FusedConv2d, groups: int) -> None:
    """Reorder an ungrouped fused conv's filters so that it outputs its channels in
    ``channel_shuffle(·, groups)`` order: output ``k·g + j`` is filter ``j·(O/g) + k``."""
    if conv.groups != 1:
        raise ValueError("only an ungrouped convolution's filters can be reordered")
    order = torch.arange(conv.out_chans).view(groups, -1).t().reshape(-1)
    with torch.no_grad():
        if conv.pointwise:  # weight (1, C, O), bias (1, 1, O)
            conv.weight.copy_(conv.weight[:, :, order])
            conv.bias.copy_(conv.bias[:, :, order])
        else:  # weight (O, C, kh, kw), bias (O,)
            conv.weight.copy_(conv.weight[order])
            conv.bias.copy_(conv.bias[order])


_BLOCKS = {ShuffleUnit: FusedShuffleUnit, DepthwiseSeparable: FusedDepthwiseSeparable}
_BLOCK_LAYERS = {
    ShuffleUnit: ("gconv1", "bn1", "dwconv", "bn2", "gconv2", "bn3"),
    DepthwiseSeparable: ("depthwise", "bn_depthwise", "pointwise", "bn_pointwise"),
}
_FUSED = (FusedConv2d, FusedLinear, FusedShuffleUnit, FusedDepthwiseSeparable)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        # A module without children has nothing to fuse inside (and the sparse and packed
        # engines' layers call numpy, which does not trace): called as a whole.
        no_children = next(m.children(), None) is None
        return no_children or isinstance(m, _FUSED) or super().is_leaf_module(m, qualified_name)


def _fuse_layer(layer: nn.Module, bn: nn.Module | None, relu: bool) -> nn.Module:
    if isinstance(layer, nn.Conv2d):
        return FusedConv2d(layer, bn, relu)
    return FusedLinear(layer, bn, relu)


def _reason(layer: nn.Module, bn: nn.Module | None, relu: bool) -> str:
    parts = []
    if isinstance(layer, nn.Conv2d):
        parts.append("1x1 GEMM" if _is_pointwise(layer) else "conv")
    parts += ["BN folded"] * (bn is not None) + ["ReLU fused"] * relu
    return ", ".join(parts)


def _fusable(layer: nn.Module) -> bool:
    # Exact types: subclasses (the binary layers, masked layers) compute something else.
    return type(layer) is nn.Linear or (type(layer) is nn.Conv2d and layer.padding_mode == "zeros")


def fuse_layer(layer: nn.Module) -> nn.Module:
    """``layer`` alone in its fused form (:class:`FusedConv2d` / :class:`FusedLinear`; run a
    4-D input channels-last), or ``layer`` itself where it has none."""
    return _fuse_layer(layer, None, False) if _fusable(layer) else layer


def _only_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 and users[0].args[:1] == (node,) else None


def _fuse_graph(module: fx.GraphModule, prefix: str, notes: list[EngineNote]) -> None:
    """Fold BN and fuse ReLU into every traced conv/linear of ``module``, in place."""
    modules = dict(module.named_modules())
    graph = module.graph
    for node in list(graph.nodes):
        if node.op != "call_module" or not _fusable(layer := modules[node.target]):
            continue
        chans = layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features
        bn, relu = None, False
        user = _only_user(node)
        if user is not None and user.op == "call_module":
            if _foldable(modules[user.target], chans):
                bn = modules[user.target]
                note = EngineNote(prefix + user.target, "fused", f"folded into {node.target}")
                notes.append(note)
                user.replace_all_uses_with(node)
                graph.erase_node(user)
        user = _only_user(node)
        if user is not None and is_relu_node(user, modules):
            relu = True
            user.replace_all_uses_with(node)
            graph.erase_node(user)
        parent, _, child = node.target.rpartition(".")
        setattr(module.get_submodule(parent), child, _fuse_layer(layer, bn, relu))
        notes.append(EngineNote(prefix + node.target, "fused", _reason(layer, bn, relu)))
    module.delete_all_unused_submodules()
    module.recompile()


def _fuse_sequential(seq: nn.Sequential, prefix: str, notes: list[EngineNote]) -> None:
    """Fold and fuse adjacent conv/linear → BN → ReLU in a Sequential (Identity left in
    their places, so names and indices stay)."""
    names = list(seq._modules)
    i = 0
    while i < len(names):
        name, layer = names[i], seq._modules[names[i]]
        if not _fusable(layer):
            seq._modules[name] = _fuse(layer, f"{prefix}{name}.", notes)
            i += 1
            continue
        chans = layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features
        bn, relu, j = None, False, i + 1
        if j < len(names) and _foldable(seq._modules[names[j]], chans):
            bn = seq._modules[names[j]]
            seq._modules[names[j]] = nn.Identity()
            notes.append(EngineNote(prefix + names[j], "fused", f"folded into {name}"))
            j += 1
        if j < len(names) and isinstance(seq._modules[names[j]], nn.ReLU):
            relu = True
            seq._modules[names[j]] = nn.Identity()
            j += 1
        seq._modules[name] = _fuse_layer(layer, bn, relu)
        notes.append(EngineNote(prefix + name, "fused", _reason(layer, bn, relu)))
        i = j


def _is_block(module: nn.Module) -> bool:
    """A registered block whose convolutions are all plain ``Conv2d`` (one the sparse or
    packed engine took a layer of is traced layer by layer instead)."""
    layers = _BLOCK_LAYERS.get(type(module), ())
    convs = [getattr(module, n) for n in layers if not n.startswith("bn")]
    return bool(layers) and all(type(conv) is nn.Conv2d for conv in convs)


def _fuse(module: nn.Module, prefix: str, notes: list[EngineNote]) -> nn.Module:
    """``module`` with its blocks, conv/BN/ReLU runs fused (may return a new module)."""
    if isinstance(module, _FUSED):
        return module
    if _is_block(module):
        for layer in _BLOCK_LAYERS[type(module)]:
            notes.append(EngineNote(prefix + layer, "fused", "fused block"))
        return _BLOCKS[type(module)](module)
    if _fusable(module):
        notes.append(EngineNote(prefix.rstrip("."), "fused", _reason(module, None, False)))
        return _fuse_layer(module, None, False)
    if isinstance(module, nn.Sequential):
        _fuse_sequential(module, prefix, notes)
        return module
    if next(module.children(), None) is None:
        return module
    # Blocks first, at any depth (the graph would trace through them and lose what the
    # fused blocks do, such as the shuffle folded into a copy), then trace the rest.
    for name, child in list(module.named_modules()):
        if name and _is_block(child):
            parent, _, attr = name.rpartition(".")
            if not isinstance(module.get_submodule(parent), _FUSED):
                setattr(module.get_submodule(parent), attr, _fuse(child, f"{prefix}{name}.", notes))
    try:
        graph = _Tracer().trace(module)
    except Exception:  # control flow on values (shape checks ...): child by child
        for name, child in list(module.named_children()):
            setattr(module, name, _fuse(child, f"{prefix}{name}.", notes))
        return module
    traced = fx.GraphModule(module, graph, type(module).__name__)
    _fuse_graph(traced, prefix, notes)
    return traced


class FusedNetwork(nn.Module):
    """Runs ``network`` on channels-last images; 4-D outputs come back contiguous (NCHW)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.network(x)
        return out.contiguous() if isinstance(out, Tensor) and out.dim() == 4 else out


def to_fused(model: nn.Module, *, warn: bool = True) -> tuple[nn.Module, list[EngineNote]]:
    """A fused copy of ``model`` in eval mode (see the module docstring), and one note per
    conv, linear and BatchNorm layer: ``fused`` with what was done, or ``float`` (left to
    PyTorch) with why."""
    network = copy.deepcopy(model).eval()
    considered = {
        n: m
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear | nn.modules.batchnorm._BatchNorm)
    }
    notes: list[EngineNote] = []
    with torch.no_grad():
        fused = FusedNetwork(_fuse(network, "", notes)).eval()
    done = {n.layer for n in notes}
    for name, layer in considered.items():
        if name not in done:
            why = "BatchNorm not after a conv/linear" if isinstance(
                layer, nn.modules.batchnorm._BatchNorm) else "not fused"  # fmt: skip
            notes.append(EngineNote(name, "float", why))
    return fused, notes


register_engine(
    Engine(
        "fused",
        "BatchNorm folded, ReLU fused, channels-last, 1x1 convs as GEMMs (float32)",
        to_fused,
    )
)
