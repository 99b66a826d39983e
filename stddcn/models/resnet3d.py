"""3D ResNets for clips (Tran et al. 2018) with ``torchvision.models.video``'s module names.

``r2plus1d-18`` and ``r3d-18`` are built exactly as torchvision's ``r2plus1d_18`` and
``r3d_18``, so their Kinetics state dicts load (less ``fc.*``). Unlike the 2D ResNet, the
video stem has no max pool. ``forward`` maps (N, C, T, H, W) to pooled features
(N, feature_dim); the classifier is the model's head.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from stddcn.models.registry import register_arch
from stddcn.models.resnet2d import init_weights, scaled


class Conv3DSimple(nn.Conv3d):
    """A full 3x3x3 convolution (R3D); the stride applies in time and space."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int | None = None,
                 stride: int = 1, padding: int = 1) -> None:
        super().__init__(in_planes, out_planes, kernel_size=(3, 3, 3), stride=stride,
                         padding=padding, bias=False)


class Conv2Plus1D(nn.Sequential):
    """A 3x3x3 convolution factored into 1x3x3 (space) -> BN -> ReLU -> 3x1x1 (time)."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1,
                 padding: int = 1) -> None:
        super().__init__(
            nn.Conv3d(in_planes, midplanes, kernel_size=(1, 3, 3), stride=(1, stride, stride),
                      padding=(0, padding, padding), bias=False),
            nn.BatchNorm3d(midplanes),
            nn.ReLU(inplace=True),
            nn.Conv3d(midplanes, out_planes, kernel_size=(3, 1, 1), stride=(stride, 1, 1),
                      padding=(padding, 0, 0), bias=False))


ConvBuilder = Callable[..., nn.Module]


class BasicBlock3d(nn.Module):
    """torchvision's video BasicBlock: ``conv1`` = (conv, BN, ReLU), ``conv2`` = (conv, BN).

    ``midplanes`` keeps a (2+1)D block's parameter count equal to a full 3D block's; torchvision
    computes it once per block from (inplanes, planes) and uses it for both convs.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, conv_builder: ConvBuilder, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        midplanes = (inplanes * planes * 3 * 3 * 3) // (inplanes * 3 * 3 + 3 * planes)
        self.conv1 = nn.Sequential(conv_builder(inplanes, planes, midplanes, stride),
                                   nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv_builder(planes, planes, midplanes),
                                   nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


def basic_stem(in_channels: int, width: int) -> nn.Sequential:
    """R3D stem: 3x7x7 conv, stride (1, 2, 2), BN, ReLU."""
    return nn.Sequential(
        nn.Conv3d(in_channels, width, kernel_size=(3, 7, 7), stride=(1, 2, 2),
                  padding=(1, 3, 3), bias=False),
        nn.BatchNorm3d(width), nn.ReLU(inplace=True))


def r2plus1d_stem(in_channels: int, mid: int, width: int) -> nn.Sequential:
    """R(2+1)D stem: 1x7x7 conv to ``mid`` (45) channels, BN, ReLU, 3x1x1 conv, BN, ReLU."""
    return nn.Sequential(
        nn.Conv3d(in_channels, mid, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3),
                  bias=False),
        nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
        nn.Conv3d(mid, width, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0),
                  bias=False),
        nn.BatchNorm3d(width), nn.ReLU(inplace=True))


class VideoResNet(nn.Module):
    """A torchvision-layout video ResNet trunk: stem, four stages, global average pool; no fc.

    Attributes:
        arch: the registered name it was built as.
        inflatable: True when every conv is a full 3D conv, so 2D ImageNet weights inflate.
        feature_dim: channels of the pooled features.
    """

    def __init__(self, arch: str, stem: nn.Sequential, conv_builder: ConvBuilder,
                 layers: tuple[int, ...], widths: tuple[int, ...]) -> None:
        super().__init__()
        self.arch = arch
        self.inflatable = conv_builder is Conv3DSimple
        self.stem = stem
        self.inplanes = [m for m in stem if isinstance(m, nn.BatchNorm3d)][-1].num_features
        stages = [self._make_layer(conv_builder, width, blocks, 1 if i == 0 else 2)
                  for i, (width, blocks) in enumerate(zip(widths, layers))]
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.feature_dim = self.inplanes
        init_weights(self)

    def _make_layer(self, conv_builder: ConvBuilder, planes: int, blocks: int,
                    stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(  # both builders stride (s, s, s)
                nn.Conv3d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(planes))
        layers = [BasicBlock3d(self.inplanes, planes, conv_builder, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock3d(planes, planes, conv_builder) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, T, H, W) -> (N, feature_dim) pooled features."""
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


WIDTHS_18 = (64, 128, 256, 512)
WIDTHS_TINY = (16, 32, 64, 128)


@register_arch("r2plus1d-18", "3d")
def r2plus1d_18(in_channels: int = 3, width_mult: float = 1.0) -> VideoResNet:
    """R(2+1)D-18: 31.3M parameters without fc (31.51M with torchvision's 400-class fc)."""
    stem = r2plus1d_stem(in_channels, scaled(45, width_mult), scaled(64, width_mult))
    widths = tuple(scaled(w, width_mult) for w in WIDTHS_18)
    return VideoResNet("r2plus1d-18", stem, Conv2Plus1D, (2, 2, 2, 2), widths)


@register_arch("r3d-18", "3d")
def r3d_18(in_channels: int = 3, width_mult: float = 1.0) -> VideoResNet:
    """R3D-18: 33.2M parameters without fc (33.37M with a 400-class fc); inflatable."""
    stem = basic_stem(in_channels, scaled(64, width_mult))
    widths = tuple(scaled(w, width_mult) for w in WIDTHS_18)
    return VideoResNet("r3d-18", stem, Conv3DSimple, (2, 2, 2, 2), widths)


@register_arch("r3d-tiny", "3d")
def r3d_tiny(in_channels: int = 3, width_mult: float = 1.0) -> VideoResNet:
    """R3D with resnet-tiny's widths (16/32/64/128, one block per stage): for CPU tests."""
    stem = basic_stem(in_channels, scaled(16, width_mult))
    widths = tuple(scaled(w, width_mult) for w in WIDTHS_TINY)
    return VideoResNet("r3d-tiny", stem, Conv3DSimple, (1, 1, 1, 1), widths)
