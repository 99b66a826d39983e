"""Ready-made transform pipelines: TSN and 3D-CNN training and test, and Compose.

Each returns a [`Compose`][flowkit.data.transforms.Compose] of geometry then (optionally)
normalisation. With ``normalize=None`` RGB stays uint8 and quantised flow stays uint8, for
[`flowkit.data.normalize_batch`][] to finish on the training device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flowkit.data.items import Sample
from flowkit.data.transforms.geometry import (CenterCrop, HorizontalFlip, MultiScaleCrop,
                                              RandomResizedCrop, Resize, TenCrop, ThreeCrop,
                                              Transform)
from flowkit.data.transforms.normalize import Normalize
from flowkit.errors import ConfigError


@dataclass(frozen=True)
class Compose:
    """Apply transforms in order, all drawing from the same ``rng``."""

    transforms: tuple[Transform, ...]

    def __init__(self, transforms: Sequence[Transform]) -> None:
        object.__setattr__(self, "transforms", tuple(transforms))

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample


def _test_crops(size: int, crops: int) -> Transform:
    kinds = {1: CenterCrop, 3: ThreeCrop, 10: TenCrop}
    if crops not in kinds:
        raise ConfigError(f"crops must be one of {tuple(kinds)}, got {crops}")
    return kinds[crops](size)


def _compose(*transforms: Transform | None) -> Compose:
    """Compose the given transforms, skipping None (a pipeline without normalisation)."""
    return Compose([t for t in transforms if t is not None])


def _default_short_side(size: int) -> int:
    """256 for 224 crops (TSN), 128 for 112, and so on."""
    return round(size * 256 / 224)


def tsn_train_transform(size: int = 224, normalize: Normalize | None = Normalize(),
                        flip: bool = True) -> Compose:
    """TSN training: MultiScaleCrop(size) -> HorizontalFlip(0.5) -> Normalize.

    Output: rgb (N, size, size, 3) float32, flow (N, L, size, size, 2) float32. With
    ``normalize=None`` (here and in the other ready-made pipelines) RGB stays uint8 and quantised
    flow stays uint8, for [`flowkit.data.normalize_batch`][] to finish on
    the GPU. ``flip=False`` leaves out the flip, for classes that a mirror image changes
    (moving left vs right, "swiping left" vs "swiping right").
    """
    return _compose(MultiScaleCrop(size), HorizontalFlip(0.5) if flip else None, normalize)


def tsn_test_transform(size: int = 224, crops: int = 1, short_side: int | None = None,
                       normalize: Normalize | None = Normalize()) -> Compose:
    """TSN testing: Resize(short_side, default 256 for 224) -> 1 / 3 / 10 crops -> Normalize.

    Output leading axis N' = crops * N, crop-major.
    """
    short = _default_short_side(size) if short_side is None else short_side
    return _compose(Resize(short), _test_crops(size, crops), normalize)


def clip_train_transform(size: int = 112, normalize: Normalize | None = Normalize(),
                         flip: bool = True) -> Compose:
    """3D-CNN training: RandomResizedCrop(size) -> HorizontalFlip(0.5) -> Normalize.

    The same crop and flip apply to every frame of every clip in the item; ``flip=False``
    leaves the flip out (see [`tsn_train_transform`][flowkit.data.transforms.tsn_train_transform]).
    """
    return _compose(RandomResizedCrop(size), HorizontalFlip(0.5) if flip else None, normalize)


def clip_test_transform(size: int = 112, crops: int = 1, short_side: int | None = None,
                        normalize: Normalize | None = Normalize()) -> Compose:
    """3D-CNN testing: Resize(short_side, default size * 256 / 224) -> 1/3/10 crops -> Normalize.

    The same pipeline as [`tsn_test_transform`][flowkit.data.transforms.tsn_test_transform], with
    the 3D-CNN default size; output leading axis N' = crops * N, crop-major.
    """
    return tsn_test_transform(size, crops, short_side, normalize)
