"""Compiled CPU kernels (numba). Leaf code: imports only numpy, numba (and its llvmlite) and
each other.

- :mod:`netshrink.kernels.binary`: bit-packed XNOR-Net GEMM, convolution and linear layers
  (the public API and its glue), whose compiled loops are in
  :mod:`netshrink.kernels.binary_loops`.
- :mod:`netshrink.kernels.xnor_stage`: whole XNOR-Net stages in one call (BatchNorm,
  clamp, signs, the input scale K, the popcount layer and max pool), bit-identical to the
  float simulation.
- :mod:`netshrink.kernels.sparse`: sparse codebook (EIE-layout) fully connected and
  convolution kernels for pruned, weight-shared layers, whose compiled loops are in
  :mod:`netshrink.kernels.sparse_loops`.
- :mod:`netshrink.kernels.checks`: the input checks shared by all kernels (array type,
  dimensions, dtype and shape, kernel-size / stride / padding pairs, clear padding bits,
  float32-exact dot lengths), each raising a ``ValueError`` that names the argument.
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
