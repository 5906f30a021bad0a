"""netshrink: make convolutional networks small and fast, and measure it honestly.

The public API in one place::

    import netshrink as ns
    model = ns.create("squeezenet1_0", num_classes=10, in_chans=1, small_input=True)
    data = ns.load_dataset("mnist5k", input_size=(1, 28, 28))
    print(ns.render_table(ns.profile(model, (1, 28, 28))))

Deep Compression::

    from netshrink.prune import PruneConfig, prune_and_retrain
    from netshrink.quantize import WeightSharingConfig, share_weights_
    ns.compress(model, ns.load_recipe("recipes/lenet5.yaml"), data, path="lenet5.nsz")
    model = ns.unpack("lenet5.nsz")

Binary networks (BWN / XNOR-Net)::

    resolved = ns.binarize_(model, ns.BinarizeConfig(mode="xnor"))
    fast, notes = ns.to_packed(model)  # XNOR layers on the bit-packed popcount kernels

The survey lives in :mod:`netshrink.survey` (it imports matplotlib).
"""

from netshrink.binarize import BinarizeConfig, binarize_
from netshrink.data import Dataset, ImageSplit, list_datasets, load_dataset
from netshrink.deploy import export_onnx
from netshrink.engine import to_packed
from netshrink.errors import NetshrinkError
from netshrink.models import create, get_spec, list_models, trust_external
from netshrink.nsz import EncodingConfig, compression_report, pack, read_nsz, unpack
from netshrink.profile import (
    ModelProfile,
    measure_latency,
    profile,
    render_comparison,
    render_table,
    speedup,
)
from netshrink.runs.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from netshrink.runs.compress import CompressResult, compress
from netshrink.runs.recipe import Recipe, load_recipe
from netshrink.runs.train import train_run
from netshrink.train import TrainConfig, evaluate, train
from netshrink.version import __version__ as __version__

__all__ = [
    "BinarizeConfig",
    "Checkpoint",
    "CompressResult",
    "EncodingConfig",
    "Recipe",
    "Dataset",
    "ImageSplit",
    "ModelProfile",
    "NetshrinkError",
    "TrainConfig",
    "binarize_",
    "compress",
    "compression_report",
    "create",
    "evaluate",
    "export_onnx",
    "get_spec",
    "list_datasets",
    "list_models",
    "trust_external",
    "load_checkpoint",
    "load_dataset",
    "load_recipe",
    "measure_latency",
    "pack",
    "profile",
    "read_nsz",
    "render_comparison",
    "render_table",
    "save_checkpoint",
    "speedup",
    "to_packed",
    "train",
    "train_run",
    "unpack",
]
