"""Pure maths shared by the compression methods and the file format.

Nothing here knows about ``torch`` models or files: inputs and outputs are NumPy arrays.
"""

from netshrink.primitives import huffman
from netshrink.primitives.kmeans import KMeansResult, kmeans_1d

__all__ = ["KMeansResult", "huffman", "kmeans_1d"]
