"""Pure maths shared by the compression methods and the file format.

Nothing here knows about ``torch`` models or files: inputs and outputs are NumPy arrays.
"""

from netshrink.primitives import huffman
from netshrink.primitives.bitpack import pack_bits, unpack_bits
from netshrink.primitives.kmeans import KMeansResult, kmeans_1d
from netshrink.primitives.masks import magnitude_mask, threshold_mask
from netshrink.primitives.relindex import decode_positions, encode_positions

__all__ = [
    "KMeansResult",
    "decode_positions",
    "encode_positions",
    "huffman",
    "kmeans_1d",
    "magnitude_mask",
    "pack_bits",
    "threshold_mask",
    "unpack_bits",
]
