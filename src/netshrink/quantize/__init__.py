"""Trained quantization by weight sharing (Deep Compression, Han, Mao, Dally 2016, §3).

::

    from netshrink.quantize import WeightSharingConfig, share_weights_, finetune_shared
    layers = share_weights_(model, WeightSharingConfig(conv_bits=8, fc_bits=5))
    finetune_shared(model, data, TrainConfig(epochs=2, lr=1e-4))  # tunes the centroids
"""

from netshrink.quantize.codebook import SharedLayer, cluster_weights, compression_rate, decode
from netshrink.quantize.weight_sharing import (
    WeightSharingConfig,
    finetune_shared,
    is_shared,
    load_shared_,
    share_weights_,
    shared_layers,
    unshare_weights_,
)

__all__ = [
    "SharedLayer",
    "WeightSharingConfig",
    "cluster_weights",
    "compression_rate",
    "decode",
    "finetune_shared",
    "is_shared",
    "load_shared_",
    "share_weights_",
    "shared_layers",
    "unshare_weights_",
]
