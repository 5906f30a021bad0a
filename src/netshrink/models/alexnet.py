"""AlexNet: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", NIPS 2012.

Two variants, with the layer names of Deep Compression's per-layer tables (conv1..conv5,
fc6..fc8):

- ``alexnet``: torchvision's single-tower variant (64/192/384/256/256 filters, no groups,
  adaptive 6x6 average pool); 61,100,840 parameters and 714,188,480 MACs at 224.
- ``alexnet_caffe``: the original two-tower network as in Caffe's ``bvlc_alexnet`` (the
  network Deep Compression prunes): 96/256/384/384/256 filters, groups=2 on conv2, conv4
  and conv5, local response normalization after conv1 and conv2 (size 5, alpha 1e-4,
  beta 0.75), input 227 so that conv1 (11x11/4, no padding) gives 55x55. Counted layer by
  layer: 60,965,224 parameters, 724,406,816 MACs. The adaptive 6x6 pool before fc6 is a
  no-op at 227 (pool5 is already 6x6); it lets small inputs reach fc6 unchanged.

Small inputs (``small_input=True``): conv1 becomes a 5x5/1 convolution with padding 2 and
the same filters; every pool, layer and width is unchanged, so a 28x28 image reaches pool5
as 2x2 (32x32 as 3x3) and the adaptive pool feeds fc6 its usual 6x6 grid.

A map too small for a layer's window (e.g. 28x28 without ``small_input``) raises
``ValueError`` naming the layer, instead of a 0x0 feature map.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from netshrink.models._blocks import fc_classifier, forward_features
from netshrink.models._registry import register_model

__all__ = ["AlexNet", "alexnet", "alexnet_caffe"]


class AlexNet(nn.Module):
    """Five conv layers and three fully connected layers (fc6, fc7, fc8).

    ``widths`` are the conv1..conv5 filter counts; ``groups`` the group count of each conv
    (Caffe splits conv2, conv4 and conv5 across two GPUs); ``lrn`` adds Caffe's local
    response normalization after conv1 and conv2.
    """

    def __init__(
        self,
        widths: tuple[int, int, int, int, int],
        groups: tuple[int, int, int, int, int] = (1, 1, 1, 1, 1),
        lrn: bool = False,
        conv1_padding: int = 2,
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        name: str = "alexnet",
    ) -> None:
        super().__init__()
        self.name, self.small_input = name, small_input
        c1, c2, c3, c4, c5 = widths
        if small_input:
            conv1 = nn.Conv2d(in_chans, c1, kernel_size=5, stride=1, padding=2)
        else:
            conv1 = nn.Conv2d(in_chans, c1, kernel_size=11, stride=4, padding=conv1_padding)
        layers: list[tuple[str, nn.Module]] = [("conv1", conv1), ("relu1", nn.ReLU(inplace=True))]
        if lrn:
            layers.append(("norm1", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)))
        layers.append(("pool1", nn.MaxPool2d(kernel_size=3, stride=2)))
        layers += [
            ("conv2", nn.Conv2d(c1, c2, kernel_size=5, padding=2, groups=groups[1])),
            ("relu2", nn.ReLU(inplace=True)),
        ]
        if lrn:
            layers.append(("norm2", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)))
        layers += [
            ("pool2", nn.MaxPool2d(kernel_size=3, stride=2)),
            ("conv3", nn.Conv2d(c2, c3, kernel_size=3, padding=1, groups=groups[2])),
            ("relu3", nn.ReLU(inplace=True)),
            ("conv4", nn.Conv2d(c3, c4, kernel_size=3, padding=1, groups=groups[3])),
            ("relu4", nn.ReLU(inplace=True)),
            ("conv5", nn.Conv2d(c4, c5, kernel_size=3, padding=1, groups=groups[4])),
            ("relu5", nn.ReLU(inplace=True)),
            ("pool5", nn.MaxPool2d(kernel_size=3, stride=2)),
        ]
        self.features = nn.Sequential(OrderedDict(layers))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = fc_classifier(c5 * 6 * 6, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)  # Caffe's gaussian filler for fc layers
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = forward_features(self.features, x, self.name, self.small_input)  # (B, 256, 6, 6) at 224
        x = torch.flatten(self.avgpool(x), 1)  # (B, conv5*36)
        return self.classifier(x)  # (B, num_classes)


@register_model(
    family="alexnet",
    input_size=(3, 224, 224),
    paper="Krizhevsky et al. 2012 (torchvision single-tower variant)",
    published={"params": 61_100_840, "macs": 714_188_480},
)
def alexnet(num_classes: int = 1000, in_chans: int = 3, small_input: bool = False) -> nn.Module:
    return AlexNet(
        (64, 192, 384, 256, 256),
        num_classes=num_classes,
        in_chans=in_chans,
        small_input=small_input,
        name="alexnet",
    )


@register_model(
    family="alexnet",
    input_size=(3, 227, 227),
    paper="Krizhevsky et al. 2012 (Caffe bvlc_alexnet, two groups, LRN)",
    published={"params": 60_965_224, "macs": 724_406_816},  # computed layer by layer
)
def alexnet_caffe(
    num_classes: int = 1000, in_chans: int = 3, small_input: bool = False
) -> nn.Module:
    return AlexNet(
        (96, 256, 384, 384, 256),
        groups=(1, 2, 1, 2, 2),
        lrn=True,
        conv1_padding=0,
        num_classes=num_classes,
        in_chans=in_chans,
        small_input=small_input,
        name="alexnet_caffe",
    )
