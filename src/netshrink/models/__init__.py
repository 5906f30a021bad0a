"""Model architectures: a flat registry, one file per family.

Small inputs: the ImageNet-shape networks (AlexNet, VGG, SqueezeNet, MobileNet,
ShuffleNet) take ``small_input=True``, which keeps every layer and width but replaces the
stem's downsampling (stride-1 first conv, no pooling right after it), so a 28x28 or 32x32
image reaches the classifier with a non-empty feature map. The default
(``small_input=False``) is the exact published network.

Networks outside the registry are named by an importable path, ``package.module:factory``
(:mod:`netshrink.models.external`): :func:`create`, :func:`get_spec` and
:func:`parse_model_args` take them once :func:`trust_external` has allowed the path.
"""

from netshrink.models import (  # noqa: F401  (registers the builders)
    alexnet,
    lenet,
    mlp,
    mobilenet,
    shufflenet,
    squeezenet,
    vgg,
)
from netshrink.models._registry import (
    ModelSpec,
    create,
    get_spec,
    list_models,
    parse_model_args,
    register_model,
)
from netshrink.models.external import is_external, trust_external

__all__ = [
    "ModelSpec",
    "create",
    "get_spec",
    "is_external",
    "list_models",
    "parse_model_args",
    "register_model",
    "trust_external",
]
