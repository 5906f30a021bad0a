"""Whole XNOR stages for the packed engine: the layers between binary layers fused into them.

A packed layer's neighbours in XNOR block order (Rastegari et al. 2016, §3.3) — the
BatchNorm and ``Hardtanh`` before it, the max pool after it — run as PyTorch ops cost more
than the popcount layer at batch 1. :func:`fuse_stages` finds, in a ``torch.fx`` trace of the
packed network (child by child where a forward does not trace), each chain
``[BatchNorm] → [Hardtanh] → packed layer → [max pool]`` whose links have no other reader,
and replaces it by one :class:`PackedXnorStage` on the kernels of
:mod:`netshrink.kernels.xnor_stage`: the BatchNorm as PyTorch's own fused multiply-add (so
every sign is PyTorch's), the clamp, the signs, XNOR-Net's ``K``, the popcount layer and the
pool in numba calls on arrays prepared once. Outputs equal the float simulation's to the bit,
``K`` included (its sums run in the order the simulation fixes).
"""

from __future__ import annotations

import torch
from torch import Tensor, fx, nn

from netshrink.engine.registry import EngineNote
from netshrink.kernels.xnor_stage import Prologue, XnorConvStage, XnorLinearStage, batch_norm_terms

__all__ = ["PackedXnorStage", "fuse_stages"]


def _batch_norm(bn: nn.Module | None, chans: int) -> tuple:
    if bn is None:
        return None, None
    numpy = lambda t: None if t is None else t.detach().cpu().float().numpy()  # noqa: E731
    return batch_norm_terms(
        numpy(bn.running_mean), numpy(bn.running_var), numpy(bn.weight), numpy(bn.bias), bn.eps
    )


class PackedXnorStage(nn.Module):
    """``[bn] → [hardtanh] → packed XNOR layer → [max pool]`` in one kernel stage."""

    def __init__(self, layer: nn.Module, bn=None, act=None, pool=None) -> None:
        super().__init__()
        self.conv = hasattr(layer, "kernel_size")  # a PackedBinaryConv2d
        chans = layer.in_chans if self.conv else layer.in_features
        scale, shift = _batch_norm(bn, chans)
        clamp = None if act is None else (float(act.min_val), float(act.max_val))
        prologue = Prologue(chans, scale, shift, clamp)
        self.parts = ", ".join(
            [*["BatchNorm"] * (bn is not None), *["Hardtanh"] * (act is not None),
             *["max pool"] * (pool is not None)]
        )  # fmt: skip
        if self.conv:
            pooling = None if pool is None else (pool.kernel_size, pool.stride)
            self.stage = XnorConvStage(
                prologue, layer.weight_bits, layer.in_chans, layer.kernel_size, layer.stride,
                layer.padding, layer.alpha, layer.bias, layer.input_scale, pooling,
            )  # fmt: skip
        else:
            self.stage = XnorLinearStage(
                prologue, layer.weight_bits, layer.in_features, layer.alpha, layer.bias,
                layer.input_scale,
            )  # fmt: skip
        self.in_chans, self.out_chans = chans, int(layer.alpha.shape[0])

    def forward(self, x: Tensor) -> Tensor:
        x = x.detach().float()
        if self.conv:
            return torch.from_numpy(self.stage(x.contiguous().numpy()))  # (N, O, Ho, Wo)
        lead = x.shape[:-1]
        out = self.stage(x.reshape(-1, self.in_chans).contiguous().numpy())  # (N, O)
        return torch.from_numpy(out).reshape(*lead, self.out_chans)

    def extra_repr(self) -> str:
        kind = "conv" if self.conv else "linear"
        return f"{self.in_chans}, {self.out_chans}, xnor {kind} stage ({self.parts or 'alone'})"


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        return next(m.children(), None) is None or super().is_leaf_module(m, qualified_name)


