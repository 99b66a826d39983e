"""2D ResNets (He et al. 2016) with torchvision's module names, so its ImageNet weights load.

The backbone stops at the global average pool: ``forward`` maps (N, C, H, W) to pooled
features (N, feature_dim); the classifier is the model's head. State-dict keys are
torchvision's (``conv1``, ``bn1``, ``layer2.0.downsample.0.weight``...), less ``fc.*``.
"""

from __future__ import annotations

import torch
from torch import nn

from stddcn.models.registry import register_arch


def scaled(width: int, mult: float) -> int:
    """``width`` channels times ``mult``, rounded, at least 1."""
    return max(1, int(round(width * mult)))


def init_weights(model: nn.Module) -> None:
    """torchvision's ResNet initialisation: He-normal convolutions (fan out), BatchNorm 1, 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


class BasicBlock(nn.Module):
    """Two 3x3 convs and a shortcut (ResNet-18/34); the first conv carries the stride."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (with the stride, torchvision's "v1.5"), 1x1 expand x4; ResNet-50."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock,
                                                         "bottleneck": Bottleneck}

LAYOUTS: dict[str, tuple[str, tuple[int, int, int, int], int, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2), 64, (64, 128, 256, 512)),
    "resnet34": ("basic", (3, 4, 6, 3), 64, (64, 128, 256, 512)),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 64, (64, 128, 256, 512)),
    "resnet-tiny": ("basic", (1, 1, 1, 1), 16, (16, 32, 64, 128)),
}
"""Per arch: block, blocks per stage, stem width, stage widths (before width_mult)."""


class ResNet2d(nn.Module):
    """A torchvision-layout ResNet trunk: stem, four stages, global average pool; no fc.

    Attributes:
        arch: the registered name it was built as.
        feature_dim: channels of the pooled features.
    """

    def __init__(self, arch: str, in_channels: int = 3, width_mult: float = 1.0) -> None:
        super().__init__()
        block_name, layers, stem, widths = LAYOUTS[arch]
        block = BLOCKS[block_name]
        self.arch = arch
        self.inplanes = scaled(stem, width_mult)
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stages = [self._make_layer(block, scaled(width, width_mult), blocks, 1 if i == 0 else 2)
                  for i, (width, blocks) in enumerate(zip(widths, layers))]
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_dim = self.inplanes
        init_weights(self)

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int,
                    blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N, feature_dim) pooled features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


@register_arch("resnet18", "2d")
def resnet18(in_channels: int = 3, width_mult: float = 1.0) -> ResNet2d:
    """ResNet-18: 11.2M parameters without fc (11.69M with torchvision's 1000-class fc)."""
    return ResNet2d("resnet18", in_channels, width_mult)


@register_arch("resnet34", "2d")
def resnet34(in_channels: int = 3, width_mult: float = 1.0) -> ResNet2d:
    """ResNet-34: 21.3M parameters without fc (21.80M with a 1000-class fc)."""
    return ResNet2d("resnet34", in_channels, width_mult)


@register_arch("resnet50", "2d")
def resnet50(in_channels: int = 3, width_mult: float = 1.0) -> ResNet2d:
    """ResNet-50 (bottleneck blocks): 23.5M without fc (25.56M with a 1000-class fc)."""
    return ResNet2d("resnet50", in_channels, width_mult)


@register_arch("resnet-tiny", "2d")
def resnet_tiny(in_channels: int = 3, width_mult: float = 1.0) -> ResNet2d:
    """One basic block per stage, widths 16/32/64/128 (~0.2M parameters): for CPU tests."""
    return ResNet2d("resnet-tiny", in_channels, width_mult)
