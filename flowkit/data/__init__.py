"""Shards as torch Datasets: samplers (TSN segments, dense clips), transforms, splits."""

from flowkit.data.dataset import MODALITIES, ShardDataset
from flowkit.data.device import normalize_batch
from flowkit.data.sampling import ClipSampler, SegmentSampler, flow_stack_indices
from flowkit.data.splits import (read_class_index, read_csv_split, read_hmdb51_split,
                                 read_ucf101_split)
from flowkit.data.transforms import (CenterCrop, Compose, HorizontalFlip, MultiScaleCrop,
                                     Normalize, RandomResizedCrop, Resize, TenCrop, ThreeCrop,
                                     clip_test_transform, clip_train_transform,
                                     tsn_test_transform, tsn_train_transform)

__all__ = [
    "MODALITIES", "CenterCrop", "ClipSampler", "Compose", "HorizontalFlip", "MultiScaleCrop",
    "Normalize", "RandomResizedCrop", "Resize", "SegmentSampler", "ShardDataset", "TenCrop",
    "ThreeCrop", "clip_test_transform", "clip_train_transform", "flow_stack_indices",
    "normalize_batch",
    "read_class_index", "read_csv_split", "read_hmdb51_split", "read_ucf101_split",
    "tsn_test_transform", "tsn_train_transform",
]
