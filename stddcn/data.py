"""The one bridge between training and flowkit's data: splits, Datasets, loaders, model inputs.

Only the public ``flowkit.data`` API is used. Items leave the DataLoader workers as uint8 (RGB
and quantised flow) and are normalised on the training device (``normalize_batch``): a quarter
of the bytes of float32 through the workers' shared memory and onto the GPU. Flow reaches the
network in pixels divided by 20 (I3D's scaling: +-20 px to +-1), whatever the stored bound;
RGB with ImageNet's mean and standard deviation.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

import flowkit
from flowkit.data import (ClipSampler, Normalize, Sampler, SegmentSampler, ShardDataset,
                          Transform, clip_test_transform, clip_train_transform,
                          extraction_state, manifest_labels, normalize_batch, read_class_names,
                          read_split, tsn_test_transform, tsn_train_transform)
from flowkit.errors import ConfigError, FlowkitError
from stddcn.config import DataConfig
from stddcn.distributed import Context
from stddcn.errors import SettingsError
from stddcn.models import ActionModel
from stddcn.preemption import outlive_sigterm

#: what every model is fed: ImageNet RGB statistics, flow / 20 px
NORMALIZE = Normalize(flow="bound", bound=20.0)


@dataclass(frozen=True)
class Inputs:
    """What a model reads from the shards (taken from the model itself).

    Attributes:
        modalities: batch keys, e.g. ("rgb",), ("flow",), ("rgb", "flow").
        clips: 3D clips (else TSN segments).
        flow_length: flows per stack of 2D flow inputs.
    """

    modalities: tuple[str, ...]
    clips: bool
    flow_length: int

    @classmethod
    def of(cls, model: ActionModel) -> "Inputs":
        return cls(tuple(model.modalities), model.layout == "clips", model.flow_length or 1)

    def with_modalities(self, modalities: tuple[str, ...]) -> "Inputs":
        """These inputs plus ``modalities`` (a teacher's), sampled together."""
        return dataclasses.replace(
            self, modalities=tuple(dict.fromkeys((*self.modalities, *modalities))))

    @property
    def modality(self) -> str:
        """The ShardDataset modality: "rgb", "flow" or "rgb+flow"."""
        return "+".join(m for m in ("rgb", "flow") if m in self.modalities)


@dataclass(frozen=True)
class Protocol:
    """How a video is sampled at test time (TSN / I3D): segments or clips, times crops."""

    segments: int = 25
    clips: int = 10
    crops: int = 1


@dataclass(frozen=True)
class Labels:
    """A split's videos with 0-based labels, and the names of the classes."""

    videos: dict[str, int]
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def read_labels(root: str, split: str | None, subset: str,
                num_classes: int = 0) -> Labels:
    """The labelled videos of ``split`` (or, without one, every stored video with the label
    stored at extraction), with class names from the split's class index where it has one.

    ``num_classes`` 0 counts the classes from the labels: the split's class index, else its
    labels; without a split, the labels of every video of the manifest, pending and failed
    ones too, so that the count never depends on how far the extraction has got.

    Raises:
        ConfigError: videos without a label, or labels out of range (a few named).
        InputError: a split file that cannot be read.
    """
    names = None
    if split is not None:
        videos = read_split(split, subset)
        names = read_class_names(split)
        where = split
        labels = videos
    else:
        labels = manifest_labels(root)  # every video planned, done or not
        where = f"{root}/manifest.sqlite"
        unlabelled = [v for v, label in labels.items() if label < 0]
        if unlabelled:
            raise ConfigError(f"{len(unlabelled)} videos of {root} have no label (e.g. "
                              f"{', '.join(unlabelled[:3])}); give --split, or extract from a "
                              "list file with labels")
        videos = {v: labels[v] for v in flowkit.open_shards(root).index.video_ids()}
    if not videos:
        raise ConfigError(f"{where}: no videos to train or test on")
    count = num_classes or (len(names) if names else max(labels.values()) + 1)
    bad = [f"{v} ({label})" for v, label in labels.items() if not 0 <= label < count]
    if bad:
        raise ConfigError(f"{where}: {len(bad)} labels are outside 0..{count - 1} (e.g. "
                          f"{', '.join(bad[:3])}); the model has {count} classes")
    if names is None or len(names) != count:
        names = [str(label) for label in range(count)]
    return Labels(videos, names)


def check_extraction(settings: DataConfig) -> str | None:
    """Refuse to train on an unfinished extraction unless ``settings.allow_partial``: videos
    the run would read (the splits', or without one all of the folder's) still pending, or a
    flowkit run writing the folder now. Either would train on a subset, silently.

    Returns the line to print when videos are left out (pending ones under
    ``allow_partial``; without a split, videos that failed at extraction: final, so allowed,
    but said), else None. With a split, failed videos follow ``skip_missing`` (ShardDataset).

    Raises:
        SettingsError: the extraction is unfinished and ``allow_partial`` is off.
        InputError: a split file that cannot be read.
    """
    root = settings.root
    splits = [(path, subset) for path, subset in ((settings.split, "train"),
                                                  (settings.val_split, "test")) if path]
    wanted: set[str] | None = None
    if settings.split is not None:
        wanted = set()
        for path, subset in splits:
            wanted.update(read_split(path, subset))
    state = extraction_state(root, wanted)
    counts = state.counts("the split's " if wanted is not None else "")
    if not state.finished and not settings.allow_partial:
        if state.writer is not None:
            pid = f" (pid {state.writer})" if state.writer else ""
            raise SettingsError(f"{root}: extraction is unfinished: a flowkit run{pid} is "
                                f"writing it now ({counts}); wait for it to "
                                f"end, or pass --allow-partial to train on the {state.ok} "
                                "done")
        raise SettingsError(f"{root}: extraction is unfinished ({counts}); "
                            "finish it by rerunning the flowkit extract command that made it "
                            "(it resumes), or pass --allow-partial to train on the "
                            f"{state.ok} done")
    if not state.finished:
        writing = " (a flowkit run is still writing it)" if state.writer is not None else ""
        return (f"{root}: training on an unfinished extraction{writing}, --allow-partial: "
                f"{counts}; only the {state.ok} done are read")
    if state.failed and wanted is None:
        return (f"{root}: {state.failed} of {state.total} videos failed at extraction and are "
                f"left out (flowkit info {root} names them; flowkit extract --retry-failed "
                "tries them again)")
    return None


def dataset(settings: DataConfig, inputs: Inputs, labels: Labels, *, train: bool,
            protocol: Protocol | None = None, seed: int = 0) -> ShardDataset:
    """A ShardDataset of ``settings.root`` sampling as :func:`sampling` says.

    Items stay uint8 for :func:`model_inputs` to normalise on the device, unless
    ``settings.device_normalize`` is False or the shards store float16 flow (no uint8 form):
    then the workers normalise and items are float32. With ``settings.allow_partial`` the
    split's videos still pending are left out (:func:`check_extraction` said how many).
    """
    flow = "flow" in inputs.modalities
    in_workers = normalize_in_workers(settings, flow,
                                      not flow or _stores_quantized_flow(settings.root))
    sampler, transform = sampling(settings, inputs, train=train, protocol=protocol,
                                  normalize=in_workers)
    videos = labels.videos
    if settings.allow_partial:
        pending = extraction_state(settings.root, videos).pending_ids
        videos = {v: label for v, label in videos.items() if v not in pending}
    return ShardDataset(settings.root, inputs.modality, sampler, split=videos,
                        transform=transform, seed=seed, skip_missing=settings.skip_missing,
                        quantized_flow=flow and not in_workers)


def normalize_in_workers(settings: DataConfig, reads_flow: bool, quantized_flow: bool) -> bool:
    """Whether items are normalised in the DataLoader workers (float32) rather than left uint8
    for :func:`model_inputs` to normalise on the device: when ``settings`` asks for it, or when
    flow is read but not stored quantised (float16 has no uint8 form)."""
    return not settings.device_normalize or (reads_flow and not quantized_flow)


def sampling(settings: DataConfig, inputs: Inputs, *, train: bool,
             protocol: Protocol | None = None, normalize: bool = False
             ) -> tuple[Sampler, Transform]:
    """The sampler and transform of training (random segments or clips, TSN scale jitter or
    Inception crops, flips unless ``settings.flip`` is False) or testing (centred segments or
    evenly spread clips, resize and ``protocol.crops`` crops), at ``settings.input_size``;
    ``normalize`` ends the transform with :data:`NORMALIZE` (else items stay uint8)."""
    protocol = protocol or Protocol()
    size, norm = settings.input_size, NORMALIZE if normalize else None
    if inputs.clips:
        sampler = ClipSampler(settings.clip_len, settings.frame_stride,
                              1 if train else protocol.clips, train)
        transform = (clip_train_transform(size, norm, settings.flip) if train else
                     clip_test_transform(size, protocol.crops, normalize=norm))
    else:
        sampler = SegmentSampler(settings.segments if train else protocol.segments, train,
                                 inputs.flow_length, settings.rgb_frame)
        transform = (tsn_train_transform(size, norm, settings.flip) if train else
                     tsn_test_transform(size, protocol.crops, normalize=norm))
    return sampler, transform


def _stores_quantized_flow(root: str) -> bool:
    """Whether the shards store flow as uint8 steps (uint8 or JPEG), not float16 (or none)."""
    reader = flowkit.open_shards(root)
    return bool(reader.videos) and reader[reader.videos[0]].flow_bound is not None


class _EpochItems(Dataset):
    """Items addressed by (epoch, index), so that persistent DataLoader workers draw each
    epoch's random samples without being told the epoch.

    A flowkit error reading an item (a damaged shard) comes back as a :class:`_Failure`
    instead of being raised: torch would re-raise it in the main process with its message
    replaced by "Caught ShardError in DataLoader worker process 0" and the worker's
    traceback, many lines that the one-line message drowns in.
    """

    def __init__(self, dataset: ShardDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        self.dataset.set_epoch(epoch)
        try:
            return self.dataset[index]
        except FlowkitError as exc:
            return _Failure(exc)


@dataclass(frozen=True)
class _Failure:
    """An item (or a batch) that could not be read: the error, pickled whole across the
    worker's queue, to be raised as it is by :class:`_Loader`."""

    error: FlowkitError


def _collate(items: list[Any]) -> Any:
    """The batch of ``items``, or the first failure among them."""
    failure = next((item for item in items if isinstance(item, _Failure)), None)
    return failure if failure is not None else default_collate(items)


class _Loader(DataLoader):
    """A DataLoader that raises an item's flowkit error in the main process as the worker
    raised it (one line, its own type), not wrapped in torch's worker traceback."""

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        for batch in super().__iter__():
            if isinstance(batch, _Failure):
                raise batch.error from None
            yield batch


class _EpochSampler(DistributedSampler):
    """DistributedSampler yielding (epoch, index): the rank's share, shuffled by (seed, epoch).

    ``skip(n)`` leaves out the first ``n`` of the epoch's items (a run resumed in the middle
    of an epoch); the k-th batch of every rank together is the same set of items whatever the
    number of ranks, so a resume on another number of processes skips the right ones too.
    """

    _skipped = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self._skipped = 0

    def skip(self, items: int) -> None:
        self._skipped = items

    def __len__(self) -> int:
        return max(super().__len__() - self._skipped, 0)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = itertools.islice(super().__iter__(), self._skipped, None)
        return ((self.epoch, index) for index in indices)


def loader(data: ShardDataset, context: Context, batch_size: int, workers: int, *,
           train: bool, seed: int = 0) -> DataLoader:
    """A DataLoader over this process's share of ``data`` (all of it in one process).

    ``batch_size`` counts items over all processes; each takes ``batch_size / world_size``.
    Call ``loader.sampler.set_epoch(e)`` before each epoch: it reshuffles and redraws the
    random samples; the same epoch repeats the same batches, so a resumed run is exact
    (``loader.sampler.skip(n)`` after it starts the epoch at its item ``n``).

    Training drops each epoch's last incomplete batch: a batch of one item with one segment
    or clip gives BatchNorm one value per channel at small inputs, a ValueError at the end
    of the epoch. The items left out are the last of that epoch's shuffled order, so other
    items each epoch. Validation and testing keep every item.

    Raises:
        ConfigError: ``batch_size`` does not split over the processes.
        SettingsError: the training set is smaller than one batch (no step at all).
    """
    if batch_size % context.world_size:
        raise ConfigError(f"batch size {batch_size} does not split over {context.world_size} "
                          "processes; make it a multiple")
    sampler = _EpochSampler(data, num_replicas=context.world_size, rank=context.rank,
                            shuffle=train, seed=seed, drop_last=False)
    per_process = batch_size // context.world_size
    if train and len(sampler) < per_process:
        # each process's share is padded to len(sampler) items: the largest batch that fits
        largest = len(sampler) * context.world_size
        raise SettingsError(f"{data.reader.root}: the training set ({len(data)} videos) is "
                            f"smaller than one batch (--batch-size {batch_size}); pass "
                            f"--batch-size {largest} or less")
    # the loader's own generator: starting its workers draws nothing from the global one,
    # so dropout draws do not depend on when a (resumed) run first iterated
    generator = torch.Generator().manual_seed(seed)
    return _Loader(_EpochItems(data), batch_size=per_process, sampler=sampler,
                   num_workers=workers, pin_memory=context.device.startswith("cuda"),
                   persistent_workers=workers > 0, drop_last=train, generator=generator,
                   collate_fn=_collate,
                   worker_init_fn=outlive_sigterm if workers > 0 else None)


def model_inputs(batch: Mapping[str, Any], inputs: Inputs,
                 device: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A collated batch on ``device``, normalised, with a views axis: the model's inputs
    ({modality: (B, V, ...)}) and the labels (B,)."""
    batch = normalize_batch(dict(batch), device, NORMALIZE, clips=inputs.clips)
    tensors = {}
    for modality in inputs.modalities:
        tensor = batch[modality]
        if inputs.clips and tensor.ndim == 5:  # one clip per item: (B, C, T, H, W)
            tensor = tensor.unsqueeze(1)
        tensors[modality] = tensor
    return tensors, batch["label"]
