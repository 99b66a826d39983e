"""The RAFT network (Teed and Deng, ECCV 2020), large and small, in eval-mode PyTorch.

Module names mirror the original release (princeton-vl/RAFT) so its checkpoints load without
renaming; :mod:`flowkit.flow.raft.checkpoint` maps torchvision's names onto these. The forward
pass computes the same function as the original's ``test_mode=True`` call: its quirks (the
lookup window's x offsets taken from the meshgrid's first axis, the 0.25 mask scale) are kept
because the published weights were trained with them.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

CORR_LEVELS = 4
DOWNSAMPLE = 8  # features and the low-resolution flow are at 1/8 of the (padded) input


def _norm(kind: str, channels: int) -> nn.Module:
    """The normalisation layer an encoder uses: instance (no parameters), batch, or none."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Sequential()


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (projected when the stride is 2)."""

    def __init__(self, in_planes: int, planes: int, norm: str, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1)
        self.norm1, self.norm2 = _norm(norm, planes), _norm(norm, planes)
        self.downsample = None
        if stride != 1:
            self.norm3 = _norm(norm, planes)
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride),
                                            self.norm3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return F.relu(x + y)


class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 -> 1x1 convolutions at a quarter of the width, with a skip connection."""

    def __init__(self, in_planes: int, planes: int, norm: str, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes // 4, 1)
        self.conv2 = nn.Conv2d(planes // 4, planes // 4, 3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(planes // 4, planes, 1)
        self.norm1, self.norm2 = _norm(norm, planes // 4), _norm(norm, planes // 4)
        self.norm3 = _norm(norm, planes)
        self.downsample = None
        if stride != 1:
            self.norm4 = _norm(norm, planes)
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride),
                                            self.norm4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        y = F.relu(self.norm3(self.conv3(y)))
        if self.downsample is not None:
            x = self.downsample(x)
        return F.relu(x + y)


class Encoder(nn.Module):
    """Image -> features at 1/8 resolution: a 7x7 stride-2 convolution and three stages.

    The large model's encoders use residual blocks of widths 64, 96, 128; the small model's use
    bottleneck blocks of widths 32, 64, 96.
    """

    def __init__(self, widths: tuple[int, int, int], block: type[nn.Module], output_dim: int,
                 norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, stride=2, padding=3)
        self.norm1 = _norm(norm, widths[0])
        layers, in_planes = [], widths[0]
        for width, stride in zip(widths, (1, 2, 2)):
            layers.append(nn.Sequential(block(in_planes, width, norm, stride),
                                        block(width, width, norm, 1)))
            in_planes = width
        self.layer1, self.layer2, self.layer3 = layers
        self.conv2 = nn.Conv2d(widths[-1], output_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.conv2(x)


class BasicMotionEncoder(nn.Module):
    """Correlation features and the current flow -> motion features (large model)."""

    def __init__(self, corr_planes: int) -> None:
        super().__init__()
        self.convc1 = nn.Conv2d(corr_planes, 256, 1)
        self.convc2 = nn.Conv2d(256, 192, 3, padding=1)
        self.convf1 = nn.Conv2d(2, 128, 7, padding=3)
        self.convf2 = nn.Conv2d(128, 64, 3, padding=1)
        self.conv = nn.Conv2d(64 + 192, 128 - 2, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        cor = F.relu(self.convc2(F.relu(self.convc1(corr))))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        out = F.relu(self.conv(torch.cat([cor, flo], dim=1)))
        return torch.cat([out, flow], dim=1)


class SmallMotionEncoder(nn.Module):
    """Correlation features and the current flow -> motion features (small model)."""

    def __init__(self, corr_planes: int) -> None:
        super().__init__()
        self.convc1 = nn.Conv2d(corr_planes, 96, 1)
        self.convf1 = nn.Conv2d(2, 64, 7, padding=3)
        self.convf2 = nn.Conv2d(64, 32, 3, padding=1)
        self.conv = nn.Conv2d(128, 80, 3, padding=1)

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        cor = F.relu(self.convc1(corr))
        flo = F.relu(self.convf2(F.relu(self.convf1(flow))))
        out = F.relu(self.conv(torch.cat([cor, flo], dim=1)))
        return torch.cat([out, flow], dim=1)


def _gru_step(h: torch.Tensor, x: torch.Tensor, convz: nn.Conv2d, convr: nn.Conv2d,
              convq: nn.Conv2d) -> torch.Tensor:
    """One convolutional GRU update of hidden state ``h`` from input ``x``."""
    hx = torch.cat([h, x], dim=1)
    z = torch.sigmoid(convz(hx))
    r = torch.sigmoid(convr(hx))
    q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))
    return (1 - z) * h + z * q


class ConvGRU(nn.Module):
    """GRU with 3x3 convolutions (small model)."""

    def __init__(self, hidden_dim: int, input_dim: int) -> None:
        super().__init__()
        self.convz = nn.Conv2d(hidden_dim + input_dim, hidden_dim, 3, padding=1)
        self.convr = nn.Conv2d(hidden_dim + input_dim, hidden_dim, 3, padding=1)
        self.convq = nn.Conv2d(hidden_dim + input_dim, hidden_dim, 3, padding=1)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return _gru_step(h, x, self.convz, self.convr, self.convq)


class SepConvGRU(nn.Module):
    """A 1x5 GRU update followed by a 5x1 one (large model)."""

    def __init__(self, hidden_dim: int, input_dim: int) -> None:
        super().__init__()
        planes = hidden_dim + input_dim

        def conv(kernel: tuple[int, int]) -> nn.Conv2d:
            return nn.Conv2d(planes, hidden_dim, kernel, padding=(kernel[0] // 2, kernel[1] // 2))

        self.convz1, self.convr1, self.convq1 = conv((1, 5)), conv((1, 5)), conv((1, 5))
        self.convz2, self.convr2, self.convq2 = conv((5, 1)), conv((5, 1)), conv((5, 1))

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = _gru_step(h, x, self.convz1, self.convr1, self.convq1)
        return _gru_step(h, x, self.convz2, self.convr2, self.convq2)


class FlowHead(nn.Module):
    """Hidden state -> flow update."""

    def __init__(self, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_dim, hidden_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_dim, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


class BasicUpdateBlock(nn.Module):
    """One refinement step of the large model; also predicts the convex upsampling mask."""

    def __init__(self, corr_planes: int, hidden_dim: int = 128) -> None:
        super().__init__()
        self.encoder = BasicMotionEncoder(corr_planes)
        self.gru = SepConvGRU(hidden_dim, input_dim=128 + hidden_dim)
        self.flow_head = FlowHead(hidden_dim, hidden_dim=256)
        self.mask = nn.Sequential(nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(256, 64 * 9, 1))

    def forward(self, net: torch.Tensor, inp: torch.Tensor, corr: torch.Tensor,
                flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        motion = self.encoder(flow, corr)
        net = self.gru(net, torch.cat([inp, motion], dim=1))
        return net, self.flow_head(net)

    def upsample_mask(self, net: torch.Tensor) -> torch.Tensor:
        # The 0.25 scale is the original's ("to balance gradients"); the weights expect it.
        return 0.25 * self.mask(net)


class SmallUpdateBlock(nn.Module):
    """One refinement step of the small model (bilinear upsampling, no mask)."""

    def __init__(self, corr_planes: int, hidden_dim: int = 96) -> None:
        super().__init__()
        self.encoder = SmallMotionEncoder(corr_planes)
        self.gru = ConvGRU(hidden_dim, input_dim=82 + 64)
        self.flow_head = FlowHead(hidden_dim, hidden_dim=128)

    def forward(self, net: torch.Tensor, inp: torch.Tensor, corr: torch.Tensor,
                flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        motion = self.encoder(flow, corr)
        net = self.gru(net, torch.cat([inp, motion], dim=1))
        return net, self.flow_head(net)


def coords_grid(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """(B, 2, H, W) pixel coordinates, channel 0 x and channel 1 y."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float32),
                            torch.arange(width, device=device, dtype=torch.float32),
                            indexing="ij")
    return torch.stack([xs, ys])[None].expand(batch, 2, height, width)


def bilinear_sample(image: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (N, C, H, W) at pixel coordinates ``coords`` (N, h, w, 2 as x, y).

    Outside the image reads zeros, as the original's ``bilinear_sampler``.
    """
    height, width = image.shape[-2:]
    x, y = coords.unbind(-1)
    grid = torch.stack([2 * x / (width - 1) - 1, 2 * y / (height - 1) - 1], dim=-1)
    return F.grid_sample(image, grid, align_corners=True)


class CorrelationPyramid:
    """All-pairs correlation of two feature maps, average-pooled into ``levels`` levels.

    Memory: (H/8 * W/8)^2 * 4 bytes * 4/3 per pair, e.g. 10 MB at 340x256, 260 MB at 1024x436
    and 5.6 GB at 1920x1080.
    """

    def __init__(self, fmap1: torch.Tensor, fmap2: torch.Tensor, radius: int,
                 levels: int = CORR_LEVELS, channels_last: bool = False) -> None:
        batch, dim, height, width = fmap1.shape
        self.channels_last = channels_last
        corr = torch.matmul(fmap1.reshape(batch, dim, height * width).transpose(1, 2),
                            fmap2.reshape(batch, dim, height * width))
        corr = corr.reshape(batch * height * width, 1, height, width) / torch.sqrt(
            torch.tensor(dim, dtype=torch.float32))
        self.pyramid = [corr]
        for _ in range(levels - 1):
            corr = F.avg_pool2d(corr, 2, stride=2)
            self.pyramid.append(corr)
        self.radius = radius
        # The original builds the window with meshgrid(dy, dx) and adds it to (x, y): the
        # offset added to x runs along the window's first axis. Trained weights depend on it.
        offsets = torch.linspace(-radius, radius, 2 * radius + 1, device=fmap1.device)
        first, second = torch.meshgrid(offsets, offsets, indexing="ij")
        self.window = torch.stack([first, second], dim=-1).view(1, 2 * radius + 1,
                                                                2 * radius + 1, 2)

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        """Correlation features around ``coords`` (B, 2, H, W): (B, levels*(2r+1)^2, H, W)."""
        batch, _, height, width = coords.shape
        centres = coords.permute(0, 2, 3, 1).reshape(batch * height * width, 1, 1, 2)
        features = []
        for level, corr in enumerate(self.pyramid):
            sampled = bilinear_sample(corr, centres / 2 ** level + self.window)
            features.append(sampled.view(batch, height, width, -1))
        # (B, H, W, C) permuted: a channels_last tensor. It is already float32 (the pyramid
        # is): no per-iteration cast. NCHW models want it contiguous; channels_last ones as is.
        stacked = torch.cat(features, dim=-1).permute(0, 3, 1, 2)
        return stacked if self.channels_last else stacked.contiguous()


def upsample_convex(flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Upsample (B, 2, H, W) flow 8x as convex combinations of 3x3 neighbours, by ``mask``."""
    batch, _, height, width = flow.shape
    weights = torch.softmax(mask.view(batch, 1, 9, DOWNSAMPLE, DOWNSAMPLE, height, width), dim=2)
    patches = F.unfold(DOWNSAMPLE * flow, [3, 3], padding=1)
    patches = patches.view(batch, 2, 9, 1, 1, height, width)
    up = torch.sum(weights * patches, dim=2).permute(0, 1, 4, 2, 5, 3)
    return up.reshape(batch, 2, DOWNSAMPLE * height, DOWNSAMPLE * width)


def upsample_bilinear(flow: torch.Tensor) -> torch.Tensor:
    """Upsample (B, 2, H, W) flow 8x bilinearly (corners aligned), scaling the vectors."""
    height, width = flow.shape[-2:]
    return DOWNSAMPLE * F.interpolate(flow, size=(DOWNSAMPLE * height, DOWNSAMPLE * width),
                                      mode="bilinear", align_corners=True)


class RAFT(nn.Module):
    """RAFT: features of both frames, all-pairs correlation, recurrent flow refinement.

    ``small=False`` is the model of raft-things/sintel/kitti.pth, ``small=True`` that of
    raft-small.pth. Inputs are padded so both sides are multiples of 8.
    """

    def __init__(self, small: bool = False) -> None:
        super().__init__()
        self.small = small
        # Run the convolutions on channels_last (NHWC) tensors: faster tensor-core kernels on
        # GPUs, to be measured (bench/gpu.py); off by default, and so on the CPU, where NCHW
        # gives the reference outputs bit for bit.
        self.channels_last = False
        self._layout = torch.contiguous_format
        if small:
            self.hidden_dim, self.context_dim, self.radius = 96, 64, 3
            self.fnet = Encoder((32, 64, 96), BottleneckBlock, 128, "instance")
            self.cnet = Encoder((32, 64, 96), BottleneckBlock, 96 + 64, "none")
            self.update_block: nn.Module = SmallUpdateBlock(self._corr_planes(), 96)
        else:
            self.hidden_dim, self.context_dim, self.radius = 128, 128, 4
            self.fnet = Encoder((64, 96, 128), ResidualBlock, 256, "instance")
            self.cnet = Encoder((64, 96, 128), ResidualBlock, 128 + 128, "batch")
            self.update_block = BasicUpdateBlock(self._corr_planes(), 128)

    def _corr_planes(self) -> int:
        return CORR_LEVELS * (2 * self.radius + 1) ** 2

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, iters: int = 12,
                autocast: Callable[[], object] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow from ``image1`` to ``image2``, both (B, 3, H, W) RGB in 0..255, H and W / 8.

        Args:
            iters: refinement iterations.
            autocast: a factory of the context in which the convolutional parts run (e.g.
                bf16 autocast); the correlation and flow arithmetic stay in fp32, as in the
                original.

        Returns:
            (flow at 1/8 resolution, upsampled flow), both (B, 2, h, w) in pixels of their
            resolution, channel 0 x (right) and channel 1 y (down).
        """
        mixed = autocast or contextlib.nullcontext
        image1 = 2 * (image1 / 255.0) - 1.0
        image2 = 2 * (image2 / 255.0) - 1.0
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        if layout != self._layout:  # the weights follow the switch once
            self.to(memory_format=layout)
            self._layout = layout
        image1, image2 = (image.contiguous(memory_format=layout) for image in (image1, image2))
        batch = image1.shape[0]
        with mixed():
            fmaps = self.fnet(torch.cat([image1, image2], dim=0))
        fmap1, fmap2 = fmaps.float().split([batch, batch], dim=0)
        corr_fn = CorrelationPyramid(fmap1.contiguous(), fmap2.contiguous(), self.radius,
                                     channels_last=self.channels_last)
        with mixed():
            context = self.cnet(image1)
            net, inp = torch.split(context, [self.hidden_dim, self.context_dim], dim=1)
            net, inp = torch.tanh(net), torch.relu(inp)

        coords0 = coords_grid(batch, *fmap1.shape[-2:], device=image1.device)
        coords1 = coords0.clone()
        for _ in range(iters):
            corr = corr_fn(coords1)
            flow = coords1 - coords0
            with mixed():
                net, delta = self.update_block(net, inp, corr, flow)
            coords1 = coords1 + delta.float()
        flow = coords1 - coords0
        if self.small:
            return flow, upsample_bilinear(flow)
        with mixed():
            mask = self.update_block.upsample_mask(net)
        return flow, upsample_convex(flow, mask.float())
