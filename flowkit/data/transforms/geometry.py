"""Geometry of two-stream samples: crops, resizes and flips, one set of parameters per item.

A [`Sample`][flowkit.data.Sample] holds ``rgb`` (N, H, W, 3) uint8 and/or ``flow``
(N, L, H, W, 2) float32 pixels; other keys pass through untouched. RGB and flow share H and W.
Each transform is a frozen dataclass called as ``t(sample, rng) -> new sample``; inputs are never
mutated, outputs are C-contiguous (ready for ``torch.from_numpy``).

Flow is in pixels (u right, v down), so geometry changes its values too: a resize by (sx, sy)
multiplies u by sx and v by sy, and a horizontal flip mirrors the field and negates u.

Flow may instead stay quantised: uint8 ``q`` as stored (pixels = q * 2B / 255 - B), with the
bound B under ``flow_bound``. Then a flip maps u to 255 - q (which dequantises to -u), and a
resize leaves the values alone and multiplies ``flow_scale`` (sx, sy) instead; normalisation
(flowkit.data.transforms.normalize) turns q into pixels times that scale.
Resizing uint8 rounds interpolated values to steps (OpenCV's fixed-point arithmetic): within one
step (2B / 255 px) of resizing float pixels, as MMAction2 does with its flow JPEGs. Four times
fewer bytes pass through the transforms and the DataLoader's worker processes.

Multi-crop test transforms stack crops crop-major on the leading axis: item ``c * N + n`` is
crop ``c`` of frame (or flow stack) ``n``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from flowkit.data.items import FLOW, FLOW_BOUND, FLOW_SCALE, RGB, Sample, flow_scale
from flowkit.errors import ConfigError

Transform = Callable[[Sample, np.random.Generator], Sample]
_KEYS = (RGB, FLOW)


def _spatial_size(sample: Sample) -> tuple[int, int]:
    """(H, W) shared by ``rgb`` (N, H, W, 3) and ``flow`` (N, L, H, W, 2)."""
    sizes = {}
    if RGB in sample:
        rgb = sample[RGB]
        if rgb.ndim != 4 or rgb.shape[-1] != 3:
            raise ConfigError(f"sample['rgb'] must be (N, H, W, 3), got {rgb.shape}")
        sizes[RGB] = rgb.shape[1:3]
    if FLOW in sample:
        flow = sample[FLOW]
        if flow.ndim != 5 or flow.shape[-1] != 2:
            raise ConfigError(f"sample['flow'] must be (N, L, H, W, 2), got {flow.shape}")
        if flow.dtype == np.uint8 and FLOW_BOUND not in sample:
            raise ConfigError("sample['flow'] is uint8 (quantised) but sample['flow_bound'] is "
                              "missing; give the bound it was quantised with")
        sizes[FLOW] = flow.shape[2:4]
    if not sizes:
        raise ConfigError("sample has neither 'rgb' nor 'flow'; give at least one")
    if len(set(sizes.values())) > 1:
        raise ConfigError(f"rgb and flow sizes differ: {sizes}; extract them at the same size")
    return tuple(int(s) for s in next(iter(sizes.values())))


def map_sample(sample: Sample, fn: Callable[[str, np.ndarray], np.ndarray]) -> Sample:
    """New dict with ``fn(key, array)`` applied to rgb and flow; other keys copied by reference."""
    return {k: (fn(k, v) if k in _KEYS else v) for k, v in sample.items()}


def quantized(key: str, a: np.ndarray) -> bool:
    """Whether ``a`` under ``key`` is quantised flow (uint8 steps of 2B/255)."""
    return key == FLOW and a.dtype == np.uint8


def _crop(sample: Sample, top: int, left: int, height: int, width: int) -> Sample:
    """The same box on every frame and flow of the item (copied: outputs never alias inputs)."""
    return map_sample(sample, lambda k, a: np.ascontiguousarray(_box(a, top, left, height, width)))


def _box(images: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """A view of the box on (..., H, W, C) images; OpenCV reads such views without a copy."""
    return images[..., top:top + height, left:left + width, :]


def per_image(images: np.ndarray, out_hw: tuple[int, int],
               op: Callable[[np.ndarray, np.ndarray], object],
               dtype: np.dtype | type | None = None) -> np.ndarray:
    """``op(image, out_image)`` for each (H, W, C) image of (..., H, W, C) ``images``.

    OpenCV works image by image; ``op`` writes into its slot of one new C-contiguous array of
    shape (..., *out_hw, C) and ``dtype`` (default: the input's).
    """
    lead, channels = images.shape[:-3], images.shape[-1]
    flat = images.reshape((-1, *images.shape[-3:]))  # a view: only H and W were ever sliced
    out = np.empty((flat.shape[0], *out_hw, channels), dtype=dtype or images.dtype)
    for image, target in zip(flat, out):
        op(image, target)
    return out.reshape(lead + (*out_hw, channels))


def _flip(sample: Sample) -> Sample:
    """Mirror left-right; flow u is negated (motion to the right becomes motion to the left)."""
    def flip(key: str, a: np.ndarray) -> np.ndarray:
        out = per_image(a, a.shape[-3:-1], lambda image, target: cv2.flip(image, 1, target))
        if quantized(key, a):  # 255 - q dequantises to -u; 255 - q == q ^ 0xFF for uint8,
            # and XOR-ing the low byte of each (u, v) pair as little-endian uint16 is one
            # contiguous pass instead of a strided one (4x faster)
            pairs = out.view("<u2")
            np.bitwise_xor(pairs, 0x00FF, out=pairs)
        elif key == FLOW:
            out[..., 0] *= -1  # out is a fresh copy, so this does not touch the input
        return out
    return map_sample(sample, flip)


def _resize_images(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """cv2 INTER_LINEAR resize of (..., H, W, C) to (..., height, width, C), same dtype."""
    def resize(image: np.ndarray, target: np.ndarray) -> None:
        cv2.resize(image, (width, height), target, interpolation=cv2.INTER_LINEAR)
    return per_image(images, (height, width), resize)


def _resize(sample: Sample, height: int, width: int) -> Sample:
    """Resize every image to (height, width); flow u *= width / W and v *= height / H."""
    h, w = _spatial_size(sample)
    if (h, w) == (height, width):
        return map_sample(sample, lambda k, a: a.copy())

    def resize(key: str, a: np.ndarray) -> np.ndarray:
        out = _resize_images(a, height, width)
        if key == FLOW and not quantized(key, a):  # per channel: a size-2 broadcast is slower
            out[..., 0] *= np.float32(width / w)
            out[..., 1] *= np.float32(height / h)
        return out
    out = map_sample(sample, resize)
    if FLOW in sample and quantized(FLOW, sample[FLOW]):
        out[FLOW_SCALE] = flow_scale(sample) * np.float32([width / w, height / h])
    return out


def _check_fits(size: int, h: int, w: int, name: str) -> None:
    if size > h or size > w:
        raise ConfigError(f"{name}({size}) needs frames at least {size}x{size}, got {w}x{h}; "
                          f"put Resize(short_side>={size}) before it")


def _stack_crops(crops: Sequence[Sample]) -> Sample:
    """Concatenate crops crop-major on the leading axis (N' = len(crops) * N)."""
    first = crops[0]
    return {k: (np.concatenate([c[k] for c in crops], axis=0) if k in _KEYS else v)
            for k, v in first.items()}


@dataclass(frozen=True)
class MultiScaleCrop:
    """TSN scale jitter: crop of a jittered size and aspect, then resize to ``size`` x ``size``.

    Crop sides are ``int(min(H, W) * scale)`` (sides within 3 px of ``size`` snap to ``size``, as in
    TSN); width and height use scale indices i, j with ``|i - j| <= max_distort``. With
    ``fix_crop`` the offset is one of 5 corner/centre positions (13 with ``more_fix_crop``, TSN's
    default), otherwise uniform. Output: rgb (N, size, size, 3) uint8, flow (N, L, size, size, 2)
    with values scaled by the resize factors.
    """

    size: int = 224
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    max_distort: int = 1
    fix_crop: bool = True
    more_fix_crop: bool = True

    def __post_init__(self) -> None:
        if self.size < 1 or not self.scales or not all(0 < s <= 1 for s in self.scales):
            raise ConfigError(f"MultiScaleCrop needs size >= 1 and scales in (0, 1], "
                              f"got size={self.size}, scales={self.scales}")
        if self.max_distort < 0:
            raise ConfigError(f"max_distort must be >= 0, got {self.max_distort}")

    def _offsets(self, h: int, w: int, crop_h: int, crop_w: int) -> list[tuple[int, int]]:
        """Candidate (top, left) offsets on a 4x4 grid of steps, TSN order."""
        ws, hs = (w - crop_w) // 4, (h - crop_h) // 4
        grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]
        if self.more_fix_crop:
            grid += [(2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
        return [(r * hs, c * ws) for r, c in grid]

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = _spatial_size(sample)
        base = min(h, w)
        sides = [int(base * s) for s in self.scales]
        sides = [self.size if abs(s - self.size) < 3 else s for s in sides]
        pairs = [(sides[i], sides[j]) for i in range(len(sides)) for j in range(len(sides))
                 if abs(i - j) <= self.max_distort]  # (crop_h, crop_w)
        crop_h, crop_w = pairs[int(rng.integers(len(pairs)))]
        crop_h, crop_w = max(1, min(crop_h, h)), max(1, min(crop_w, w))
        if self.fix_crop:
            offsets = self._offsets(h, w, crop_h, crop_w)
            top, left = offsets[int(rng.integers(len(offsets)))]
        else:
            top = int(rng.integers(h - crop_h + 1))
            left = int(rng.integers(w - crop_w + 1))
        return _resize(map_sample(sample, lambda k, a: _box(a, top, left, crop_h, crop_w)),
                       self.size, self.size)


@dataclass(frozen=True)
class RandomResizedCrop:
    """Inception-style crop (torchvision's algorithm), then resize to ``size`` x ``size``.

    Area fraction uniform in ``area``, aspect ratio log-uniform in ``ratio``; after 10 failed
    draws, a centre crop with the ratio clamped. Flow values are scaled by the resize factors.
    """

    size: int = 224
    area: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"size must be >= 1, got {self.size}")
        if not (0 < self.area[0] <= self.area[1] <= 1) or not (0 < self.ratio[0] <= self.ratio[1]):
            raise ConfigError(f"need 0 < area[0] <= area[1] <= 1 and 0 < ratio[0] <= ratio[1], "
                              f"got area={self.area}, ratio={self.ratio}")

    def _box(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = h * w * rng.uniform(*self.area)
            aspect = math.exp(rng.uniform(*log_ratio))
            cw = round(math.sqrt(target * aspect))
            ch = round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                return int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1)), ch, cw
        aspect = w / h
        if aspect < self.ratio[0]:
            cw, ch = w, round(w / self.ratio[0])
        elif aspect > self.ratio[1]:
            ch, cw = h, round(h * self.ratio[1])
        else:
            cw, ch = w, h
        ch, cw = max(1, min(ch, h)), max(1, min(cw, w))
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = _spatial_size(sample)
        top, left, ch, cw = self._box(h, w, rng)
        return _resize(map_sample(sample, lambda k, a: _box(a, top, left, ch, cw)),
                       self.size, self.size)


@dataclass(frozen=True)
class Resize:
    """Resize so the short side is ``short_side`` (long side rounded), keeping the aspect ratio."""

    short_side: int = 256

    def __post_init__(self) -> None:
        if self.short_side < 1:
            raise ConfigError(f"short_side must be >= 1, got {self.short_side}")

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        h, w = _spatial_size(sample)
        if h <= w:
            height, width = self.short_side, max(1, round(w * self.short_side / h))
        else:
            height, width = max(1, round(h * self.short_side / w)), self.short_side
        return _resize(sample, height, width)


@dataclass(frozen=True)
class CenterCrop:
    """Centre ``size`` x ``size`` crop (top = round((H - size) / 2)); deterministic."""

    size: int = 224

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        h, w = _spatial_size(sample)
        _check_fits(self.size, h, w, "CenterCrop")
        return _crop(sample, round((h - self.size) / 2), round((w - self.size) / 2),
                     self.size, self.size)


@dataclass(frozen=True)
class ThreeCrop:
    """Three ``size`` x ``size`` crops along the long side (start, centre, end), centred across.

    Output N' = 3 * N, crop-major (left/top, centre, right/bottom).
    """

    size: int = 224

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        h, w = _spatial_size(sample)
        _check_fits(self.size, h, w, "ThreeCrop")
        dh, dw = h - self.size, w - self.size
        if w >= h:
            boxes = [(dh // 2, 0), (dh // 2, dw // 2), (dh // 2, dw)]
        else:
            boxes = [(0, dw // 2), (dh // 2, dw // 2), (dh, dw // 2)]
        return _stack_crops([_crop(sample, t, l, self.size, self.size) for t, l in boxes])


@dataclass(frozen=True)
class TenCrop:
    """Five ``size`` crops (top-left, top-right, bottom-left, bottom-right, centre) + their flips.

    Output N' = 10 * N, crop-major; crops 5..9 are crops 0..4 mirrored, with flow u negated.
    """

    size: int = 224

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        h, w = _spatial_size(sample)
        _check_fits(self.size, h, w, "TenCrop")
        dh, dw = h - self.size, w - self.size
        boxes = [(0, 0), (0, dw), (dh, 0), (dh, dw), (round(dh / 2), round(dw / 2))]
        crops = [_crop(sample, t, l, self.size, self.size) for t, l in boxes]
        return _stack_crops(crops + [_flip(c) for c in crops])


@dataclass(frozen=True)
class HorizontalFlip:
    """Mirror the whole item left-right with probability ``p``; flow u is negated."""

    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.p <= 1:
            raise ConfigError(f"HorizontalFlip p must be in [0, 1], got {self.p}")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() < self.p:
            return _flip(sample)
        return map_sample(sample, lambda k, a: a.copy())
