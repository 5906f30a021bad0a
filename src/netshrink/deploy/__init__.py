"""Deployment: a trained network written for a standard runtime.

- :func:`export_onnx`: ONNX, BatchNorm folded, weight-shared layers optionally as
  ``Gather`` from a codebook, checked by onnxruntime before the file is written.
"""

from netshrink.deploy.onnx import (
    CodebookConv2d,
    CodebookLinear,
    ExportReport,
    export_onnx,
    prepare_export,
)

__all__ = ["CodebookConv2d", "CodebookLinear", "ExportReport", "export_onnx", "prepare_export"]
