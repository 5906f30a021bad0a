"""Inference engines: a trained network run on the toolkit's own kernels.

Each engine is a module that registers itself (:func:`register_engine`):

- ``dense`` (alias ``float``): PyTorch as it is, the baseline of every speed-up;
- ``packed``: XNOR-Net layers on the bit-packed popcount kernels (:func:`to_packed`).

``prepare(model, "packed")`` returns the network to run and one note per layer saying
where it runs. Engines sit above the file format and the methods, below the runs.
"""

from netshrink.engine import dense, packed  # noqa: F401  (registers the engines)
from netshrink.engine.packed import PackedBinaryConv2d, PackedBinaryLinear, to_packed
from netshrink.engine.registry import (
    Engine,
    EngineNote,
    get_engine,
    list_engines,
    prepare,
    register_engine,
)

__all__ = [
    "Engine",
    "EngineNote",
    "PackedBinaryConv2d",
    "PackedBinaryLinear",
    "get_engine",
    "list_engines",
    "prepare",
    "register_engine",
    "to_packed",
]
