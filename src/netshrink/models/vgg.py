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
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from netshrink.models._blocks import fc_classifier, forward_features
from netshrink.models._registry import register_model

__all__ = ["VGG", "vgg16"]

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