def _single_reader(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 and users[0].args == (node,) else None


def _module(node: fx.Node | None, modules: dict[str, nn.Module]) -> nn.Module | None:
    return modules.get(node.target) if node is not None and node.op == "call_module" else None


def _is_batch_norm(bn: nn.Module | None, chans: int, dims: int) -> bool:
    kind = nn.BatchNorm2d if dims == 4 else nn.BatchNorm1d
    return (
        type(bn) is kind
        and not bn.training
        and bn.track_running_stats
        and bn.running_mean is not None
        and bn.num_features == chans
    )


def _fuse_graph(module: fx.GraphModule, prefix: str, notes: dict[str, EngineNote]) -> None:
    # packed.py imports this module to call fuse_stages: its classes are imported here
    from netshrink.engine.packed import PackedBinaryConv2d, PackedBinaryLinear, PackedMaxPool2d

    modules = dict(module.named_modules())
    graph = module.graph
    for node in list(graph.nodes):
        layer = _module(node, modules)
        if not isinstance(layer, PackedBinaryConv2d | PackedBinaryLinear):
            continue
        conv = isinstance(layer, PackedBinaryConv2d)
        chans = layer.in_chans if conv else layer.in_features
        first, act, bn, pool = node, None, None, None
        prev = node.args[0] if len(node.args) == 1 else None
        if isinstance(prev, fx.Node) and _single_reader(prev) is node:
            if type(_module(prev, modules)) is nn.Hardtanh:
                act, first = modules[prev.target], prev
                prev = prev.args[0] if len(prev.args) == 1 else None
        if isinstance(prev, fx.Node) and _single_reader(prev) is first:
            if _is_batch_norm(_module(prev, modules), chans, 4 if conv else 2):
                bn, first = modules[prev.target], prev
        after = _single_reader(node)
        if conv and isinstance(_module(after, modules), PackedMaxPool2d):
            pool = modules[after.target]
        stage = PackedXnorStage(layer, bn, act, pool)
        name = node.target.replace(".", "_") + "_stage"
        module.add_submodule(name, stage)
        with graph.inserting_before(node):
            fused = graph.call_module(name, (first.args[0],))
        last = after if pool is not None else node
        last.replace_all_uses_with(fused)
        for dead in _chain_nodes(first, last):
            graph.erase_node(dead)
        key = prefix + node.target
        notes[key] = EngineNote(key, "packed", f"xnor stage: {stage.parts or 'layer alone'} fused")
    graph.lint()
    module.delete_all_unused_submodules()
    module.recompile()


def _chain_nodes(first: fx.Node, last: fx.Node) -> list[fx.Node]:
    """The nodes from ``first`` to ``last`` (each the single reader of the one before),
    last first, so each is erased after its reader."""
    chain = [first]
    while chain[-1] is not last:
        chain.append(next(iter(chain[-1].users)))
    return chain[::-1]


def _fuse_sequential(seq: nn.Sequential, prefix: str, notes: dict[str, EngineNote]) -> None:
    """Stages fused in a Sequential in place: the stage where the packed layer was and
    ``Identity`` where its neighbours were, so names and indices stay."""
    from netshrink.engine.packed import PackedBinaryConv2d, PackedBinaryLinear, PackedMaxPool2d

    names = list(seq._modules)
    for i, name in enumerate(names):
        layer = seq._modules[name]
        if not isinstance(layer, PackedBinaryConv2d | PackedBinaryLinear):
            seq._modules[name] = _fuse(layer, f"{prefix}{name}.", notes)
            continue
        conv = isinstance(layer, PackedBinaryConv2d)
        chans = layer.in_chans if conv else layer.in_features
        before = [seq._modules[n] for n in names[max(0, i - 2) : i]]
        act = before.pop() if before and type(before[-1]) is nn.Hardtanh else None
        bn = before[-1] if before and _is_batch_norm(before[-1], chans, 4 if conv else 2) else None
        after = seq._modules[names[i + 1]] if i + 1 < len(names) else None
        pool = after if conv and isinstance(after, PackedMaxPool2d) else None
        stage = PackedXnorStage(layer, bn, act, pool)
        fused = (bn is not None) + (act is not None)
        for neighbour in [*names[i - fused : i], *names[i + 1 : i + 1 + (pool is not None)]]:
            seq._modules[neighbour] = nn.Identity()
        seq._modules[name] = stage
        key = prefix + name
        notes[key] = EngineNote(key, "packed", f"xnor stage: {stage.parts or 'layer alone'} fused")


def _fuse(module: nn.Module, prefix: str, notes: dict[str, EngineNote]) -> nn.Module:
    if next(module.children(), None) is None or isinstance(module, PackedXnorStage):
        return module
    if isinstance(module, nn.Sequential):
        _fuse_sequential(module, prefix, notes)
        return module
    try:
        graph = _Tracer().trace(module)
    except Exception:  # control flow on values (shape checks ...): child by child
        for name, child in list(module.named_children()):
            setattr(module, name, _fuse(child, f"{prefix}{name}.", notes))
        return module
    traced = fx.GraphModule(module, graph, type(module).__name__)
    _fuse_graph(traced, prefix, notes)
    return traced


def fuse_stages(model: nn.Module, notes: list[EngineNote]) -> tuple[nn.Module, list[EngineNote]]:
    """``model`` (a packed network, modified in place or replaced by a traced copy) with its
    XNOR stages fused, and ``notes`` with the packed layers' reasons saying what was fused."""
    by_layer = {n.layer: n for n in notes}
    fused = _fuse(model, "", by_layer)
    return fused, [by_layer[n.layer] for n in notes]
