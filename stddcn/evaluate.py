"""Testing a model: the TSN / I3D protocol over a split, as validation or as ``flowkit eval``.

Each video is scored once: its segments (2D) or clips (3D), times crops, go through the model
as views and their logits are averaged (`stddcn.models.base`). Under torchrun every process
scores its share and the results are gathered; every video counts once.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stddcn import checkpoint, data, distributed, report
from stddcn.distributed import Context
from stddcn.metrics import Accuracy, accuracy
from stddcn.models import ActionModel
from stddcn.precision import autocast, inference_precision


@dataclass
class Predictions:
    """Scores of every tested video: ids, labels (N,), logits (N, K) float32."""

    video_ids: list[str]
    labels: np.ndarray
    scores: np.ndarray

    def accuracy(self) -> Accuracy:
        return accuracy(self.scores, self.labels)


@torch.no_grad()
def predict(model: ActionModel, loader: torch.utils.data.DataLoader, inputs: data.Inputs,
            context: Context, precision: str = "fp32", head: str | None = None) -> Predictions:
    """Scores of every video of ``loader``'s dataset, gathered from all processes, in dataset
    order. ``head`` picks a named head of a several-headed model (None: its prediction)."""
    model.eval()
    ids, labels, scores = [], [], []
    for batch in loader:
        tensors, batch_labels = data.model_inputs(batch, inputs, context.device)
        with autocast(precision, context.device):
            logits = model(tensors).head(head)
        ids += list(batch["video_id"])
        labels.append(batch_labels.cpu().numpy())
        scores.append(logits.float().cpu().numpy())
    local = (ids, _concat(labels, (0,), np.int64), _concat(scores, (0, 0), np.float32))
    order = {video_id: i for i, (video_id, _) in enumerate(loader.dataset.dataset.items)}
    seen: dict[str, tuple[int, np.ndarray]] = {}
    for part_ids, part_labels, part_scores in distributed.gather_objects(context, local):
        for video_id, label, score in zip(part_ids, part_labels, part_scores):
            seen.setdefault(video_id, (int(label), score))  # samplers pad ranks with repeats
    video_ids = sorted(seen, key=order.__getitem__)
    num_classes = next(iter(seen.values()))[1].shape[0] if seen else 0
    return Predictions(video_ids, np.array([seen[v][0] for v in video_ids], np.int64),
                       np.stack([seen[v][1] for v in video_ids]) if seen
                       else np.zeros((0, num_classes), np.float32))


def _concat(parts: list[np.ndarray], empty_shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(empty_shape, dtype)


@dataclass
class EvalResult:
    """What ``flowkit eval`` reports and where it wrote the details."""

    accuracy: Accuracy
    predictions_csv: Path
    confusion_png: Path
    checkpoint: Path
    head: str | None

    def as_dict(self) -> dict:
        return self.accuracy.as_dict()


def evaluate_run(run_or_checkpoint: Path | str, data_root: str, split: str | None = None,
                 protocol: data.Protocol = data.Protocol(), *, head: str | None = None,
                 device: str | None = None, batch_size: int = 4, workers: int = 2,
                 precision: str | None = None, out_dir: Path | None = None) -> EvalResult:
    """Test a trained run (its best.pt, else last.pt) or a checkpoint file on ``split``.

    ``split`` defaults to the run's validation split (the test part of an HMDB51 split file).
    Writes predictions.csv (per video: label, prediction, top-5, scores of the label and the
    prediction) and confusion.png with class names into ``out_dir`` (default: the run folder,
    or the checkpoint's folder), plus eval.json with the figures.
    """
    context = distributed.start(device)
    try:
        path = checkpoint.find(run_or_checkpoint)
        model, config, class_names = checkpoint.load_model(path, context.device)
        labels = data.read_labels(data_root, split or config.data.val_split, "test",
                                  num_classes=config.model.num_classes)
        inputs = data.Inputs.of(model)
        settings = dataclasses.replace(config.data, root=data_root)
        dataset = data.dataset(settings, inputs, labels, train=False, protocol=protocol,
                               seed=config.seed)
        loader = data.loader(dataset, context, batch_size * context.world_size, workers,
                             train=False)
        result = predict(model, loader, inputs, context,
                         inference_precision(precision or config.precision, context.device),
                         head)
        out = Path(out_dir) if out_dir else path.parent
        metrics = result.accuracy()
        csv_path, png_path = out / "predictions.csv", out / "confusion.png"
        if context.is_main:
            out.mkdir(parents=True, exist_ok=True)
            report.write_predictions(csv_path, result.video_ids, result.labels, result.scores,
                                     class_names)
            report.plot_confusion(png_path, result.labels, result.scores.argmax(axis=1),
                                  class_names, title=f"{path.parent.name}: top-1 "
                                                     f"{100 * metrics.top1:.1f}%")
            (out / "eval.json").write_text(json.dumps(
                {**metrics.as_dict(), "checkpoint": str(path), "head": head,
                 "segments": protocol.segments, "clips": protocol.clips,
                 "crops": protocol.crops, "split": split or config.data.val_split}, indent=1))
        return EvalResult(metrics, csv_path, png_path, path, head)
    finally:
        distributed.stop(context)
