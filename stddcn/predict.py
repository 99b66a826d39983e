"""Classifying video files with a trained run, straight from disk: ``flowkit predict``.

A network sees what training saw: each video is decoded, and its flow computed, in memory with
the settings the run's shards were extracted with (their extract_config.json: decoding, flow
backend and parameters, frame step), and goes through the shards' storage round trip (RGB
through JPEG at the stored quality, flow quantised to uint8 within the bound, or float16), so a
training video yields the very arrays its shard holds. It is then sampled, transformed and
normalised as ``flowkit eval`` does (the TSN / I3D test protocol) and scored; only the frames
and flows the protocol reads are kept or computed, and a model that reads RGB only computes no
flow at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import default_collate

from flowkit.data import (DecodedVideo, Transform, VideoDecoder, read_extract_config,
                          video_file_item)
from flowkit.errors import ConfigError, FlowkitError
from stddcn import checkpoint, data, distributed
from stddcn.config import TrainConfig
from stddcn.models import ActionModel
from stddcn.precision import autocast, inference_precision


@dataclass(frozen=True)
class ClassScore:
    """One class of a prediction: 0-based ``label``, its ``name``, softmax ``probability``."""

    label: int
    name: str
    probability: float


@dataclass
class VideoPrediction:
    """The result for one video: its best classes, or why it could not be classified.

    Attributes:
        video: the path as given.
        top: the best classes, most probable first (empty on failure).
        probabilities: (K,) float32 softmax over every class; None on failure.
        flows_computed: flows the backend computed for this video (0 for RGB-only models).
        error: one line naming the file and the reason, when it failed.
    """

    video: str
    top: list[ClassScore] = field(default_factory=list)
    probabilities: np.ndarray | None = None
    flows_computed: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        """``{"video", "top": [{"label", "name", "probability"}]}``, or ``{"video", "error"}``."""
        if self.error is not None:
            return {"video": self.video, "error": self.error}
        return {"video": self.video, "top": [asdict(score) for score in self.top]}


def predict_videos(run_or_checkpoint: Path | str, videos: Sequence[Path | str],
                   protocol: data.Protocol = data.Protocol(), *, top: int = 5,
                   device: str | None = None, batch_size: int = 4,
                   precision: str | None = None, head: str | None = None,
                   extract_config: Path | str | None = None) -> list[VideoPrediction]:
    """Classify ``videos`` with a run (its best.pt, else last.pt) or a checkpoint file.

    Videos are decoded with the extraction settings of the run's shards (``data.root`` of its
    configuration, or ``extract_config``: an extract_config.json or a folder holding one) and
    scored ``batch_size`` at a time with ``precision`` (default: the run's; fp16 runs score in
    fp32 off CUDA). A video that cannot be decoded (or is too short for a flow) is a result
    with its ``error``; the others are still classified. Results are in the order of ``videos``.

    Raises:
        CheckpointError: no run or checkpoint at ``run_or_checkpoint``.
        ConfigError: the extraction settings are missing, or cannot give what the model reads.
    """
    if top < 1 or batch_size < 1:
        raise ConfigError(f"top and batch_size must be >= 1, got {top} and {batch_size}")
    context = distributed.start(device)
    try:
        path = checkpoint.find(run_or_checkpoint)
        model, config, class_names = checkpoint.load_model(path, context.device)
        inputs = data.Inputs.of(model)
        reader = _Reader.of(config, inputs, protocol, extract_config, context.device)
        scorer = _Scorer(model, inputs, context.device,
                         inference_precision(precision or config.precision, context.device), head)
        results: list[VideoPrediction] = []
        pending: list[tuple[VideoPrediction, dict]] = []
        for video in videos:
            try:
                item, decoded = reader(video)
            except Exception as exc:  # noqa: BLE001  one bad video must not stop the others
                results.append(VideoPrediction(str(video), error=_error_text(exc, video)))
                continue
            result = VideoPrediction(str(video), flows_computed=decoded.flows_computed)
            results.append(result)
            pending.append((result, item))
            if len(pending) == batch_size:
                scorer.score(pending, class_names, top)
                pending = []
        scorer.score(pending, class_names, top)
        return results
    finally:
        distributed.stop(context)


@dataclass(frozen=True)
class _Reader:
    """Turns a video file into the item ``flowkit eval`` would test the model on."""

    decoder: VideoDecoder
    sampler: Any
    transform: Transform
    modality: str
    quantized_flow: bool

    @classmethod
    def of(cls, config: TrainConfig, inputs: data.Inputs, protocol: data.Protocol,
           extract_config: Path | str | None, device: str) -> "_Reader":
        flow = "flow" in inputs.modalities
        source = extract_config or config.data.root
        try:
            settings = read_extract_config(source, with_flow=flow)
        except ConfigError as exc:
            if extract_config is not None:
                raise
            raise ConfigError(f"{exc}; pass --extract-config FILE (a copy of the run's "
                              "extract_config.json)") from None
        if flow and settings.flow == "none":
            raise ConfigError(f"{source}: the extraction settings compute no flow; this "
                              f"{config.model.name} model reads flow")
        decoder = VideoDecoder(settings, device)
        if flow:  # a backend that cannot run here is the run's error, not every video's
            decoder.flow_backend()
        in_workers = data.normalize_in_workers(config.data, flow,
                                               settings.storage.flow_dtype != "float16")
        sampler, transform = data.sampling(config.data, inputs, train=False,
                                           protocol=protocol, normalize=in_workers)
        return cls(decoder, sampler, transform, inputs.modality, flow and not in_workers)

    def __call__(self, video: Path | str) -> tuple[dict, DecodedVideo]:
        return video_file_item(video, self.decoder, self.sampler, self.modality,
                               transform=self.transform, quantized_flow=self.quantized_flow)


def _error_text(exc: BaseException, video: Path | str) -> str:
    """One line naming the file and the cause."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, FlowkitError):
        text = f"{type(exc).__name__}: {text}"
    return text if str(video) in text else f"{video}: {text}"


class _Scorer:
    """Scores batches of items with the model: no gradients, eval mode, the run's precision."""

    def __init__(self, model: ActionModel, inputs: data.Inputs, device: str, precision: str,
                 head: str | None) -> None:
        self.model, self.inputs, self.device = model.eval(), inputs, device
        self.precision, self.head = precision, head

    @torch.no_grad()
    def score(self, pending: list[tuple[VideoPrediction, dict]], class_names: list[str],
              top: int) -> None:
        """Fill in ``probabilities`` and ``top`` of each pending result."""
        if not pending:
            return
        batch = default_collate([item for _, item in pending])
        tensors, _ = data.model_inputs(batch, self.inputs, self.device)
        with autocast(self.precision, self.device):
            logits = self.model(tensors).head(self.head)
        probabilities = torch.softmax(logits.float(), dim=1).cpu().numpy()
        for (result, _), scores in zip(pending, probabilities):
            best = np.argsort(-scores, kind="stable")[:min(top, len(scores))]
            result.probabilities = scores
            result.top = [ClassScore(int(k), class_names[k], float(scores[k])) for k in best]
