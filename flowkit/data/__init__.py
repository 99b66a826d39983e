"""Shards as torch Datasets: samplers (TSN segments, dense clips), transforms, splits, and a
shard-local shuffle for shards on network storage.

The public API of flowkit's data side; the training package (stddcn) uses only these names.
``decoded`` holds a video file decoded in memory as extraction would have stored it (for
``flowkit predict``); ``extraction`` how far a folder's extraction has got (videos pending,
a run still writing) and the labels of all its videos, for training to check first.

Imports ``flowkit.store``, ``flowkit.config`` and the layers below; beside ``flowkit.extract``,
which it never imports (docs/architecture.md).
"""

from flowkit.data.dataset import MODALITIES, ShardDataset, VideoArrays, read_item, video_file_item
from flowkit.data.decoded import DecodedVideo, VideoDecoder, read_extract_config
from flowkit.data.extraction import ExtractionState, extraction_state, manifest_labels
from flowkit.data.items import Batch, Item, Sample
from flowkit.data.order import ShardLocalShuffle
from flowkit.data.sampling import (ClipSampler, FrameIndices, Sampler, SegmentSampler, VideoExtent,
                                   flow_stack_indices)
from flowkit.data.splits import (read_class_index, read_class_names, read_csv_split,
                                 read_hmdb51_split, read_split, read_ucf101_split)
from flowkit.data.transforms import (CenterCrop, Compose, HorizontalFlip, MultiScaleCrop, Normalize,
                                     RandomResizedCrop, Resize, TenCrop, ThreeCrop, Transform,
                                     clip_test_transform, clip_train_transform, normalize_batch,
                                     tsn_test_transform, tsn_train_transform)

__all__ = [
    "Batch", "CenterCrop", "ClipSampler", "Compose", "DecodedVideo", "ExtractionState",
    "FrameIndices", "HorizontalFlip", "Item", "MODALITIES", "MultiScaleCrop", "Normalize",
    "RandomResizedCrop", "Resize", "Sample", "Sampler", "SegmentSampler", "ShardDataset",
    "ShardLocalShuffle", "TenCrop", "ThreeCrop", "Transform", "VideoArrays", "VideoDecoder",
    "VideoExtent", "clip_test_transform", "clip_train_transform", "extraction_state",
    "flow_stack_indices", "manifest_labels", "normalize_batch", "read_class_index",
    "read_class_names", "read_csv_split", "read_extract_config", "read_hmdb51_split",
    "read_item", "read_split", "read_ucf101_split", "tsn_test_transform",
    "tsn_train_transform", "video_file_item",
]
