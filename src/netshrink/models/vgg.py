"""VGG-16: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (arXiv:1409.1556), configuration D.

Thirteen 3x3/1 convolutions with padding 1 in five blocks (64, 128, 256, 512, 512 filters),
each block closed by a 2x2/2 max-pool, then fc6 (4096), fc7 (4096) and fc8, with ReLU and
dropout 0.5 after fc6 and fc7. As in torchvision, an adaptive 7x7 average pool sits before
fc6 (a no-op at 224). 138,357,544 parameters and 15,470,264,320 MACs at 224. Layer names
follow the paper and Deep Compression: ``features.conv1_1`` .. ``features.conv5_3``,
``classifier.fc6`` .. ``classifier.fc8``.

Small inputs (``small_input=True``): VGG has no strided stem, but five pools take 28x28 to
0x0 (28 -> 14 -> 7 -> 3 -> 1 -> 0). pool1 (the pool right after the first block) is dropped,
so 28x28 ends at pool5 as 1x1 and 32x32 as 2x2; every conv and width is unchanged. A map
too small for a pool raises ``ValueError`` naming the layer.

``vgg_small``: a VGG-style network for 28x28 images (the binary-network experiments):
conv 64 → pool → conv 128 → pool → conv 256 → pool → fc 512 → fc, all 3x3 convs with
padding 1, 1,555,914 parameters and 30,537,728 MACs. ``order="standard"`` is
conv → BN → ReLU → pool; ``order="xnor"`` is XNOR-Net's BN → activation → conv → pool
for every layer but the first and the last (``Hardtanh`` in the float network, the sign
once binarized; see ``netshrink.models.lenet``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from netshrink.models._blocks import fc_classifier, forward_features
from netshrink.models._registry import register_model
from netshrink.models.lenet import check_order

__all__ = ["VGG", "SmallVGG", "vgg16", "vgg_small"]

# Filters per conv of each block; every block ends with a 2x2/2 max-pool.
CONFIG_D = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class VGG(nn.Module):
    """Plain 3x3 conv blocks (``blocks`` gives the filters per conv) and three fc layers."""

    def __init__(
        self,
        blocks: tuple[tuple[int, ...], ...] = CONFIG_D,
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        name: str = "vgg16",
    ) -> None:
        super().__init__()
        self.name, self.small_input = name, small_input
        layers: list[tuple[str, nn.Module]] = []
        chans = in_chans
        for b, widths in enumerate(blocks, start=1):
            for i, width in enumerate(widths, start=1):
                layers.append((f"conv{b}_{i}", nn.Conv2d(chans, width, kernel_size=3, padding=1)))
                layers.append((f"relu{b}_{i}", nn.ReLU(inplace=True)))
                chans = width
            if not (small_input and b == 1):
                layers.append((f"pool{b}", nn.MaxPool2d(kernel_size=2, stride=2)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = fc_classifier(chans * 7 * 7, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = forward_features(self.features, x, self.name, self.small_input)  # (B, 512, 7, 7) at 224
        x = torch.flatten(self.avgpool(x), 1)  # (B, 25088)
        return self.classifier(x)  # (B, num_classes)


@register_model(
    family="vgg",
    input_size=(3, 224, 224),
    paper="Simonyan & Zisserman 2015, VGG-16 (configuration D)",
    published={"params": 138_357_544, "macs": 15_470_264_320},
)
def vgg16(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False) -> nn.Module:
    return VGG(CONFIG_D, num_classes=num_classes, in_chans=in_chans, small_input=small_input)


class SmallVGG(nn.Module):
    """Three 3x3 conv stages (``widths``) and two fc layers, for 28x28 inputs."""

    def __init__(
        self,
        widths: tuple[int, int, int] = (64, 128, 256),
        hidden: int = 512,
        num_classes: int = 10,
        in_chans: int = 1,
        order: str = "standard",
    ) -> None:
        super().__init__()
        check_order(order)
        xnor = order == "xnor"
        layers: list[tuple[str, nn.Module]] = []
        chans = in_chans
        for i, width in enumerate(widths, start=1):
            conv = (f"conv{i}", nn.Conv2d(chans, width, kernel_size=3, padding=1, bias=False))
            if xnor and i > 1:  # BN → BinActiv → BinConv → Pool
                layers += [(f"bn{i}", nn.BatchNorm2d(chans)), (f"act{i}", nn.Hardtanh()), conv]
            else:  # conv → BN → ReLU (the first layer stays real-valued)
                layers += [conv, (f"bn{i}", nn.BatchNorm2d(width)), (f"relu{i}", nn.ReLU())]
            layers.append((f"pool{i}", nn.MaxPool2d(2)))
            chans = width
        self.features = nn.Sequential(OrderedDict(layers))
        flat = chans * 3 * 3  # 28 -> 14 -> 7 -> 3
        fc1 = nn.Linear(flat, hidden, bias=False)
        if xnor:
            head = [("bn_fc1", nn.BatchNorm1d(flat)), ("act_fc1", nn.Hardtanh()), ("fc1", fc1)]
            head += [("bn_fc2", nn.BatchNorm1d(hidden)), ("relu_fc2", nn.ReLU())]
        else:
            head = [("fc1", fc1), ("bn_fc1", nn.BatchNorm1d(hidden)), ("relu_fc1", nn.ReLU())]
        head.append(("fc2", nn.Linear(hidden, num_classes)))
        self.classifier = nn.Sequential(OrderedDict(head))
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != (28, 28):
            raise ValueError(f"vgg_small expects a 28x28 input, got {x.shape[-2]}x{x.shape[-1]}")
        x = self.features(x)  # (B, 256, 3, 3)
        return self.classifier(torch.flatten(x, 1))  # (B, num_classes)


@register_model(
    family="vgg_small",  # a 28x28 network: not an ImageNet-shape family (no small_input)
    input_size=(1, 28, 28),
    paper="VGG-style network for 28x28 (XNOR-Net block order with order='xnor')",
    published={"params": 1_555_914, "macs": 30_537_728},
)
def vgg_small(num_classes: int = 10, in_chans: int = 1, order: str = "standard") -> nn.Module:
    return SmallVGG(num_classes=num_classes, in_chans=in_chans, order=order)
