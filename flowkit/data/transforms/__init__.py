"""Transforms of two-stream samples: geometry (crops, flips), normalisation, ready-made pipelines.

Every transform is called as ``t(sample, rng)`` on a [`Sample`][flowkit.data.Sample] and
applies one set of random parameters to all frames of an item and to both modalities.
"""

from flowkit.data.transforms.geometry import (CenterCrop, HorizontalFlip, MultiScaleCrop,
                                              RandomResizedCrop, Resize, TenCrop, ThreeCrop,
                                              Transform)
from flowkit.data.transforms.normalize import Normalize, normalize_batch
from flowkit.data.transforms.pipelines import (Compose, clip_test_transform,
                                               clip_train_transform, tsn_test_transform,
                                               tsn_train_transform)

__all__ = [
    "CenterCrop", "Compose", "HorizontalFlip", "MultiScaleCrop", "Normalize", "RandomResizedCrop",
    "Resize", "TenCrop", "ThreeCrop", "Transform", "clip_test_transform", "clip_train_transform",
    "normalize_batch", "tsn_test_transform", "tsn_train_transform",
]
