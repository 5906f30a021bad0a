"""Compiled CPU kernels (numba). Leaf code: imports only numpy and numba.

:mod:`netshrink.kernels.binary`: bit-packed XNOR-Net GEMM, convolution and linear layers.
"""

from netshrink.kernels.binary import (
    WORD_BITS,
    binary_conv2d,
    binary_conv2d_counts,
    binary_gemm,
    binary_linear,
    pack_conv_weight,
    pack_rows,
    words,
)

__all__ = [
    "WORD_BITS",
    "binary_conv2d",
    "binary_conv2d_counts",
    "binary_gemm",
    "binary_linear",
    "pack_conv_weight",
    "pack_rows",
    "words",
]
