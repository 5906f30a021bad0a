"""The onnxruntime engine: the network exported to ONNX and run by onnxruntime's CPU provider.

A reference for the fused engine (:mod:`netshrink.engine.fused`): onnxruntime folds
BatchNorm, fuses activations and runs convolutions in its own blocked (NCHWc) layout.

``prepare(model, warn)`` gets no example input, so :class:`OnnxRuntimeModule` exports
lazily: its first forward exports an eval-mode copy of the network with the legacy
TorchScript exporter (offline; opset 17, dynamic batch axis) for that input's (C, H, W)
and builds an ``InferenceSession`` (``intra_op_num_threads`` = ``torch.get_num_threads()``
at that moment, all graph optimizations). Sessions are cached per (C, H, W): a new
spatial shape exports again; a new batch size reuses the session.
"""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn

from netshrink.engine.registry import Engine, EngineNote, register_engine

__all__ = ["OnnxRuntimeModule", "to_onnxruntime"]


def export_onnx(model: nn.Module, example: Tensor) -> bytes:
    """``model`` (eval) as ONNX bytes, traced on ``example``, with a dynamic batch axis."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter's notice
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            model,
            (example,),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )
    return buffer.getvalue()


class OnnxRuntimeModule(nn.Module):
    """Runs ``model`` through onnxruntime; takes and returns float32 torch tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval().float()
        self._sessions: dict[tuple[int, ...], ort.InferenceSession] = {}

    def session(self, x: Tensor) -> ort.InferenceSession:
        key = tuple(x.shape[1:])
        if key not in self._sessions:
            with torch.no_grad():
                onnx_bytes = export_onnx(self.model, x[:1].detach().float())
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._sessions[key] = ort.InferenceSession(
                onnx_bytes, options, providers=["CPUExecutionProvider"]
            )
        return self._sessions[key]

    def forward(self, x: Tensor) -> Tensor:
        inputs = np.ascontiguousarray(x.detach().cpu().float().numpy())
        (out,) = self.session(x).run(["output"], {"input": inputs})
        return torch.from_numpy(out)


def to_onnxruntime(model: nn.Module, *, warn: bool = True) -> tuple[nn.Module, list[EngineNote]]:
    """``model`` wrapped to run on onnxruntime (exported lazily, see the module docstring);
    one note per conv and fully connected layer (onnxruntime runs the whole graph)."""
    notes = [
        EngineNote(name, "onnxruntime", "exported to ONNX")
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    return OnnxRuntimeModule(model), notes


register_engine(
    Engine(
        "onnxruntime",
        "the network exported to ONNX and run by onnxruntime (CPU provider)",
        to_onnxruntime,
        aliases=("ort",),
    )
)
