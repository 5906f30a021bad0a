"""The ``.nsz`` compressed model file (specified in docs/format.md).

``pack(model, path)`` writes a pruned and weight-shared model with relative indices and
Huffman coding, and a binarized model's binary layers with one bit per weight;
``unpack(path)`` rebuilds it; ``compression_report`` gives the per-layer
table of Deep Compression's Tables 2-5. Nothing in a file is ever executed (no pickle).
"""

from netshrink.nsz.container import NszFormatError
from netshrink.nsz.file import EncodingConfig, NszFile, binarize_header, pack, parse_nsz, read_nsz
from netshrink.nsz.rebuild import load_into, skeleton, unpack
from netshrink.nsz.summary import CompressionReport, LayerRow, compression_report, render_report

__all__ = [
    "CompressionReport",
    "EncodingConfig",
    "LayerRow",
    "NszFile",
    "NszFormatError",
    "binarize_header",
    "compression_report",
    "load_into",
    "pack",
    "parse_nsz",
    "read_nsz",
    "render_report",
    "skeleton",
    "unpack",
]
