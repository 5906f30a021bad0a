"""Inference engines: a trained network run on the toolkit's own kernels.

Each engine is a module that registers itself (:func:`register_engine`):

- ``dense`` (alias ``float``): PyTorch as it is, the baseline of every speed-up;
- ``packed``: XNOR-Net layers on the bit-packed popcount kernels (:func:`to_packed`);
- ``sparse``: pruned, weight-shared layers on sparse codebook kernels (:func:`to_sparse`,
  and :func:`load_sparse` straight from an ``.nsz`` file);
- ``fused`` (:func:`to_fused`): BatchNorm folded, ReLU fused, channels-last, 1x1
  convolutions as GEMMs, channel shuffles folded into a copy (the compact architectures);
- ``onnxruntime`` (alias ``ort``): the network exported to ONNX and run by onnxruntime, the
  peer the fused engine is measured against;
- ``auto``: each layer on the engine that runs it fastest (:func:`to_auto`, :func:`load_auto`:
  packed for XNOR, sparse where timing finds it faster, fused for the rest).

``prepare(model, "packed")`` returns the network to run and one note per layer saying
where it runs. Engines sit above the file format and the methods, below the runs.
"""

# Registered on import, in the order `netshrink engines` lists them.
import netshrink.engine.dense  # noqa: F401, I001
import netshrink.engine.packed  # noqa: F401
import netshrink.engine.sparse  # noqa: F401
import netshrink.engine.fused  # noqa: F401
import netshrink.engine.onnxrt  # noqa: F401
import netshrink.engine.auto  # noqa: F401
from netshrink.engine.auto import load_auto, to_auto
from netshrink.engine.fused import to_fused
from netshrink.engine.onnxrt import to_onnxruntime
from netshrink.engine.packed import PackedBinaryConv2d, PackedBinaryLinear, to_packed
from netshrink.engine.registry import (
    Engine,
    EngineNote,
    get_engine,
    list_engines,
    prepare,
    register_engine,
)
from netshrink.engine.sparse import (
    MAX_DENSITY,
    SparseChainLinear,
    SparseConv2d,
    SparseLinear,
    load_sparse,
    to_sparse,
)

__all__ = [
    "MAX_DENSITY",
    "Engine",
    "EngineNote",
    "PackedBinaryConv2d",
    "PackedBinaryLinear",
    "SparseChainLinear",
    "SparseConv2d",
    "SparseLinear",
    "get_engine",
    "list_engines",
    "load_auto",
    "load_sparse",
    "prepare",
    "register_engine",
    "to_auto",
    "to_fused",
    "to_onnxruntime",
    "to_packed",
    "to_sparse",
]
