"""Deployment: a trained network written for a standard runtime.

- :func:`export_onnx`: ONNX, BatchNorm folded, weight-shared layers optionally as
  ``Gather`` from a codebook, checked by onnxruntime before the file is written;
  :func:`onnx_bytes` the same in memory, :func:`session_module` runs it.
"""

from netshrink.deploy.onnx import (
    CodebookConv2d,
    CodebookLinear,
    ExportReport,
    export_onnx,
    onnx_bytes,
    prepare_export,
    session_module,
)

__all__ = [
    "CodebookConv2d",
    "CodebookLinear",
    "ExportReport",
    "export_onnx",
    "onnx_bytes",
    "prepare_export",
    "session_module",
]
