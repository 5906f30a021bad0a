"""Binary-Weight-Networks and XNOR-Net (Rastegari et al., ECCV 2016).

``binarize_(model, BinarizeConfig(mode="xnor"))`` turns a network's layers binary for
training; :func:`binary_layers` reads their 1-bit weights and scales (what ``.nsz`` stores);
:mod:`netshrink.engine.packed` runs them with the bit-packed CPU kernels.
"""

from netshrink.binarize.binarize import (
    BinarizeConfig,
    BinaryWeights,
    binarize_,
    binary_layers,
    rebinarize_,
)
from netshrink.binarize.functions import (
    binary_sign,
    filter_scale,
    input_scale_conv2d,
    input_scale_linear,
    pairwise_sum,
    sign,
)
from netshrink.binarize.modules import MODES, BinaryConv2d, BinaryLinear, is_binary

__all__ = [
    "MODES",
    "BinarizeConfig",
    "BinaryConv2d",
    "BinaryLinear",
    "BinaryWeights",
    "binarize_",
    "binary_layers",
    "binary_sign",
    "filter_scale",
    "input_scale_conv2d",
    "input_scale_linear",
    "pairwise_sum",
    "is_binary",
    "rebinarize_",
    "sign",
]
